"""KfifoQueue zero-copy: reserve()/receive() and records that never wrap
(issue #19).  The byte-level padding rules are in test_kfifo_wrap.py (split
points, the hypothesis model), the views' lifetime in test_kfifo_zc_views.py;
here: the context managers' commit, abort and role rules, interleaving
with the copying calls, processes (sequence numbers and checksums; a
producer SIGKILLed inside reserve()), and hostile padding / lengths."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import struct
import threading
import time
import zlib
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockfree import ConcurrentUseError, CorruptStateError, KfifoQueue
from lockfree._ffi import ffi
from lockfree.errors import ProducerDied

WRAP = 1 << 32


def test_reserve_commits_receive_consumes():
    q = KfifoQueue(64)
    with q.reserve(5) as buf:
        assert len(buf) == 5 and not buf.readonly
        assert q.qsize() == 0                      # not published yet
        buf[:] = b"hello"
    assert q.qsize() == 1 and len(q) == 9
    with q.receive() as view:
        assert view.readonly and bytes(view) == b"hello"
        assert q.qsize() == 1                      # not consumed yet
    assert q.qsize() == 0 and q.empty()
    with q.reserve(0):
        pass                                       # an empty message
    assert q.get_message() == b""
    q.close()


def test_reserve_exception_discards_and_reraises():
    q = KfifoQueue(64)
    with pytest.raises(KeyError), q.reserve(8) as buf:
        buf[:] = b"HALFDONE"
        raise KeyError("boom")
    assert q.qsize() == 0 and len(q) == 0          # nothing published
    q.put_message(b"next")                         # the producer goes on
    with pytest.raises(queue.Empty), q.receive(block=False) as view:
        assert bytes(view) == b"next"
        q.put_message(b"x")                    # (the producer side)
        raise queue.Empty
    # receive() consumed "next" although its block raised
    assert q.get_message(block=False) == b"x"
    q.close()


def test_reservation_holds_the_producer_side():
    q = KfifoQueue(256)
    errors = []

    def other_put():
        try:
            q.put_message(b"other", block=False)
        except ConcurrentUseError as exc:
            errors.append(exc)

    with q.reserve(4) as buf:
        t = threading.Thread(target=other_put)
        t.start()
        t.join()
        with pytest.raises(ConcurrentUseError):    # this thread too
            q.put_message(b"mine", block=False)
        with pytest.raises(ConcurrentUseError):
            q.put_many([b"a"], block=False)
        with pytest.raises(ConcurrentUseError):
            q.close_producer()
        with pytest.raises(ValueError, match="inside a reserve"):
            q.close()
        with pytest.raises(ConcurrentUseError), q.reserve(1):  # no nesting
            pass
        buf[:] = b"done"
    assert len(errors) == 1
    q.put_message(b"after")                        # released
    assert q.get_many() == [b"done", b"after"]
    q.close()


def test_receipt_holds_the_consumer_side():
    q = KfifoQueue(256)
    q.put_many([b"one", b"two"])
    errors = []

    def other_get():
        for call in (lambda: q.get_message(block=False), q.reset):
            try:
                call()
            except ConcurrentUseError as exc:
                errors.append(exc)

    with q.receive() as view:
        t = threading.Thread(target=other_get)
        t.start()
        t.join()
        with pytest.raises(ConcurrentUseError):
            q.get_message(block=False)
        with pytest.raises(ConcurrentUseError), q.receive():
            pass
        assert bytes(view) == b"one"
    assert len(errors) == 2
    assert q.get_message() == b"two"
    q.close()


def test_timeouts_and_bad_arguments():
    q = KfifoQueue(64)                             # max_message 60
    with pytest.raises(queue.Empty), q.receive(block=False):
        pass
    t0 = time.monotonic()
    with pytest.raises(queue.Empty), q.receive(timeout=0.05):
        pass
    assert 0.04 < time.monotonic() - t0 < 5
    q.put_message(b"x" * 40)
    with pytest.raises(queue.Full), q.reserve(30, block=False):
        pass
    with pytest.raises(queue.Full), q.reserve(30, timeout=0.05):
        pass
    with pytest.raises(ValueError, match="max_message"):
        q.reserve(61)
    with pytest.raises(ValueError):
        q.reserve(-1)
    with pytest.raises(TypeError):
        q.reserve(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        q.reserve(1, timeout=float("nan"))
    assert q.get_message() == b"x" * 40
    with q.reserve(60) as buf:                     # max_message: whole ring
        buf[:] = bytes(range(60))
    with q.receive() as view:
        assert bytes(view) == bytes(range(60))
    q.close_producer()
    with pytest.raises(EOFError), q.receive():
        pass
    q.close()


def test_a_block_that_found_no_message_or_room_can_be_entered_again():
    """queue.Empty (Full) from __enter__ opens no block: the same receive()
    (reserve()) object may try again; one that was entered may not."""
    q = KfifoQueue(64)
    receipt, reservation = q.receive(block=False), q.reserve(8)
    with pytest.raises(queue.Empty), receipt:
        pass
    q.put_message(b"later")
    with receipt as view:                          # the same object
        assert bytes(view) == b"later"
    with pytest.raises(RuntimeError, match="once"), receipt:
        pass
    with reservation as buf:
        buf[:] = b"12345678"
    with pytest.raises(RuntimeError, match="once"), reservation:
        pass
    assert q.get_message() == b"12345678"
    q.close()


def test_blocking_reserve_waits_for_the_consumer_to_pass_the_padding():
    # A large record that does not fit before the end waits for the
    # consumer: padding first, then offset 0.
    q = KfifoQueue(64)
    q._set_indexes(WRAP - 20)
    q.put_message(b"a" * 10)                       # 14 bytes, 6 to the end
    got = []

    def consume():
        time.sleep(0.05)
        got.append(q.get_message(timeout=5))
        got.append(q.get_message(timeout=5))
    t = threading.Thread(target=consume)
    t.start()
    with q.reserve(56, timeout=5) as buf:          # 60 of 64: needs out=0
        buf[:] = b"b" * 56
    t.join()
    assert got == [b"a" * 10, b"b" * 56]
    q.close()


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 300), size_log=st.integers(5, 8),
       ops=st.lists(st.tuples(st.sampled_from(
           ["put", "reserve", "abort", "many", "get", "receive",
            "get_many"]), st.integers(0, 200)), max_size=60))
def test_interleaving_against_a_model(start, size_log, ops):
    """Every way in and out, non-blocking, from just below 2**32: the
    messages come out whole and in order (padding never shows)."""
    q = KfifoQueue(1 << size_log)
    q._set_indexes((WRAP - start) % WRAP)
    model: deque[bytes] = deque()
    for seq, (op, size) in enumerate(ops):
        n = size % (q.max_message + 1)
        msg = (seq.to_bytes(4, "little") * (n // 4 + 1))[:n]
        try:
            if op == "put":
                q.put_message(msg, block=False)
                model.append(msg)
            elif op in ("reserve", "abort"):
                with q.reserve(n, block=False) as buf:
                    buf[:] = msg
                    if op == "abort":
                        raise LookupError
                model.append(msg)
            elif op == "many":
                k = q.put_many([msg, msg[:1]], block=False)
                model.extend([msg, msg[:1]][:k])
            elif op == "get":
                assert q.get_message(block=False) == model.popleft()
            elif op == "receive":
                with q.receive(block=False) as view:
                    assert bytes(view) == model.popleft()
            else:
                got = q.get_many(3, block=False)
                assert got == [model.popleft() for _ in got]
        except (queue.Full, LookupError):
            pass
        except queue.Empty:
            assert not model
        assert q.qsize() == len(model)
    while model:
        assert q.get_message(block=False) == model.popleft()
    q.close()


# -- processes ----------------------------------------------------------------

def _message_size(seq: int, big: int) -> int:
    return 16 + (seq * 7919) % big


def _fill(buf: memoryview, seq: int) -> None:
    """seq (8 bytes), a pattern, crc32 of the rest (4 bytes)."""
    n = len(buf)
    struct.pack_into("<Q", buf, 0, seq)
    pat = bytes([seq & 0xFF]) * (n - 12)
    buf[8:n - 4] = pat
    struct.pack_into("<I", buf, n - 4, zlib.crc32(buf[:n - 4]))


def _check(view: memoryview, want: int, big: int) -> None:
    n = len(view)
    assert n == _message_size(want, big), (n, want)
    assert struct.unpack_from("<Q", view)[0] == want
    assert struct.unpack_from("<I", view, n - 4)[0] == \
        zlib.crc32(view[:n - 4]), f"torn message {want}"


def _reserve_producer(q: KfifoQueue, count: int, big: int) -> None:
    for seq in range(count):
        with q.reserve(_message_size(seq, big), timeout=30) as buf:
            _fill(buf, seq)
    q.close_producer()


def test_cross_process_reserve_receive_sequence_and_checksums(mp_context):
    big = 3000
    q = KfifoQueue(8192, shared=True)
    count = 3000
    p = mp_context.Process(target=_reserve_producer, args=(q, count, big))
    p.start()
    want = 0
    try:
        while True:
            try:
                with q.receive(timeout=30) as view:
                    _check(view, want, big)
            except EOFError:
                break
            want += 1
    finally:
        p.join(30)
    assert want == count and p.exitcode == 0
    q.close()


def _reserve_forever(q: KfifoQueue, start: int, inside, committed) -> None:
    seq = start
    while True:
        n = _message_size(seq, 500)
        with q.reserve(n, timeout=30) as buf:
            struct.pack_into("<Q", buf, 0, seq)
            buf[8:n // 2] = b"\xEE" * (n // 2 - 8)  # half written ...
            inside.value = seq
            if seq == start + 300:
                time.sleep(60)                     # ... killed here
            _fill(buf, seq)
        committed.value = seq
        seq += 1


def test_producer_killed_inside_reserve_delivers_nothing_half_written():
    ctx = mp.get_context("fork")
    q = KfifoQueue(4096, shared=True)
    inside = ctx.Value("q", -1, lock=False)
    committed = ctx.Value("q", -1, lock=False)
    p = ctx.Process(target=_reserve_forever, args=(q, 0, inside, committed))
    p.start()
    want = 0
    try:
        while inside.value != 300:                 # consume while it writes
            try:
                with q.receive(timeout=0.01) as view:
                    _check(view, want, 500)
                want += 1
            except queue.Empty:
                pass
        os.kill(p.pid, signal.SIGKILL)             # inside the block
        p.join(10)
        while True:                                # the rest, then death
            try:
                with q.receive(timeout=5) as view:
                    _check(view, want, 500)
                want += 1
            except ProducerDied:
                break
        assert want == 300 == committed.value + 1  # 300 never delivered
        # A new producer takes over and the consumer keeps going.
        p2 = ctx.Process(target=_reserve_producer_from, args=(q, 301, 20))
        p2.start()
        for seq in range(301, 321):
            with q.receive(timeout=30) as view:
                _check(view, seq, 500)
        p2.join(30)
    finally:
        if p.is_alive():
            p.kill()
    q.close()


def _reserve_producer_from(q: KfifoQueue, start: int, count: int) -> None:
    for seq in range(start, start + count):
        with q.reserve(_message_size(seq, 500), timeout=30) as buf:
            _fill(buf, seq)


# -- hostile: lengths and padding are input from the peer ---------------------

def _data(q: KfifoQueue) -> memoryview:
    return memoryview(ffi.buffer(q._h.f.data, q.capacity))


def _u32(q: KfifoQueue, off: int, value: int) -> None:
    struct.pack_into("=I", _data(q), off, value)


@pytest.mark.parametrize("how", [
    "length past the end",          # a record that would wrap
    "length past in",               # longer than what was published
    "padding past in",              # padding longer than what is readable
    "padding at offset 0",          # a padding marker filling a whole lap
    "padding then a bad length",
])
def test_corrupt_lengths_and_padding_are_corrupt_state(how):
    q = KfifoQueue(64)
    if how == "length past the end":
        q._set_indexes(WRAP - 16)                  # offset 48
        q.put_message(b"x" * 8)
        _u32(q, 48, 20)                            # 48 + 4 + 20 > 64
        len_before = len(q)
    elif how == "length past in":
        q.put_message(b"x" * 8)
        _u32(q, 0, 9)
        len_before = len(q)
    elif how == "padding past in":
        q._set_indexes(WRAP - 16)
        q.put_message(b"x" * 8)
        _u32(q, 48, 0xFFFFFFFF)                    # padding 16 > 12 published
        len_before = len(q)
    elif how == "padding at offset 0":
        q.put_message(b"x" * 60)                   # the whole ring
        _u32(q, 0, 0xFFFFFFFF)
        len_before = len(q)
    else:
        q._set_indexes(WRAP - 8)                   # offset 56
        q.put_message(b"x" * 8)                    # padding 8, record at 0
        _u32(q, 0, 40)                             # past in (12 readable)
        len_before = len(q)
    for call in (lambda: q.get_message(block=False), q.peek_len,
                 q.message_views, lambda: q.get_many(block=False),
                 lambda: q.get_message_into(bytearray(64), block=False),
                 q.skip_message, lambda: q.receive(block=False).__enter__()):
        with pytest.raises(CorruptStateError):
            call()
        assert len(q) == len_before                # nothing consumed
    assert 0 <= q.qsize() <= 1                     # a count, never a crash
    q.reset()                                      # the documented recovery
    q.put_message(b"ok")
    assert q.get_message() == b"ok"
    q.close()
