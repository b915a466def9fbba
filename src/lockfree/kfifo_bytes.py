"""KfifoBytes: the Kfifo byte stream (the kernel's byte kfifo).

Partial puts and gets of a byte stream, like ``kfifo_in`` / ``kfifo_out``,
plus ``peek`` (``kfifo_out_peek``), ``skip`` and the zero-copy
``linear_view`` (``kfifo_out_linear``).  See ``docs/kfifo.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._ffi import ffi, lib
from ._kfifo_args import (
    EAGAIN,
    EOF,
    PRODUCER,
    SCRATCH,
    bufptr,
    busy,
    count,
    deadline,
)
from ._kfifo_core import Kfifo

__all__ = ["KfifoBytes"]

# Hot calls: cffi functions as module globals (the binding style).
_put: Any = lib.lf_kfifo_put
_get_scratch: Any = lib.lf_kfifo_get_scratch


class KfifoBytes(Kfifo):
    """A single-producer single-consumer byte stream in a Kfifo ring.

    ``KfifoBytes(capacity)`` (or ``Kfifo(capacity)``).  ``block=True`` (the
    default, as in ``KfifoQueue``) makes ``put`` write all of ``data`` and
    ``get`` wait for at least one byte; ``block=False`` is the kernel's
    partial, never-waiting ``kfifo_in`` / ``kfifo_out``.  ``len()`` is the
    bytes queued.
    """

    _MODE = "bytes"

    def __new__(cls, *args: Any, **kwargs: Any) -> KfifoBytes:
        # A KfifoBytes is always a KfifoBytes (Kfifo's __new__ picks a class by
        # mode only for Kfifo itself): said here so that type checkers
        # read KfifoBytes(...) as KfifoBytes, then check __init__'s parameters.
        return object.__new__(cls)

    def __init__(self, capacity: int, mode: str | None = None, *,
                 buffer: Any = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        """A new ring of ``capacity`` bytes (rounded up to a power of two);
        ``mode``, if given, must be 'bytes'; placement keywords as for every
        lockfree primitive."""
        self._init(capacity, mode, buffer, offset, name, shared)

    def _status(self, r: int) -> int:
        """0 for 'nothing now' (empty), raise for real errors."""
        return 0 if r in (EAGAIN, EOF) else self._check(r)

    def put(self, data: Any, block: bool = True,
            timeout: float | None = None) -> int:
        """Write ``data`` (any bytes-like object); return the count.  With
        ``block=False`` write as much as fits now (0 if full), like
        ``kfifo_in``; blocking, write all of it, waiting for room:
        ``queue.Full`` at the timeout (its ``written`` attribute says how
        much went in)."""
        h = self._h
        size = self._size
        if type(data) is bytes:
            n = len(data)
        else:
            data, n = bufptr(data)
        if not block:
            w = int(_put(h, data, n if n <= size else size))
            return w if w >= 0 else self._check(w)
        return self._put_all(data, n, deadline(True, timeout))

    def _put_all(self, data: Any, n: int, dl: int) -> int:
        # Several C calls write one caller's bytes; the claim on the
        # producer role keeps another thread's bytes out of them.
        h = self._h
        size = self._size
        if lib.lf_kfifo_hold(h, PRODUCER):
            raise busy("producer")
        try:
            p = data if isinstance(data, ffi.CData) else ffi.from_buffer(data)
            done = self._check(int(lib.lf_kfifo_put(h, p, min(n, size))))
            while done < n:
                self._wait_room(1, True, dl, done)
                done += self._check(int(lib.lf_kfifo_put(
                    h, p + done, min(n - done, size))))
            return done
        finally:
            lib.lf_kfifo_unhold(h, PRODUCER)

    def get(self, n: int, block: bool = True,
            timeout: float | None = None) -> bytes:
        """Read up to ``n`` bytes.  Blocking, wait for at least one byte
        (``queue.Empty`` at the timeout; ``b''`` then means end-of-stream);
        ``block=False``: ``b''`` if empty."""
        h = self._h
        k = n if type(n) is int and n >= 0 else count(n)
        dl = deadline(block, timeout)
        lock = self._lock
        if not lock.acquire(False):
            raise busy("consumer")
        try:
            while k:
                if k <= self._nscratch:
                    r = int(_get_scratch(h, k))
                    if r > 0:
                        return self._out[:r]  # type: ignore[no-any-return]
                else:
                    r = int(lib.lf_kfifo_parts(h, min(k, self._size)))
                    if r > 0:
                        return self._get_parts(r)
                if r != EAGAIN or not block:
                    self._status(r)
                    break
                if self._wait_data(r, block, dl) == EOF:
                    break
            return b""
        finally:
            lock.release()

    def _get_parts(self, k: int) -> bytes:
        h = self._h
        data: bytes = ffi.unpack(h.part[0], h.part_len[0])
        if h.part_len[1]:
            data += ffi.unpack(h.part[1], h.part_len[1])
        self._check(lib.lf_kfifo_skip(h, k))
        return data

    def get_into(self, buffer: Any, block: bool = True,
                 timeout: float | None = None) -> int:
        """Read into a writable buffer; return the count (waiting as
        ``get`` does; 0 at end-of-stream or, not blocking, if empty)."""
        h = self._h
        p, n = bufptr(buffer, writable=True)
        n = min(n, self._size)
        dl = deadline(block, timeout)
        if not self._lock.acquire(False):
            raise busy("consumer")
        try:
            k = int(lib.lf_kfifo_get(h, p, n))
            while k == EAGAIN and block and n:
                if self._wait_data(k, block, dl) == EOF:
                    return 0
                k = int(lib.lf_kfifo_get(h, p, n))
            return k if k >= 0 else self._status(k)
        finally:
            self._lock.release()

    def peek(self, n: int) -> bytes:
        """Up to ``n`` readable bytes, without consuming them (never
        waits)."""
        h = self._h
        buf = ffi.new("char[]", min(count(n), self._size))
        if not self._lock.acquire(False):
            raise busy("consumer")
        try:
            got = self._status(int(lib.lf_kfifo_peek(h, buf, len(buf))))
            return ffi.unpack(buf, got)  # type: ignore[no-any-return]
        finally:
            self._lock.release()

    def skip(self, n: int) -> int:
        """Consume up to ``n`` bytes unread; return the count."""
        h = self._h
        return self._status(int(lib.lf_kfifo_skip(h, min(count(n),
                                                          self._size))))

    def linear_view(self) -> memoryview:
        """Zero-copy: a read-only view of the readable bytes up to the end
        of the data area (``kfifo_out_linear``).  Consume them with
        ``skip(k)``; do not use the view after that."""
        h = self._h
        if not self._lock.acquire(False):
            raise busy("consumer")
        try:
            k = self._status(int(lib.lf_kfifo_parts(h, self._size)))
        finally:
            self._lock.release()
        # The view's pointer holds the handle (hence the region) alive.
        p = ffi.gc(ffi.cast("char *", h.part[0]), lambda _, k=h: None)
        return memoryview(ffi.buffer(p, h.part_len[0] if k else 0)
                          ).toreadonly()

    def __iter__(self) -> Iterator[bytes]:
        """Yield chunks (up to 256 KiB), blocking, until the producer closes
        and the ring is drained."""
        get = self.get
        while True:
            chunk = get(SCRATCH, True)
            if not chunk:
                return
            yield chunk
