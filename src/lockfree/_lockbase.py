"""What SpinLock, TicketLock and RWSpinLock share: statistics, the owner,
the waiting loop of ``acquire``, placement and ``repr``.

The locks themselves are in :mod:`lockfree.spinlock`,
:mod:`lockfree.ticketlock` and :mod:`lockfree.rwlock` (C: ``csrc/spinlock.c``,
``ticketlock.c``, ``rwlock.c``).  Every hot method is an ordinary class
method that passes ``self._h`` (the lock's state pointer) to a cffi function
read as a module global.  On CPython 3.11 that is faster than binding it as
a keyword-only default argument (a function with keyword-only parameters is
not specialised by the interpreter's call site cache: measured 1.57x two
bare cffi calls for a pair with globals, 1.77x with keyword-only defaults,
1.65x with positional defaults, in one run), and it leaves the signature
with no private parameters.  After ``close()`` reading ``self._h`` raises
``ValueError`` (``lockfree.region``), so no method reaches C with a
released pointer.

Statistics: a lock created with ``stats=True`` counts in its release, which
is another C function.  Rather than look the function up per call (an
instance attribute read costs ~10 % of a pair), such a lock's class is the
counting variant of its class (``_COUNTED``, a subclass with the same name
that defines the release methods over the counting C functions), chosen
once at setup, as ``close()`` chooses the closed stand-in class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ._ffi import lib
from ._wait import NOWAIT, lock_deadline, slice_end
from .errors import raise_for
from .region import Primitive

__all__ = ["LockStats", "LockBase", "acquire_slow", "counted_variant"]

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

    Subclasses define the lock methods themselves, each once, calling the
    C functions of their concept; ``_h`` is the state pointer (set by
    ``Primitive._setup``).  ``_COUNTED`` is the subclass whose release
    methods count (``stats=True``), ``_PUBLIC`` the public class (what
    pickling names).  A lock's ``stats`` flag never changes after creation.
    """

    _h: Any
    _WHAT: str
    _PUBLIC: type[LockBase]
    _COUNTED: type[LockBase]

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

    def _open_handle(self) -> None:
        """Setup hook of ``Primitive``: a lock created with ``stats=True``
        becomes an instance of the counting variant of its class."""
        if self._h.flags & _STATS:
            self.__class__ = self._COUNTED

    def __reduce__(self) -> tuple[Any, ...]:
        fn, (_cls, name, offset) = super().__reduce__()
        return fn, (self._PUBLIC, name, offset)

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


def counted_variant(public: type[LockBase], counted: type[LockBase]) -> None:
    """Register ``counted`` (a subclass of ``public`` defining the counting
    release methods) as ``public``'s ``stats=True`` class.  It takes
    ``public``'s name, so reprs and error messages read the same.

    Each lock module writes its counted class out (``release`` and
    ``__exit__`` over its counting C function, read as a module global)
    rather than have one factory here make them as closures: a closure's
    free variable measured 16-20 ns more per counted pair (``acquire()`` +
    ``release()``: 362 vs 344 ns best, 710 vs 685 median, same run), about
    5 %."""
    counted.__name__ = public.__name__
    counted.__qualname__ = public.__qualname__
    public._PUBLIC = public
    public._COUNTED = counted
