"""Spinlocks for threads and processes: SpinLock (here), TicketLock
(:mod:`lockfree.ticketlock`), RWSpinLock (:mod:`lockfree.rwlock`).

This module re-exports all three, :class:`OwnerDiedError` and
:class:`LockStats`: ``from lockfree.spinlock import SpinLock, TicketLock,
RWSpinLock, OwnerDiedError, LockStats``.

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
handlers run between slices.  An uncontended ``acquire()`` is one Python
frame and a single C call (one ``cmpxchg``); ``release()`` the same (one
store).  See docs/spinlock.md for the figures.
"""

from __future__ import annotations

from types import TracebackType

from ._ffi import lib
from ._lockbase import LockBase, LockStats, acquire_slow, counted_variant
from .errors import OwnerDiedError
from .rwlock import RWSpinLock
from .ticketlock import TicketLock

__all__ = ["SpinLock", "TicketLock", "RWSpinLock", "OwnerDiedError",
           "LockStats"]

_RELEASE_ERROR = "release of a SpinLock this thread does not hold"

# The C entry points of the hot methods, read as globals (see _lockbase).
_try_acquire = lib.lf_spin_try_acquire
_release = lib.lf_spin_release
_release_counted = lib.lf_spin_release_counted
_locked = lib.lf_spin_locked


class SpinLock(LockBase):
    """A test-and-set spinlock (``cmpxchg`` of the owner id), TTAS by
    default.

    ``SpinLock(spin="ttas", stats=False, *, buffer=None, offset=0,
    name=None, shared=False)``.  ``spin`` picks how waiters spin:

    * ``"ttas"`` (default): spin on a plain load and ``cmpxchg`` only when
      the lock looks free.  Waiters share the cache line instead of stealing
      it from each other and from the holder: better under contention.
    * ``"tas"``: ``cmpxchg`` on every attempt.  One instruction less per
      retry, but every attempt takes the line exclusive; worse with several
      waiters.  Both back off exponentially, then ``sched_yield()``.

    Not fair (whoever's ``cmpxchg`` lands first wins; see TicketLock) and
    not lock-free (a preempted holder stops everyone: it is a lock).  Cost:
    ``acquire()`` is one C call doing one ``cmpxchg`` when free,
    ``release()`` one C call doing one store; waiting happens in C with the
    GIL released.  ``stats=True`` counts acquisitions, contended
    acquisitions, spins, and yields (only on the slow path and in release).

    Dead-owner detection: see the module docstring; ``recover()`` takes the
    lock over from a dead owner.  The lock word is the owner id, so there
    is no moment at which the lock is held by nobody known.
    """

    _KIND = lib.LF_KIND_SPINLOCK
    _CTYPE = "lf_spinlock_t *"
    _WHAT = "SpinLock"

    def __init__(self, spin: str = "ttas", stats: bool = False, *,
                 buffer: object = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        if spin not in ("ttas", "tas"):
            raise ValueError(f"spin must be 'ttas' or 'tas', not {spin!r}")
        flags = lib.LF_LOCK_TTAS if spin == "ttas" else 0
        self._init_lock(flags, stats, buffer, offset, name, shared,
                        lib.lf_spin_init)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock; return True if acquired.

        ``blocking=False``: one attempt, never waits.  ``timeout``: seconds
        to wait at most (``-1``: no limit); returns False when it expires.
        Waiting spins, then yields, then sleeps in C with the GIL released,
        in 50 ms slices (signal handlers run between them).  Raises
        :class:`OwnerDiedError` if the holder died holding the lock,
        ``CorruptStateError`` if the lock word holds no owner a lock could
        have written, ``ValueError``/``TypeError``/``OverflowError`` for bad
        arguments (as ``threading.Lock``), ``ValueError`` once closed.
        Cost uncontended: one C call (one ``cmpxchg``).
        """
        if timeout == -1 and _try_acquire(self._h):
            return True
        return acquire_slow(self._h, blocking, timeout, _try_acquire,
                            lib.lf_spin_acquire_until, lib.lf_spin_lock_slow,
                            "SpinLock")

    def release(self) -> None:
        """Release the lock (one C call: a check and one store).

        Raises ``RuntimeError`` if this thread does not hold it (never
        acquired, released twice, or held by another thread), ``ValueError``
        once closed.  Never blocks."""
        if _release(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    def locked(self) -> bool:
        """True if the lock is held (by anyone).  One C call (one load)."""
        return bool(_locked(self._h))

    # A lock's ``with`` acquires and yields True (threading.Lock's
    # protocol), where Primitive's ``with`` closes and yields self.
    def __enter__(self) -> bool:  # type: ignore[override]
        """``with lock:`` acquires (as ``acquire()``; returns True)."""
        if _try_acquire(self._h):
            return True
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Releases (as ``release()``); does not close the lock."""
        if _release(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    @property
    def spin(self) -> str:
        """``"ttas"`` or ``"tas"``."""
        return "ttas" if self._h.flags & lib.LF_LOCK_TTAS else "tas"

    def _owner_id(self) -> int:
        return int(lib.lf_spin_owner(self._h))

    def recover(self) -> bool:
        """Take over the lock from a dead owner.

        Returns True if the calling thread now holds the lock (release it
        when the protected data is consistent again), False if there was
        nothing to recover: the lock is free, its owner is alive (or not
        recorded), or another thread or process recovered it first (a
        compare-and-swap on the dead owner's id picks exactly one winner).
        Never blocks; one C call (a liveness check of the owner and one
        ``cmpxchg``).  ``ValueError`` once closed.
        """
        return bool(lib.lf_spin_recover(self._h))


class _CountedSpinLock(SpinLock):
    """A SpinLock created with ``stats=True``: its release also counts the
    acquisition (one more locked ``xadd``)."""

    def release(self) -> None:
        if _release_counted(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if _release_counted(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    release.__doc__ = SpinLock.release.__doc__
    __exit__.__doc__ = SpinLock.__exit__.__doc__


counted_variant(SpinLock, _CountedSpinLock)
