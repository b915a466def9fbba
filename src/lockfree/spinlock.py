"""Spinlocks for threads and processes: SpinLock, TicketLock, RWSpinLock.

All three have ``threading.Lock``'s interface (``acquire(blocking=True,
timeout=-1) -> bool``, ``release()``, ``locked()``, ``with lock:``), the
placement keywords and ``attach()``/pickling of every lockfree primitive
(see ``lockfree.region``), optional statistics, and dead-owner detection
across processes.  Differences from ``threading.Lock``:

* They are *owned*: only the thread that acquired a lock may release it
  (like an error-checking pthread mutex).  Releasing a lock you do not hold,
  or twice, raises ``RuntimeError``.
* They are not reentrant: acquiring a lock you hold waits for ever (or until
  the timeout), as with ``threading.Lock``.
* ``with lock:`` acquires and releases; it does not close the lock (use
  ``close()``).
* The lock word *is* the owner record (the holder's ``pid << 32 | tid``,
  taken by one compare-and-swap and given back by one store), so a holder
  killed at any instruction leaves the lock either free or held by a
  recorded, detectably dead owner.
* If the holder dies (its thread exits or its process is killed) while
  holding the lock, a waiter notices on its slow path (after its spin
  budget, then every 10 ms, and when its timeout expires) and ``acquire``
  raises :class:`OwnerDiedError` instead of waiting for ever.  ``recover()``
  then takes the lock over (exactly one caller wins); the data it protects
  may be half-updated, which only the application can repair.

Waiting happens in C with the GIL released (other Python threads run).  A
blocking acquire waits in slices of 50 ms so that Ctrl-C and other signal
handlers run between slices.  An uncontended ``acquire()`` is a single C call
(one ``cmpxchg``); ``release()`` one more (one store).  Each cffi call costs ~0.1 µs here
(the GIL is released and retaken, errno saved), so a Python acquire/release
pair costs about 2 bare cffi calls plus two thin Python frames: slower than
``threading.Lock`` or ``multiprocessing.Lock`` (see docs/spinlock.md for the
figures and why).
"""

from __future__ import annotations

import collections
import functools
import types

from ._ffi import lib
from ._wait import NOWAIT, lock_deadline, slice_end
from .errors import OwnerDiedError, raise_for
from .region import Primitive, specialize

__all__ = ["SpinLock", "TicketLock", "RWSpinLock", "OwnerDiedError",
           "LockStats"]

_QUEUED = lib.LF_TICKET_QUEUED

LockStats = collections.namedtuple(
    "LockStats", "acquisitions contended spins yields read_acquisitions")
LockStats.__doc__ = """Counters of a lock created with ``stats=True``.

``acquisitions``: completed releases (for RWSpinLock: of the write side) --
a lock held right now is not counted yet; ``contended``: acquisitions that
had to wait; ``spins``: pause instructions executed while waiting;
``yields``: ``sched_yield()`` calls while waiting (including waits that
gave up); ``read_acquisitions``: completed read
releases (RWSpinLock only, else 0).  Read without locking: each counter is
exact, the set is not a snapshot.
"""


def _acquire_slow(try_fn, until_fn, slow_fn, st, what, blocking, timeout):
    """Everything but the uncontended default call: validate, then wait in
    slices of at most 50 ms (so signal handlers run between them).

    Slices after the first enter the C slow path directly: it counts the
    acquisition as contended (stats) even if the lock is free on entry,
    whereas until_fn's trylock fast path would not."""
    deadline = lock_deadline(blocking, timeout)
    if deadline == NOWAIT:
        return bool(try_fn(st))
    wait = until_fn
    while True:
        end = slice_end(deadline)
        r = wait(st, end)
        wait = slow_fn
        if r == 1:
            return True
        if r < 0:
            raise_for(r, what)
        if end == deadline:
            return False


# The default timeout.  The fast paths test it by identity (cheaper than
# ==): a -1 that is another object (-1.0, a big-int -1) only takes the slow
# path, which validates and handles every value.
_NO_TIMEOUT = -1


# Templates of the per-lock acquire and release (region.specialize): their
# free names (try_fn, st, slow, NO_TIMEOUT; rel_fn, message) are globals of a
# namespace private to each lock.  The default call is one C call (one
# xchg/CAS when free) and no attribute lookup.

def _acquire_template(blocking=True, timeout=_NO_TIMEOUT):
    if timeout is NO_TIMEOUT and try_fn(st):  # noqa: F821
        return True
    return slow(blocking, timeout)  # noqa: F821


def _release_template():
    if rel_fn(st):  # noqa: F821
        raise RuntimeError(message)  # noqa: F821


def _make_acquire(try_fn, until_fn, slow_fn, st, what, qualname):
    """acquire(blocking=True, timeout=-1) for one lock."""
    return specialize(
        _acquire_template, qualname, try_fn=try_fn, st=st,
        NO_TIMEOUT=_NO_TIMEOUT, slow=functools.partial(
            _acquire_slow, try_fn, until_fn, slow_fn, st, what))


def _make_release(rel_fn, st, message, qualname):
    return specialize(_release_template, qualname, rel_fn=rel_fn, st=st,
                      message=message)


def _ticket_slow(st, blocking, timeout):
    """TicketLock's waiting: take a ticket (waiting for a place in line if
    64 are out), then wait for its turn in slices, keeping the ticket
    between slices (FIFO); give it up (one C call, never waits) on timeout
    or on any exception, Ctrl-C included."""
    deadline = lock_deadline(blocking, timeout)
    if deadline == NOWAIT:
        return bool(lib.lf_ticket_try_acquire(st))
    while True:
        end = slice_end(deadline)
        r = lib.lf_ticket_take(st, end)
        if r == 1:
            return True
        if r >= _QUEUED:
            break
        if r < 0:
            raise_for(r, "TicketLock")
        if end == deadline:
            return False
    ticket = r - _QUEUED
    try:
        while True:
            end = slice_end(deadline)
            final = end == deadline
            r = lib.lf_ticket_wait(st, ticket, end, final)
            if r == 1:
                return True
            if r < 0 or final:
                ticket = None  # the C call gave the ticket up
                if r < 0:
                    raise_for(r, "TicketLock")
                return False
    except BaseException:
        # Interrupted (Ctrl-C...) while queued: give the ticket up, so the
        # queue skips it (if its turn came meanwhile, that passes the lock
        # on).
        if ticket is not None:
            lib.lf_ticket_abandon(st, ticket)
        raise


def _make_ticket_acquire(st):
    """The fast path is a trylock (succeeds only if nobody holds or waits,
    so it never jumps the queue); waiting takes a ticket."""
    return specialize(
        _acquire_template, "TicketLock.acquire",
        try_fn=lib.lf_ticket_try_acquire, st=st, NO_TIMEOUT=_NO_TIMEOUT,
        slow=functools.partial(_ticket_slow, st))


class _LockBase(Primitive):
    """What SpinLock, TicketLock and RWSpinLock share."""

    _WHAT: str
    _FLAGS_EXTRA = 0

    def _install(self, attr, fn):
        fn.__doc__ = getattr(type(self), attr).__doc__
        self.__dict__[attr] = fn
        self._bound.append(attr)

    @classmethod
    def _state_size(cls, params) -> int:
        from ._ffi import ffi
        return ffi.sizeof(cls._CTYPE.rstrip(" *"))

    def _init_lock(self, flags, stats, buffer, offset, name, shared, init):
        if not isinstance(stats, bool):
            raise TypeError(f"stats must be a bool, not {type(stats).__name__}")
        flags |= lib.LF_LOCK_STATS if stats else 0
        self._create((), lambda state: init(state, flags), buffer=buffer,
                     offset=offset, name=name, shared=shared)

    def _st(self):
        if self._state is None:
            self._closed()
        return self._state

    @property
    def stats_enabled(self) -> bool:
        """True if this lock was created with ``stats=True``."""
        return bool(self._st().flags & lib.LF_LOCK_STATS)

    @property
    def stats(self):
        """A :class:`LockStats`, or ``None`` without ``stats=True``."""
        st = self._st()
        if not st.flags & lib.LF_LOCK_STATS:
            return None
        s = st.stats
        return LockStats(s.acquisitions, s.contended, s.spins, s.yields,
                         getattr(st, "read_acquisitions", 0))

    def _owner_id(self) -> int:
        raise NotImplementedError

    @property
    def owner(self):
        """``(pid, tid)`` of the current holder as recorded, or ``None``."""
        o = self._owner_id()
        return (o >> 32, o & 0xFFFFFFFF) if o else None

    # Documented API; live instances use per-instance closures/bound C calls.

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock; return True if acquired.

        ``blocking=False``: one attempt, never waits.  ``timeout``: seconds
        to wait at most (``-1``: no limit); returns False when it expires.
        Raises :class:`OwnerDiedError` if the holder died holding the lock,
        ``ValueError``/``TypeError``/``OverflowError`` for bad arguments
        (as ``threading.Lock``), ``ValueError`` once closed.
        """
        self._closed()

    def release(self) -> None:
        """Release the lock.  ``RuntimeError`` if this thread does not hold
        it (never acquired, released twice, or held by another thread)."""
        self._closed()

    def locked(self) -> bool:
        """True if the lock is held (by anyone)."""
        self._closed()

    # ``with lock:`` -- one Python frame each way: the uncontended path
    # calls the C trylock/release directly (bound in _bind_fast).
    def __enter__(self):
        if self._try():
            return True
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        if self._rel():
            self.release()  # raises the RuntimeError with its message

    _try = _rel = Primitive._closed

    def _bind_fast(self, try_fn, rel_fn):
        self._bind("_try", try_fn)
        self._bind("_rel", rel_fn)

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} closed>"
        state = "locked" if self.locked() else "unlocked"
        return f"<{type(self).__name__} {state} {self._placement()}>"


class SpinLock(_LockBase):
    """A test-and-set spinlock (``cmpxchg`` of the owner id), TTAS by
    default.

    ``SpinLock(spin="ttas", stats=False, *, buffer=None, offset=0,
    name=None, shared=False)``.  ``spin`` picks how waiters spin:

    * ``"ttas"`` (default): spin on a plain load and ``cmpxchg`` only when
      the lock looks free.  Waiters share the cache line instead of stealing it
      from each other and from the holder: better under contention.
    * ``"tas"``: ``cmpxchg`` on every attempt.  One instruction less per retry,
      but every attempt takes the line exclusive; worse with several
      waiters.  Both back off exponentially, then ``sched_yield()``.

    Not fair (whoever's ``cmpxchg`` lands first wins; see TicketLock) and
    not lock-free (a preempted holder stops everyone: it is a lock).  Cost:
    ``acquire()`` is one C call doing one ``cmpxchg`` when free,
    ``release()`` one C call doing one store; waiting happens in C with the GIL released.
    ``stats=True`` counts acquisitions, contended acquisitions, spins,
    and yields (only on the slow path and in release).

    Dead-owner detection: see the module docstring; ``recover()`` takes the
    lock over from a dead owner.  The lock word is the owner id, so there
    is no moment at which the lock is held by nobody known.
    """

    _KIND = lib.LF_KIND_SPINLOCK
    _CTYPE = "lf_spinlock_t *"
    _WHAT = "SpinLock"

    def __init__(self, spin: str = "ttas", stats: bool = False, *,
                 buffer=None, offset: int = 0, name: str | None = None,
                 shared: bool = False):
        if spin not in ("ttas", "tas"):
            raise ValueError(f"spin must be 'ttas' or 'tas', not {spin!r}")
        flags = lib.LF_LOCK_TTAS if spin == "ttas" else 0
        self._init_lock(flags, stats, buffer, offset, name, shared,
                        lib.lf_spin_init)

    def _bind_calls(self) -> None:
        st = self._state
        rel = (lib.lf_spin_release_counted if st.flags & lib.LF_LOCK_STATS
               else lib.lf_spin_release)
        self._install("acquire", _make_acquire(
            lib.lf_spin_try_acquire, lib.lf_spin_acquire_until,
            lib.lf_spin_lock_slow, st, "SpinLock", "SpinLock.acquire"))
        self._bind_fast(lib.lf_spin_try_acquire, rel)
        self._install("release", _make_release(
            rel, st, "release of a SpinLock this thread does not hold",
            "SpinLock.release"))
        self._bind("locked", lib.lf_spin_locked)

    @property
    def spin(self) -> str:
        """``"ttas"`` or ``"tas"``."""
        return "ttas" if self._st().flags & lib.LF_LOCK_TTAS else "tas"

    def _owner_id(self) -> int:
        return lib.lf_spin_owner(self._st())

    def recover(self) -> bool:
        """Take over the lock from a dead owner.

        Returns True if the calling thread now holds the lock (release it
        when the protected data is consistent again), False if there was
        nothing to recover: the lock is free, its owner is alive (or not
        recorded), or another thread or process recovered it first (a
        compare-and-swap on the dead owner's id picks exactly one winner).
        """
        return bool(lib.lf_spin_recover(self._st()))


class TicketLock(_LockBase):
    """A FIFO ticket spinlock (``lock xadd`` on the ticket counter).

    ``TicketLock(stats=False, *, buffer=None, offset=0, name=None,
    shared=False)``.  Blocking acquires are served strictly in arrival order
    (across threads and processes), so no waiter starves; the price is that
    a waiter whose turn comes while it is descheduled holds everyone up.
    ``acquire(False)`` (and ``timeout=0``) succeed only when nobody holds or
    waits: they never jump the queue.  A timed-out or interrupted (Ctrl-C)
    waiter gives its ticket up at once, wherever it is in line, and the
    queue skips it: ``acquire(timeout=t)`` returns within ``t`` plus one
    50 ms slice whatever the queue length.  At most 64 tickets are out at
    once; further arrivals wait for a place in line (not FIFO among
    themselves).

    Each ticket is recorded with its taker's id by the one compare-and-swap
    that takes it, and the holder is the taker of the ticket being served,
    so a thread killed at any instruction is either out of the queue or
    named.  Dead-owner detection covers the holder and a waiter killed in
    line whose turn has come; ``recover()`` takes that turn over.

    Cost: ``acquire()`` is one C call (two compare-and-swaps when free),
    ``release()`` one C call (one store).
    """

    _KIND = lib.LF_KIND_TICKETLOCK
    _CTYPE = "lf_ticketlock_t *"
    _WHAT = "TicketLock"

    def __init__(self, stats: bool = False, *, buffer=None, offset: int = 0,
                 name: str | None = None, shared: bool = False):
        self._init_lock(0, stats, buffer, offset, name, shared,
                        lib.lf_ticket_init)

    def _bind_calls(self) -> None:
        st = self._state
        rel = (lib.lf_ticket_release_counted
               if st.flags & lib.LF_LOCK_STATS else lib.lf_ticket_release)
        self._install("acquire", _make_ticket_acquire(st))
        self._bind_fast(lib.lf_ticket_try_acquire, rel)
        self._install("release", _make_release(
            rel, st, "release of a TicketLock this thread does not hold",
            "TicketLock.release"))
        self._bind("locked", lib.lf_ticket_locked)

    def _owner_id(self) -> int:
        return lib.lf_ticket_owner(self._st())

    def recover(self) -> bool:
        """Take over from a dead holder (or a dead waiter whose turn it is).

        True if the calling thread now holds the lock; False if there was
        nothing to recover or another recoverer won (see SpinLock.recover).
        """
        return bool(lib.lf_ticket_recover(self._st()))


class RWSpinLock(_LockBase):
    """A reader-writer spinlock: many readers or one writer.

    ``RWSpinLock(stats=False, *, buffer=None, offset=0, name=None,
    shared=False)``.  ``acquire``/``release``/``with lock:`` and
    ``write()`` take the write side; ``acquire_read``/``release_read`` and
    ``read()`` the read side.  Writer preference: a waiting writer stops new
    readers, so a stream of readers cannot starve it (readers can starve
    under a stream of writers; writers are not FIFO among themselves).
    The kernel has this lock (rwlock_t); pthreads has none (its
    pthread_rwlock_t sleeps in the kernel, it is not a spinlock).

    Every record is one word changed by one atomic instruction, so a holder
    killed at any instruction is either not recorded or recorded.  The
    write side's lock word is the writer's id (as SpinLock); a writer that
    dies holding (or waiting for readers to leave) makes waiters of both
    sides raise :class:`OwnerDiedError`, and ``recover()`` takes the write
    lock over.  Readers are recorded per process: one word per reading
    process (16 slots in two cache lines), ``pid`` and its holds, which is
    the only reader count.  A writer kept waiting by a process that died
    holding the read side raises ``OwnerDiedError`` with that ``pid`` and
    ``tid == 0``, and ``recover()`` gives its holds back.  At most 16
    processes hold the read side at once; a reader of a 17th waits for a
    slot (and honours its timeout).  ``release_read`` raises
    ``RuntimeError`` when the calling process holds no read lock (it cannot
    tell one thread of a process from another).  Not detected: a reader
    thread that exits while its process lives.

    Cost: each acquire/release is one C call; one locked instruction for
    each side's acquire (the owner word, or the process's slot) and for the
    read release, a store for the write release; a writer also reads the
    16 slots.
    """

    _KIND = lib.LF_KIND_RWLOCK
    _CTYPE = "lf_rwlock_t *"
    _WHAT = "RWSpinLock"

    def __init__(self, stats: bool = False, *, buffer=None, offset: int = 0,
                 name: str | None = None, shared: bool = False):
        self._init_lock(0, stats, buffer, offset, name, shared,
                        lib.lf_rwlock_init)

    def _bind_calls(self) -> None:
        st = self._state
        counted = st.flags & lib.LF_LOCK_STATS
        self._install("acquire", _make_acquire(
            lib.lf_rwlock_write_try_acquire,
            lib.lf_rwlock_write_acquire_until, lib.lf_rwlock_write_lock_slow,
            st, "RWSpinLock", "RWSpinLock.acquire"))
        self._install("release", _make_release(
            lib.lf_rwlock_write_release_counted if counted
            else lib.lf_rwlock_write_release, st,
            _WRITE_RELEASE_ERROR, "RWSpinLock.release"))
        self._install("acquire_read", _make_acquire(
            lib.lf_rwlock_read_try_acquire,
            lib.lf_rwlock_read_acquire_until, lib.lf_rwlock_read_lock_slow,
            st, "RWSpinLock", "RWSpinLock.acquire_read"))
        self._install("release_read", _make_release(
            lib.lf_rwlock_read_release_counted if counted
            else lib.lf_rwlock_read_release, st,
            _READ_RELEASE_ERROR, "RWSpinLock.release_read"))
        self._bind_fast(lib.lf_rwlock_write_try_acquire,
                        lib.lf_rwlock_write_release_counted if counted
                        else lib.lf_rwlock_write_release)
        self._read_side = _Side(
            types.MethodType(lib.lf_rwlock_read_try_acquire, st),
            types.MethodType(lib.lf_rwlock_read_release_counted if counted
                             else lib.lf_rwlock_read_release, st),
            self.acquire_read, _READ_RELEASE_ERROR)
        self._write_side = _Side(self._try, self._rel, self.acquire,
                                 _WRITE_RELEASE_ERROR)

    def acquire_read(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the read side (shared); arguments as ``acquire``."""
        self._closed()

    def release_read(self) -> None:
        """Release the read side; ``RuntimeError`` if this process holds
        no read lock of it."""
        self._closed()

    def read(self):
        """Context manager holding the read side: ``with lock.read(): ...``"""
        if self._state is None:
            self._closed()
        return self._read_side

    def write(self):
        """Context manager holding the write side (same as ``with lock``)."""
        if self._state is None:
            self._closed()
        return self._write_side

    def locked(self) -> bool:
        """True if a writer or any reader holds the lock."""
        st = self._st()
        return bool(lib.lf_rwlock_write_locked(st) or
                    lib.lf_rwlock_readers(st))

    def write_locked(self) -> bool:
        """True if a writer holds the lock."""
        return bool(lib.lf_rwlock_write_locked(self._st()))

    @property
    def readers(self) -> int:
        """Read holds (may briefly count a reader that is backing out
        because a writer holds or waits)."""
        return lib.lf_rwlock_readers(self._st())

    def _owner_id(self) -> int:
        return lib.lf_rwlock_owner(self._st())

    def recover(self) -> bool:
        """Recover from dead holders; True if this thread now holds the
        write lock.

        Gives back the read holds of reader processes that died (always,
        when there are any), then takes the write lock over from a dead
        writer, or, if only dead readers were found, makes one attempt at
        the write lock (False if live readers or a writer hold it: acquire
        it as usual).  False if there was nothing to recover or another
        thread or process recovered first (see SpinLock.recover).  Taking a
        dead writer's lock over waits up to 1 s for live readers to leave;
        if they do not, the lock is left free and False returned.
        """
        return bool(lib.lf_rwlock_recover(self._st()))


_WRITE_RELEASE_ERROR = \
    "release of an RWSpinLock write lock this thread does not hold"
_READ_RELEASE_ERROR = \
    "release_read of an RWSpinLock this process holds no read lock of"


class _Side:
    """One side of an RWSpinLock as a context manager.

    Like ``with lock:``, one Python frame each way: the uncontended path
    calls the C trylock/release (bound methods of the cffi functions);
    waiting (and a dead owner's error) goes through acquire, and a failed
    release raises RuntimeError here."""

    __slots__ = ("_try", "_rel", "acquire", "_error")

    def __init__(self, try_, rel, acquire, error):
        self._try, self._rel = try_, rel
        self.acquire, self._error = acquire, error

    def __enter__(self):
        if self._try():
            return True
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        # Raise here rather than call release() again: read holds are per
        # process, so a second call could release another thread's hold.
        if self._rel():
            raise RuntimeError(self._error)
