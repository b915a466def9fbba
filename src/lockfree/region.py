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

import errno
import functools
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._ffi import ffi
from ._placement import ALIGN, HEADER, KIND_NAMES, Region, _a
from .errors import CorruptStateError

if TYPE_CHECKING:
    if sys.version_info >= (3, 12):
        from collections.abc import Buffer
    else:
        from typing_extensions import Buffer
    from multiprocessing.shared_memory import SharedMemory
    from typing import TypeAlias

    #: What ``buffer=`` accepts: any writable C-contiguous buffer, or a
    #: ``SharedMemory`` (whose name then makes the object picklable).
    BufferLike: TypeAlias = "Buffer | SharedMemory"

_P = TypeVar("_P", bound="Primitive")

__all__ = ["Region", "Primitive", "HEADER", "KIND_NAMES", "ALIGN"]


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
    """Base of every lockfree object: a Region plus the handle its methods
    pass to C.

    Subclasses set ``_KIND`` (``lib.LF_KIND_*``) and ``_CTYPE`` (the C
    pointer type of their state), implement ``_state_size(params)`` and
    ``_open_handle()`` (validate the state once and set ``self._h``, when
    the primitive has a per-process C handle), and create themselves
    through ``_create``.

    Every method is an ordinary method of its class that passes
    ``self._h`` to C.  ``close()`` drops the handle and turns the object
    into its closed stand-in class, whose ``_h`` raises ``ValueError``: so
    every method, and a method saved before ``close()``, raises instead of
    reaching C (see ``_ClosedHandle``).
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

    def _open_handle(self) -> None:
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
    def region_size(cls, *params: Any, **kwargs: Any) -> int:
        """Bytes a region of this primitive needs in a caller's buffer.

        Each primitive overrides it with its own parameters (its
        constructor's sizes), so the base takes anything."""
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
        # _open_handle() sets a per-process C handle instead.
        self._h = self._state
        self._open_handle()

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

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
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
