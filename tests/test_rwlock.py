"""RWSpinLock: readers and writers, per-process reader slots, dead
readers, read()/write() context managers.

The behaviour it shares with SpinLock and TicketLock (exclusion, timeouts,
dead holders, stats, the typed API) is tested in test_spinlock*.py."""

import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from lockfree import OwnerDiedError, RWSpinLock, lib

from .conftest import LONG
from .locks import check_recovered


def _hold_rw_reads(lock, n, ready):
    for _ in range(n):
        lock.acquire_read()
    ready.set()
    time.sleep(600)


def _reader_process(ctx, lock, n):
    """A started child process holding n read locks of lock."""
    ready = ctx.Event()
    child = ctx.Process(target=_hold_rw_reads, args=(lock, n, ready))
    child.start()
    if not ready.wait(60):  # pragma: no cover
        child.kill()
        raise AssertionError("the reader process did not start")
    return child


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_rw_dead_reader_detected_then_recovered(method):
    """A reader process SIGKILLed holding the read side (twice) is named by
    the waiting writer; recover() gives its holds back and takes the write
    lock."""
    lock = RWSpinLock(shared=True)
    child = _reader_process(mp.get_context(method), lock, 2)
    try:
        assert lock.readers == 2
        os.kill(child.pid, signal.SIGKILL)
        time.sleep(0.05)  # not reaped: a zombie, which counts as dead
        t0 = time.monotonic()
        with pytest.raises(OwnerDiedError) as info:
            lock.acquire(timeout=2)
        assert time.monotonic() - t0 < 2.5
        err = info.value
        assert (err.pid, err.tid) == (child.pid, 0)
        assert f"pid {child.pid}" in str(err) and "reader" in str(err)
        # readers are not blocked by a dead reader, only writers
        assert lock.acquire_read(timeout=1)
        lock.release_read()
        assert lock.recover() is True  # holds given back, write lock taken
        assert lock.readers == 0 and lock.write_locked()
        check_recovered(lock)
    finally:
        child.kill()
        child.join()
        lock.close()


def test_rw_dead_reader_beside_live_reader():
    """Only the dead process's holds are given back: a live reader keeps
    the writer out until it releases."""
    ctx = mp.get_context("fork")
    lock = RWSpinLock(shared=True)
    live = _reader_process(ctx, lock, 1)
    dead = _reader_process(ctx, lock, 3)
    try:
        assert lock.readers == 4
        dead.kill()
        dead.join()  # reaped: gone entirely
        with pytest.raises(OwnerDiedError) as info:
            lock.acquire(timeout=2)
        assert info.value.pid == dead.pid
        assert lock.recover() is False  # given back, but live holds remain
        assert lock.readers == 1
        assert lock.acquire(timeout=0.2) is False  # the live reader: no error
        live.kill()
        live.join()
        with pytest.raises(OwnerDiedError) as info:
            lock.acquire(timeout=2)
        assert info.value.pid == live.pid
        assert lock.recover() is True
        lock.release()
        assert lock.readers == 0 and not lock.locked()
    finally:
        for p in (live, dead):
            p.kill()
            p.join()
        lock.close()


def test_rw_release_read_checks_this_process():
    """A process holding no read lock cannot release another's."""
    lock = RWSpinLock(shared=True)
    child = _reader_process(mp.get_context("fork"), lock, 1)
    try:
        with pytest.raises(RuntimeError, match="this process holds no read"):
            lock.release_read()
        assert lock.readers == 1  # the child's hold is untouched
        assert lock.acquire(timeout=0.1) is False
    finally:
        child.kill()
        child.join()
        assert lock.recover() is True
        lock.release()
        lock.close()


def test_rw_threads_share_their_process_slot():
    """Threads of one process add up in one slot; each release takes one."""
    lock = RWSpinLock()
    n = 4
    go, done = threading.Barrier(n + 1, timeout=30), threading.Barrier(
        n + 1, timeout=30)

    def reader():
        lock.acquire_read()
        go.wait()
        done.wait()
        lock.release_read()
    ts = [threading.Thread(target=reader) for _ in range(n)]
    for t in ts:
        t.start()
    go.wait()
    try:
        words = [lock._state.slots[i].word for i in range(lib.LF_RW_SLOTS)]
        mine = [w for w in words if w]
        assert mine == [os.getpid() << 32 | n]
    finally:
        done.wait()
        for t in ts:
            t.join()
    assert lock.readers == 0
    # The last hold given back frees the slot for any process.
    assert [lock._state.slots[i].word for i in range(lib.LF_RW_SLOTS)] == \
        [0] * lib.LF_RW_SLOTS
    with pytest.raises(RuntimeError):
        lock.release_read()


def _read_and_report(lock, q):
    lock.acquire_read()
    q.put(os.getpid())
    time.sleep(600)


def test_rw_slots_full_reader_waits_for_a_slot():
    """With every slot held by a live reading process, a reader of one more
    process waits for a slot (honouring its timeout) instead of reading
    unrecorded; dead readers' slots are given back by recover() and every
    slot is free again once its holds are returned."""
    ctx = mp.get_context("fork")
    lock = RWSpinLock(shared=True)
    q, N = ctx.Queue(), lib.LF_RW_SLOTS
    procs = [ctx.Process(target=_read_and_report, args=(lock, q))
             for _ in range(N)]
    try:
        for p in procs:
            p.start()
        pids = {q.get(timeout=60) for _ in procs}
        words = [lock._state.slots[i].word for i in range(N)]
        assert {w >> 32 for w in words} == pids
        assert lock.readers == N
        t0 = time.monotonic()
        assert lock.acquire_read(timeout=0.3) is False  # no slot left
        assert 0.25 < time.monotonic() - t0 < 2
        assert lock.readers == N
        with pytest.raises(RuntimeError):
            lock.release_read()
    finally:
        for p in procs:
            p.kill()
            p.join()
    with pytest.raises(OwnerDiedError) as ei:
        lock.acquire(timeout=2)
    assert ei.value.pid in pids and ei.value.tid == 0
    assert lock.recover() is True  # all 16 gone: holds given back
    assert lock.readers == 0
    lock.release()
    assert all(lock._state.slots[i].word == 0 for i in range(N))
    procs = [ctx.Process(target=_read_once, args=(lock,)) for _ in range(N)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert all(lock._state.slots[i].word == 0 for i in range(N))
    assert lock.acquire_read(timeout=1)
    assert sum(1 for i in range(N)
               if lock._state.slots[i].word == os.getpid() << 32 | 1) == 1
    lock.release_read()
    lock.close()


def _read_once(lock):
    lock.acquire_read()
    lock.release_read()


# -- RW -----------------------------------------------------------------------

def test_rw_readers_overlap_writers_exclude():
    lock = RWSpinLock()
    inside = {"r": 0, "w": 0, "max_r": 0, "bad": 0}
    guard = threading.Lock()
    stop = time.monotonic() + (3 if LONG else 0.6)

    def reader():
        while time.monotonic() < stop:
            with lock.read():
                with guard:
                    inside["r"] += 1
                    inside["max_r"] = max(inside["max_r"], inside["r"])
                    inside["bad"] += inside["w"]
                time.sleep(0.001)
                with guard:
                    inside["r"] -= 1

    def writer():
        while time.monotonic() < stop:
            with lock.write():
                with guard:
                    inside["w"] += 1
                    inside["bad"] += inside["r"] + (inside["w"] > 1)
                time.sleep(0.0005)
                with guard:
                    inside["w"] -= 1
            time.sleep(0.002)
    ts = [threading.Thread(target=reader) for _ in range(4)]
    ts += [threading.Thread(target=writer) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("max concurrent readers:", inside["max_r"])
    assert inside["bad"] == 0
    assert inside["max_r"] > 1


def test_rw_writer_not_starved_by_reader_stream():
    lock = RWSpinLock()
    stop = threading.Event()

    def reader():
        # overlapping readers: the lock is never reader-free on its own
        while not stop.is_set():
            with lock.read():
                time.sleep(0.002)
    ts = [threading.Thread(target=reader) for _ in range(4)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    waits = []
    try:
        for _ in range(10):
            t0 = time.monotonic()
            assert lock.acquire(timeout=5), "writer starved"
            waits.append(time.monotonic() - t0)
            lock.release()
            time.sleep(0.005)
    finally:
        stop.set()
        for t in ts:
            t.join()
    print("writer waits (ms):", [round(w * 1e3, 1) for w in waits])


def test_rw_api():
    lock = RWSpinLock(stats=True)
    assert lock.acquire_read() and lock.acquire_read()
    assert lock.readers == 2 and lock.locked() and not lock.write_locked()
    assert lock.acquire(False) is False
    lock.release_read()
    lock.release_read()
    with pytest.raises(RuntimeError):
        lock.release_read()
    with lock.write():
        assert lock.write_locked()
        assert lock.acquire_read(False) is False
    with lock:
        pass
    s = lock.stats
    assert s.read_acquisitions == 2 and s.acquisitions == 2


def test_rw_context_managers():
    # read()/write() call the C trylock/release directly when uncontended
    # and fall back to acquire_read()/acquire() to wait.
    lock = RWSpinLock(stats=True)
    with lock.read():
        with lock.read():
            assert lock.readers == 2 and not lock.write_locked()
        assert lock.readers == 1 and lock.acquire(False) is False
    with lock.write():
        assert lock.write_locked() and lock.acquire_read(False) is False
    assert not lock.locked()
    # Released inside the block: leaving it is a release of a lock not held.
    with pytest.raises(RuntimeError, match="holds no read lock"), lock.read():
        lock.release_read()
    with pytest.raises(RuntimeError, match="does not hold"), lock.write():
        lock.release()
    assert not lock.locked()
    # Contended: another thread holds the write side; the read side waits.
    held, done = threading.Event(), threading.Event()

    def writer():
        with lock.write():
            held.set()
            time.sleep(0.05)
        done.wait(10)
    t = threading.Thread(target=writer)
    t.start()
    held.wait(10)
    t0 = time.monotonic()
    with lock.read():
        assert time.monotonic() - t0 >= 0.04 and lock.readers == 1
    done.set()
    t.join()
    assert not lock.locked()
    s = lock.stats
    assert (s.read_acquisitions, s.acquisitions) == (4, 3)


def test_read_side_makes_no_reference_cycle():
    """read() returns one side object per lock, which holds the handle, not
    the lock: a dropped lock is freed at once, without the cyclic GC."""
    import gc
    import weakref

    gc.disable()
    try:
        for stats in (False, True):
            lock = RWSpinLock(stats=stats)
            assert lock.read() is lock.read()
            with lock.read():
                assert lock.readers == 1
            ref = weakref.ref(lock)
            del lock
            assert ref() is None
    finally:
        gc.enable()
