"""Regions: where a primitive's state lives, and how other processes find it.

Every lockfree primitive keeps its state in a *region*: a 64-byte header
(magic, layout version, primitive kind, total size, kind-specific parameters)
followed by the state.  A region can be placed in

* private memory (the default): fastest to create, shared by threads only;
* a caller's writable buffer at an offset (``bytearray``, ``mmap``,
  ``SharedMemory`` or its ``.buf``, a NumPy array...): you decide the layout
  and how the buffer is shared;
* a named POSIX shared-memory segment (``shared=True`` or ``name=...``) that
  other processes attach to by name, and that ``pickle`` re-attaches, so the
  object can be passed to ``multiprocessing`` workers (spawn and fork).

Attaching checks the header and raises ``ValueError`` if the bytes do not hold
the primitive expected (not a lockfree region, another kind, another layout
version, a size that does not fit, a non-zero reserved field); nothing is
written in that case.  The header is read once, into a private copy, and
checked there: ``Region.size`` and ``Region.params`` are that copy, so a
process writing into the segment after the check cannot change what this
one believes the geometry is.

Lifetime of named segments (who unlinks):

* ``shared=True`` creates a segment with a random name (prefix ``lf_``, or
  the ``LOCKFREE_SHM_PREFIX`` environment variable) that this object owns:
  its ``close()`` (or its garbage collection, or interpreter exit) unlinks the
  name.  Workers that attached keep working; new attaches fail afterwards, so
  keep the creator open while workers attach.
* ``name="..."`` creates a segment with that name and does not unlink it on
  close: call ``unlink()`` once, from any process, as with
  ``multiprocessing.shared_memory.SharedMemory``.  Like ``SharedMemory``, the
  creating process's resource tracker unlinks it if it is leaked at exit.
* ``attach()`` and unpickling never unlink on close.

After ``close()`` every method, including bound methods saved earlier, raises
``ValueError``; the memory is unmapped and any ``SharedMemory`` buffer export
is released, so ``SharedMemory.close()`` works.  ``close()`` must not race
with calls on the same object from other threads.

Attaching by name (``attach(name)`` or unpickling) to a segment that does not
exist raises ``FileNotFoundError`` (errno ``ENOENT``, the exception class
itself) whose message names the lockfree class and the segment, e.g. ``no
shared-memory segment 'lf_x' for this AtomicInt: its creator closed it ...``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import importlib
import mmap
import operator
import os
import secrets
import sys
import types
import weakref
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any, TypeVar

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

if TYPE_CHECKING:
    if sys.version_info >= (3, 12):
        from collections.abc import Buffer
    else:
        from typing_extensions import Buffer
    from typing import TypeAlias

    #: What ``buffer=`` accepts: any writable C-contiguous buffer, or a
    #: ``SharedMemory`` (whose name then makes the object picklable).
    BufferLike: TypeAlias = "Buffer | shared_memory.SharedMemory"

_P = TypeVar("_P", bound="Primitive")

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

__all__ = ["Region", "Primitive", "HEADER"]


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
    """A char[] cdata over a writable C-contiguous buffer (keeps it exported)."""
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
        """A new zeroed region of ``size`` bytes; header filled, unpublished."""
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


def specialize(template: Callable[..., Any], qualname: str,
               **names: Any) -> Callable[..., Any]:
    """A copy of the module-level function ``template`` whose global names
    are ``names`` (plus the builtins): a namespace private to one object.

    For the hot methods that need a Python frame anyway (an ``acquire`` that
    looks at its arguments, a ``release`` that raises, a
    ``compare_exchange`` that builds a tuple).  Reading the object's cffi
    functions and state pointer as globals of a private namespace is
    cheaper than reading them from closure cells: on CPython 3.11 here a
    SpinLock ``acquire()`` + ``release()`` pair measured 1.57-1.63x two
    bare one-argument cffi calls this way, 1.78-1.80x as closures, in the
    same runs.  The code object is copied too, so the interpreter's inline
    caches (which remember one namespace's layout) are per object: with one
    code object shared by several namespaces the pair measured 2.0x.

    ``template`` may use only ``names`` and builtins; ``qualname`` is the
    method's (``"SpinLock.acquire"``).
    """
    namespace = dict(names, __builtins__=builtins)
    name = qualname.rpartition(".")[2]
    fn = types.FunctionType(template.__code__.replace(co_name=name),
                            namespace, name, template.__defaults__)
    fn.__kwdefaults__ = template.__kwdefaults__
    fn.__qualname__ = qualname
    return fn


class _ClosedHandle:
    """``_h`` of a closed object: every method reads ``self._h`` to call C,
    so after ``close()`` each one raises ``ValueError`` here (bound methods
    saved earlier too) and nothing reaches C with a released pointer.

    It lives only on the closed stand-in class (see :func:`_closed_class`):
    an open object's ``self._h`` is a plain instance attribute, which the
    interpreter's attribute cache serves at full speed (a class-level
    descriptor of the same name would slow every access by 25-50 ns)."""

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        raise ValueError(f"operation on a closed {type(obj).__name__}")


_CLOSED_CLASSES: dict[type[Primitive], type[Primitive]] = {}


def _closed_class(cls: type[Primitive]) -> type[Primitive]:
    """The class a closed ``cls`` object becomes: ``cls`` itself plus the
    raising ``_h`` (same name, so messages and reprs read the same)."""
    closed = _CLOSED_CLASSES.get(cls)
    if closed is None:
        closed = _CLOSED_CLASSES.setdefault(cls, _make_closed_class(cls))
    return closed


def _make_closed_class(cls: type[Primitive]) -> type[Primitive]:
    return type(cls.__name__, (cls,), {
        "_h": _ClosedHandle(), "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": f"A closed {cls.__name__}: every operation raises "
                   "ValueError."})


def _keep_alive(region: Region, pointer: Any) -> None:
    """ffi.gc destructor of a bound state pointer: holding it holds region."""


def _unpickle(cls: type[_P], name: str, offset: int) -> _P:
    try:
        return cls.attach(name, offset=offset)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot unpickle {_a(cls.__name__)}: no shared-memory segment "
            f"{name!r} for this {cls.__name__}: its creator closed it (a "
            "shared=True owner unlinks the name on close; keep it open until "
            "every process has attached) or it was unlinked") from None


class Primitive:
    """Base of every lockfree object: a Region plus bound C entry points.

    Subclasses set ``_KIND`` (``lib.LF_KIND_*``) and ``_CTYPE`` (the C
    pointer type of their state), implement ``_state_size(params)`` and
    ``_bind_calls()``, and create themselves through ``_create``.

    Hot methods are bound per instance as methods of the cffi function on
    the state pointer (``self._bind``): calling one goes straight into cffi,
    with no Python frame.  Those that need a frame are per-object copies of
    a template (``specialize``).  ``close()`` removes them all, so the
    class's methods, which raise ``ValueError``, answer; a method saved
    before ``close()`` keeps the memory mapped until it is collected.
    """

    _KIND: int
    _CTYPE: str
    _region: Region | None = None
    # What every method passes to C: the state pointer or a per-process C
    # handle (cffi cdata); raises ValueError once closed.
    _h: Any
    _state: Any
    # How many header parameters the kind uses; attach refuses a header
    # whose others are not zero.  None: not checked.
    _NPARAMS: int | None = None

    # -- to implement -------------------------------------------------------

    @classmethod
    def _state_size(cls, params: tuple[int, ...]) -> int:
        raise NotImplementedError

    def _bind_calls(self) -> None:
        raise NotImplementedError

    @classmethod
    def _attach_mismatch(cls, region: Region) -> str | None:
        """Optional: a message if ``region`` (header checked, same kind)
        holds a variant this class cannot attach to, e.g. another form of
        the primitive sharing its kind; ``attach()`` raises it as
        ``ValueError``.  Default: ``None`` (any region of ``_KIND``)."""
        return None

    # -- construction -------------------------------------------------------

    @classmethod
    def region_size(cls, *params: int) -> int:
        """Bytes a region of this primitive needs in a caller's buffer."""
        return HEADER + cls._state_size(params)

    def _create(self, params: tuple[int, ...], init: Callable[[Any], object],
                *, buffer: Any, offset: int, name: str | None,
                shared: bool) -> None:
        size = HEADER + self._state_size(params)
        region = Region.create(self._KIND, size, params, buffer=buffer,
                               offset=offset, name=name, shared=shared)
        try:
            init(ffi.cast(self._CTYPE, region.base + HEADER))
            region.publish()
        except BaseException:
            region.discard()
            raise
        self._setup(region)

    @classmethod
    def attach(cls: type[_P], name: str | None = None, *,
               buffer: BufferLike | None = None, offset: int = 0) -> _P:
        """Attach to an existing object by segment name or in ``buffer``.

        Raises ``FileNotFoundError`` (naming this class and the segment) if
        no segment has that name and ``ValueError`` if the memory does not
        hold this kind of object.
        """
        try:
            region = Region.attach(cls._KIND, name=name, buffer=buffer,
                                   offset=offset)
        except FileNotFoundError:
            if buffer is not None:
                raise
            raise FileNotFoundError(
                errno.ENOENT,
                f"no shared-memory segment {name!r} for this {cls.__name__}: "
                "its creator closed it (a shared=True owner unlinks the name "
                "on close), it was unlinked, or it never existed") from None
        n = cls._NPARAMS
        if n is not None and any(region.params[n:]):
            params = region.params
            region.close()
            raise CorruptStateError(cls.__name__, f"header.param[{n}:]",
                                    f"{params}, expected zeros")
        mismatch = cls._attach_mismatch(region)
        if mismatch:
            region.close()
            raise ValueError(mismatch)
        try:
            want = HEADER + cls._state_size(region.params)
        except ValueError as exc:
            region.close()
            raise ValueError(f"corrupt {cls.__name__} header: {exc}") from None
        if region.size != want:
            got = region.size
            region.close()
            raise ValueError(f"{cls.__name__} region size is {got} bytes, "
                             f"expected {want}")
        self = cls.__new__(cls)
        self._setup(region)
        return self

    def _setup(self, region: Region) -> None:
        self._region = region
        # The pointer every bound call receives.  ffi.gc ties the region's
        # lifetime to it: a bound method saved by the caller keeps the memory
        # mapped, so it can never touch unmapped memory, even after close().
        self._state = ffi.gc(ffi.cast(self._CTYPE, region.base + HEADER),
                             functools.partial(_keep_alive, region))
        # The handle every method passes to C: the state pointer, unless
        # _bind_calls() sets a per-process C handle instead.
        self._h = self._state
        self._bound: list[str] = []
        self._bind_calls()

    def _bind(self, attr: str, cfunc: Any, arg: Any = None) -> Any:
        """Bind ``cfunc(state, ...)`` as the instance attribute ``attr``.

        A bound method of a cffi function, not a partial or a Python
        function: calling it goes straight from the interpreter into cffi
        (the method object only prepends the state pointer).  ``arg``, if
        given, is prepended instead of the state pointer (e.g. a per-process
        handle that points at the state); it must keep the region alive the
        way ``self._state`` does.
        """
        fn = types.MethodType(cfunc, self._state if arg is None else arg)
        self.__dict__[attr] = fn
        self._bound.append(attr)
        return fn

    # -- life cycle ---------------------------------------------------------

    def _closed(self, *args: object, **kwargs: object) -> Any:
        raise ValueError(f"operation on a closed {type(self).__name__}")

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._region is None

    @property
    def name(self) -> str | None:
        """Name of the shared-memory segment holding this object, or None."""
        return self._region.name if self._region is not None else None

    def close(self) -> None:
        """Release this object's memory; idempotent.

        Owned segments are unlinked now (see ``lockfree.region``).  The
        memory is unmapped (and a caller buffer's export released) as soon
        as nothing references it: immediately, unless a bound method saved
        from this object is still alive, in which case that method keeps
        working until it is garbage-collected.
        """
        region = self._region
        if region is None:
            return
        for attr in self._bound:  # class methods now raise ValueError
            del self.__dict__[attr]
        self._bound = []
        self._state = self._region = None
        # Methods read self._h: from now on the closed class answers that
        # with ValueError.
        self.__dict__.pop("_h", None)
        if type(self).__dict__.get("_h") is None:
            self.__class__ = _closed_class(type(self))
        region.unlink_owned()
        # Dropping the last reference runs the region's finalizer (unmap,
        # release the buffer export) right here, unless a saved bound method
        # still holds it through its ffi.gc pointer: then it runs when that
        # method is collected, and the method never sees unmapped memory.
        del region

    def unlink(self) -> None:
        """Remove the segment's name now; attached objects keep working."""
        if self._region is None:
            self._closed()
            return
        self._region.unlink()

    def __enter__(self: _P) -> _P:
        if self.closed:
            raise ValueError(f"operation on a closed {type(self).__name__}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        region = self._region
        if region is None:
            raise ValueError(f"cannot pickle a closed {type(self).__name__}")
        if region.name is None:
            raise TypeError(
                f"cannot pickle a {type(self).__name__} in private memory or "
                "an anonymous buffer: create it with shared=True, name=..., "
                "or in a SharedMemory buffer so other processes can attach")
        return _unpickle, (type(self), region.name, region.offset)

    def _placement(self) -> str:
        """For reprs: where the object lives."""
        region = self._region
        if region is None:
            return "closed"
        text = region.kind
        if region.name is not None:
            text += f" name={region.name!r}"
        if region.offset:
            text += f" offset={region.offset}"
        return text
