"""TicketLock: a FIFO spinlock for threads and processes (csrc/ticketlock.c).

Also importable from :mod:`lockfree.spinlock` and :mod:`lockfree`; the
common behaviour (ownership, dead owners, timeouts) is described in
:mod:`lockfree.spinlock`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._ffi import lib
from ._lockbase import LockBase, counted_variant
from ._wait import NOWAIT, lock_deadline, slice_end
from .errors import raise_for

__all__ = ["TicketLock"]

_QUEUED: int = lib.LF_TICKET_QUEUED
_RELEASE_ERROR = "release of a TicketLock this thread does not hold"

# The C entry points of the hot methods, read as globals (see _lockbase).
_try_acquire = lib.lf_ticket_try_acquire
_release = lib.lf_ticket_release
_release_counted = lib.lf_ticket_release_counted
_locked = lib.lf_ticket_locked


def _ticket_slow(h: Any, blocking: bool, timeout: float) -> bool:
    """TicketLock's waiting: take a ticket (waiting for a place in line if
    64 are out), then wait for its turn in slices, keeping the ticket
    between slices (FIFO); give it up (one C call, never waits) on timeout
    or on any exception, Ctrl-C included."""
    deadline = lock_deadline(blocking, timeout)
    if deadline == NOWAIT:
        return bool(lib.lf_ticket_try_acquire(h))
    while True:
        end = slice_end(deadline)
        r = int(lib.lf_ticket_take(h, end))
        if r == 1:
            return True
        if r >= _QUEUED:
            break
        if r < 0:
            raise_for(r, "TicketLock")
        if end == deadline:
            return False
    ticket: int | None = r - _QUEUED
    try:
        while True:
            end = slice_end(deadline)
            final = end == deadline
            r = int(lib.lf_ticket_wait(h, ticket, end, final))
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
            lib.lf_ticket_abandon(h, ticket)
        raise


class TicketLock(LockBase):
    """A FIFO ticket spinlock.

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

    def __init__(self, stats: bool = False, *, buffer: object = None,
                 offset: int = 0, name: str | None = None,
                 shared: bool = False) -> None:
        self._init_lock(0, stats, buffer, offset, name, shared,
                        lib.lf_ticket_init)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock in arrival order; return True if acquired.

        Arguments, exceptions and return as ``SpinLock.acquire``.  The fast
        path is a trylock (it succeeds only if nobody holds or waits, so it
        never jumps the queue); waiting takes a ticket and waits for its
        turn in C (GIL released) in 50 ms slices, keeping its place between
        slices; a timeout or an exception (Ctrl-C) gives the ticket up.
        Raises :class:`OwnerDiedError` if the holder (or a dead waiter whose
        turn came) died.  Cost uncontended: one C call (two ``cmpxchg``).
        """
        if timeout == -1 and _try_acquire(self._h):
            return True
        return _ticket_slow(self._h, blocking, timeout)

    def release(self) -> None:
        """Release the lock to the next ticket (one C call: a check and one
        store).  ``RuntimeError`` if this thread does not hold it,
        ``ValueError`` once closed.  Never blocks."""
        if _release(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    def locked(self) -> bool:
        """True if the lock is held (by anyone).  One C call; it may skip a
        given-up ticket at the head of the queue (one ``cmpxchg``)."""
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

    def _owner_id(self) -> int:
        return int(lib.lf_ticket_owner(self._h))

    def recover(self) -> bool:
        """Take over from a dead holder (or a dead waiter whose turn it is).

        True if the calling thread now holds the lock; False if there was
        nothing to recover or another recoverer won (see
        ``SpinLock.recover``).  Never blocks; ``ValueError`` once closed.
        """
        return bool(lib.lf_ticket_recover(self._h))


class _CountedTicketLock(TicketLock):
    """A TicketLock created with ``stats=True``: its release also counts
    the acquisition (one more locked ``xadd``)."""

    def release(self) -> None:
        if _release_counted(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if _release_counted(self._h):
            raise RuntimeError(_RELEASE_ERROR)

    release.__doc__ = TicketLock.release.__doc__
    __exit__.__doc__ = TicketLock.__exit__.__doc__


counted_variant(TicketLock, _CountedTicketLock)
