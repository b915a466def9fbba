"""Kfifo index wrap-around, as in the kernel's kfifo: every index near
2^32 and every split point at the end of the data area in both modes
(records never wrap: padding, then offset 0), a message larger than the
scratch buffer, qsize() across the wrap, and a hypothesis state machine
of both modes against a deque."""

import os
import queue
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from lockfree import Kfifo, KfifoQueue

from .conftest import LONG
from .kfifo_helpers import WRAP

# -- the kernel's wrap-around: every index near 2^32, every split point ------

@pytest.mark.parametrize("size", [8, 16])
def test_every_split_point_and_index_wrap_bytes(size):
    q = Kfifo(size)
    data = bytes(range(1, 256))
    for start in range(WRAP - 2 * size, WRAP + size):
        for n in range(size + 1):
            q._set_indexes(start % WRAP)
            assert q.put(data[:n], block=False) == n
            assert len(q) == n and q.free == size - n
            assert q.peek(n) == data[:n]
            assert q.get(size, block=False) == data[:n]
            assert q.empty()
    q.close()


def test_every_split_point_and_index_wrap_records():
    # Records never wrap: from every offset, a record that does not fit
    # before the end goes to offset 0 after padding; one that cannot fit
    # with the padding (single-threaded: nobody passes it) is queue.Full,
    # publishes the padding alone, and goes in once a get passed it.
    size = 16
    q = Kfifo(size, "records")
    data = bytes(range(1, 256))
    for start in range(WRAP - 2 * size, WRAP + size):
        tail = size - start % size
        for n in range(size - 4 + 1):
            pad = 0 if tail >= n + 4 else tail
            q._set_indexes(start % WRAP)
            if pad + n + 4 > size:
                with pytest.raises(queue.Full):
                    q.put_message(data[:n], block=False)
                assert len(q) == pad and q.qsize() == 0
                with pytest.raises(queue.Empty):
                    q.get_message(block=False)   # passes the padding
                assert len(q) == 0
                q.put_message(data[:n])
                assert q.get_message() == data[:n]
                continue
            q.put_message(data[:n])
            assert len(q) == pad + n + 4
            assert q.peek_len() == n
            assert q.get_message() == data[:n] and len(q) == 0
            q._set_indexes(start % WRAP)
            q.put_many([data[:n]])
            assert q.get_many() == [data[:n]]
            buf = bytearray(n)
            q._set_indexes(start % WRAP)
            q.put_message(data[:n])
            assert q.get_message_into(buf) == n and buf == data[:n]
    q.close()


def test_large_message_beyond_scratch_wraps():
    q = Kfifo(1 << 20, "records")
    big = os.urandom(700_000)          # > the 256 KiB scratch: parts path
    q._set_indexes(WRAP - 1_200_000)   # after padding; the index wraps
    q.put_message(big)
    assert q.get_message() == big
    q.put_many([big])
    assert q.get_many() == [big]
    b = Kfifo(1 << 20)
    b._set_indexes(WRAP - 300_000)
    assert b.put(big, block=False) == 700_000
    assert b.get(700_000, block=False) == big
    q.close()
    b.close()


def test_qsize_counts_messages_across_the_index_wrap():
    q = KfifoQueue(32)
    for start in (WRAP - 40, WRAP - 7, WRAP - 1, 0):
        q._set_indexes(start % WRAP)
        # 8 + 0 + 3 bytes + 3 prefixes: 23 of 32, with room for the
        # padding a record that does not fit before the end needs (< 12)
        sizes = [8, 0, 3]
        for k, n in enumerate(sizes, 1):
            q.put_nowait(b"m" * n)
            assert q.qsize() == k
        for k, n in enumerate(sizes, 1):
            assert q.get_nowait() == b"m" * n
            assert q.qsize() == len(sizes) - k
    q.close()


class KfifoModel(RuleBasedStateMachine):
    """Both modes against a deque of bytes, starting just below 2^32."""

    @initialize(size_log=st.integers(3, 6), below=st.integers(0, 200),
                records=st.booleans())
    def setup(self, size_log, below, records):
        self.records = records
        self.q = Kfifo(2**size_log, "records" if records else "bytes")
        self.size = self.q.capacity
        self.q._set_indexes((WRAP - below) % WRAP)
        self.model = deque()   # messages (records) or single bytes

    def teardown(self):
        self.q.close()

    def used(self):
        if self.records:
            return sum(4 + len(m) for m in self.model)
        return len(self.model)

    @precondition(lambda self: not self.records)
    @rule(data=st.binary(max_size=80))
    def put(self, data):
        n = self.q.put(data, block=False)
        assert n == min(len(data), self.size - self.used())
        self.model.extend(data[:n])

    @precondition(lambda self: not self.records)
    @rule(n=st.integers(0, 80), how=st.sampled_from(["get", "peek",
                                                     "skip", "into"]))
    def take(self, n, how):
        want = bytes(list(self.model)[:n])
        if how == "peek":
            assert self.q.peek(n) == want
            return
        if how == "get":
            assert self.q.get(n, block=False) == want
        elif how == "skip":
            assert self.q.skip(n) == len(want)
        else:
            buf = bytearray(n)
            assert self.q.get_into(buf, block=False) == len(want)
            assert bytes(buf[:len(want)]) == want
        for _ in want:
            self.model.popleft()

    def _room(self, n, pin, used):
        """Records never wrap: (fits, padding) for an n-byte message at
        producer index pin with used bytes in the ring; a padding that fits
        alone is published even when the message does not fit."""
        tail = self.size - pin % self.size
        pad = 0 if tail >= n + 4 else tail
        if pad + n + 4 <= self.size - used:
            return True, pad
        return False, pad if pad and self.size - used >= pad else 0

    def _pin(self):
        return getattr(self.q._h.f, "in")

    @precondition(lambda self: self.records)
    @rule(data=st.binary(max_size=40))
    def put_message(self, data):
        used, pin = len(self.q), self._pin()
        if len(data) > self.size - 4:
            with pytest.raises(ValueError):
                self.q.put_message(data, block=False)
            return
        fits, pad = self._room(len(data), pin, used)
        if not fits:
            with pytest.raises(queue.Full):
                self.q.put_message(data, block=False)
            assert len(self.q) == used + pad      # only padding went in
        else:
            self.q.put_message(data, block=False)
            self.model.append(data)
            assert len(self.q) == used + pad + 4 + len(data)

    @precondition(lambda self: self.records)
    @rule(items=st.lists(st.binary(max_size=12), max_size=6))
    def put_many(self, items):
        if any(len(m) > self.size - 4 for m in items):
            with pytest.raises(ValueError):   # checked before writing any
                self.q.put_many(items, block=False)
            return
        used, pin = len(self.q), self._pin()
        k = self.q.put_many(items, block=False)
        fit = 0
        for m in items:
            fits, pad = self._room(len(m), pin, used)
            pin += pad + (4 + len(m) if fits else 0)
            used += pad + (4 + len(m) if fits else 0)
            if not fits:
                break
            fit += 1
        assert k == fit and len(self.q) == used
        self.model.extend(items[:k])

    @precondition(lambda self: self.records)
    @rule(how=st.sampled_from(["get", "many", "into", "skip", "peek"]),
          k=st.integers(1, 5))
    def get_message(self, how, k):
        if not self.model:
            if how == "peek":
                assert self.q.peek_len() is None
            elif how == "many":
                with pytest.raises(queue.Empty):
                    self.q.get_many(k, block=False)
            else:
                with pytest.raises(queue.Empty):
                    self.q.get_message(block=False)
            return
        if how == "peek":
            assert self.q.peek_len() == len(self.model[0])
        elif how == "get":
            assert self.q.get_message(block=False) == self.model.popleft()
        elif how == "skip":
            assert self.q.skip_message() == len(self.model.popleft())
        elif how == "into":
            buf = bytearray(64)
            n = self.q.get_message_into(buf, block=False)
            assert bytes(buf[:n]) == self.model.popleft()
        else:
            got = self.q.get_many(k, block=False)
            want = [self.model.popleft()
                    for _ in range(min(k, len(self.model)))]
            assert got == want

    @invariant()
    def lengths(self):
        assert self.q.free == self.size - len(self.q)
        if not self.records:
            assert len(self.q) == self.used()
            assert self.q.empty() == (not self.model)
            return
        # Records: plus padding not passed yet, less than a lap.
        assert 0 <= len(self.q) - self.used() < self.size
        assert self.q.qsize() == len(self.model)


KfifoModel.TestCase.settings = settings(
    max_examples=400 if LONG else 60, stateful_step_count=60, deadline=None)
TestKfifoModel = KfifoModel.TestCase


def test_padding_published_alone_is_no_message():
    """A record that does not fit before the end publishes its padding
    alone and waits; until the consumer passes that padding the ring holds
    bytes but no message: empty() and eof say so, as get does."""
    q = KfifoQueue(64)
    q.put_message(b"a" * 20)
    q.put_message(b"b" * 20)
    q.get_message()
    with pytest.raises(queue.Full):           # 40 bytes needed, 16 left at
        q.put_message(b"c" * 36, block=False)  # the end: padding published
    assert q.get_message() == b"b" * 20
    assert len(q) == 16 and q.qsize() == 0     # bytes, but no message
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get_message(block=False)
    q.close_producer()
    assert q.eof
    with pytest.raises(EOFError):
        q.get_message(block=False)
    q.close()


def test_an_empty_ring_takes_a_burst_of_its_capacity():
    """A ring the consumer has drained takes a whole burst again, lap after
    lap (the same thread puts 136 KB, then gets it).  Guards the capacity a
    producer-side trick could take: a restart at offset 0 whose padding
    holds the rest of the lap until the consumer passes it (the restart
    moves out over it instead: test_kfifo_restart.py) fails at the third
    burst when it restarts with the room for padding and record free."""
    q, msg = KfifoQueue(1 << 20), os.urandom(64)
    for _ in range(40):
        for _ in range(2000):
            q.put_message(msg, block=False)
        for _ in range(2000):
            assert q.get_message(block=False) == msg
    q.close()
