"""What SpinLock, TicketLock and RWSpinLock share: statistics, the owner,
the waiting loop of ``acquire``, placement and ``repr``.

The locks themselves are in :mod:`lockfree.spinlock`,
:mod:`lockfree.ticketlock` and :mod:`lockfree.rwlock` (C: ``csrc/spinlock.c``,
``ticketlock.c``, ``rwlock.c``).  Every hot method is an ordinary class
method that passes ``self._h`` (the lock's state pointer) to a cffi function
bound as a keyword-only default argument: the fastest plain form (see
docs/spinlock.md, "Cost").  After ``close()`` reading ``self._h`` raises
``ValueError`` (``lockfree.region``), so no method reaches C with a released
pointer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ._ffi import lib
from ._wait import NOWAIT, lock_deadline, slice_end
from .errors import raise_for
from .region import Primitive

__all__ = ["LockStats", "LockBase", "acquire_slow"]

_STATS: int = lib.LF_LOCK_STATS


class LockStats(NamedTuple):
    """Counters of a lock created with ``stats=True``.

    ``acquisitions``: completed releases (for RWSpinLock: of the write side)
    -- a lock held right now is not counted yet; ``contended``: acquisitions
    that had to wait; ``spins``: pause instructions executed while waiting;
    ``yields``: ``sched_yield()`` calls while waiting (including waits that
    gave up); ``read_acquisitions``: completed read releases (RWSpinLock
    only, else 0).  Read without locking: each counter is exact, the set is
    not a snapshot.
    """

    acquisitions: int
    contended: int
    spins: int
    yields: int
    read_acquisitions: int


def acquire_slow(h: Any, blocking: bool, timeout: float,
                 try_fn: Callable[[Any], int],
                 until_fn: Callable[[Any, int], int],
                 slow_fn: Callable[[Any, int], int], what: str) -> bool:
    """Everything but the uncontended default call: validate the arguments
    (``threading.Lock``'s rules and exceptions), then wait in C in slices of
    at most 50 ms, so that signal handlers (Ctrl-C) run between them.

    Slices after the first enter the C slow path directly: it counts the
    acquisition as contended (stats) even if the lock is free on entry,
    whereas ``until_fn``'s trylock fast path would not.  A negative C result
    raises (``OwnerDiedError`` for a dead holder, ``CorruptStateError`` for
    a lock word no lock could have written)."""
    deadline = lock_deadline(blocking, timeout)
    if deadline == NOWAIT:
        return bool(try_fn(h))
    wait = until_fn
    while True:
        end = slice_end(deadline)
        r = int(wait(h, end))
        wait = slow_fn
        if r == 1:
            return True
        if r < 0:
            raise_for(r, what)
        if end == deadline:
            return False


class LockBase(Primitive):
    """Placement, statistics, owner and ``repr`` of the three locks.

    Subclasses define the lock methods themselves, each once, with the C
    functions of their concept bound as default arguments; ``_h`` is the
    state pointer (set by ``Primitive._setup``).  ``_rel`` is the cffi
    release function chosen at setup: the counting variant when the lock
    was created with ``stats=True`` (a lock's ``stats`` flag never changes
    after creation)."""

    _h: Any
    _rel: Callable[[Any], int]
    _WHAT: str
    _REL: Any        # the release C function without statistics
    _REL_COUNTED: Any  # ... and with

    @classmethod
    def _state_size(cls, params: tuple[int, ...]) -> int:
        from ._ffi import ffi
        return int(ffi.sizeof(cls._CTYPE.rstrip(" *")))

    def _init_lock(self, flags: int, stats: bool, buffer: object,
                   offset: int, name: str | None, shared: bool,
                   init: Callable[[Any, int], None]) -> None:
        if not isinstance(stats, bool):
            raise TypeError(
                f"stats must be a bool, not {type(stats).__name__}")
        flags |= _STATS if stats else 0
        self._create((), lambda state: init(state, flags), buffer=buffer,
                     offset=offset, name=name, shared=shared)

    def _bind_calls(self) -> None:
        """Setup hook of ``Primitive``: pick the release function once."""
        counted = self._h.flags & _STATS
        self._rel = self._REL_COUNTED if counted else self._REL

    @property
    def stats_enabled(self) -> bool:
        """True if this lock was created with ``stats=True``."""
        return bool(self._h.flags & _STATS)

    @property
    def stats(self) -> LockStats | None:
        """A :class:`LockStats`, or ``None`` without ``stats=True``.

        Reads the counters from the lock's memory (no locking; cost: a few
        attribute reads)."""
        st = self._h
        if not st.flags & _STATS:
            return None
        s = st.stats
        return LockStats(int(s.acquisitions), int(s.contended), int(s.spins),
                         int(s.yields),
                         int(getattr(st, "read_acquisitions", 0)))

    def _owner_id(self) -> int:
        raise NotImplementedError

    @property
    def owner(self) -> tuple[int, int] | None:
        """``(pid, tid)`` of the current holder as recorded, or ``None``
        (``tid`` is ``threading.get_native_id()`` in that process)."""
        o = self._owner_id()
        return (o >> 32, o & 0xFFFFFFFF) if o else None

    def locked(self) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} closed>"
        state = "locked" if self.locked() else "unlocked"
        return f"<{type(self).__name__} {state} {self._placement()}>"
