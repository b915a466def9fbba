"""TicketLock: FIFO order, dead queued waiters, given-up tickets, Ctrl-C.

The behaviour it shares with SpinLock and RWSpinLock (exclusion, timeouts,
dead holders, stats, the typed API) is tested in test_spinlock*.py."""

import multiprocessing as mp
import threading
import time

import pytest

from lockfree import OwnerDiedError, TicketLock, lib
from lockfree.spinlock import SpinLock

from .locks import hold_and_wait


def test_ticket_dead_queued_waiter_detected():
    """A process killed while waiting in a ticket lock's queue stalls it when
    its turn comes; that is detected and recoverable."""
    lock = TicketLock(shared=True)
    ctx = mp.get_context("fork")
    lock.acquire()
    ready = ctx.Event()
    child = ctx.Process(target=hold_and_wait, args=(lock, ready))
    child.start()
    deadline = time.monotonic() + 30
    while lock._state.tail - lock._state.head < 2:  # child queued
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)  # let it register in its slot
    child.kill()
    child.join()
    lock.release()  # its turn now, but it is dead
    with pytest.raises(OwnerDiedError) as info:
        lock.acquire(timeout=2)
    assert info.value.pid == child.pid
    assert lock.recover()
    lock.release()
    assert lock.acquire(timeout=1)
    lock.release()
    lock.close()


def test_ticket_timeout_honoured_whatever_the_queue_length():
    """acquire(timeout=t) returns False within t plus one 50 ms slice even
    with more waiters queued than there are ticket slots (64)."""
    lock = TicketLock()
    lock.acquire()
    n = lib.LF_TICKET_SLOTS + 6
    got = []

    def waiter():
        got.append(lock.acquire(timeout=30))
        lock.release()
    ts = [threading.Thread(target=waiter) for _ in range(n)]
    for t in ts:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while (lock._state.tail - lock._state.head) % 2**32 < \
                lib.LF_TICKET_SLOTS:  # every ticket slot taken
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for timeout in (0.2, 0.05):
            t0 = time.monotonic()
            assert lock.acquire(timeout=timeout) is False
            took = time.monotonic() - t0
            assert timeout <= took < timeout + 0.05 + 0.25, took
    finally:
        lock.release()
        for t in ts:
            t.join(60)
    # Every waiter, with a ticket or waiting for a place in line, got in.
    assert len(got) == n and all(got)


def test_ticket_given_up_tickets_never_stall_the_queue():
    """Waiters that time out (several in a row, at the head of the queue
    too) are skipped: the next live waiter gets the lock at once."""
    lock = TicketLock()
    lock.acquire()
    quitters = [threading.Thread(target=lock.acquire, kwargs={"timeout": 0.1})
                for _ in range(5)]
    for t in quitters:
        t.start()
    for t in quitters:
        t.join()
    tail = lock._state.tail
    got = threading.Event()

    def waiter():
        if lock.acquire(timeout=5):
            got.set()
            lock.release()
    w = threading.Thread(target=waiter)
    w.start()
    deadline = time.monotonic() + 10
    while lock._state.tail == tail:  # the waiter has its ticket
        assert time.monotonic() < deadline
        time.sleep(0.005)
    t0 = time.monotonic()
    lock.release()
    assert got.wait(2), "a given-up ticket stalled the queue"
    assert time.monotonic() - t0 < 0.5
    w.join()
    assert not lock.locked()
    # The same with nobody behind the quitters: trylock and locked() skip.
    lock.acquire()
    t = threading.Thread(target=lock.acquire, kwargs={"timeout": 0.05})
    t.start()
    t.join()
    lock.release()
    assert not lock.locked()
    assert lock.acquire(False)
    lock.release()


_CTRL_C_CHILD = r"""
import os, signal, sys, threading, time
from lockfree import TicketLock, lib
lock = TicketLock()
lock.acquire()                        # this thread holds it ...
got = []
def waiter():
    got.append(lock.acquire(timeout=30))
    lock.release()
queued = int(sys.argv[1])             # ... with this many queued behind it
ts = [threading.Thread(target=waiter) for _ in range(queued)]
for t in ts:
    t.start()
while (lock._state.tail - lock._state.head) % 2**32 < \
        min(queued + 1, lib.LF_TICKET_SLOTS):
    time.sleep(0.01)
def interrupt():
    time.sleep(0.3)
    print("sigint", time.monotonic(), flush=True)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
try:
    lock.acquire()                    # ... and waits for itself
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
lock.release()
for t in ts:
    t.join()
assert len(got) == queued and all(got)
assert not lock.locked()              # the given-up ticket was skipped
assert lock.acquire(timeout=1)
lock.release()
print("ok", flush=True)
"""


@pytest.mark.parametrize("queued", [0, lib.LF_TICKET_SLOTS + 6])
def test_ticket_ctrl_c_interrupts_a_wait_on_the_same_thread(queued):
    """SIGINT -> KeyboardInterrupt reaches an acquire() waiting for a lock
    held by the same thread, within a wait slice, with nobody or more
    waiters than ticket slots queued ahead, and the abandoned ticket does
    not stall the queue."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _CTRL_C_CHILD, str(queued)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) if " " in line else (line, "")
                 for line in r.stdout.split("\n") if line)
    assert "ok" in lines
    delay = float(lines["interrupted"]) - float(lines["sigint"])
    assert 0 <= delay < 0.05 + 0.2, delay


# -- fairness ----------------------------------------------------------------

def test_ticket_fairness_counts_printed():
    results = {}
    for name in ("ticket", "tas"):
        lock = TicketLock() if name == "ticket" else SpinLock("tas")
        counts = [0] * 3
        stop = time.monotonic() + 0.5

        def work(i, lock=lock, counts=counts, stop=stop):
            while time.monotonic() < stop:
                with lock:
                    counts[i] += 1
        ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        results[name] = counts
        print(f"{name} per-thread acquisitions in 0.5 s: {counts}")
    assert min(results["ticket"]) > 0
