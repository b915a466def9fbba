"""Seqlocks: consistent snapshots of a value without blocking its writer.

The Linux kernel's ``seqlock_t``: a sequence counter plus a writer lock.
Readers copy the value optimistically and retry if a write overlapped their
copy; they never take a lock, so they never block the writer, and any number
of them (threads or processes) read in parallel.  Writers take the writer
lock (a :class:`~lockfree.SpinLock`, across processes too), so one writes
at a time.

* :class:`SeqRecord` ``(fmt)``: a record described by a :mod:`struct`
  format; ``read()`` returns a tuple snapshot, ``write(*values)`` replaces
  it.
* :class:`SeqBytes` ``(size)``: ``size`` raw bytes; ``read()`` returns
  ``bytes``, ``read_into(buffer)`` fills yours, ``write(bytes_like)``.

``latch=True`` keeps two copies (the kernel's ``raw_write_seqcount_latch``):
readers copy the one the writer is not writing and never wait for a write in
progress.  Values only: formats with pointers (``P``) are refused.

Each read is one C call that copies a consistent snapshot into a scratch
buffer of this object (in this process), then one ``unpack_from``.  Threads
may share an object: the first thread that reads owns that buffer; the
others read through buffers of their own (one more C call and a
thread-local lookup per read).  See docs/seqlock.md.

The shared state is input from other processes: each object reads it
through a private handle whose geometry was checked once, at creation or
attach (``CorruptStateError``, a ``ValueError``, names a bad field).  A
process scribbling over the state later can make reads return wrong bytes
or raise ``CorruptStateError``, never touch memory outside the region.
``read``, ``read_into`` and ``write`` take ``timeout=`` (seconds; then
``TimeoutError``); without one they wait in slices, so Ctrl-C works.
``read`` and ``write`` look at (and check) their timeout only when they
have to wait: their uncontended path is one C call that never waits.
"""

from __future__ import annotations

import operator
import struct
import threading
import types

from . import _wait
from ._ffi import ffi, lib
from .errors import CorruptStateError, OwnerDiedError, raise_for
from .region import HEADER, Primitive

__all__ = ["SeqRecord", "SeqBytes", "OwnerDiedError", "CorruptStateError"]

_EAGAIN = lib.LF_EAGAIN
_EBUSY = lib.LF_EBUSY
_ECORRUPT = lib.LF_ECORRUPT
_FOREVER = _wait.FOREVER
_slice_end = _wait.slice_end

_HANDLE_BYTES = ffi.sizeof("struct lf_seq_handle")
_RECORD, _BYTES = 1, 2           # header param[3]: which class made it
_FORM_NAMES = {_RECORD: "SeqRecord", _BYTES: "SeqBytes"}
MAX_SIZE = 1 << 30               # bytes per value: a sanity bound
MAX_FORMAT = 4096                # characters of a struct format


def _check_latch(latch) -> int:
    if not isinstance(latch, bool):
        raise TypeError(f"latch must be a bool, not {type(latch).__name__}")
    return lib.LF_SEQ_LATCH if latch else 0


def _compile(fmt) -> struct.Struct:
    """A struct.Struct for a seqlock record format, or TypeError/ValueError."""
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a struct format str, not "
                        f"{type(fmt).__name__}")
    if not fmt.isascii() or len(fmt) > MAX_FORMAT:
        raise ValueError(f"fmt must be an ASCII struct format of at most "
                         f"{MAX_FORMAT} characters")
    if "P" in fmt:
        raise ValueError(
            f"format {fmt!r} has a pointer ('P'): a seqlock stores values "
            "only (a reader may use a torn or freed pointer before its "
            "retry check; see docs/seqlock.md)")
    try:
        s = struct.Struct(fmt)
    except struct.error as exc:
        raise ValueError(f"bad struct format {fmt!r}: {exc}") from None
    if not 0 < s.size <= MAX_SIZE:
        raise ValueError(f"format {fmt!r} packs {s.size} bytes; a record "
                         f"needs 1..{MAX_SIZE}")
    return s


def _values_error(exc, fmt):
    """struct.error from packing -> TypeError / OverflowError / ValueError."""
    msg = f"values do not fit format {fmt!r}: {exc}"
    text = str(exc)
    if "not a" in text or "must be" in text:
        return TypeError(msg)
    if "range" in text or "requires" in text:
        return OverflowError(msg)
    return ValueError(msg)


_CORRUPT = {
    "seq": "the counter is odd but no live writer holds the lock (or its "
           "owner word is garbage); the next write repairs the counter",
    "lock": "the writer lock's owner word is garbage",
}


def _raise(r, what, field="seq"):
    """Raise for a negative C result (errors.h) of a read or write."""
    if r == _ECORRUPT:
        raise CorruptStateError(what, field=field, detail=_CORRUPT[field])
    raise_for(r, what)


def _deadline(timeout):
    return _FOREVER if timeout is None else _wait.deadline_in(timeout)


def _new_handle(st, nbytes, size, flags, meta_len, what):
    """A handle on the state st (nbytes mapped) after checking its geometry
    against the header's (size, flags, meta_len)."""
    h = ffi.new("struct lf_seq_handle *")
    field = ffi.new("const char *[1]")
    if lib.lf_seq_handle_init(h, st, nbytes, size, flags, meta_len, field):
        raise CorruptStateError(what, field=ffi.string(field[0]).decode())
    return h


def _write_slow(h, data, size, timeout, what):
    """Write, waiting for the writer lock in slices until the deadline
    (signal handlers run between them)."""
    r = _wait.wait(lambda end: lib.lf_seq_write_until(h, data, size, end),
                   _deadline(timeout))
    if r:
        _raise(r, what, "lock")


def _make_reader(fetch, buf, convert, slow):
    """read(): one C call into the scratch buffer, one conversion of it.
    The C call never waits; the timeout matters (and is checked) only when
    the read has to wait, in slow()."""
    def read(timeout=None):
        r = fetch()
        if r < 0:
            return slow(r, timeout)
        return convert(buf)
    return read


def _bytes_of(data, what="data", writable=False):
    """data as bytes, or a char cdata over the bytes of its buffer (any
    item format and shape, as ``memoryview(data).cast("B")``); TypeError
    unless it is a C-contiguous (and if asked, writable) buffer."""
    if type(data) is bytes and not writable:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not "
                        f"{type(data).__name__}") from None
    if not view.c_contiguous or (writable and view.readonly):
        need = "writable C-contiguous" if writable else "C-contiguous"
        raise TypeError(f"{what} must be a {need} bytes-like object; this "
                        f"{type(data).__name__} is not")
    return ffi.from_buffer(view, require_writable=writable)


class _SeqBase(Primitive):
    """What SeqRecord and SeqBytes share: region layout, handles, calls."""

    _KIND = lib.LF_KIND_SEQLOCK
    _CTYPE = "lf_seqlock_t *"
    _FORM: int
    _handle = _local = _main = None

    # -- region --------------------------------------------------------------

    @classmethod
    def _state_size(cls, params) -> int:
        size, flags, meta_len, form = (tuple(params) + (0, 0, 0, 0))[:4]
        if not 0 < size <= MAX_SIZE:
            raise ValueError(f"value size {size} not in 1..{MAX_SIZE}")
        if flags & ~lib.LF_SEQ_LATCH:
            raise ValueError(f"unknown flags {flags:#x}")
        if meta_len > MAX_FORMAT or form not in _FORM_NAMES:
            raise ValueError("bad format length or form")
        return lib.lf_seq_state_size(size, flags, meta_len)

    @classmethod
    def _attach_mismatch(cls, region):
        form = region.params[3]
        if form != cls._FORM and form in _FORM_NAMES:
            return (f"this seqlock is a {_FORM_NAMES[form]}, not a "
                    f"{cls.__name__}: attach it with "
                    f"{_FORM_NAMES[form]}.attach()")
        return None  # the state is checked by _bind_calls (the handle)

    def _new(self, size, latch, meta, initial, placement):
        flags = _check_latch(latch)
        params = (size, flags, len(meta), self._FORM)
        nbytes = self._state_size(params)

        def init(state):
            lib.lf_seq_init(state, size, flags, meta, len(meta))
            if initial is not None:
                h = _new_handle(state, nbytes, size, flags, len(meta),
                                type(self).__name__)
                lib.lf_seq_write(h, initial, size)
        self._create(params, init, **placement)

    def _install(self, attr, fn):
        fn.__doc__ = getattr(type(self), attr).__doc__
        self.__dict__[attr] = fn
        self._bound.append(attr)

    def _open(self):
        """The handle: the geometry the header gives, read once, checked
        against the state and the memory mapped (CorruptStateError)."""
        region, what = self._region, type(self).__name__
        params = region.params  # one read of the (shared) header
        size, flags, meta_len = params[:3]
        try:
            self._state_size(params)
        except ValueError as exc:
            raise CorruptStateError(what, field="header",
                                    detail=str(exc)) from None
        return _new_handle(self._state, region.avail - HEADER, size, flags,
                           meta_len, what)

    def _bind_calls(self) -> None:
        try:
            h = self._open()
            convert = self._converter(h)
        except CorruptStateError:
            self.close()
            raise
        st, size = self._state, h.size
        self._size = size
        what = type(self).__name__
        # This process's scratch buffer in the handle the one-argument C
        # calls use; the first thread that reads owns it (see seqlock.h),
        # other threads get copies of the handle with buffers of their own
        # in self._local.  Each handle holds st, which keeps the region
        # mapped for as long as anything using the handle is alive.
        self._local = local = threading.local()

        def handle(base=h):
            # On a cache line of its own (the hot calls read most of it).
            raw = ffi.new("char[]", _HANDLE_BYTES + 63)
            at = -int(ffi.cast("uintptr_t", raw)) % 64
            scratch = ffi.new("char[]", size)
            # A plain pointer (cffi passes it fastest); whatever holds the
            # tuple holds its memory, its scratch buffer and st (the
            # mapping): the closures do, so a bound method saved before
            # close() keeps working (see Primitive).
            mine = ffi.cast("struct lf_seq_handle *", raw + at)
            mine[0] = base[0]
            mine.buf, mine.owner, mine.retries = scratch, 0, 0
            return mine, memoryview(ffi.buffer(scratch, size)), raw, st

        self._main = main = handle()
        self._handle, buf = main[0], main[1]
        fetch = types.MethodType(lib.lf_seq_fetch, self._handle)
        fetch_until = lib.lf_seq_fetch_until

        def slow(r, timeout):
            # Another thread owns the handle, a write is in progress (wait
            # for it in slices: signal handlers run between them, until
            # the deadline), a corrupt state, or a writer that died
            # mid-write.
            deadline = _deadline(timeout)
            hb, end = main, None
            while r < 0:
                if r == _EBUSY:
                    hb = getattr(local, "h", None)
                    if hb is None:
                        hb = local.h = handle()
                elif r != _EAGAIN:
                    _raise(r, what)
                elif end == deadline:
                    raise_for(r, what)  # TimeoutError
                end = _slice_end(deadline)
                r = fetch_until(hb[0], end)
            return convert(hb[1])

        self._install("read", _make_reader(fetch, buf, convert, slow))
        self._install("write", self._make_writer(
            types.MethodType(lib.lf_seq_store, self._handle), main, size,
            what))

    # -- shared API ----------------------------------------------------------

    def read(self, timeout=None):
        """Return a consistent snapshot (see the subclass)."""
        self._closed()

    def write(self, *args, timeout=None) -> None:
        """Replace the value (see the subclass)."""
        self._closed()

    def _live(self):
        if self._state is None:
            self._closed()
        return self._handle

    def close(self) -> None:
        """Release this object's memory; idempotent (see Primitive)."""
        super().close()
        # The handles hold the mapping: only saved bound methods may now.
        self._handle = self._local = self._main = None

    @property
    def latch(self) -> bool:
        """True if this seqlock keeps two copies (readers never wait)."""
        return bool(self._live().flags & lib.LF_SEQ_LATCH)

    @property
    def size(self) -> int:
        """Bytes of the value."""
        return self._live().size

    def _my_handle(self):
        """The calling thread's handle (the shared one or its own)."""
        self._live()
        mine = getattr(self._local, "h", None)
        return self._handle if mine is None else mine[0]

    @property
    def last_retries(self) -> int:
        """How many torn copies the calling thread's last read of this
        object discarded before it got a consistent one: 0 unless a write
        overlapped it."""
        self._live()
        return max(self._my_handle().retries, 0)

    @property
    def sequence(self) -> int:
        """The sequence counter: classic mode, +2 per write (odd while one
        is in progress); latch mode, +1 per write."""
        return lib.lf_seq_sequence(self._live())

    @property
    def writer(self):
        """``(pid, tid)`` of the thread holding the writer lock, or None."""
        o = lib.lf_seq_writer(self._live())
        return (o >> 32, o & 0xFFFFFFFF) if o else None

    def _recover(self, data) -> bool:
        h = self._live()
        return lib.lf_seq_recover(h, data, h.size) == 1

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} closed>"
        mode = " latch" if self.latch else ""
        return (f"<{type(self).__name__} {self._describe()}{mode} "
                f"{self._placement()}>")


class SeqRecord(_SeqBase):
    """A seqlock-protected record with a :mod:`struct` format.

    ``SeqRecord(fmt, initial=None, *, latch=False, buffer=None, offset=0,
    name=None, shared=False)``: ``fmt`` is a struct format such as
    ``"qqd"`` (no pointers, ``P``); the record starts as ``initial`` (a
    tuple) or all zero bytes.  Placement keywords as for every lockfree
    primitive (see ``lockfree.region``); ``SeqRecord.region_size(fmt,
    latch=False)`` bytes are needed in a caller's buffer.  The format is
    stored in the region: ``SeqRecord.attach(name)`` recovers it, and
    ``SeqRecord.attach(name, fmt)`` checks it (``ValueError`` if it
    differs).

    ``read()`` -> tuple, ``write(*values)``, ``last_retries``.
    """

    _FORM = _RECORD

    def __init__(self, fmt: str, initial=None, *, latch: bool = False,
                 buffer=None, offset: int = 0, name: str | None = None,
                 shared: bool = False):
        s = _compile(fmt)
        data = None if initial is None else self._pack(s, tuple(initial))
        self._new(s.size, latch, fmt.encode("ascii"), data,
                  dict(buffer=buffer, offset=offset, name=name,
                       shared=shared))

    @classmethod
    def region_size(cls, fmt: str, latch: bool = False) -> int:
        """Bytes a SeqRecord of this format needs in a caller's buffer."""
        s = _compile(fmt)
        return super().region_size(s.size, _check_latch(latch), len(fmt),
                                   _RECORD)

    @classmethod
    def attach(cls, name=None, fmt=None, *, buffer=None, offset=0):
        """Attach by segment name or in ``buffer``; ``fmt``, if given, must
        equal the format the record was created with."""
        if fmt is not None:
            _compile(fmt)
        self = super().attach(name, buffer=buffer, offset=offset)
        if fmt is not None and fmt != self.format:
            got = self.format
            self.close()
            raise ValueError(f"this SeqRecord has format {got!r}, not "
                             f"{fmt!r}")
        return self

    @staticmethod
    def _pack(s, values):
        try:
            return s.pack(*values)
        except struct.error as exc:
            raise _values_error(exc, s.format) from None

    def _converter(self, h):
        # The format, read once from the metadata area the handle bounds.
        meta = ffi.unpack(lib.lf_seq_meta(h), h.meta_len)
        try:
            s = _compile(meta.decode("ascii"))
        except (TypeError, ValueError, UnicodeDecodeError) as exc:
            raise CorruptStateError("SeqRecord", field="format",
                                    detail=str(exc)) from None
        if s.size != h.size:
            raise CorruptStateError(
                "SeqRecord", field="format", detail=f"{s.format!r} packs "
                f"{s.size} bytes, the region holds {h.size}")
        self._struct = s
        return s.unpack_from

    def _make_writer(self, store, main, size, what):
        pack, fmt = self._struct.pack, self._struct.format

        def write(*values, timeout=None):
            try:
                data = pack(*values)
            except struct.error as exc:
                raise _values_error(exc, fmt) from None
            if store(data):  # the lock is busy: wait (until the timeout)
                _write_slow(main[0], data, size, timeout, what)
        return write

    @property
    def format(self) -> str:
        """The struct format of the record."""
        self._live()
        return self._struct.format

    def read(self, timeout=None) -> tuple:
        """Return a consistent snapshot of the record as a tuple.

        Never blocks the writer.  Classic mode: waits (spins, yields, then
        sleeps) while a write is in progress, for at most ``timeout``
        seconds if given (then ``TimeoutError``); raises
        :class:`OwnerDiedError` if the writer died mid-write and
        :class:`CorruptStateError` if another process scribbled an
        impossible state.  Latch mode: never waits for a write.
        """
        self._closed()

    def write(self, *values, timeout=None) -> None:
        """Replace the record with ``values`` (one per format field).

        Takes the writer lock (waits while another writer holds it, for at
        most ``timeout`` seconds if given, then ``TimeoutError``; raises
        :class:`OwnerDiedError` if that writer died).  ``ValueError`` /
        ``TypeError`` / ``OverflowError`` if the values do not fit."""
        self._closed()

    def recover(self, *values) -> bool:
        """If the writer holding the lock died, take the lock over, write
        ``values`` (making the record consistent again) and release it.
        Returns False if there was nothing to recover."""
        data = self._pack(self._struct, values)
        return self._recover(data)

    def _describe(self) -> str:
        return f"format={self._struct.format!r}"


class SeqBytes(_SeqBase):
    """A seqlock-protected block of ``size`` bytes.

    ``SeqBytes(size, initial=None, *, latch=False, buffer=None, offset=0,
    name=None, shared=False)``; ``SeqBytes.region_size(size, latch=False)``.
    ``read()`` -> bytes, ``read_into(buffer)``, ``write(bytes_like)`` (of
    exactly ``size`` bytes), ``last_retries``.
    """

    _FORM = _BYTES

    def __init__(self, size: int, initial=None, *, latch: bool = False,
                 buffer=None, offset: int = 0, name: str | None = None,
                 shared: bool = False):
        size = self._check_size(size)
        data = None if initial is None else self._src(initial, size)
        self._new(size, latch, b"", data,
                  dict(buffer=buffer, offset=offset, name=name,
                       shared=shared))

    @staticmethod
    def _check_size(size) -> int:
        try:
            if isinstance(size, bool):
                raise TypeError
            size = operator.index(size)
        except TypeError:
            raise TypeError(f"size must be an int, not "
                            f"{type(size).__name__}") from None
        if not 0 < size <= MAX_SIZE:
            raise ValueError(f"size must be in 1..{MAX_SIZE}, got {size}")
        return size

    @classmethod
    def region_size(cls, size: int, latch: bool = False) -> int:
        """Bytes a SeqBytes of ``size`` bytes needs in a caller's buffer."""
        return super().region_size(cls._check_size(size),
                                   _check_latch(latch), 0, _BYTES)

    @classmethod
    def attach(cls, name=None, size=None, *, buffer=None, offset=0):
        """Attach by segment name or in ``buffer``; ``size``, if given,
        must equal the size it was created with."""
        if size is not None:
            size = cls._check_size(size)
        self = super().attach(name, buffer=buffer, offset=offset)
        if size is not None and size != self.size:
            got = self.size
            self.close()
            raise ValueError(f"this SeqBytes holds {got} bytes, not {size}")
        return self

    @staticmethod
    def _src(data, size):
        """bytes as is (cffi passes their buffer), else a char cdata over
        the caller's C-contiguous buffer (its bytes, whatever its item
        format: ``memoryview(x).cast("B")``); ValueError unless exactly
        size bytes."""
        data = _bytes_of(data)
        if len(data) != size:
            raise ValueError(f"data must be exactly {size} bytes, got "
                             f"{len(data)}")
        return data

    def _converter(self, h):
        return bytes

    def _make_writer(self, store, main, size, what):
        src = self._src

        def write(data, timeout=None):
            if type(data) is not bytes or len(data) != size:
                data = src(data, size)
            if store(data):  # the lock is busy: wait (until the timeout)
                _write_slow(main[0], data, size, timeout, what)
        return write

    def read(self, timeout=None) -> bytes:
        """Return a consistent snapshot as ``bytes`` (see SeqRecord.read)."""
        self._closed()

    def write(self, data, timeout=None) -> None:
        """Replace the value with ``data``: a C-contiguous bytes-like object
        of exactly ``size`` bytes (see SeqRecord.write)."""
        self._closed()

    def read_into(self, buffer, timeout=None) -> int:
        """Copy a consistent snapshot into the first ``size`` bytes of the
        writable, C-contiguous ``buffer``; return ``size``.  ``TypeError``
        for another kind of object, ``ValueError`` if it is smaller;
        ``timeout`` as for ``read``."""
        h = self._live()
        ptr = _bytes_of(buffer, "buffer", writable=True)
        size = h.size
        if len(ptr) < size:
            raise ValueError(f"buffer has {len(ptr)} bytes; need {size}")
        r = _wait.wait(lambda end: lib.lf_seq_read_until(h, ptr, size, end),
                       _deadline(timeout))
        if r < 0:
            _raise(r, "SeqBytes")
        self._my_handle().retries = r
        return size

    def recover(self, data) -> bool:
        """As SeqRecord.recover, with a bytes-like value of ``size`` bytes."""
        return self._recover(self._src(data, self._live().size))

    def _describe(self) -> str:
        return f"size={self._size}"
