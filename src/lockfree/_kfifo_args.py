"""What the Kfifo classes share below the class: the C constants they use,
argument checks (capacity, counts, buffers, timeouts) and the exceptions
they build (``_kfifo_core.py`` has the base class)."""

from __future__ import annotations

import operator
import queue
from typing import Any

from . import _wait
from ._ffi import ffi, lib
from .errors import ConcurrentUseError

MODES: dict[str, int] = {"bytes": lib.LF_KFIFO_BYTES,
                         "records": lib.LF_KFIFO_RECORDS}
_MODE_NAMES: dict[int, str] = {v: k for k, v in MODES.items()}
MAX_CAPACITY: int = lib.LF_KFIFO_MAX_SIZE  # 2**31: in - out fits 32 bits
REC_HDR: int = lib.LF_KFIFO_REC_HDR         # the 4-byte length prefix
SCRATCH = 256 * 1024                        # per-object copy-out buffer
MAX_BATCH = 4096                            # messages per get_many C call

EAGAIN: int = lib.LF_EAGAIN
EOF: int = lib.LF_EOF
EDEAD: int = lib.LF_EDEAD
EBIG: int = lib.LF_EBIG
EMSGSIZE: int = lib.LF_EMSGSIZE
EMISUSE: int = lib.LF_EMISUSE
PRODUCER: int = lib.LF_KFIFO_ROLE_PRODUCER
CONSUMER: int = lib.LF_KFIFO_ROLE_CONSUMER
FOREVER, NOWAIT = _wait.FOREVER, _wait.NOWAIT


def check_capacity(capacity: object, mode: object) -> tuple[int, int]:
    """(data bytes rounded up to a power of two, mode number)."""
    try:
        cap = operator.index(capacity)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError("capacity must be an int, not "
                        f"{type(capacity).__name__}") from None
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'bytes' or 'records', not {mode!r}")
    if cap < 2 or cap > MAX_CAPACITY:
        raise ValueError(f"capacity must be in 2..2**31 bytes, got {cap}")
    size = 1 << (cap - 1).bit_length()
    if mode == "records":
        size = max(size, 2 * REC_HDR)
    return size, MODES[mode]


def index(n: object, name: str = "n") -> int:
    """An int argument (bool too, as everywhere in Python); else TypeError."""
    try:
        return operator.index(n)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(n).__name__}") \
            from None


def count(n: object) -> int:
    """A byte count argument: an int >= 0."""
    k = index(n)
    if k < 0:
        raise ValueError(f"n must be >= 0, got {k}")
    return k


def busy(role: str) -> ConcurrentUseError:
    return ConcurrentUseError(
        f"this Kfifo's {role} side is in use by another thread right now; "
        "give each thread its own object's role, or serialise the calls")


def full(written: int) -> queue.Full:
    exc = queue.Full(f"Kfifo full ({written} written)")
    exc.written = written  # type: ignore[attr-defined]
    return exc


def bufptr(data: object, writable: bool = False) -> tuple[Any, int]:
    """(char pointer, nbytes) over any C-contiguous (writable) buffer."""
    try:
        p = ffi.from_buffer(data, require_writable=writable)
    except TypeError:
        raise TypeError("expected a bytes-like object (bytes, bytearray, "
                        f"memoryview, array...), not {type(data).__name__}"
                        ) from None
    except (BufferError, ValueError) as exc:
        raise TypeError(f"expected a C-contiguous{' writable' * writable} "
                        f"buffer ({exc})") from None
    return p, len(p)


def deadline(block: bool, timeout: float | None) -> int:
    """FOREVER / NOWAIT without a timeout, else the queue convention's
    deadline (validating the timeout)."""
    if timeout is None:
        return FOREVER if block else NOWAIT
    return _wait.queue_deadline(block, timeout)

