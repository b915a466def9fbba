"""Once: run an initialisation exactly once, across threads and processes.

Double-checked locking, the pattern the kernel uses where a cheap check
usually says "already done" (for example ``wait_task_zombie`` looks at the
task's state without the lock, then takes the lock and looks again)::

    if (!done)                  /* 1: cheap check, no lock            */
        with lock:              /* 2: serialise the initialisers       */
            if (!done) {        /* 3: check again: another thread may  */
                init();         /*    have initialised between 1 and 2 */
                done = 1;       /* 4: publish after init's effects     */
            }

Without check 3, two callers that both pass check 1 before either takes the
lock both run ``init()`` (``python -m lockfree demo once`` scripts that
interleaving).  Step 4 must come after ``init()`` is complete and be
visible no earlier: ``AtomicInt.store`` is an ``xchg`` (a full barrier), and
the fast-path load pairs with it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from .atomic import AtomicInt
from .errors import CorruptStateError, OwnerDiedError
from .spinlock import SpinLock

__all__ = ["Once", "call_once"]


class Once:
    """A flag and a lock that let exactly one caller run an initialiser.

    ``Once(shared=False)``: with ``shared=True`` the flag and the lock live
    in shared memory, the object pickles to ``multiprocessing`` workers, and
    exactly one *process* runs the initialiser.

    ``call_once(fn, *args, **kwargs)`` runs ``fn`` if nobody has completed
    it yet and returns True if this call ran it.  Other callers wait (spin,
    then yield, in C) until the running one finishes.  If ``fn`` raises, the
    exception propagates, the flag stays unset and a later caller runs
    ``fn`` again (as C++ ``std::call_once``).  After completion a call costs
    one atomic load.  Not reentrant: ``fn`` must not call ``call_once`` on
    the same ``Once``.

    If the caller running ``fn`` dies inside it (its process is killed, or
    its thread ends without returning), the next caller takes the lock over
    and runs ``fn`` again, as a robust mutex's ``EOWNERDEAD`` path does:
    ``fn`` must cope with a half-done earlier attempt.  A ``Once`` is never
    broken for ever.
    """

    _done: AtomicInt
    _lock: SpinLock

    def __init__(self, *, shared: bool = False) -> None:
        self._done = AtomicInt(0, shared=shared)
        try:
            self._lock = SpinLock(shared=shared)
        except BaseException:
            self._done.close()
            raise

    def _closed_error(self) -> ValueError:
        return ValueError("operation on a closed Once")

    @property
    def done(self) -> bool:
        """True once an initialiser has completed (one atomic load).
        ``ValueError`` once closed."""
        try:
            return self._done.load() != 0
        except ValueError:
            if self._done.closed:
                raise self._closed_error() from None
            raise

    def call_once(self, fn: Callable[..., object], /, *args: Any,
                  **kwargs: Any) -> bool:
        """Run ``fn(*args, **kwargs)`` unless an initialiser has completed;
        return True if this call ran it, False otherwise.

        Guarantee: exactly one caller runs ``fn`` to completion, and every
        call returns only after it has (its effects are visible: the flag
        is published by a full barrier after ``fn`` returns).  Blocks
        while another caller runs ``fn`` (waiting on the SpinLock: spin,
        yield, then sleep in C with the GIL released).  Raises whatever
        ``fn`` raises (the flag stays unset and a later caller runs ``fn``
        again), ``CorruptStateError`` if another process overwrote the
        lock's word meanwhile, ``ValueError`` once closed.  If the caller
        running ``fn`` died inside it, the next caller recovers the lock
        (as a robust mutex's ``EOWNERDEAD`` path) and runs ``fn`` again.
        Cost after completion: one Python call and one atomic load (a cffi
        call); the first call also takes and releases the lock.  Not
        reentrant: ``fn`` must not call ``call_once`` on the same ``Once``.
        """
        try:
            if self._done.load():      # 1: no lock on the fast path
                return False
        except ValueError:
            if self._done.closed:
                raise self._closed_error() from None
            raise
        lock = self._lock
        while True:                    # 2
            try:
                lock.acquire()
                break
            except OwnerDiedError:
                # The caller running fn died inside it (its process was
                # killed): a robust mutex's EOWNERDEAD.  Take the lock over
                # and run fn again (done was never set); if another caller
                # recovered first, wait for it as usual.
                if lock.recover():
                    break
        try:
            if self._done.load():      # 3: somebody finished meanwhile
                return False
            fn(*args, **kwargs)
            self._done.store(1)        # 4: xchg, after fn's effects
            return True
        finally:
            try:
                lock.release()
            except RuntimeError:
                # We hold the lock, so its word names us unless another
                # process wrote over it meanwhile.
                raise CorruptStateError("Once", "lock owner") from None

    def close(self) -> None:
        """Release the flag's and the lock's memory (idempotent)."""
        self._done.close()
        self._lock.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return bool(self._done.closed)

    def __enter__(self) -> Once:
        if self._done.closed:
            raise self._closed_error()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[[AtomicInt, SpinLock], Once],
                                  tuple[AtomicInt, SpinLock]]:
        return _rebuild, (self._done, self._lock)

    def __repr__(self) -> str:
        if self._done.closed:
            return "<Once closed>"
        return f"<Once {'done' if self.done else 'not done'}>"


def _rebuild(done: AtomicInt, lock: SpinLock) -> Once:
    once = Once.__new__(Once)
    once._done, once._lock = done, lock
    return once


def call_once(once: Once, fn: Callable[..., object], /, *args: Any,
              **kwargs: Any) -> bool:
    """``once.call_once(fn, *args, **kwargs)``, as a function."""
    return once.call_once(fn, *args, **kwargs)
