"""SeqBytes: a seqlock-protected block of ``size`` raw bytes.

See :mod:`lockfree.seqlock` and docs/seqlock.md.
"""

from __future__ import annotations

import operator
from typing import Any

from . import _wait
from ._ffi import lib
from ._seq_core import (
    BYTES,
    MAX_SIZE,
    SeqBase,
    bytes_of,
    check_latch,
    deadline,
    raise_code,
)

__all__ = ["SeqBytes"]

_fetch = lib.lf_seq_fetch  # module globals: see seq_record.py
_store = lib.lf_seq_store


def _check_size(size: object) -> int:
    try:
        if isinstance(size, bool):
            raise TypeError
        n = operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"size must be an int, not "
                        f"{type(size).__name__}") from None
    if not 0 < n <= MAX_SIZE:
        raise ValueError(f"size must be in 1..{MAX_SIZE}, got {n}")
    return int(n)


def _src(data: object, size: int) -> Any:
    """bytes as is (cffi passes their buffer), else a char cdata over the
    caller's C-contiguous buffer (its bytes, whatever its item format:
    ``memoryview(x).cast("B")``); ValueError unless exactly size bytes."""
    src = bytes_of(data)
    if len(src) != size:
        raise ValueError(f"data must be exactly {size} bytes, got "
                         f"{len(src)}")
    return src


class SeqBytes(SeqBase):
    """A seqlock-protected block of ``size`` bytes.

    The block starts as ``initial`` (a bytes-like object of exactly
    ``size`` bytes) or all zero bytes.  Placement keywords as for every
    lockfree primitive (see ``lockfree.region``);
    ``SeqBytes.region_size(size, latch=False)`` bytes are needed in a
    caller's buffer.
    """

    _FORM = BYTES

    def __init__(self, size: int, initial: Any = None, *,
                 latch: bool = False, buffer: Any = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        size = _check_size(size)
        data = None if initial is None else _src(initial, size)
        self._new(size, latch, b"", data,
                  dict(buffer=buffer, offset=offset, name=name,
                       shared=shared))

    @classmethod
    def region_size(cls, size: int,
                    latch: bool = False) -> int:
        """Bytes a SeqBytes of ``size`` bytes needs in a caller's buffer."""
        return super().region_size(_check_size(size), check_latch(latch), 0,
                                   BYTES)

    @classmethod
    def attach(cls, name: str | None = None,
               size: int | None = None, *, buffer: Any = None,
               offset: int = 0) -> SeqBytes:
        """Attach by segment name or in ``buffer``; ``size``, if given,
        must equal the size it was created with."""
        if size is not None:
            size = _check_size(size)
        self = super().attach(name, buffer=buffer, offset=offset)
        assert isinstance(self, SeqBytes)
        if size is not None and size != self.size:
            got = self.size
            self.close()
            raise ValueError(f"this SeqBytes holds {got} bytes, not {size}")
        return self

    def read(self, timeout: float | None = None) -> bytes:
        """Return a consistent snapshot as ``bytes``.

        As :meth:`SeqRecord.read <lockfree.SeqRecord.read>`: never blocks
        the writer; classic mode waits while a write is in progress, for at
        most ``timeout`` seconds if given (then ``TimeoutError``)."""
        r = _fetch(self._h)
        if r < 0:
            return bytes(self._read_slow(r, timeout))
        return bytes(self._buf)

    def read_into(self, buffer: Any, timeout: float | None = None) -> int:
        """Copy a consistent snapshot into the first ``size`` bytes of the
        writable, C-contiguous ``buffer``; return ``size``.  ``TypeError``
        for another kind of object, ``ValueError`` if it is smaller;
        ``timeout`` as for :meth:`read`."""
        h = self._h
        ptr = bytes_of(buffer, "buffer", writable=True)
        size = self._size
        if len(ptr) < size:
            raise ValueError(f"buffer has {len(ptr)} bytes; need {size}")
        r = _wait.wait(lambda end: lib.lf_seq_read_until(h, ptr, size, end),
                       deadline(timeout))
        if r < 0:
            raise_code(r, "SeqBytes")
        self._my_handle().retries = r
        return size

    def write(self, data: Any, timeout: float | None = None) -> None:
        """Replace the value with ``data``: a C-contiguous bytes-like object
        of exactly ``size`` bytes (``ValueError`` otherwise, ``TypeError``
        for a non-contiguous buffer or another type).

        Takes the writer lock (waits while another writer holds it, for at
        most ``timeout`` seconds if given, then ``TimeoutError``; raises
        :class:`~lockfree.OwnerDiedError` if that writer died)."""
        h = self._h
        if type(data) is not bytes or len(data) != self._size:
            data = _src(data, self._size)
        if _store(h, data):  # the lock is busy: wait (until the timeout)
            self._write_slow(h, data, timeout)

    def recover(self, data: Any) -> bool:
        """If the writer holding the lock died, take the lock over, write
        ``data`` (a bytes-like object of ``size`` bytes) and release it.
        Returns False if there was nothing to recover."""
        self._h  # noqa: B018 - ValueError once closed
        return self._recover(_src(data, self._size))

    def _describe(self) -> str:
        return f"size={self._size}"
