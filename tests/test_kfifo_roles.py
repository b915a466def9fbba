"""Kfifo roles: one producer and one consumer.  A second object taking a
role is refused (RoleError, in this process and from another); two
threads inside one object's role at once are refused
(ConcurrentUseError, issue #16 point 8), so nothing is lost or garbled;
handing a role to another thread is fine; reset() is the consumer's."""

import os
import queue
import struct
import threading

import pytest

from lockfree import Kfifo, RoleError
from lockfree.errors import ConcurrentUseError

# -- roles ------------------------------------------------------------------

def test_second_producer_and_consumer_refused_in_process():
    q = Kfifo(64, "records", shared=True)
    other = Kfifo.attach(q.name)
    q.put_message(b"1")
    with pytest.raises(RoleError, match="producer"):
        other.put_message(b"2")
    assert other.get_message() == b"1"          # other is the consumer
    with pytest.raises(RoleError):
        q.get_message(block=False)
    assert q.producer_pid == os.getpid() == q.consumer_pid
    other.close()                                # releases the consumer
    q.put_message(b"3")
    assert q.get_message() == b"3"               # q may consume now
    q.close()


def _try_put(q, out):
    try:
        q.put_message(b"intruder")
        out.put("accepted")
    except RoleError as exc:
        out.put(f"refused: {exc}")


def test_second_producer_refused_across_processes(mp_context):
    q = Kfifo(64, "records", shared=True)
    q.put_message(b"mine")
    out = mp_context.Queue()
    p = mp_context.Process(target=_try_put, args=(q, out))
    p.start()
    verdict = out.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert verdict.startswith("refused"), verdict
    assert q.get_message() == b"mine" and q.empty()
    q.close()


def test_reset_is_consumer_only_and_drops_content():
    q = Kfifo(64, "records", shared=True)
    q.put_many([b"x", b"y"])
    assert q.reset() == 10
    assert q.empty() and q.peek_len() is None
    q.put_message(b"z")
    assert q.get_message() == b"z"
    other = Kfifo.attach(q.name)
    with pytest.raises(RoleError):
        other.reset()
    other.close()
    q.close()


# -- misuse: one role, two threads at once (issue #16, point 8) --------------

N_MISUSE = 3000


def _hammer(put, tid, errors):
    """Send N_MISUSE frames (tid, seq, pattern), retrying a call that was
    refused because the other thread was inside one."""
    for seq in range(N_MISUSE):
        frame = struct.pack("<II", tid, seq) + bytes([tid * 16 + seq % 7]) * 8
        while True:
            try:
                put(frame)
                break
            except ConcurrentUseError:
                errors[tid] += 1


@pytest.mark.parametrize("mode", ["records", "bytes"])
def test_two_threads_on_one_producer_are_refused_not_garbled(mode):
    """Two threads putting through one producer object lost messages
    (records) and garbled frames (bytes) silently.  Now the call that
    overlaps another raises ConcurrentUseError and writes nothing, so every
    frame arrives once, whole, and each thread's in order."""
    q = Kfifo(64, mode)                  # small: puts often wait for room
    put = q.put_message if mode == "records" else \
        (lambda f: q.put(f, block=True, timeout=30))
    errors = [0, 0]
    threads = [threading.Thread(target=_hammer, args=(put, i, errors))
               for i in (0, 1)]
    for t in threads:
        t.start()
    nxt, pending = [0, 0], b""
    for _ in range(2 * N_MISUSE):
        if mode == "records":
            frame = q.get_message(timeout=30)
        else:   # odd-sized reads: the ring has room for part of a frame
            while len(pending) < 16:
                pending += q.get(5, block=True, timeout=30)
            frame, pending = pending[:16], pending[16:]
        tid, seq = struct.unpack_from("<II", frame)
        assert tid in (0, 1) and seq == nxt[tid], (tid, seq, nxt)
        assert frame[8:] == bytes([tid * 16 + seq % 7]) * 8, frame
        nxt[tid] += 1
    for t in threads:
        t.join(30)
    assert q.empty() and nxt == [N_MISUSE, N_MISUSE]
    assert sum(errors) > 0, "the threads never overlapped: nothing proven"
    q.close()


def test_two_threads_on_one_consumer_are_refused_not_lost():
    q = Kfifo(64, "records")
    got, errors = [[], []], [0, 0]
    n = 2 * N_MISUSE

    def consume(i):
        while sum(map(len, got)) < n:
            try:
                got[i].append(q.get_message(timeout=0.05))
            except ConcurrentUseError:
                errors[i] += 1
            except queue.Empty:
                pass
    threads = [threading.Thread(target=consume, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for seq in range(n):
        q.put_message(struct.pack("<I", seq), timeout=30)
    for t in threads:
        t.join(30)
    seqs = [struct.unpack("<I", m)[0] for m in got[0] + got[1]]
    assert sorted(seqs) == list(range(n))             # once each, none lost
    for part in got:                                  # in order per thread
        s = [struct.unpack("<I", m)[0] for m in part]
        assert s == sorted(s)
    assert sum(errors) > 0, "the threads never overlapped: nothing proven"
    q.close()


def test_handing_a_role_to_another_thread_is_fine():
    q = Kfifo(64, "records")
    for i in range(20):
        t = threading.Thread(target=q.put_message, args=(b"%d" % i,))
        t.start()
        t.join()
        out = []
        t = threading.Thread(
            target=lambda out=out: out.append(q.get_message()))
        t.start()
        t.join()
        assert out == [b"%d" % i]
    q.close()
