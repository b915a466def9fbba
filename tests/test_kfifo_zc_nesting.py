"""A reserve()/receive() block holds its side exclusively, against the
opening thread too: a nested put or get would write over the reservation
or consume the message under the view (csrc/kfifo_zc.c, zc_open)."""
from __future__ import annotations

import queue

import pytest

from lockfree import ConcurrentUseError, KfifoQueue


def test_nested_producer_calls_inside_reserve_are_refused():
    q = KfifoQueue(256)
    with q.reserve(5) as buf:
        buf[:] = b"hello"
        for call in (lambda: q.put_message(b"x", block=False),
                     lambda: q.put_many([b"a", b"b"], block=False),
                     lambda: q.reserve(3).__enter__()):
            with pytest.raises(ConcurrentUseError):
                call()
    assert q.get_many() == [b"hello"]  # nothing else got in
    q.put_message(b"after")             # the side is free again
    assert q.get_message() == b"after"
    q.close()


def test_nested_consumer_calls_inside_receive_are_refused():
    q = KfifoQueue(256)
    q.put_many([b"one", b"two"])
    with q.receive() as view:
        for call in (lambda: q.get_message(block=False),
                     lambda: q.get_many(block=False),
                     q.skip_message, q.reset):
            with pytest.raises(ConcurrentUseError):
                call()
        assert bytes(view) == b"one"
    assert q.get_message() == b"two"
    q.close()


def test_wait_for_room_is_outside_the_hold():
    """reserve() waiting for room does not hold the producer side, and
    returns the side free after a timeout."""
    q = KfifoQueue(64)
    with pytest.raises(queue.Full):
        while True:
            q.put_message(b"12345678", block=False)
    with pytest.raises(queue.Full), q.reserve(40, timeout=0.05):
        pass
    q.get_many()
    q.put_message(b"ok")
    assert q.get_message() == b"ok"
    q.close()
