"""Kfifo across processes: a stress of sequence-numbered, checksummed
messages (fork and spawn), and crash safety: a producer or consumer
SIGKILLed (at a chosen point, then at random moments mid-put and mid-get)
loses no committed message, its peer gets ProducerDied or ConsumerDied,
and a new process takes the role over where the dead one stopped."""

import os
import queue
import random
import signal
import struct
import time
import zlib

import pytest

from lockfree import ConsumerDied, Kfifo, ProducerDied

from .conftest import LONG
from .kfifo_helpers import await_true, kill_producer_round

# -- cross-process stress: seq numbers and checksums -------------------------

def _message(seq, rng_bytes):
    size = 12 + seq * 2654435761 % 200
    body = struct.pack("<Q", seq) + rng_bytes[:size - 12]
    return body + struct.pack("<I", zlib.crc32(body))


def _produce(q, n, batch):
    rng = os.urandom(256)
    seq = 0
    while seq < n:
        if batch and seq % 3 == 0:
            k = min(batch, n - seq)
            q.put_many([_message(s, rng) for s in range(seq, seq + k)])
            seq += k
        else:
            q.put_message(_message(seq, rng))
            seq += 1
    q.close_producer()


def _check(msg, want):
    assert len(msg) >= 12, f"short message at {want}"
    body, crc = msg[:-4], struct.unpack("<I", msg[-4:])[0]
    assert zlib.crc32(body) == crc, f"torn message at {want}"
    seq = struct.unpack_from("<Q", body)[0]
    assert seq == want, f"expected seq {want}, got {seq}"
    assert len(msg) == 12 + seq * 2654435761 % 200


@pytest.mark.parametrize("batch", [0, 32])
def test_cross_process_stress(mp_context, batch):
    n = 10**7 if LONG else 20_000
    q = Kfifo(4096, "records", shared=True)
    p = mp_context.Process(target=_produce, args=(q, n, batch))
    p.start()
    want = 0
    try:
        while True:
            try:
                msgs = q.get_many(64, timeout=30) if want % 2 else \
                    [q.get_message(timeout=30)]
            except EOFError:
                break
            for m in msgs:
                _check(m, want)
                want += 1
    finally:
        p.join(60)
        q.close()
    assert want == n and p.exitcode == 0


# -- crash safety -------------------------------------------------------------

def _produce_forever(q, ready):
    rng = os.urandom(256)
    seq = 0
    ready.set()
    while True:
        q.put_message(_message(seq, rng))
        seq += 1


def test_killed_producer_committed_messages_intact_then_producer_died(
        mp_context):
    q = Kfifo(8192, "records", shared=True)
    ready = mp_context.Event()
    p = mp_context.Process(target=_produce_forever, args=(q, ready))
    p.start()
    ready.wait(30)
    want = 0
    for _ in range(3000):                     # consume while it produces
        _check(q.get_message(timeout=30), want)
        want += 1
    os.kill(p.pid, signal.SIGKILL)            # mid-stream, maybe mid-put
    time.sleep(0.05)
    # The child is now a zombie (not yet joined): that counts as dead too.
    assert q.producer_pid == p.pid
    with pytest.raises(ProducerDied):
        while True:
            _check(q.get_message(timeout=30), want)
            want += 1
    assert want > 3000
    p.join(10)
    q.close()


def _consume_some(q, progress, n):
    for _ in range(n):
        msg = q.get_message(timeout=30)
        progress.value = struct.unpack_from("<Q", msg)[0]
    time.sleep(60)                            # hold the role until killed


def _consume_until_killed(q, progress):
    while True:
        msg = q.get_message(timeout=30)
        progress.value = struct.unpack_from("<Q", msg)[0]


@pytest.mark.parametrize("where", ["idle", "busy"])
def test_killed_consumer_new_consumer_takes_over(mp_context, where):
    q = Kfifo(4096, "records", shared=True)
    rng = os.urandom(256)
    progress = mp_context.Value("q", -1, lock=False)
    target, args = ((_consume_some, (q, progress, 500)) if where == "idle"
                    else (_consume_until_killed, (q, progress)))
    p = mp_context.Process(target=target, args=args)
    p.start()
    seq = 0
    deadline = time.monotonic() + 30
    while progress.value < 400 and time.monotonic() < deadline:
        try:
            q.put_message(_message(seq, rng), timeout=0.01)
            seq += 1
        except queue.Full:
            pass
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    last = progress.value
    assert last >= 400
    with pytest.raises(ConsumerDied):       # the ring fills, nobody reads
        for _ in range(10_000):
            q.put_message(_message(seq, rng), timeout=5)
            seq += 1
    # A new consumer (this process) takes the dead one's role and finds the
    # stream consistent: it resumes right after the last committed get.
    first = struct.unpack_from("<Q", q.get_message(timeout=5))[0]
    assert first - 1 in (last, last + 1)
    want = first + 1
    while want < seq:
        _check(q.get_message(timeout=5), want)
        want += 1
    assert q.empty() and q.consumer_pid == os.getpid()
    q.close()


# -- random-moment SIGKILL of producers and consumers (issue #16) ------------

def _produce_from(q, start, progress):
    """Put messages start, start+1, ... forever; progress = committed."""
    rng = os.urandom(256)
    seq = start
    while True:
        q.put_message(_message(seq, rng))
        seq += 1
        progress.value = seq


def _consume_checked(q, first, last, bad):
    """Get forever; first/last seq seen; bad = 1 on a gap, duplicate or
    torn message (the process is killed, so it cannot raise)."""
    want = None
    while True:
        msg = q.get_message(timeout=30)
        try:
            seq = struct.unpack_from("<Q", msg)[0]
            _check(msg, seq if want is None else want)
        except AssertionError:
            bad.value = 1
            raise
        if want is None:
            first.value = seq
        last.value = seq
        want = seq + 1




def test_random_sigkill_of_producers_and_consumers_loses_nothing():
    """Producers and consumers in other processes are SIGKILLed at random
    moments (mid-put and mid-get included).  After a producer's death the
    consumer receives every message it committed, in order, untorn, then
    ProducerDied, and a new producer takes the role over.  After a
    consumer's death the producer gets ConsumerDied once the ring is full,
    and the next consumer resumes right after the dead one's last get (one
    message may have been taken and not yet recorded by the dead one)."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    runs = 200 if LONG else 15
    rnd = random.Random(os.getpid())
    rng = os.urandom(256)
    q = Kfifo(4096, "records", shared=True)
    progress = ctx.Value("q", 0, lock=False)
    first, last = ctx.Value("q", -1, lock=False), ctx.Value("q", -1,
                                                            lock=False)
    bad = ctx.Value("i", 0, lock=False)
    # Roles are per object: this process consumes through cons, then
    # produces through prod; the children use their copies of q.
    cons, prod = Kfifo.attach(q.name), Kfifo.attach(q.name)
    want = 0            # producer kills: the next seq this process expects
    try:
        for _ in range(runs):                     # producers killed
            p = ctx.Process(target=_produce_from, args=(q, want, progress))
            want = kill_producer_round(p, q, cons, want, _check, progress,
                                       rnd.uniform(0.002, 0.05))
        cons.close()
        seq, prev = want, want - 1                # consumers killed
        prod.put_message(_message(seq, rng))      # take the producer role
        seq += 1
        for _ in range(runs):
            first.value = last.value = -1
            c = ctx.Process(target=_consume_checked,
                            args=(q, first, last, bad))
            c.start()
            await_true(lambda c=c: q.consumer_pid == c.pid)
            end = time.monotonic() + rnd.uniform(0.002, 0.05)
            while time.monotonic() < end or last.value < 0:
                try:
                    prod.put_message(_message(seq, rng), timeout=0.01)
                    seq += 1
                except queue.Full:
                    pass
            os.kill(c.pid, signal.SIGKILL)
            c.join(10)
            with pytest.raises(ConsumerDied):     # the ring fills
                for _ in range(100_000):
                    prod.put_message(_message(seq, rng), timeout=10)
                    seq += 1
            assert bad.value == 0
            assert first.value - 1 in (prev, prev + 1), (first.value, prev)
            prev = last.value
        # This process takes the consumer role over and drains the rest.
        nxt = struct.unpack_from("<Q", q.get_message(timeout=5))[0]
        assert nxt - 1 in (prev, prev + 1)
        for want in range(nxt + 1, seq):
            _check(q.get_message(timeout=5), want)
        assert q.empty()
    finally:
        for k in (cons, prod, q):
            k.close()
