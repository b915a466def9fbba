"""What SeqRecord and SeqBytes share: region layout, handles, slow paths.

Internal to :mod:`lockfree.seqlock` (see its docstring and
docs/seqlock.md).  Each object works through a private
``struct lf_seq_handle`` whose geometry was checked once, at creation or
attach; ``self._h`` is that handle (the pointer every method passes to C).
``close()`` drops it and turns the object into its closed stand-in class,
whose ``_h`` raises ``ValueError`` (``lockfree.region``), so a method needs
no closed check of its own: each reads ``self._h`` before anything else.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple, NoReturn

from . import _wait
from ._ffi import ffi, lib
from .errors import CorruptStateError, raise_for
from .region import HEADER, Primitive

_EAGAIN: int = lib.LF_EAGAIN
_EBUSY: int = lib.LF_EBUSY
_ECORRUPT: int = lib.LF_ECORRUPT
_LATCH: int = lib.LF_SEQ_LATCH

_HANDLE_BYTES: int = ffi.sizeof("struct lf_seq_handle")
RECORD, BYTES = 1, 2             # header param[3]: which class made it
FORM_NAMES = {RECORD: "SeqRecord", BYTES: "SeqBytes"}
MAX_SIZE: int = lib.LF_SEQ_MAX_SIZE  # bytes per value (seqlock.h)
MAX_FORMAT = 4096                # characters of a struct format

_CORRUPT = {
    "seq": "the counter is odd but no live writer holds the lock (or its "
           "owner word is garbage); the next write repairs the counter",
    "lock": "the writer lock's owner word is garbage",
}


def check_latch(latch: object) -> int:
    """The flags for ``latch`` (a bool, else TypeError)."""
    if not isinstance(latch, bool):
        raise TypeError(f"latch must be a bool, not {type(latch).__name__}")
    return _LATCH if latch else 0


def raise_code(r: int, what: str, field: str = "seq") -> NoReturn:
    """Raise for a negative C result (errors.h) of a read or write."""
    if r == _ECORRUPT:
        raise CorruptStateError(what, field=field, detail=_CORRUPT[field])
    raise_for(r, what)


def deadline(timeout: float | None) -> int:
    """The absolute deadline of ``timeout`` seconds (None: never)."""
    return _wait.FOREVER if timeout is None else _wait.deadline_in(timeout)


def bytes_of(data: object, what: str = "data",
             writable: bool = False) -> Any:
    """data as bytes, or a char cdata over the bytes of its buffer (any
    item format and shape, as ``memoryview(data).cast("B")``); TypeError
    unless it is a C-contiguous (and if asked, writable) buffer."""
    if type(data) is bytes and not writable:
        return data
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not "
                        f"{type(data).__name__}") from None
    if not view.c_contiguous or (writable and view.readonly):
        need = "writable C-contiguous" if writable else "C-contiguous"
        raise TypeError(f"{what} must be a {need} bytes-like object; this "
                        f"{type(data).__name__} is not")
    return ffi.from_buffer(view, require_writable=writable)


def _new_handle(st: Any, nbytes: int, size: int, flags: int, meta_len: int,
                what: str) -> Any:
    """A handle on the state st (nbytes mapped) after checking its geometry
    against the header's (size, flags, meta_len)."""
    h = ffi.new("struct lf_seq_handle *")
    field = ffi.new("const char *[1]")
    if lib.lf_seq_handle_init(h, st, nbytes, size, flags, meta_len, field):
        raise CorruptStateError(what, field=ffi.string(field[0]).decode())
    return h


class Scratch(NamedTuple):
    """One thread's handle: a copy of the checked one, on a cache line of
    its own (the hot calls read most of it), with its scratch buffer."""

    h: Any            # struct lf_seq_handle * (a plain pointer: fastest)
    view: memoryview  # the scratch buffer the fetch calls copy into
    raw: Any          # the memory h points into
    st: Any           # the state pointer: keeps the region mapped


def _scratch(base: Any, st: Any) -> Scratch:
    raw = ffi.new("char[]", _HANDLE_BYTES + 63)
    at = -int(ffi.cast("uintptr_t", raw)) % 64
    buf = ffi.new("char[]", base.size)
    h = ffi.cast("struct lf_seq_handle *", raw + at)
    h[0] = base[0]
    h.buf, h.owner, h.retries = buf, 0, 0
    return Scratch(h, memoryview(ffi.buffer(buf, base.size)), (raw, buf), st)


class SeqBase(Primitive):
    """Base of SeqRecord and SeqBytes (not public)."""

    _KIND = lib.LF_KIND_SEQLOCK
    _CTYPE = "lf_seqlock_t *"
    _FORM: int
    _h: Any
    _main: Scratch
    _buf: memoryview
    _local: threading.local
    _size: int = 0

    # -- region --------------------------------------------------------------

    @classmethod
    def _state_size(cls, params: Any) -> int:
        size, flags, meta_len, form = (tuple(params) + (0, 0, 0, 0))[:4]
        if not 0 < size <= MAX_SIZE:
            raise ValueError(f"value size {size} not in 1..{MAX_SIZE}")
        if flags & ~_LATCH:
            raise ValueError(f"unknown flags {flags:#x}")
        if meta_len > MAX_FORMAT or form not in FORM_NAMES:
            raise ValueError("bad format length or form")
        return int(lib.lf_seq_state_size(size, flags, meta_len))

    @classmethod
    def _attach_mismatch(cls, region: Any) -> str | None:
        form = region.params[3]
        if form != cls._FORM and form in FORM_NAMES:
            return (f"this seqlock is a {FORM_NAMES[form]}, not a "
                    f"{cls.__name__}: attach it with "
                    f"{FORM_NAMES[form]}.attach()")
        return None  # the state is checked by _open_handle (the handle)

    def _new(self, size: int, latch: bool, meta: bytes, initial: Any,
             placement: dict[str, Any]) -> None:
        flags = check_latch(latch)
        params = (size, flags, len(meta), self._FORM)
        nbytes = self._state_size(params)

        def init(state: Any) -> None:
            lib.lf_seq_init(state, size, flags, meta, len(meta))
            if initial is not None:
                h = _new_handle(state, nbytes, size, flags, len(meta),
                                type(self).__name__)
                lib.lf_seq_write(h, initial, size)
        self._create(params, init, **placement)

    def _open(self) -> Any:
        """The handle: the geometry the header gives, read once, checked
        against the state and the memory mapped (CorruptStateError)."""
        region, what = self._region, type(self).__name__
        assert region is not None
        params = region.params  # one read of the (shared) header
        size, flags, meta_len = params[:3]
        try:
            self._state_size(params)
        except ValueError as exc:
            raise CorruptStateError(what, field="header",
                                    detail=str(exc)) from None
        return _new_handle(self._state, region.avail - HEADER, size, flags,
                           meta_len, what)

    def _open_handle(self) -> None:
        """Setup (called by Primitive._setup): check the state into a
        handle, then give this process's first reader thread its scratch
        buffer.  The first thread that reads owns ``_main`` (see
        seqlock.h); other threads get copies of the handle with buffers of
        their own, in ``_local``."""
        try:
            base = self._open()
            self._check_form(base)
        except CorruptStateError:
            self.close()
            raise
        self._size = int(base.size)
        self._local = threading.local()
        self._main = _scratch(base, self._state)
        self._buf = self._main.view
        self._h = self._main.h

    def _check_form(self, h: Any) -> None:
        """Subclasses: check what the handle's metadata says (SeqRecord:
        the format)."""

    # -- slow paths ----------------------------------------------------------

    def _read_slow(self, r: int, timeout: float | None) -> memoryview:
        """After a fetch that did not copy: another thread owns the handle
        (use this thread's own), a write is in progress (wait for it in
        slices: signal handlers run between them, until the deadline), a
        corrupt state, or a writer that died mid-write.  Returns the
        scratch buffer holding the snapshot."""
        end_by = deadline(timeout)
        sc: Scratch = self._main
        end = None
        while r < 0:
            if r == _EBUSY:
                mine: Scratch | None = getattr(self._local, "sc", None)
                if mine is None:
                    mine = self._local.sc = _scratch(sc.h, self._state)
                sc = mine
            elif r != _EAGAIN:
                raise_code(r, type(self).__name__)
            elif end == end_by:
                raise_for(r, type(self).__name__)  # TimeoutError
            end = _wait.slice_end(end_by)
            r = lib.lf_seq_fetch_until(sc.h, end)
        return sc.view

    def _write_slow(self, h: Any, data: Any, timeout: float | None) -> None:
        """Write, waiting for the writer lock in slices until the deadline
        (signal handlers run between them)."""
        size = self._size
        r = _wait.wait(lambda end: lib.lf_seq_write_until(h, data, size, end),
                       deadline(timeout))
        if r:
            raise_code(r, type(self).__name__, "lock")

    def _my_handle(self) -> Any:
        """The calling thread's handle (the shared one or its own)."""
        h = self._h
        mine = getattr(self._local, "sc", None)
        return h if mine is None else mine.h

    def _recover(self, data: Any) -> bool:
        h = self._h
        return bool(lib.lf_seq_recover(h, data, h.size) == 1)

    # -- shared API ----------------------------------------------------------

    @property
    def latch(self) -> bool:
        """True if this seqlock keeps two copies (readers never wait)."""
        return bool(self._h.flags & _LATCH)

    @property
    def size(self) -> int:
        """Bytes of the value."""
        return int(self._h.size)

    @property
    def last_retries(self) -> int:
        """How many torn copies the calling thread's last read of this
        object discarded before it got a consistent one: 0 unless a write
        overlapped it."""
        return max(int(self._my_handle().retries), 0)

    @property
    def sequence(self) -> int:
        """The sequence counter: classic mode, +2 per write (odd while one
        is in progress); latch mode, +1 per write."""
        return int(lib.lf_seq_sequence(self._h))

    @property
    def writer(self) -> tuple[int, int] | None:
        """``(pid, tid)`` of the thread holding the writer lock, or None."""
        o = int(lib.lf_seq_writer(self._h))
        return (o >> 32, o & 0xFFFFFFFF) if o else None

    def close(self) -> None:
        """Release this object's memory; idempotent (see
        ``lockfree.region``).  Every method, including one saved before,
        then raises ``ValueError``."""
        super().close()
        # The scratch handles hold the mapping (their st): drop them.
        for attr in ("_main", "_buf", "_local"):
            self.__dict__.pop(attr, None)

    def _describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} closed>"
        mode = " latch" if self.latch else ""
        return (f"<{type(self).__name__} {self._describe()}{mode} "
                f"{self._placement()}>")
