"""The one wait policy (csrc/lockwait.{c,h}): a blocking wait from Python
runs in 50 ms slices (so that signal handlers run between them), and a
slice that follows one which ended asleep resumes asleep (lf_wait_resume)
instead of spinning and yielding again: a long idle wait costs its sleeps'
wake-ups only.  Counted with the locks' statistics: the yields of one
long wait are those of one slice, not of every slice."""

from __future__ import annotations

import threading
import time

import pytest

from lockfree import RWSpinLock, SpinLock, TicketLock
from lockfree._ffi import lib

YIELDS = 256   # LF_YIELD_ROUNDS (csrc/lockwait.h)
HOLD = 0.6     # seconds: 12 slices
SLICE = lib.LF_SLICE_NS / 1e9


def _wait_long(lock, acquire, release) -> int:
    """Hold ``lock`` in another thread for HOLD seconds while this thread
    waits for it; return the yields the wait counted."""
    held, done = threading.Event(), threading.Event()

    def holder():
        acquire()
        held.set()
        done.wait(HOLD)
        release()

    t = threading.Thread(target=holder)
    t.start()
    held.wait()
    before = lock.stats.yields
    t0 = time.monotonic()
    assert acquire(timeout=HOLD + 5)
    waited = time.monotonic() - t0
    release()
    done.set()
    t.join()
    assert waited > 8 * SLICE  # it did wait across many slices
    return lock.stats.yields - before


@pytest.mark.parametrize("make", [
    lambda: SpinLock(stats=True),
    lambda: SpinLock("tas", stats=True),
    lambda: TicketLock(stats=True),
    lambda: RWSpinLock(stats=True),
], ids=["ttas", "tas", "ticket", "rw-write"])
def test_a_long_wait_yields_in_its_first_slice_only(make):
    lock = make()
    yields = _wait_long(lock, lock.acquire, lock.release)
    # Without resuming, every slice yields its LF_YIELD_ROUNDS again
    # (~12 x 256); with it, the first slice only (and at most one more if
    # the Python gap between two slices outlasts LF_RESUME_NS).
    assert yields <= 2 * YIELDS, yields
    lock.close()

