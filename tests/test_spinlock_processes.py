"""SpinLock, TicketLock, RWSpinLock across processes: mutual exclusion of
fork and spawn workers, placement in a SharedMemory buffer, pickling and
attach, and dead owners (a holder killed while holding) with recover()."""

import multiprocessing as mp
import os
import pickle
import signal
import struct
import threading
import time
from multiprocessing import shared_memory

import pytest

from lockfree import OwnerDiedError, SpinLock, TicketLock

from .conftest import LONG
from .locks import MAKERS, check_recovered, hold_and_wait


@pytest.fixture(params=sorted(MAKERS))
def make(request):
    return MAKERS[request.param]


# -- mutual exclusion: processes ----------------------------------------------

COUNTER = struct.Struct("q")


def _proc_incr(lock, shm_name, offset, iters, start=None):
    shm = shared_memory.SharedMemory(shm_name)
    try:
        buf = shm.buf
        if start is not None:
            start.wait(60)  # both processes in the loop at once
        for i in range(iters):
            lock.acquire()
            (v,) = COUNTER.unpack_from(buf, offset)
            if start is not None and i % 50 == 0:
                time.sleep(1e-4)  # hold the section while the peer runs
            COUNTER.pack_into(buf, offset, v + 1)  # plain, non-atomic
            lock.release()
        del buf
    finally:
        shm.close()
        lock.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("kind", ["ttas", "ticket", "rw"])
def test_two_processes_keep_counter_exact(kind, method):
    ctx = mp.get_context(method)
    lock = MAKERS[kind](shared=True)
    shm = shared_memory.SharedMemory(create=True, size=64)
    try:
        COUNTER.pack_into(shm.buf, 0, 0)
        iters = 20000 if LONG else 3000
        start = ctx.Barrier(2)
        procs = [ctx.Process(target=_proc_incr,
                             args=(lock, shm.name, 0, iters, start))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        assert COUNTER.unpack_from(shm.buf, 0)[0] == 2 * iters
    finally:
        shm.close()
        shm.unlink()
        lock.close()


def test_lock_inside_sharedmemory_buffer():
    shm = shared_memory.SharedMemory(create=True,
                                     size=SpinLock.region_size() + 64)
    try:
        lock = SpinLock(buffer=shm, offset=64)
        again = pickle.loads(pickle.dumps(lock))
        assert again.acquire()
        assert lock.locked()
        again.release()
        other = SpinLock.attach(buffer=shm.buf, offset=64)
        assert not other.locked()
        for obj in (again, other, lock):
            obj.close()
    finally:
        shm.close()
        shm.unlink()


def test_pickle(make):
    lock = make(shared=True)
    copy = pickle.loads(pickle.dumps(lock))
    with copy:
        assert lock.locked()
    assert type(copy) is type(lock)
    copy.close()
    lock.close()
    with pytest.raises(TypeError, match="private memory"):
        pickle.dumps(make())


def test_attach_wrong_kind():
    lock = SpinLock(shared=True)
    with pytest.raises(ValueError, match="SpinLock, expected a TicketLock"):
        TicketLock.attach(lock.name)
    lock.close()


# -- dead owners --------------------------------------------------------------

def _hold_rw_read(lock, ready):
    lock.acquire_read()
    ready.set()
    time.sleep(600)


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("kind", ["tas", "ttas", "ticket", "rw"])
def test_sigkilled_owner_detected_then_recovered(kind, method):
    ctx = mp.get_context(method)
    lock = MAKERS[kind](shared=True)
    ready = ctx.Event()
    child = ctx.Process(target=hold_and_wait, args=(lock, ready))
    child.start()
    try:
        assert ready.wait(60)
        assert lock.locked()
        os.kill(child.pid, signal.SIGKILL)
        time.sleep(0.05)  # not reaped: the child is a zombie now
        t0 = time.monotonic()
        with pytest.raises(OwnerDiedError) as info:
            lock.acquire(timeout=2)
        assert time.monotonic() - t0 < 2.5
        err = info.value
        assert isinstance(err, RuntimeError)
        assert err.pid == child.pid and str(child.pid) in str(err)
        # a blocking acquire detects it too, instead of hanging
        with pytest.raises(OwnerDiedError):
            lock.acquire()
        assert lock.recover() is True
        check_recovered(lock)
    finally:
        child.kill()
        child.join()
        lock.close()


def test_only_one_recoverer_wins():
    lock = SpinLock(shared=True)
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    child = ctx.Process(target=hold_and_wait, args=(lock, ready))
    child.start()
    assert ready.wait(60)
    child.kill()
    child.join()  # reaped: gone entirely
    wins = []
    barrier, done = threading.Barrier(4), threading.Barrier(4)

    def recover():
        barrier.wait()
        if lock.recover():
            wins.append(threading.get_native_id())
        done.wait()  # stay alive: a dead winner is itself recoverable
    ts = [threading.Thread(target=recover) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(wins) == 1
    # the winner's thread is gone now: recover again from this one
    _recover_soon(lock)
    lock.release()
    lock.close()


def test_recover_on_live_or_free_lock_is_false(make):
    lock = make()
    assert lock.recover() is False
    with lock:
        assert lock.recover() is False
    assert not lock.locked()


def _recover_soon(lock, timeout=10.0):
    """recover() until it succeeds.  Thread.join() returns when the Python
    thread state is gone, a moment before the OS thread is: until then the
    owner is still alive, and recover() rightly says so."""
    deadline = time.monotonic() + timeout
    while not lock.recover():
        assert time.monotonic() < deadline, "dead owner never recoverable"
        time.sleep(0.001)


def test_owner_thread_dead_soon_after_joined(make):
    # A thread that exits holding the lock becomes a dead owner once the OS
    # thread is gone (or exiting: the C check reads PF_EXITING).
    lock = make()
    for _ in range(100 if LONG else 20):
        t = threading.Thread(target=lock.acquire)
        t.start()
        t.join()
        _recover_soon(lock)
        assert lock.owner == (os.getpid(), threading.get_native_id())
        lock.release()
    assert not lock.locked()
