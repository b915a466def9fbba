"""SeqRecord: a seqlock-protected record with a :mod:`struct` format.

See :mod:`lockfree.seqlock` and docs/seqlock.md.
"""

from __future__ import annotations

import struct
from typing import Any

from ._ffi import ffi, lib
from ._seq_core import MAX_FORMAT, MAX_SIZE, RECORD, SeqBase, check_latch
from .errors import CorruptStateError

__all__ = ["SeqRecord"]

# The hot calls, read as module globals: a LOAD_GLOBAL is specialized by
# the interpreter and keeps read()/write() simple functions (a keyword-only
# default would cost a dict lookup per call; see docs/seqlock.md).
_fetch = lib.lf_seq_fetch
_store = lib.lf_seq_store


def _compile(fmt: object) -> struct.Struct:
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


def _values_error(exc: struct.error, fmt: str) -> Exception:
    """struct.error from packing -> TypeError / OverflowError / ValueError."""
    msg = f"values do not fit format {fmt!r}: {exc}"
    text = str(exc)
    if "not a" in text or "must be" in text:
        return TypeError(msg)
    if "range" in text or "requires" in text:
        return OverflowError(msg)
    return ValueError(msg)


def _pack(s: struct.Struct, values: tuple[Any, ...]) -> bytes:
    try:
        return s.pack(*values)
    except struct.error as exc:
        raise _values_error(exc, s.format) from None


class SeqRecord(SeqBase):
    """A seqlock-protected record with a :mod:`struct` format.

    ``fmt`` is a struct format such as ``"qqd"`` (no pointers, ``P``); the
    record starts as ``initial`` (a tuple) or all zero bytes.  Placement
    keywords as for every lockfree primitive (see ``lockfree.region``);
    ``SeqRecord.region_size(fmt, latch=False)`` bytes are needed in a
    caller's buffer.  The format is stored in the region:
    ``SeqRecord.attach(name)`` recovers it, and ``SeqRecord.attach(name,
    fmt)`` checks it (``ValueError`` if it differs).
    """

    _FORM = RECORD
    _struct: struct.Struct

    def __init__(self, fmt: str, initial: tuple[Any, ...] | None = None, *,
                 latch: bool = False, buffer: Any = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        s = _compile(fmt)
        data = None if initial is None else _pack(s, tuple(initial))
        self._new(s.size, latch, fmt.encode("ascii"), data,
                  dict(buffer=buffer, offset=offset, name=name,
                       shared=shared))

    @classmethod
    def region_size(cls, fmt: str,
                    latch: bool = False) -> int:
        """Bytes a SeqRecord of this format needs in a caller's buffer."""
        s = _compile(fmt)
        return super().region_size(s.size, check_latch(latch), len(fmt),
                                   RECORD)

    @classmethod
    def attach(cls, name: str | None = None,
               fmt: str | None = None, *, buffer: Any = None,
               offset: int = 0) -> SeqRecord:
        """Attach by segment name or in ``buffer``; ``fmt``, if given, must
        equal the format the record was created with."""
        if fmt is not None:
            _compile(fmt)
        self = super().attach(name, buffer=buffer, offset=offset)
        assert isinstance(self, SeqRecord)
        if fmt is not None and fmt != self.format:
            got = self.format
            self.close()
            raise ValueError(f"this SeqRecord has format {got!r}, not "
                             f"{fmt!r}")
        return self

    def _check_form(self, h: Any) -> None:
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
        self._unpack = s.unpack_from
        self._pack = s.pack

    @property
    def format(self) -> str:
        """The struct format of the record."""
        self._h  # noqa: B018 - ValueError once closed
        return self._struct.format

    def read(self, timeout: float | None = None) -> tuple[Any, ...]:
        """Return a consistent snapshot of the record as a tuple.

        Never blocks the writer.  Classic mode: waits (spins, yields, then
        sleeps) while a write is in progress, for at most ``timeout``
        seconds if given (then ``TimeoutError``); raises
        :class:`~lockfree.OwnerDiedError` if the writer died mid-write and
        :class:`~lockfree.errors.CorruptStateError` if another process
        scribbled an impossible state.  Latch mode: never waits for a
        write.  The uncontended path is one C call that never waits: the
        timeout is looked at (and checked) only when the read must wait.
        """
        r = _fetch(self._h)
        if r < 0:
            return self._unpack(self._read_slow(r, timeout))
        return self._unpack(self._buf)

    def write(self, *values: Any, timeout: float | None = None) -> None:
        """Replace the record with ``values`` (one per format field).

        Takes the writer lock (waits while another writer holds it, for at
        most ``timeout`` seconds if given, then ``TimeoutError``; raises
        :class:`~lockfree.OwnerDiedError` if that writer died).
        ``ValueError`` / ``TypeError`` / ``OverflowError`` if the values do
        not fit the format; nothing is written then."""
        h = self._h
        try:
            data = self._pack(*values)
        except struct.error as exc:
            raise _values_error(exc, self._struct.format) from None
        if _store(h, data):  # the lock is busy: wait (until the timeout)
            self._write_slow(h, data, timeout)

    def recover(self, *values: Any) -> bool:
        """If the writer holding the lock died, take the lock over, write
        ``values`` (making the record consistent again) and release it.
        Returns False if there was nothing to recover."""
        self._h  # noqa: B018 - ValueError once closed
        return self._recover(_pack(self._struct, values))

    def _describe(self) -> str:
        return f"format={self._struct.format!r}"
