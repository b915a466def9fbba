"""SpinLock, TicketLock, RWSpinLock: what the three share in one process:
interface and errors, timeouts, mutual exclusion between threads,
statistics.  Across processes (exclusion, pickling, dead owners and
recovery): test_spinlock_processes.py; a holder SIGKILLed at a random
moment and a scribbled lock word: test_spinlock_kill.py."""

import os
import pickle
import threading
import time

import pytest

import lockfree
from lockfree import OwnerDiedError, RWSpinLock, SpinLock, TicketLock

from .conftest import LONG
from .locks import MAKERS


@pytest.fixture(params=sorted(MAKERS))
def make(request):
    return MAKERS[request.param]


# -- basics -------------------------------------------------------------------

def test_acquire_release_locked(make):
    lock = make()
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0) is False
    lock.release()
    assert not lock.locked()
    with lock as got:
        assert got is True
        assert lock.locked()
    assert not lock.locked()
    assert lock.owner is None
    lock.close()


def test_owner_is_this_thread(make):
    lock = make()
    with lock:
        assert lock.owner == (os.getpid(), threading.get_native_id())


def test_release_unheld_raises(make):
    lock = make()
    with pytest.raises(RuntimeError):
        lock.release()
    lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_release_by_other_thread_raises(make):
    lock = make()
    lock.acquire()
    errors = []

    def other():
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and lock.locked()
    lock.release()


@pytest.mark.parametrize("args,kwargs,exc,msg", [
    ((), {"timeout": -2}, ValueError, "non-negative"),
    ((), {"timeout": -0.5}, ValueError, "non-negative"),
    ((False, 1), {}, ValueError, "non-blocking"),
    ((False,), {"timeout": 0}, ValueError, "non-blocking"),
    ((), {"timeout": "1"}, TypeError, "number"),
    ((), {"timeout": None}, TypeError, "number"),
    ((), {"timeout": float("nan")}, ValueError, "NaN"),
    ((), {"timeout": 1e300}, OverflowError, "too large"),
])
def test_bad_arguments_like_threading(make, args, kwargs, exc, msg):
    lock = make()
    with pytest.raises(exc, match=msg):
        lock.acquire(*args, **kwargs)
    assert not lock.locked()
    # threading.Lock agrees on the type of error
    if exc is not TypeError:
        with pytest.raises(exc):
            threading.Lock().acquire(*args, **kwargs)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="spin"):
        SpinLock("mcs")
    with pytest.raises(TypeError, match="stats"):
        SpinLock(stats=1)
    with pytest.raises(TypeError):
        TicketLock(buffer=object())


def test_closed_lock_raises(make):
    lock = make()
    acq = lock.acquire
    lock.close()
    with pytest.raises(ValueError, match="closed"):
        lock.acquire()
    with pytest.raises(ValueError, match="closed"):
        lock.release()
    with pytest.raises(ValueError, match="closed"):
        lock.locked()
    # A method saved before close() raises too: it reads self._h.
    with pytest.raises(ValueError, match="closed"):
        acq()


# The public methods of each lock, as the issue (#17) lists them.
API = {
    SpinLock: ["acquire", "release", "locked", "recover", "__enter__",
               "__exit__", "close"],
    TicketLock: ["acquire", "release", "locked", "recover", "__enter__",
                 "__exit__", "close"],
    RWSpinLock: ["acquire", "release", "locked", "recover", "__enter__",
                 "__exit__", "close", "acquire_read", "release_read",
                 "read", "write", "write_locked"],
}
PROPERTIES = ["stats", "stats_enabled", "owner"]


@pytest.mark.parametrize("cls", list(API), ids=lambda c: c.__name__)
def test_methods_are_ordinary_class_methods(cls):
    """Every public method is defined on the class (none is installed on
    the instance), and inspect.signature shows its real parameters."""
    import inspect

    lock = cls(stats=True)
    assert "_h" in vars(lock)  # the open class has no _h descriptor
    for name in API[cls]:
        assert name not in vars(lock), name
        assert callable(getattr(cls, name)), name
        assert getattr(cls, name).__doc__, name
    for name in PROPERTIES:
        assert isinstance(inspect.getattr_static(lock, name), property)
    for name in ("acquire", "acquire_read"):
        if name not in API[cls]:
            continue
        params = inspect.signature(getattr(lock, name)).parameters
        public = [p for p in params if not p.startswith("_")]
        assert public == ["blocking", "timeout"]
        assert params["blocking"].default is True
        assert params["timeout"].default == -1
        assert all(p.kind is p.KEYWORD_ONLY for n, p in params.items()
                   if n.startswith("_"))
        # the bound C function cannot be replaced by a stray positional
        with pytest.raises(TypeError):
            getattr(lock, name)(True, -1, None)
    assert list(inspect.signature(lock.release).parameters) == []
    assert inspect.signature(cls.acquire).return_annotation in ("bool", bool)
    lock.close()


@pytest.mark.parametrize("cls", list(API), ids=lambda c: c.__name__)
def test_every_method_raises_after_close(cls):
    """After close() every method and property raises ValueError, also
    through a bound method saved before close(); nothing reaches C."""
    lock = cls(stats=True)
    saved = {name: getattr(lock, name) for name in API[cls]
             if name not in ("close", "__exit__")}
    lock.close()
    assert isinstance(lock, cls) and type(lock).__name__ == cls.__name__
    for name, method in saved.items():
        for fn in (method, getattr(lock, name)):
            with pytest.raises(ValueError, match=f"closed {cls.__name__}"):
                fn()
    with pytest.raises(ValueError, match="closed"):
        lock.__exit__(None, None, None)
    for name in PROPERTIES:
        with pytest.raises(ValueError, match="closed"):
            getattr(lock, name)
    with pytest.raises(ValueError, match="closed"), lock:
        pass
    lock.close()  # idempotent
    assert "closed" in repr(lock)


@pytest.mark.parametrize("cls", list(API), ids=lambda c: c.__name__)
def test_stats_lock_is_the_counting_variant_of_its_class(cls):
    """stats=True picks, once at setup, a subclass of the same name whose
    release methods call the counting C functions; attach and pickling
    (which name the public class) pick it again from the shared flag."""
    lock = cls(stats=True, shared=True)
    plain = cls()
    assert type(plain) is cls and type(lock) is not cls
    assert isinstance(lock, cls) and type(lock).__name__ == cls.__name__
    assert "release" in type(lock).__dict__ and "release" not in vars(lock)
    for other in (cls.attach(lock.name), pickle.loads(pickle.dumps(lock))):
        assert type(other) is type(lock)
        with other:
            pass
        other.close()
    assert pickle.dumps(lock).count(b"_Counted") == 0
    assert lock.stats.acquisitions == 2
    lock.close()


def test_rw_side_saved_before_close_raises():
    lock = RWSpinLock()
    side = lock.read()
    lock.close()
    with pytest.raises(ValueError, match="closed"), side:
        pass


def test_blocking_true_values(make):
    lock = make()
    assert lock.acquire(1) is True
    assert lock.acquire(0) is False
    lock.release()
    assert lock.acquire(True, 0.5) is True
    lock.release()


# -- timeouts -----------------------------------------------------------------

@pytest.mark.parametrize("timeout", [0.05, 0.2])
def test_timeout_returns_false_in_time(make, timeout):
    lock = make()
    holder_in, done = threading.Event(), threading.Event()

    def holder():
        lock.acquire()
        holder_in.set()
        done.wait()
        lock.release()
    t = threading.Thread(target=holder)
    t.start()
    holder_in.wait()
    t0 = time.monotonic()
    assert lock.acquire(timeout=timeout) is False
    waited = time.monotonic() - t0
    done.set()
    t.join()
    assert waited >= timeout - 0.002  # tight lower bound
    assert waited < timeout + 2.0     # generous: noisy machine
    assert lock.acquire(timeout=timeout) is True
    lock.release()


def test_blocking_wait_spans_slices(make):
    """A blocking acquire longer than one 50 ms C slice still succeeds."""
    lock = make()
    lock.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire()))
    t.start()
    time.sleep(0.25)
    assert not got
    lock.release()
    t.join(5)
    assert got == [True]
    # the waiter holds it now, in its (finished) thread: a dead owner
    with pytest.raises(OwnerDiedError):
        lock.acquire(timeout=1)
    assert lock.recover()
    lock.release()


# -- mutual exclusion: threads ------------------------------------------------

def test_threads_keep_plain_counter_exact(make):
    lock = make()
    box = [0]
    n_threads, iters = 4, (20000 if LONG else 3000)

    def work():
        for i in range(iters):
            with lock:
                v = box[0]
                if i % 7 == 0:  # let the other threads run in here
                    time.sleep(0)
                box[0] = v + 1
    ts = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert box[0] == n_threads * iters


# -- fairness, stats ----------------------------------------------------------


def test_stats(make):
    lock = make(stats=True)
    assert lock.stats_enabled
    for _ in range(5):
        with lock:
            pass
    assert lock.stats.acquisitions == 5
    assert lock.stats.contended == 0
    lock.acquire()
    t = threading.Thread(target=lambda: lock.acquire(timeout=0.05))
    t.start()
    t.join()
    lock.release()
    s = lock.stats
    assert s.acquisitions == 6 and s.spins > 0 and s.yields > 0
    contended = threading.Thread(target=lambda: (lock.acquire(),
                                                 lock.release()))
    lock.acquire()
    spins = lock.stats.spins
    contended.start()
    deadline = time.monotonic() + 10  # until the waiter really spins
    while lock.stats.spins == spins and time.monotonic() < deadline:
        time.sleep(0.001)
    lock.release()
    contended.join()
    assert lock.stats.contended >= 1
    assert make().stats is None and not make().stats_enabled


def test_stats_shared_across_attach():
    lock = SpinLock(stats=True, shared=True)
    other = SpinLock.attach(lock.name)
    with other:
        pass
    assert lock.stats.acquisitions == 1 and other.spin == "ttas"
    other.close()
    lock.close()


def test_exports_and_repr():
    for name in ("SpinLock", "TicketLock", "RWSpinLock", "OwnerDiedError"):
        assert name in lockfree.__all__
    assert issubclass(OwnerDiedError, RuntimeError)
    lock = SpinLock()
    assert "unlocked" in repr(lock)
    lock.close()
    assert "closed" in repr(lock)


def test_later_slices_enter_the_c_slow_path():
    """Regression: a blocking acquire waits in 50 ms C slices.  If the lock
    is freed between two slices, a slice starting with the trylock fast path
    would take it without counting the (real) contention, so every slice
    after the first must call the slow path.  Scripted with fake C calls:
    the real race window is microseconds wide."""
    from lockfree import _lockbase

    calls = []

    def until(st, end):
        calls.append("until")
        return 1 if len(calls) == 3 else 0  # 0: this slice timed out

    def slow(st, end):
        calls.append("slow")
        return 1 if len(calls) == 3 else 0

    assert _lockbase.acquire_slow(None, True, -1, None, until, slow,
                                  "X") is True
    assert calls == ["until", "slow", "slow"]


def test_stats_count_a_wait_over_several_slices_once(make):
    lock = make(stats=True)
    lock.acquire()
    waiter = threading.Thread(target=lambda: (lock.acquire(),
                                              lock.release()))
    waiter.start()
    time.sleep(0.12)  # > 2 slices of 50 ms
    lock.release()
    waiter.join()
    assert lock.stats.contended == 1
    assert lock.stats.acquisitions == 2
