"""Every exception lockfree raises, and the one map from C error codes.

The C core returns one set of negative codes (``csrc/errors.h``); this module
is the only place that turns them into Python exceptions (:func:`raise_for`).
Each primitive's module re-exports the exceptions it raises, so
``from lockfree.kfifo import ProducerDied`` keeps working.

Conventions, as in the standard library: a wrong type is ``TypeError``, a bad
value (size, alignment, offset, timeout, attach target) is ``ValueError``
saying what was expected, a timeout returns ``False`` or raises
``TimeoutError`` / ``queue.Empty`` / ``queue.Full`` as the method documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from ._ffi import lib

__all__ = ["CorruptStateError", "OwnerDiedError", "ConcurrentUseError",
           "RoleError", "PeerDied", "ProducerDied", "ConsumerDied",
           "ModeError", "RcuError", "RcuRegistryFullError",
           "RcuNotRegisteredError", "RcuDeadlockError", "raise_for",
           "is_dead_owner"]


class CorruptStateError(ValueError):
    """The shared state holds a value no lockfree build ever writes.

    Another process (buggy, dying or hostile) wrote into the segment.  The
    operation touched nothing outside the segment; ``field`` names the value
    found wrong when it is known (else ``None``).  At attach the same error
    is raised instead of attaching, which makes it a ``ValueError`` like
    every other bad attach target.
    """

    def __init__(self, what: str, field: str | None = None,
                 detail: str = ""):
        self.what = what
        self.field = field
        msg = f"the shared state of this {what} is corrupt"
        if field:
            msg += f": {field}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg + "; another process wrote into the segment")


class OwnerDiedError(RuntimeError):
    """The holder of a lock died (thread exited or process killed) holding it.

    ``pid`` and ``tid`` identify the dead holder (``tid`` is the kernel
    thread id, ``threading.get_native_id()`` in that process).  The lock is
    still held on its behalf: call the lock's ``recover()`` to take it over.
    For a reader process of an :class:`RWSpinLock` (readers are recorded
    per process), ``tid`` is 0 and ``recover()`` gives its read holds back.
    """

    def __init__(self, what: str, owner_id: int):
        self.pid = owner_id >> 32
        self.tid = owner_id & 0xFFFFFFFF
        if self.tid == 0:
            msg = (f"a reader process of this {what} died holding the read "
                   f"side (pid {self.pid}); call recover() to give its "
                   "read holds back")
        else:
            msg = (f"the owner of this {what} died holding it (pid "
                   f"{self.pid}, thread id {self.tid}); call recover() to "
                   "take the lock over (the data it protects may be "
                   "inconsistent)")
        super().__init__(msg)


class ConcurrentUseError(RuntimeError):
    """A single-owner handle (a kfifo producer or consumer, ...) was used by
    two threads at the same time.  Nothing was lost: the second call was
    refused before it touched the shared state.  Give each thread its own
    handle, or serialise the calls with a lock."""


class RoleError(RuntimeError):
    """Another live object is already this ring's producer (or consumer)."""


class PeerDied(ConnectionError):
    """The process on the other side died (see ProducerDied/ConsumerDied)."""


class ProducerDied(PeerDied):
    """The ring is drained and the producer's process died without
    ``close_producer()``: every message it committed was received."""


class ConsumerDied(PeerDied, BrokenPipeError):
    """The ring is full and the consumer's process died; a new consumer may
    attach and take over."""


class ModeError(TypeError):
    """A byte-mode call on a records ring, or the other way round."""


class RcuError(RuntimeError):
    """Misuse of an RCU domain."""


class RcuRegistryFullError(RcuError):
    """Every reader slot of the domain is taken."""


class RcuNotRegisteredError(RcuError):
    """A read section in a thread that holds no reader slot."""


class RcuDeadlockError(RcuError):
    """synchronize (or barrier) inside a read section of the same domain."""


_DEAD_OWNER_BOUND = -(1 << 32)


def is_dead_owner(code: int) -> bool:
    """Is an acquire's result the ``-(owner id)`` of a dead holder?"""
    return code <= _DEAD_OWNER_BOUND


def raise_for(code: int, what: str) -> NoReturn:
    """Raise the exception for a negative C result ``code`` of ``what``
    (a noun such as ``"SpinLock"``).  Primitives handle the codes whose
    meaning is their own (a timeout, end of file) before calling this."""
    if code <= _DEAD_OWNER_BOUND:
        raise OwnerDiedError(what, -code)
    exc = _EXCEPTIONS.get(code)
    if exc is None:
        raise SystemError(f"{what}: unknown lockfree error code {code}")
    raise exc(what)


def _corrupt(what: str) -> BaseException:
    return CorruptStateError(what)


_EXCEPTIONS: dict[int, Callable[[str], BaseException]] = {
    lib.LF_EAGAIN: lambda w: TimeoutError(f"{w}: the deadline passed"),
    lib.LF_EOF: lambda w: EOFError(f"{w}: closed and drained"),
    lib.LF_EDEAD: lambda w: PeerDied(f"{w}: the peer's process died"),
    lib.LF_EBUSY: lambda w: RoleError(
        f"{w}: held by another live object"),
    lib.LF_EMSGSIZE: lambda w: ValueError(f"{w}: the message can never fit"),
    lib.LF_ECLOSED: lambda w: BrokenPipeError(f"{w}: closed"),
    lib.LF_ECORRUPT: _corrupt,
    lib.LF_EBIG: lambda w: ValueError(f"{w}: larger than the buffer"),
    lib.LF_EINVAL: lambda w: ValueError(f"{w}: invalid argument or state"),
    lib.LF_EPERM: lambda w: RuntimeError(
        f"{w}: not held (or not registered) by the caller"),
    lib.LF_EDEADLK: lambda w: RuntimeError(
        f"{w}: the wait would wait for the caller itself"),
    lib.LF_ENOSPC: lambda w: RuntimeError(f"{w}: no free slot"),
    lib.LF_ENOMEM: lambda w: MemoryError(f"{w}: out of memory"),
    lib.LF_EMISUSE: lambda w: ConcurrentUseError(
        f"this {w} was used by two threads at the same time; give each "
        "thread its own handle"),
}
