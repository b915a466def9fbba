"""Kfifo blocking calls: timeouts, a sleeping consumer or producer is
woken by its peer (thread or process) and not left to its slice, a
blocking put writes everything, close_producer() then drain then EOF."""

import os
import queue
import threading
import time

import pytest

import lockfree._wait
from lockfree import Kfifo

# -- blocking, end of stream --------------------------------------------------

def test_timeouts():
    q = Kfifo(16, "records")
    with pytest.raises(ValueError, match=">= 0"):
        q.get_message(timeout=-1)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_message(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.05)
    assert 0.04 < time.monotonic() - t0 < 5
    q.put_message(b"x" * 12)
    with pytest.raises(queue.Full):
        q.put_message(b"y", timeout=0.05)
    b = Kfifo(8)
    with pytest.raises(queue.Empty):
        b.get(4, block=True, timeout=0.05)
    b.put(b"12345678", block=False)
    with pytest.raises(queue.Full) as info:
        b.put(b"9", block=True, timeout=0.05)
    assert info.value.written == 0
    q.close()
    b.close()


def test_blocked_consumer_is_woken_promptly(monkeypatch):
    # Slices of 10 s: only a wake-up can end the wait within the bound.
    monkeypatch.setattr(lockfree._wait, "SLICE_NS", 10 * 10**9)
    q = Kfifo(64, "records")
    got = []
    t = threading.Thread(target=lambda: got.append(
        (q.get_message(), time.monotonic())))
    t.start()
    time.sleep(0.3)                       # the consumer is asleep in futex
    sent = time.monotonic()
    q.put_message(b"wake up")
    t.join(10)
    assert got and got[0][0] == b"wake up"
    assert got[0][1] - sent < 1.0         # generous: woken, not a slice end
    q.close()


def _echo(req_name, resp_name, n):
    req, resp = Kfifo.attach(req_name), Kfifo.attach(resp_name)
    for _ in range(n):
        resp.put_message(req.get_message(timeout=30))
    req.close()
    resp.close()


@pytest.mark.parametrize("where", ["thread", "process"])
def test_sleeping_peer_is_woken_not_left_to_its_slice(where):
    """Each request arrives while the other side sleeps in FUTEX_WAIT (2 ms
    of idling first, beyond the spin).  A lost wake-up would leave it asleep
    until its 100 ms slice ends, so the median round trip would be >= 100
    ms; woken, it is a few ms even on a loaded machine."""
    import multiprocessing as mp
    n = 40
    req = Kfifo(256, "records", shared=True)
    resp = Kfifo(256, "records", shared=True)
    args = (req.name, resp.name, n)
    worker = threading.Thread(target=_echo, args=args) if where == "thread" \
        else mp.get_context("fork").Process(target=_echo, args=args)
    worker.start()
    rtts = []
    try:
        for i in range(n):
            time.sleep(0.002)
            t0 = time.monotonic()
            req.put_message(b"%d" % i)
            assert resp.get_message(timeout=30) == b"%d" % i
            rtts.append(time.monotonic() - t0)
    finally:
        worker.join(30)
        resp.close()
        req.close()
    rtts.sort()
    assert rtts[n // 2] < 0.05, rtts


def test_blocked_producer_is_woken_and_blocking_put_writes_all():
    """A slow consumer: the producer fills the 16 bytes and sleeps in
    FUTEX_WAIT each time (~125 times); a lost wake-up would leave it asleep
    until its 100 ms slice ends, 12 s in all."""
    b = Kfifo(16)
    data = os.urandom(2_000)
    out = bytearray()

    def consume():
        for chunk in b:                   # iteration ends at close_producer
            out.extend(chunk)
            time.sleep(0.002)
    t = threading.Thread(target=consume)
    t0 = time.monotonic()
    t.start()
    assert b.put(data, block=True) == len(data)
    b.close_producer()
    t.join(10)
    assert bytes(out) == data and b.eof
    assert time.monotonic() - t0 < 5
    b.close()


def test_close_producer_then_drain_then_eof():
    q = Kfifo(64, "records")
    q.put_many([b"a", b"b"])
    q.close_producer()
    assert q.closed_for_writing and not q.eof
    with pytest.raises(ValueError, match="closed"):
        q.put_message(b"c")
    assert list(q) == [b"a", b"b"]
    assert q.eof
    with pytest.raises(EOFError):
        q.get_message()
    with pytest.raises(EOFError):
        q.get_many(block=False)
    q.close()
