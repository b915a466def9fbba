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
"""

from __future__ import annotations

import builtins
import functools
import mmap
import operator
import os
import secrets
import types
import weakref
from multiprocessing import shared_memory

from ._ffi import ffi, lib
from .errors import CorruptStateError

try:  # the module multiprocessing.shared_memory itself uses
    import _posixshmem
except ImportError:  # pragma: no cover - non-POSIX
    _posixshmem = None

HEADER = lib.LF_REGION_HEADER
ALIGN = 8
_PRIVATE_ALIGN = 64  # private regions start on a cache line

KIND_NAMES = {
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


def _a(noun) -> str:
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


def _check_offset(offset) -> int:
    try:
        offset = operator.index(offset)
    except TypeError:
        raise TypeError(
            f"offset must be an int, not {type(offset).__name__}") from None
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return offset


def _buffer_pointer(buf):
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


def _open_segment(name: str):
    """Map an existing named segment read-write, without resource tracking.

    ``SharedMemory(name)`` would register the segment with this process's
    resource tracker (before Python 3.13), which then unlinks it or warns when
    an attaching worker exits; an attacher must never do that.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
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


def _release(keep, owned_buffer, mapping, unlink, pid):
    """Finalizer: drop the export, unmap, unlink if we own the name.

    Must not reference the Region (it runs when the Region is collected).
    """
    if owned_buffer:
        ffi.release(keep)  # a from_buffer export; private memory is GC'd
    if mapping is not None:
        mapping.close()
    if unlink is not None and os.getpid() == pid:
        try:
            unlink.unlink()
        except FileNotFoundError:
            pass


class Region:
    """The memory of one primitive: header + state.  Internal; see module doc.

    Attributes: ``base`` (``char *`` cdata at the header), ``size`` (total
    bytes), ``name`` (segment name if other processes can attach by name,
    else ``None``), ``offset`` (of the header within the buffer or segment),
    ``params`` (the header's kind-specific parameters).
    """

    def __init__(self, keep, base, avail, *, kind, owned_buffer,
                 mapping=None, name=None, offset=0, unlink=None,
                 created=False):
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
    def _place(cls, *, buffer, offset, name, shared, size, create):
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
            shm = shared_memory.SharedMemory(
                name=_auto_name() if auto else name, create=True, size=size)
            keep = _buffer_pointer(shm.buf)
            return cls(keep, keep, size, owned_buffer=True, mapping=shm,
                       name=shm.name, unlink=shm if auto else None,
                       kind="segment", created=True)
        if create:
            if offset:
                raise ValueError("offset applies to buffer= or attach()")
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
    def _at(cls, keep, length, offset, size, **kw):
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
    def create(cls, kind: int, size: int, params=(), *, buffer=None,
               offset=0, name=None, shared=False) -> "Region":
        """A new zeroed region of ``size`` bytes; header filled, unpublished."""
        region = cls._place(buffer=buffer, offset=offset, name=name,
                            shared=shared, size=size, create=True)
        lib.lf_region_init(region.header, kind, size)
        for i, value in enumerate(params):
            region.header.param[i] = value
        ffi.memmove(region._hdr, region.header, HEADER)
        return region

    @classmethod
    def attach(cls, kind: int, *, name=None, buffer=None,
               offset=0) -> "Region":
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

    def _describe(self, err, kind) -> str:
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
        return self._hdr.size

    @property
    def params(self) -> tuple:
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
            try:
                owner.unlink()
            except FileNotFoundError:
                pass

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
        try:
            _posixshmem.shm_unlink("/" + self.name.lstrip("/"))
        except FileNotFoundError:
            pass


def specialize(template, qualname: str, **names):
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

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        raise ValueError(f"operation on a closed {type(obj).__name__}")


@functools.lru_cache(maxsize=None)
def _closed_class(cls):
    """The class a closed ``cls`` object becomes: ``cls`` itself plus the
    raising ``_h`` (same name, so messages and reprs read the same)."""
    return type(cls.__name__, (cls,), {
        "_h": _ClosedHandle(), "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": f"A closed {cls.__name__}: every operation raises "
                   "ValueError."})


def _keep_alive(region, pointer):
    """ffi.gc destructor of a bound state pointer: holding it holds region."""


def _unpickle(cls, name, offset):
    return cls.attach(name, offset=offset)


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
    _region = None
    # How many header parameters the kind uses; attach refuses a header
    # whose others are not zero.  None: not checked.
    _NPARAMS: int | None = None

    # -- to implement -------------------------------------------------------

    @classmethod
    def _state_size(cls, params) -> int:
        raise NotImplementedError

    def _bind_calls(self) -> None:
        raise NotImplementedError

    @classmethod
    def _attach_mismatch(cls, region):
        """Optional: a message if ``region`` (header checked, same kind)
        holds a variant this class cannot attach to, e.g. another form of
        the primitive sharing its kind; ``attach()`` raises it as
        ``ValueError``.  Default: ``None`` (any region of ``_KIND``)."""
        return None

    # -- construction -------------------------------------------------------

    @classmethod
    def region_size(cls, *params) -> int:
        """Bytes a region of this primitive needs in a caller's buffer."""
        return HEADER + cls._state_size(params)

    def _create(self, params, init, *, buffer, offset, name, shared):
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
    def attach(cls, name=None, *, buffer=None, offset=0):
        """Attach to an existing object by segment name or in ``buffer``.

        Raises ``FileNotFoundError`` if no segment has that name and
        ``ValueError`` if the memory does not hold this kind of object.
        """
        region = Region.attach(cls._KIND, name=name, buffer=buffer,
                               offset=offset)
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

    def _setup(self, region):
        self._region = region
        # The pointer every bound call receives.  ffi.gc ties the region's
        # lifetime to it: a bound method saved by the caller keeps the memory
        # mapped, so it can never touch unmapped memory, even after close().
        self._state = ffi.gc(ffi.cast(self._CTYPE, region.base + HEADER),
                             functools.partial(_keep_alive, region))
        # The handle every method passes to C: the state pointer, unless
        # _bind_calls() sets a per-process C handle instead.
        self._h = self._state
        self._bound = []
        self._bind_calls()

    def _bind(self, attr, cfunc, arg=None):
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

    def _closed(self, *args, **kwargs):
        raise ValueError(f"operation on a closed {type(self).__name__}")

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._region is None

    @property
    def name(self):
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
        self._region.unlink()

    def __enter__(self):
        if self.closed:
            raise ValueError(f"operation on a closed {type(self).__name__}")
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
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
