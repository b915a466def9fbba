"""RcuBuffer: bytes published with RCU, readable zero-copy from several
processes (see docs/rcu.md).  Re-exported by ``lockfree.rcu``."""

from __future__ import annotations

from typing import Any

from . import _wait
from ._ffi import ffi, lib
from ._rcu_core import (
    DomainBase,
    _Reader,
    check_capacity,
    lock_failed,
    sync_failed,
)
from .region import HEADER

__all__ = ["RcuBuffer", "BufferRead"]


class BufferRead:
    """What ``RcuBuffer.read()`` returns: ``with buf.read() as view:``
    gives the current version as a read-only ``memoryview``, released when
    the section ends.  One object per buffer and thread (nesting allowed);
    entering never blocks (two C calls and a slice)."""

    __slots__ = ("_rh", "_reader", "_data", "_ss", "_views")

    def __init__(self, reader: _Reader, buf: RcuBuffer) -> None:
        self._reader = reader
        self._rh = reader.rh
        self._data: memoryview = buf._data
        self._ss: int = buf._slot_size
        self._views: list[memoryview] = []

    def __enter__(self, *, _lock: Any = lib.lf_rcu_buf_read_lock
                  ) -> memoryview:
        """Begin the section (registers the thread on its first one);
        return a view of the current version."""
        desc = _lock(self._rh)
        if desc < 0:
            desc = lock_failed(self._reader, desc)
        # Slot < nslots and length <= slot size: checked in C against the
        # handle; _data is the handle's data area, so a slice never leaves
        # it anyway.
        off = (desc & 255) * self._ss
        view = self._data[off:off + (desc >> 8)]
        self._views.append(view)
        return view

    def __exit__(self, *exc: object,
                 _unlock: Any = lib.lf_rcu_read_unlock) -> None:
        """Release the view and end the section."""
        try:
            self._views.pop().release()
        except BufferError:  # re-exported (numpy...): stays mapped, unsafe
            pass
        finally:
            _unlock(self._rh)


def _bytes_of(data: Any) -> tuple[Any, int]:
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
    _data: Any  # the validated data area (a memoryview); None once closed
    size: int
    """Bytes a version may hold (a slot's capacity)."""

    def __init__(self, size: int, initial: Any = b"", *, slots: int = 3,
                 capacity: int = 64, auto_register: bool = True,
                 buffer: Any = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        params = (capacity, slots, size, 0)
        self._state_size(params)
        if initial is None:
            initial = b""
        src, n = _bytes_of(initial)
        if n > size:
            raise ValueError(f"initial: {n} bytes do not fit in a slot of "
                             f"{size} bytes")

        def init(state: Any) -> None:
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
        return int(HEADER) + cls._state_size((capacity, slots, size, 0))

    @classmethod
    def _attach_mismatch(cls, region: Any) -> str | None:
        if not region.params[1]:  # no version slots: a plain domain
            return ("this RCU region holds an RcuDomain, not an RcuBuffer: "
                    "attach it with RcuDomain.attach()")
        return None

    @classmethod
    def _state_size(cls, params: Any) -> int:
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
        return int(lib.lf_rcu_buf_size(capacity, nslots, size))

    def _open_handle(self) -> None:
        region: Any = self._region
        capacity, nslots, size = region.params[:3]
        bh = ffi.new("struct lf_rcu_bh *")
        field = ffi.new("char **")
        rc = lib.lf_rcu_buf_handle_init(bh, self._state, self._avail(),
                                        capacity, nslots, size, field)
        if rc:
            self._handle_failed(rc, field)
        total = lib.lf_rcu_buf_size(capacity, nslots, size)
        # ffi.buffer keeps self._state, hence the mapping, alive: views
        # that outlive close() never see unmapped memory.  The data area
        # is the handle's (validated) one.
        whole = memoryview(ffi.buffer(self._state, total)).toreadonly()
        off = (int(ffi.cast("uintptr_t", bh.data)) -
               int(ffi.cast("uintptr_t", self._state)))
        self._data = whole[off:off + bh.nslots * bh.slot_size]
        self._slot_size = int(bh.slot_size)
        self.size = size
        # The domain handle lives inside bh: keep bh alive with it.
        self._init_domain(ffi.addressof(bh[0], "dom"), bh)

    def _section(self, reader: _Reader) -> BufferRead:
        return BufferRead(reader, self)

    def read(self) -> BufferRead:
        """``with buf.read() as view:`` the current version as a read-only
        memoryview, released when the section ends: copy (``bytes(view)``)
        what must outlive it.

        Any thread of any process; never blocks, never waits for writers
        (two C calls and a thread-local lookup).  The thread registers on
        its first section (``RcuRegistryFullError`` if no slot is free,
        ``RcuNotRegisteredError`` with ``auto_register=False``); nested
        sections are allowed.  ``CorruptStateError`` if a peer scribbled
        the current-version word; ``ValueError`` once closed.
        """
        section: BufferRead = self._local.section
        return section

    def publish(self, data: Any, timeout: float | None = None) -> int:
        """Publish a copy of ``data`` (bytes-like, at most ``size`` bytes)
        as the new version; return its version number.

        Any thread outside a read section of this buffer (inside one:
        ``RcuDeadlockError`` when it would have to wait).  Costs one copy;
        it waits only when every other slot still holds a version readers
        may see: then for a grace period (``TimeoutError`` after
        ``timeout`` s; a reader process that died inside a read section is
        detected and skipped).  ``TypeError`` for a non-bytes-like
        ``data``, ``ValueError`` if it is too big or once closed.
        """
        _ = self._h  # raises ValueError once closed
        src, n = _bytes_of(data)
        if n > self.size:
            raise ValueError(f"{n} bytes do not fit in a slot of "
                             f"{self.size} bytes")
        deadline = _wait.deadline_in(timeout)
        bh = self._bh

        def attempt(end: int) -> int:
            return int(lib.lf_rcu_buf_publish(bh, src, n, end))
        sync_failed(_wait.wait(attempt, deadline), "RcuBuffer.publish",
                    timeout)
        return int(lib.lf_rcu_buf_version(bh))

    @property
    def version(self) -> int:
        """Number of the current version (0: the initial empty one).  One
        C call; ``ValueError`` once closed."""
        _ = self._h  # raises ValueError once closed
        return int(lib.lf_rcu_buf_version(self._bh))

    @property
    def stats(self) -> dict[str, int]:
        """``RcuDomain.stats`` plus ``slots_recycled``."""
        s = super().stats
        s["slots_recycled"] = int(self._bh.b.nr_recycled)
        return s

    def close(self) -> None:
        """Release this process's reader slots and the memory; idempotent.
        Views handed out stay valid (they keep the memory mapped) until
        released."""
        if self.closed:
            return
        self._data = None
        super().close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<RcuBuffer {self._placement()}>"
        return (f"<RcuBuffer size={self.size} version={self.version} "
                f"{self._placement()}>")
