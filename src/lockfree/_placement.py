"""Where a region's memory lives: private memory, a caller's buffer, or a
named POSIX shared-memory segment; mapping, header check, release.

``lockfree.region`` documents the model and re-exports ``Region`` and
``HEADER``; this module is its memory half (``Primitive`` is the other).
"""

from __future__ import annotations

import contextlib
import importlib
import mmap
import operator
import os
import secrets
import sys
import weakref
from multiprocessing import shared_memory
from typing import Any

from ._ffi import ffi, lib
from .errors import CorruptStateError

# The module SharedMemory itself uses: shm_unlink without mapping the
# segment, and (before 3.13, where SharedMemory(name) always registers the
# segment with the resource tracker) shm_open for attaching.
_posixshmem: Any
try:  # through importlib: the module has no type stubs
    _posixshmem = importlib.import_module("_posixshmem")
except ImportError:  # pragma: no cover - non-POSIX
    _posixshmem = None

HEADER: int = lib.LF_REGION_HEADER
ALIGN = 8
_PRIVATE_ALIGN = 64  # private regions start on a cache line

KIND_NAMES: dict[int, str] = {
    lib.LF_KIND_ATOMIC: "AtomicInt",
    lib.LF_KIND_SPINLOCK: "SpinLock",
    lib.LF_KIND_TICKETLOCK: "TicketLock",
    lib.LF_KIND_RWLOCK: "RWSpinLock",
    lib.LF_KIND_SEQLOCK: "seqlock",
    lib.LF_KIND_RCU: "RCU",
    lib.LF_KIND_KFIFO: "Kfifo",
}

_ERESERVED = -100  # attach: the header's reserved word is not zero

__all__ = ["Region", "HEADER", "KIND_NAMES"]


def _a(noun: object) -> str:
    """'a SpinLock', 'an AtomicInt', 'an RcuDomain'."""
    noun = str(noun)
    return ("an " if noun[:1] in "AEIOU" or noun.startswith("Rcu") else
            "a ") + noun


def _auto_name() -> str:
    """A fresh segment name: LOCKFREE_SHM_PREFIX (default ``lf_``) + 16 hex
    digits.  The prefix lets a deployment (or a test run) tell its segments
    apart in /dev/shm."""
    prefix = os.environ.get("LOCKFREE_SHM_PREFIX", "lf_")
    return prefix + secrets.token_hex(8)


def _check_offset(offset: int) -> int:
    try:
        offset = operator.index(offset)
    except TypeError:
        raise TypeError(
            f"offset must be an int, not {type(offset).__name__}") from None
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return offset


def _buffer_pointer(buf: Any) -> Any:
    """A char[] cdata over a writable C-contiguous buffer (keeps it
    exported)."""
    try:
        return ffi.from_buffer("char[]", buf, require_writable=True)
    except TypeError:
        raise TypeError(
            "buffer must support the buffer protocol (bytearray, mmap, "
            f"memoryview, SharedMemory, ...), not {type(buf).__name__}"
        ) from None
    except BufferError as exc:
        raise TypeError(
            f"buffer must be writable and C-contiguous ({exc})") from None


def _open_segment(name: str) -> tuple[Any, Any]:
    """Map an existing named segment read-write, without resource tracking:
    ``(mapping to close, buffer)``.

    ``SharedMemory(name)`` would register the segment with this process's
    resource tracker before Python 3.13, which then unlinks it or warns when
    an attaching worker exits; an attacher must never do that.  From 3.13
    the public ``SharedMemory(name, track=False)`` does exactly this.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if sys.version_info >= (3, 13):  # pragma: no cover - 3.13+
        try:
            shm = shared_memory.SharedMemory(name, track=False)
        except ValueError:  # mmap of an empty file
            raise ValueError(f"shared memory segment {name!r} is empty: "
                             "not a lockfree region") from None
        return shm, shm.buf
    if _posixshmem is None:  # pragma: no cover
        shm = shared_memory.SharedMemory(name)
        return shm, shm.buf
    fd = _posixshmem.shm_open("/" + name.lstrip("/"), os.O_RDWR, mode=0o600)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise ValueError(f"shared memory segment {name!r} is empty: "
                             "not a lockfree region")
        mm = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return mm, mm


def _release(keep: Any, owned_buffer: bool, mapping: Any, unlink: Any,
             pid: int) -> None:
    """Finalizer: drop the export, unmap, unlink if we own the name.

    Must not reference the Region (it runs when the Region is collected).
    """
    if owned_buffer:
        ffi.release(keep)  # a from_buffer export; private memory is GC'd
    if mapping is not None:
        mapping.close()
    if unlink is not None and os.getpid() == pid:
        with contextlib.suppress(FileNotFoundError):
            unlink.unlink()


class Region:
    """The memory of one primitive: header + state.  Internal; see module doc.

    Attributes: ``base`` (``char *`` cdata at the header), ``size`` (total
    bytes), ``name`` (segment name if other processes can attach by name,
    else ``None``), ``offset`` (of the header within the buffer or segment),
    ``params`` (the header's kind-specific parameters).
    """

    def __init__(self, keep: Any, base: Any, avail: int, *, kind: str,
                 owned_buffer: bool, mapping: Any = None,
                 name: str | None = None, offset: int = 0,
                 unlink: shared_memory.SharedMemory | None = None,
                 created: bool = False) -> None:
        self.kind = kind  # "private", "buffer" or "segment"
        self.created = created
        self.base = base
        self.avail = avail
        self.name = name
        self.offset = offset
        self.header = ffi.cast("struct lf_region *", base)
        # The header as created or as checked at attach: a private copy,
        # never re-read from the shared memory (see the module doc).
        self._hdr = ffi.new("struct lf_region *")
        self._owner = unlink  # the SharedMemory whose name we must unlink
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(
            self, _release, keep, owned_buffer, mapping, unlink, os.getpid())

    # -- placement ----------------------------------------------------------

    @classmethod
    def _place(cls, *, buffer: Any, offset: int, name: str | None,
               shared: bool, size: int | None, create: bool) -> Region:
        """Map memory for a region of ``size`` bytes (``None``: attach)."""
        offset = _check_offset(offset)
        if buffer is not None:
            if name is not None or shared:
                raise ValueError("give either buffer= or name=/shared=, "
                                 "not both")
            seg = buffer.name if isinstance(
                buffer, shared_memory.SharedMemory) else None
            mem = buffer.buf if seg is not None else buffer
            keep = _buffer_pointer(mem)
            return cls._at(keep, len(keep), offset, size, owned_buffer=True,
                           name=seg, kind="buffer")
        if create and (shared or name is not None):
            if offset:
                raise ValueError("offset applies to buffer= or attach(), "
                                 "not to a new segment")
            auto = name is None
            assert size is not None
            shm = shared_memory.SharedMemory(
                name=_auto_name() if auto else name, create=True, size=size)
            keep = _buffer_pointer(shm.buf)
            return cls(keep, keep, size, owned_buffer=True, mapping=shm,
                       name=shm.name, unlink=shm if auto else None,
                       kind="segment", created=True)
        if create:
            if offset:
                raise ValueError("offset applies to buffer= or attach()")
            assert size is not None
            keep = ffi.new("char[]", size + _PRIVATE_ALIGN)  # zero-filled
            pad = -int(ffi.cast("uintptr_t", keep)) % _PRIVATE_ALIGN
            return cls(keep, keep + pad, size, owned_buffer=False,
                       kind="private")
        if name is None:
            raise TypeError("attach() needs a segment name or buffer=")
        mapping, mem = _open_segment(name)
        try:
            keep = _buffer_pointer(mem)
        except BaseException:
            mapping.close()
            raise
        return cls._at(keep, len(keep), offset, size, owned_buffer=True,
                       name=name, mapping=mapping, kind="segment")

    @classmethod
    def _at(cls, keep: Any, length: int, offset: int, size: int | None,
            **kw: Any) -> Region:
        need = size if size is not None else HEADER
        if offset + need > length:
            _release(keep, kw["owned_buffer"], kw.get("mapping"), None, 0)
            raise ValueError(
                f"region needs {need} bytes at offset {offset}, but the "
                f"buffer has {length} bytes")
        base = keep + offset
        if int(ffi.cast("uintptr_t", base)) % ALIGN:
            _release(keep, kw["owned_buffer"], kw.get("mapping"), None, 0)
            raise ValueError(
                f"region must start on an {ALIGN}-byte aligned address; "
                f"buffer address + offset {offset} is not")
        return cls(keep, base, length - offset, offset=offset, **kw)

    @classmethod
    def create(cls, kind: int, size: int, params: tuple[int, ...] = (), *,
               buffer: Any = None, offset: int = 0, name: str | None = None,
               shared: bool = False) -> Region:
        """A new zeroed region of ``size`` bytes; header filled,
        unpublished."""
        region = cls._place(buffer=buffer, offset=offset, name=name,
                            shared=shared, size=size, create=True)
        lib.lf_region_init(region.header, kind, size)
        for i, value in enumerate(params):
            region.header.param[i] = value
        ffi.memmove(region._hdr, region.header, HEADER)
        return region

    @classmethod
    def attach(cls, kind: int, *, name: str | None = None,
               buffer: Any = None, offset: int = 0) -> Region:
        """Map an existing region and check its header (never writes)."""
        region = cls._place(buffer=buffer, offset=offset, name=name,
                            shared=False, size=None, create=False)
        # The acquire load of the magic (pairs with lf_region_publish), then
        # one copy of the header; only the copy is checked and used.
        err = lib.lf_region_check(region.header, region.avail, kind)
        ffi.memmove(region._hdr, region.header, HEADER)
        if err == lib.LF_REGION_OK:
            err = lib.lf_region_check(region._hdr, region.avail, kind)
        if err == lib.LF_REGION_OK and region._hdr.reserved:
            err = _ERESERVED
        if err != lib.LF_REGION_OK:
            msg = region._describe(err, kind)
            reserved = region._hdr.reserved
            region.close()
            if err == _ERESERVED:
                raise CorruptStateError(KIND_NAMES.get(kind, "region"),
                                        "header.reserved", f"{reserved:#x}")
            raise ValueError(msg)
        return region

    def _describe(self, err: int, kind: int) -> str:
        where = (f"segment {self.name!r}" if self.name else "buffer") + \
            f" at offset {self.offset}"
        want = KIND_NAMES.get(kind, kind)
        h = self._hdr
        if err == lib.LF_REGION_EMAGIC:
            return (f"{where} does not hold a lockfree region (bad magic): "
                    f"expected {_a(want)} created by lockfree")
        if err == lib.LF_REGION_EVERSION:
            return (f"{where} holds a region of layout version {h.version}; "
                    f"this build reads version {lib.LF_LAYOUT_VERSION}")
        if err == lib.LF_REGION_EKIND:
            got = KIND_NAMES.get(h.kind, f"unknown kind {h.kind}")
            return f"{where} holds {_a(got)}, expected {_a(want)}"
        return (f"{where}: header says {h.size} bytes, but "
                f"{self.avail} are available (expected at least {HEADER})")

    # -- life cycle ---------------------------------------------------------

    def publish(self) -> None:
        """Make the initialised region visible to attachers."""
        lib.lf_region_publish(self.header)

    @property
    def size(self) -> int:
        """Total bytes, as created or as checked at attach."""
        return int(self._hdr.size)

    @property
    def params(self) -> tuple[int, ...]:
        """The kind's parameters, as created or as checked at attach."""
        return tuple(self._hdr.param)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Release the memory (and unlink the name if this region owns it)."""
        self._finalizer()

    def unlink_owned(self) -> None:
        """Unlink the segment now if this region created it with shared=True
        (in this process: a forked child never unlinks its parent's)."""
        owner, self._owner = self._owner, None
        if owner is not None and os.getpid() == self._pid:
            with contextlib.suppress(FileNotFoundError):
                owner.unlink()

    def discard(self) -> None:
        """Close a region whose creation failed, unlinking a new segment."""
        self.close()
        if self.kind == "segment" and self.created:
            self.unlink()

    def unlink(self) -> None:
        """Remove the segment's name (segments only)."""
        if self.name is None:
            raise ValueError("this region is not in a named shared-memory "
                             "segment: there is nothing to unlink")
        with contextlib.suppress(FileNotFoundError):
            _posixshmem.shm_unlink("/" + self.name.lstrip("/"))
