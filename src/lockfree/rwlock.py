"""RWSpinLock: a reader-writer spinlock for threads and processes
(``csrc/rwlock.c``).

Also importable from :mod:`lockfree.spinlock` and :mod:`lockfree`; the
common behaviour (ownership, dead owners, timeouts) is described in
:mod:`lockfree.spinlock`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._ffi import lib
from ._lockbase import LockBase, acquire_slow, counted_variant

__all__ = ["RWSpinLock"]

_WRITE_RELEASE_ERROR = \
    "release of an RWSpinLock write lock this thread does not hold"
_READ_RELEASE_ERROR = \
    "release_read of an RWSpinLock this process holds no read lock of"

# The C entry points of the hot methods, read as globals (see _lockbase).
_write_try = lib.lf_rwlock_write_try_acquire
_write_release = lib.lf_rwlock_write_release
_write_release_counted = lib.lf_rwlock_write_release_counted
_read_try = lib.lf_rwlock_read_try_acquire
_read_release = lib.lf_rwlock_read_release
_read_release_counted = lib.lf_rwlock_read_release_counted
_write_locked = lib.lf_rwlock_write_locked
_readers = lib.lf_rwlock_readers


class RWSpinLock(LockBase):
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

    _read_side: _ReadSide

    def __init__(self, stats: bool = False, *, buffer: object = None,
                 offset: int = 0, name: str | None = None,
                 shared: bool = False) -> None:
        self._init_lock(0, stats, buffer, offset, name, shared,
                        lib.lf_rwlock_init)

    def _open_handle(self) -> None:
        super()._open_handle()
        counted = self._h.flags & lib.LF_LOCK_STATS
        self._read_side = (_CountedReadSide if counted
                           else _ReadSide)(self._h)

    def close(self) -> None:
        """Release this lock's memory; idempotent (see ``Primitive.close``).
        Its ``read()`` side, even one saved earlier, raises from now on."""
        side = self.__dict__.pop("_read_side", None)
        if side is not None:
            del side._h  # drop the pointer: it keeps the memory mapped
            side.__class__ = _ClosedReadSide
        super().close()

    # -- write side ---------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the write side (exclusive); return True if acquired.

        Arguments, exceptions and waiting as ``SpinLock.acquire``: waits
        for the writer and then for every reader to leave (new readers wait
        meanwhile).  Raises :class:`OwnerDiedError` if the writer died, or
        a reader process died holding the read side (``tid == 0``).  Cost
        uncontended: one C call (one ``cmpxchg`` and a scan of 16 slots).
        """
        if timeout == -1 and _write_try(self._h):
            return True
        return acquire_slow(self._h, blocking, timeout, _write_try,
                            lib.lf_rwlock_write_acquire_until,
                            lib.lf_rwlock_write_lock_slow, "RWSpinLock")

    def release(self) -> None:
        """Release the write side (one C call: a check and one store).
        ``RuntimeError`` if this thread does not hold it, ``ValueError``
        once closed.  Never blocks."""
        if _write_release(self._h):
            raise RuntimeError(_WRITE_RELEASE_ERROR)

    # A lock's ``with`` acquires and yields True (threading.Lock's
    # protocol), where Primitive's ``with`` closes and yields self.
    def __enter__(self) -> bool:  # type: ignore[override]
        """``with lock:`` takes the write side (as ``acquire()``)."""
        if _write_try(self._h):
            return True
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Releases the write side (as ``release()``)."""
        if _write_release(self._h):
            raise RuntimeError(_WRITE_RELEASE_ERROR)

    def write(self) -> RWSpinLock:
        """Context manager holding the write side: ``with lock.write():``
        is ``with lock:`` (this returns the lock itself)."""
        self._h  # noqa: B018 - ValueError once closed
        return self

    # -- read side ----------------------------------------------------------

    def acquire_read(self, blocking: bool = True,
                     timeout: float = -1) -> bool:
        """Acquire the read side (shared); arguments, exceptions and waiting
        as ``acquire``.  Waits while a writer holds or waits; raises
        :class:`OwnerDiedError` if the writer died.  Cost uncontended: one
        C call (one ``cmpxchg`` on this process's slot, one load)."""
        if timeout == -1 and _read_try(self._h):
            return True
        return acquire_slow(self._h, blocking, timeout, _read_try,
                            lib.lf_rwlock_read_acquire_until,
                            lib.lf_rwlock_read_lock_slow, "RWSpinLock")

    def release_read(self) -> None:
        """Release one read hold of this process (one C call, one
        ``cmpxchg``).  ``RuntimeError`` if this process holds no read lock
        of it, ``ValueError`` once closed.  Never blocks."""
        if _read_release(self._h):
            raise RuntimeError(_READ_RELEASE_ERROR)

    def read(self) -> _ReadSide:
        """Context manager holding the read side: ``with lock.read(): ...``
        (``acquire_read()`` on entry, returning True; ``release_read()`` on
        exit).  ``ValueError`` once closed.  The same object every call."""
        self._h  # noqa: B018 - ValueError once closed
        return self._read_side

    # -- state --------------------------------------------------------------

    def locked(self) -> bool:
        """True if a writer or any reader holds the lock (two C calls)."""
        h = self._h
        return bool(_write_locked(h) or _readers(h))

    def write_locked(self) -> bool:
        """True if a writer holds the lock (one C call)."""
        return bool(lib.lf_rwlock_write_locked(self._h))

    @property
    def readers(self) -> int:
        """Read holds (may briefly count a reader that is backing out
        because a writer holds or waits)."""
        return int(lib.lf_rwlock_readers(self._h))

    def _owner_id(self) -> int:
        return int(lib.lf_rwlock_owner(self._h))

    def recover(self) -> bool:
        """Recover from dead holders; True if this thread now holds the
        write lock.

        Gives back the read holds of reader processes that died (always,
        when there are any), then takes the write lock over from a dead
        writer, or, if only dead readers were found, makes one attempt at
        the write lock (False if live readers or a writer hold it: acquire
        it as usual).  False if there was nothing to recover or another
        thread or process recovered first (see ``SpinLock.recover``).
        Taking a dead writer's lock over waits up to 1 s for live readers
        to leave; if they do not, the lock is left free and False returned.
        ``ValueError`` once closed.
        """
        return bool(lib.lf_rwlock_recover(self._h))


class _ReadSide:
    """``RWSpinLock.read()``: the read side as a context manager.

    One per lock, made at setup, holding the lock's handle (not the lock:
    that would be a reference cycle, delaying a dropped lock's cleanup to
    the cyclic GC).  One Python frame each way, like ``with lock:``.
    ``RWSpinLock.close()`` turns it into a :class:`_ClosedReadSide`, so a
    side saved before ``close()`` raises ``ValueError``."""

    __slots__ = ("_h",)

    def __init__(self, h: Any) -> None:
        self._h = h

    def __enter__(self) -> bool:
        h = self._h
        if _read_try(h):
            return True
        return acquire_slow(h, True, -1, _read_try,
                            lib.lf_rwlock_read_acquire_until,
                            lib.lf_rwlock_read_lock_slow, "RWSpinLock")

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Raise here rather than call release_read() again: read holds are
        # per process, so a second call could release another thread's.
        if _read_release(self._h):
            raise RuntimeError(_READ_RELEASE_ERROR)


class _CountedReadSide(_ReadSide):
    """``read()`` of an RWSpinLock created with ``stats=True``."""

    __slots__ = ()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if _read_release_counted(self._h):
            raise RuntimeError(_READ_RELEASE_ERROR)


class _ClosedReadSide(_ReadSide):
    """The read side of a closed RWSpinLock: every use raises."""

    __slots__ = ()

    @property
    def _h(self) -> Any:
        raise ValueError("operation on a closed RWSpinLock")


class _CountedRWSpinLock(RWSpinLock):
    """An RWSpinLock created with ``stats=True``: its releases also count
    the acquisitions (one more locked ``xadd`` each)."""

    def release(self) -> None:
        if _write_release_counted(self._h):
            raise RuntimeError(_WRITE_RELEASE_ERROR)

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if _write_release_counted(self._h):
            raise RuntimeError(_WRITE_RELEASE_ERROR)

    def release_read(self) -> None:
        if _read_release_counted(self._h):
            raise RuntimeError(_READ_RELEASE_ERROR)

    release.__doc__ = RWSpinLock.release.__doc__
    __exit__.__doc__ = RWSpinLock.__exit__.__doc__
    release_read.__doc__ = RWSpinLock.release_read.__doc__


counted_variant(RWSpinLock, _CountedRWSpinLock)
