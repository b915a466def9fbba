"""RcuBuffer: bytes published with RCU, readable zero-copy from several
processes (see docs/rcu.md).  Re-exported by ``lockfree.rcu``."""

from __future__ import annotations

import functools
import threading
import weakref

from . import _wait
from ._ffi import ffi, lib
from ._rcu_core import DomainBase, check_capacity, lock_failed, sync_failed
from .region import HEADER

__all__ = ["RcuBuffer"]


class _BufRead:
    __slots__ = ("_r", "_data", "_ss", "_views")

    def __init__(self, reader, buf):
        self._r = reader
        self._data = buf._data
        self._ss = buf._slot_size
        self._views = []

    def __enter__(self):
        desc = self._r.lock()
        if desc < 0:
            desc = lock_failed(self._r, desc)
        # Slot < nslots and length <= slot size: checked in C against the
        # handle; _data is the handle's data area, so a slice never leaves
        # it anyway.
        off = (desc & 255) * self._ss
        view = self._data[off:off + (desc >> 8)]
        self._views.append(view)
        return view

    def __exit__(self, *exc):
        try:
            self._views.pop().release()
        except BufferError:  # re-exported (numpy...): stays mapped, unsafe
            pass
        finally:
            self._r.unlock()


class _BufLocal(threading.local):
    def __init__(self, buf_ref):
        buf = buf_ref()
        self.cm = _BufRead(buf._thread_reader(), buf)


def _bytes_of(data):
    """``data``'s bytes as a (cdata, length); TypeError unless it is a
    C-contiguous bytes-like object."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"data must be a bytes-like object, not "
                        f"{type(data).__name__}") from None
    if not view.c_contiguous:
        raise TypeError("data must be a C-contiguous buffer (copy it with "
                        "bytes() first)")
    view = view.cast("B") if view.ndim != 1 or view.itemsize != 1 else view
    return ffi.from_buffer(view), view.nbytes


class RcuBuffer(DomainBase):
    """Bytes published with RCU, readable zero-copy from several processes.

    ``RcuBuffer(size, initial=b"", slots=3, capacity=64, shared=True)``:
    versions of up to ``size`` bytes in ``slots`` slots.  ``with
    buf.read() as view:`` gives a read-only ``memoryview`` of the current
    version, valid until the end of the section (it is released then).
    ``publish(data)`` copies into a free slot and publishes; a slot is
    reused only after a grace period.  Picklable to worker processes when
    in named shared memory.
    """

    _CTYPE = "struct lf_rcu_buf *"
    _LOCK = lib.lf_rcu_buf_read_lock

    def __init__(self, size: int, initial=b"", *, slots: int = 3,
                 capacity: int = 64, auto_register: bool = True,
                 buffer=None, offset: int = 0, name: str | None = None,
                 shared: bool = False):
        params = (capacity, slots, size, 0)
        self._state_size(params)
        if initial is None:
            initial = b""
        src, n = _bytes_of(initial)
        if n > size:
            raise ValueError(f"initial: {n} bytes do not fit in a slot of "
                             f"{size} bytes")

        def init(state):
            if lib.lf_rcu_buf_init(state, capacity, slots, size):
                raise ValueError("bad RcuBuffer parameters")
        self._create(params, init, buffer=buffer, offset=offset, name=name,
                     shared=shared)
        self._auto = auto_register
        if n:
            self.publish(initial)

    @classmethod
    def region_size(cls, size: int, slots: int = 3,
                    capacity: int = 64) -> int:
        """Bytes an RcuBuffer needs in a caller's buffer (same arguments
        as the constructor: ``size`` bytes a version, ``slots``,
        ``capacity`` reader slots)."""
        return HEADER + cls._state_size((capacity, slots, size, 0))

    @classmethod
    def _attach_mismatch(cls, region):
        if not region.params[1]:  # no version slots: a plain domain
            return ("this RCU region holds an RcuDomain, not an RcuBuffer: "
                    "attach it with RcuDomain.attach()")
        return None

    @classmethod
    def _state_size(cls, params) -> int:
        capacity, nslots, size = params[0], params[1], params[2]
        check_capacity(capacity)
        for what, v in (("slots", nslots), ("size", size)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{what} must be an int, not "
                                f"{type(v).__name__}")
        if not 2 <= nslots <= lib.LF_RCU_BUF_MAX_SLOTS:
            raise ValueError(f"slots must be in 2..{lib.LF_RCU_BUF_MAX_SLOTS}"
                             f", got {nslots}")
        if not 1 <= size <= 1 << 40:
            raise ValueError(f"size must be in 1..2**40 bytes, got {size}")
        return lib.lf_rcu_buf_size(capacity, nslots, size)

    def _bind_calls(self) -> None:
        capacity, nslots, size = self._region.params[:3]
        bh = ffi.new("struct lf_rcu_bh *")
        field = ffi.new("char **")
        rc = lib.lf_rcu_buf_handle_init(bh, self._state, self._avail(),
                                        capacity, nslots, size, field)
        if rc:
            self._handle_failed(rc, field)
        # The domain handle lives inside bh: keep bh alive with it.
        self._init_domain(ffi.addressof(bh[0], "dom"), bh)
        total = lib.lf_rcu_buf_size(capacity, nslots, size)
        # ffi.buffer keeps self._state, hence the mapping, alive: views
        # that outlive close() never see unmapped memory.  The data area
        # is the handle's (validated) one.
        whole = memoryview(ffi.buffer(self._state, total)).toreadonly()
        off = (int(ffi.cast("uintptr_t", bh.data)) -
               int(ffi.cast("uintptr_t", self._state)))
        self._data = whole[off:off + bh.nslots * bh.slot_size]
        self._slot_size = bh.slot_size
        self.size = size
        self.read = functools.partial(getattr,
                                      _BufLocal(weakref.ref(self)), "cm")
        self._bound.append("read")

    def read(self):  # documentation; instances use the partial above
        """``with buf.read() as view:`` the current version as a read-only
        memoryview, released when the section ends: copy (``bytes(view)``)
        what must outlive it."""
        self._closed()

    def publish(self, data, timeout: float | None = None) -> int:
        """Publish a copy of ``data`` (bytes-like, at most ``size`` bytes)
        as the new version; return its version number.

        Needs a free slot: if every other slot still holds a version that
        readers may see, waits for a grace period (``TimeoutError`` after
        ``timeout`` s; a reader process that died inside a read section is
        detected and skipped).
        """
        if self.closed:
            self._closed()
        src, n = _bytes_of(data)
        if n > self.size:
            raise ValueError(f"{n} bytes do not fit in a slot of "
                             f"{self.size} bytes")
        deadline = _wait.deadline_in(timeout)
        bh = self._bh
        rc = _wait.wait(lambda end: lib.lf_rcu_buf_publish(bh, src, n, end),
                        deadline)
        sync_failed(rc, "RcuBuffer.publish", timeout)
        return lib.lf_rcu_buf_version(bh)

    @property
    def version(self) -> int:
        """Number of the current version (0: the initial empty one)."""
        if self.closed:
            self._closed()
        return lib.lf_rcu_buf_version(self._bh)

    @property
    def stats(self) -> dict:
        s = super().stats
        s["slots_recycled"] = self._bh.b.nr_recycled
        return s

    def close(self) -> None:
        if self.closed:
            return
        self._data = None
        super().close()

    def __repr__(self):
        if self.closed:
            return f"<RcuBuffer {self._placement()}>"
        return (f"<RcuBuffer size={self.size} version={self.version} "
                f"{self._placement()}>")
