"""The records producer's restart at offset 0 (csrc/kfifo_rec.c, "Restart"):
past LF_KFIFO_HOT bytes, a producer whose consumer has taken everything
starts the next record at offset 0 and moves out over the padding, so its
records stay in lines its cache holds and the padding holds no room.
put/put_many decide as they start; reserve() places the record at offset 0
when that room is free and decides at commit (restart, or move the record
to where it belongs)."""

import os
import random
import struct
import zlib

import pytest

from lockfree import KfifoQueue

from .conftest import LONG
from .kfifo_helpers import kill_producer_round

HOT = 128 << 10  # LF_KFIFO_HOT, csrc/kfifo_impl.h
RING = 1 << 20


def _offset(view) -> int:
    """Where a reserve() view starts in the data area (view.obj)."""
    from lockfree._ffi import ffi
    p, base = ffi.from_buffer(view), ffi.from_buffer(view.obj)
    try:
        return int(ffi.cast("uintptr_t", p)) - int(ffi.cast("uintptr_t",
                                                            base))
    finally:
        ffi.release(p)
        ffi.release(base)


def _msg(i: int, n: int) -> bytes:
    tag = i.to_bytes(8, "little")
    return tag + os.urandom(n - 16) + tag


def _put_at(q, data: bytes) -> int:
    with q.reserve(len(data)) as buf:
        buf[:] = data
        return _offset(buf)


def _past_hot(q, n: int) -> list[bytes]:
    """Put n-byte messages (n + 4 > HOT / 4, so that no put's failed try
    keeps the next one from trying), the consumer taking each one after
    the next is queued, until the write offset is past HOT: returns the
    one message still queued."""
    assert n + 4 > HOT // 4
    sent = [_msg(0, n)]
    q.put_message(sent[0], block=False)
    for i in range(1, HOT // (n + 4) + 1):
        sent.append(_msg(i, n))
        q.put_message(sent[-1], block=False)
        assert q.get_message(block=False) == sent.pop(0)
    return sent


def test_put_restarts_at_offset_0_when_the_consumer_keeps_up():
    """A consumer that takes each message before the next put: past HOT
    the producer restarts at offset 0, so its records stay in the first
    HOT bytes plus one record.  The mutant without the restart walks the
    whole 1 MiB."""
    q, n = KfifoQueue(RING), 20000
    offsets = []
    for i in range(300):
        offsets.append(_put_at(q, _msg(i, n)))
        assert q.get_message(block=False)[:8] == i.to_bytes(8, "little")
    assert max(offsets) < HOT + n
    assert offsets.count(4) > 40   # a restart every 7 records
    q.close()


def test_records_use_the_whole_ring_when_the_consumer_lags():
    """No restart while the consumer is behind: the messages fill the ring
    past HOT, in order, and come out in order."""
    q, n = KfifoQueue(RING), 20000
    sent = [_msg(i, n) for i in range(45)]          # 900 KB queued
    offsets = [_put_at(q, m) for m in sent]
    assert offsets == sorted(offsets) and offsets[-1] > 4 * HOT
    for m in sent:
        assert q.get_message(block=False) == m
    # Drained: the next restart is tried once HOT / 4 more bytes are
    # written after the last failed try (at most 8 records here).
    assert 4 in [_put_at(q, _msg(45 + i, n)) for i in range(9)]
    q.close()


def test_reserve_restarts_at_commit_when_the_consumer_took_everything():
    """The consumer is one message behind at reserve(): the record goes to
    offset 0; the consumer takes its message inside the block, so the
    commit restarts there.  The padding then holds no room: the ring takes
    a burst of all but the record, and everything arrives in order."""
    q, n = KfifoQueue(RING), 40000
    pending = _past_hot(q, n)
    last = _msg(99, n)
    with q.reserve(n) as buf:
        assert _offset(buf) == 4          # offset 0, after the header
        buf[:] = last
        assert q.get_message(block=False) == pending[0]
    assert len(q) == n + 4 and q.qsize() == 1
    burst = (RING - (n + 4)) // 68
    for _ in range(burst):
        q.put_message(b"b" * 64, block=False)
    assert q.get_message(block=False) == last
    for _ in range(burst):
        assert q.get_message(block=False) == b"b" * 64
    assert q.empty()
    q.close()


def test_reserve_moves_its_record_when_the_consumer_is_still_behind():
    """The consumer has not taken its message by the commit: the record
    placed at offset 0 is moved to where it belongs, after that message,
    and both arrive whole, in order, as does the next one."""
    q, n = KfifoQueue(RING), 40000
    pending = _past_hot(q, n)
    last = _msg(99, n)
    with q.reserve(n) as buf:
        assert _offset(buf) == 4
        buf[:] = last
    assert q.qsize() == 2 and len(q) == 2 * (n + 4)
    nxt = _msg(100, n)
    _put_at(q, nxt)                   # at 0 again, moved again at commit
    assert q.qsize() == 3 and len(q) == 3 * (n + 4)
    assert q.get_message(block=False) == pending[0]
    assert q.get_message(block=False) == last
    assert q.get_message(block=False) == nxt
    q.close()


def test_an_aborted_reservation_at_offset_0_leaves_nothing():
    q, n = KfifoQueue(RING), 40000
    pending = _past_hot(q, n)
    with pytest.raises(KeyError), q.reserve(n) as buf:
        assert _offset(buf) == 4
        buf[:] = b"\xee" * n
        raise KeyError
    assert q.qsize() == 1
    assert q.get_message(block=False) == pending[0]
    assert q.empty()
    nxt = _msg(7, n)
    q.put_message(nxt, block=False)
    assert q.get_message(block=False) == nxt
    q.close()


def test_put_many_restarts_on_an_empty_ring():
    """A batch into a drained ring past HOT starts at offset 0."""
    q, n = KfifoQueue(RING), 40000
    pending = _past_hot(q, n)
    assert q.get_message(block=False) == pending[0]
    batch = [_msg(i, 1000) for i in range(50)]
    assert q.put_many(batch) == 50
    last = _msg(60, 1000)
    assert _put_at(q, last) == 50 * 1004 + 4   # after the batch at 0
    assert q.get_many(100) == batch + [last]
    q.close()


def test_a_reserved_array_stays_where_it_is_written():
    """reserve_array aligns its data relative to the view's address: its
    message is never placed at offset 0 to be moved at commit (an odd
    record size puts the message in order at an odd offset here)."""
    np = pytest.importorskip("numpy")
    q, n = KfifoQueue(RING), 40001
    pending = _past_hot(q, n)
    with q.reserve_array((100,), "f8") as a:
        a[:] = np.arange(100.0)
    assert q.get_message(block=False) == pending[0]
    with q.receive_array() as arr:
        assert arr.flags.aligned and arr.tolist() == list(range(100))
    q.close()


# -- across processes: a pipelined stream that restarts, and SIGKILLs ---------

def _big(seq: int) -> bytes:
    """seq, a payload derived from it (1..40 KB in all), its CRC."""
    size = 16 + seq * 2654435761 % 40000
    body = struct.pack("<Q", seq) + bytes([seq & 0xFF]) * (size - 12)
    return body + struct.pack("<I", zlib.crc32(body))


def _check_big(msg, want: int) -> None:
    body, crc = bytes(msg[:-4]), struct.unpack("<I", msg[-4:])[0]
    assert zlib.crc32(body) == crc, f"torn message at {want}"
    assert struct.unpack_from("<Q", body)[0] == want
    assert len(msg) == 16 + want * 2654435761 % 40000


def _produce_big(q, start: int, n: int, progress, at0) -> None:
    """Messages start.. (n of them, or forever if n < 0), every third
    through reserve(); progress = committed, at0 = reservations placed at
    offset 0 (a restart, or one decided at commit)."""
    seq = start
    while n < 0 or seq < start + n:
        m = _big(seq)
        if seq % 3 == 0:
            with q.reserve(len(m)) as buf:
                buf[:] = m
                at0.value += _offset(buf) == 4
        else:
            q.put_message(m)
        seq += 1
        progress.value = seq
    if n >= 0:
        q.close_producer()


def test_a_pipelined_stream_across_processes_restarts_and_loses_nothing(
        mp_context):
    """A producer process and this consumer (get_message, receive and
    get_many in turn) through a 1 MiB ring: every message once, in order,
    untorn, and the producer restarted at offset 0 on the way."""
    n = 200_000 if LONG else 3000
    q = KfifoQueue(RING, shared=True)
    progress = mp_context.Value("q", 0, lock=False)
    at0 = mp_context.Value("q", 0, lock=False)
    p = mp_context.Process(target=_produce_big,
                           args=(q, 0, n, progress, at0))
    p.start()
    want = 0
    try:
        while True:
            try:
                if want % 3 == 0:
                    msgs = [q.get_message(timeout=30)]
                elif want % 3 == 1:
                    with q.receive(timeout=30) as view:
                        _check_big(view, want)
                    want += 1
                    continue
                else:
                    msgs = q.get_many(8, timeout=30)
            except EOFError:
                break
            for m in msgs:
                _check_big(m, want)
                want += 1
    finally:
        p.join(60)
        q.close()
    assert want == n and p.exitcode == 0
    assert at0.value > 0


def test_producers_killed_at_random_moments_lose_nothing():
    """Producers restarting at offset 0 are SIGKILLed at random moments
    (inside reserve() blocks and restarts included): the consumer gets
    every committed message, in order, untorn, then ProducerDied, and the
    next producer goes on from there."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    runs = 200 if LONG else 10
    rnd = random.Random(os.getpid())
    q = KfifoQueue(RING, shared=True)
    cons = KfifoQueue.attach(q.name)
    progress = ctx.Value("q", 0, lock=False)
    at0 = ctx.Value("q", 0, lock=False)
    want = 0
    try:
        for _ in range(runs):
            p = ctx.Process(target=_produce_big,
                            args=(q, want, -1, progress, at0))
            want = kill_producer_round(p, q, cons, want, _check_big,
                                       progress, rnd.uniform(0.005, 0.1))
    finally:
        cons.close()
        q.close()
    assert at0.value > 0

