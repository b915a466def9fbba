"""KfifoQueue: the Kfifo message queue (the kernel's record kfifo).

Whole messages, length-prefixed, all or nothing, with the ``queue`` module's
interface: ``put(item, block=True, timeout=None)``, ``get(block=True,
timeout=None)``, ``put_nowait``, ``get_nowait``, ``qsize()`` (messages),
``empty()``, ``full()``, ``queue.Full`` / ``queue.Empty``.  The explicit
names ``put_message``/``get_message``/``put_many``/``get_many`` and the
zero-copy ``message_views`` are the same calls.  Zero-copy ``reserve()`` /
``receive()`` (``_kfifo_zc.py``) and NumPy arrays (``_kfifo_numpy.py``) are
inherited.  See ``docs/kfifo.md``.
"""

from __future__ import annotations

import operator
import queue
import struct
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

from ._ffi import ffi, lib
from ._kfifo_args import (
    CONSUMER,
    EAGAIN,
    EBIG,
    EMSGSIZE,
    EOF,
    FOREVER,
    MAX_BATCH,
    NOWAIT,
    REC_HDR,
    bufptr,
    deadline,
    index,
)
from ._kfifo_numpy import KfifoArrays
from .kfifo_async import KfifoAsync

__all__ = ["KfifoQueue"]

# The hot calls, read as module globals: CPython 3.11 does not specialize a
# call to a function with keyword-only parameters, so binding them as
# keyword-only defaults made every put/get slower (as measured for
# AtomicInt and the locks).
_put: Any = lib.lf_kfifo_rec_put
_put_wait: Any = lib.lf_kfifo_rec_put_wait
_get: Any = lib.lf_kfifo_rec_get
_get_wait: Any = lib.lf_kfifo_rec_get_wait
_unhold: Any = lib.lf_kfifo_unhold
_put_many: Any = lib.lf_kfifo_rec_put_many
_get_many: Any = lib.lf_kfifo_rec_get_many
_get_many_wait: Any = lib.lf_kfifo_rec_get_many_wait
_Struct: Any = struct.Struct
_string: Any = ffi.string


# Item types whose len() is their byte count, and memoryview, whose nbytes
# is: a batch of one of them has its lengths taken in one C-level map()
# (~8 ns an item) instead of a Python call per item (~150 ns: 2.7x the whole
# put_many of 256 64-byte memoryviews, measured).
_LEN_IS_NBYTES = frozenset((bytes, bytearray))
_get_nbytes: Any = operator.attrgetter("nbytes")


def _lengths(seq: list[Any] | tuple[Any, ...]) -> array[int]:
    """Each item's byte count (not len(): a 2-D array or an array('I') has
    fewer items than bytes), as the uint32 array rec_put_many reads."""
    types = set(map(type, seq))
    if types <= _LEN_IS_NBYTES:
        return array("I", map(len, seq))
    if types == {memoryview}:
        return array("I", map(_get_nbytes, seq))
    return array("I", [len(x) if type(x) is bytes else _nbytes(x)
                       for x in seq])


def _nbytes(x: object) -> int:
    """Bytes of a bytes-like item (what ``b"".join`` takes from it)."""
    try:
        return memoryview(x).nbytes  # type: ignore[arg-type]
    except TypeError:
        raise TypeError("put_many() needs bytes-like objects, not "
                        f"{type(x).__name__}") from None


class KfifoQueue(KfifoAsync, KfifoArrays):
    """A single-producer single-consumer message queue in a Kfifo ring.

    ``KfifoQueue(capacity)`` (or ``Kfifo(capacity, "records")``).  The first
    object that puts becomes the producer, the first that gets the consumer;
    a second live one gets ``RoleError``.  ``len()`` is the bytes queued
    (length prefixes included); ``qsize()`` the messages.
    """

    _MODE = "records"

    def __new__(cls, *args: Any, **kwargs: Any) -> KfifoQueue:
        # A KfifoQueue is always a KfifoQueue (Kfifo's __new__ picks a class by
        # mode only for Kfifo itself): said here so that type checkers
        # read KfifoQueue(...) as KfifoQueue, then check __init__'s parameters.
        return object.__new__(cls)

    def __init__(self, capacity: int, mode: str | None = None, *,
                 buffer: Any = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        """A new ring of ``capacity`` bytes (rounded up to a power of two);
        ``mode``, if given, must be 'records'; placement keywords as for every
        lockfree primitive."""
        self._init(capacity, mode, buffer, offset, name, shared)

    @property
    def max_message(self) -> int:
        """Largest message the ring can hold (capacity - 4).  Records never
        wrap, so a message waits for that many contiguous free bytes: one
        longer than half the capacity may wait for the ring to drain."""
        self._h  # noqa: B018 - closed: ValueError
        return int(self._size) - REC_HDR

    def qsize(self) -> int:
        """Messages queued (a snapshot, like ``queue.Queue.qsize``; walks
        the length prefixes: O(messages))."""
        return self._check(int(lib.lf_kfifo_rec_count(self._h)))

    def empty(self) -> bool:
        """True if no message is queued (a snapshot, like
        ``queue.Queue.empty``; exact for the consumer: a get would find
        none).  Padding the producer published alone, before a record that
        did not fit yet, is no message."""
        return not self._check(int(lib.lf_kfifo_rec_any(self._h)))

    @property
    def eof(self) -> bool:
        """True once the producer closed and every message was consumed."""
        return bool(lib.lf_kfifo_is_closed(self._h)) and self.empty()

    # -- producer ------------------------------------------------------------

    def put_message(self, data: Any, block: bool = True,
                    timeout: float | None = None) -> None:
        """Append one message (any bytes-like object; all or nothing).
        Full: ``queue.Full`` if not ``block`` or at the timeout; too large
        for the ring: ``ValueError``; consumer died while waiting:
        ``ConsumerDied``."""
        h = self._h
        if timeout is not None:
            return self._put_until(data, block, deadline(block, timeout))
        put = _put_wait if block else _put
        try:
            if type(data) is bytes:  # cffi passes bytes' own memory
                r = put(h, data, len(data))
            else:  # (cffi would take a list of 1-byte items: refuse it)
                data, n = bufptr(data)
                r = put(h, data, n)
        except OverflowError:  # 4 GiB or more
            r = EMSGSIZE
        if r:
            self._put_slow(r, data, block, FOREVER if block else NOWAIT)

    put = put_message

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        self._put_until(item, False, NOWAIT)

    def _put_until(self, data: Any, block: bool, dl: int) -> None:
        h = self._h
        try:
            if type(data) is bytes:
                r = _put(h, data, len(data))
            else:
                data, n = bufptr(data)
                r = _put(h, data, n)
        except OverflowError:
            r = EMSGSIZE
        if r:
            self._put_slow(r, data, block, dl)

    def _put_slow(self, r: int, data: Any, block: bool, dl: int) -> None:
        h = self._h
        if not isinstance(data, (bytes, ffi.CData)):
            data = bufptr(data)[0]
        n = len(data)
        while r == EAGAIN:
            self._wait_room(n + REC_HDR, block, dl, 0)
            r = lib.lf_kfifo_rec_put(h, data, n)
        self._check(r)

    def put_many(self, items: Iterable[Any], block: bool = True,
                 timeout: float | None = None) -> int:
        """Append messages in one C call; return how many.  Not blocking:
        as many as fit.  Blocking: all of them, or ``queue.Full`` at the
        timeout (its ``written`` attribute: how many went in)."""
        h = self._h
        dl = deadline(block, timeout)
        seq = items if isinstance(items, (list, tuple)) else list(items)
        try:
            buf = b"".join(seq)
        except TypeError:
            raise TypeError("put_many() needs a list of bytes-like objects "
                            "(C-contiguous buffers)") from None
        try:
            lens = _lengths(seq)
        except OverflowError:
            raise ValueError("message larger than 4 GiB") from None
        n = len(lens)
        k = int(_put_many(h, buf, len(buf),
                          ffi.from_buffer("uint32_t[]", lens), n))
        if k == n:
            return k
        return self._put_many_slow(k, buf, lens, block, dl)

    def _put_many_slow(self, k: int, buf: bytes, lens: array[int],
                       block: bool, dl: int) -> int:
        h = self._h
        arr = ffi.from_buffer("uint32_t[]", lens)
        n = len(lens)
        p = ffi.from_buffer(buf)
        done = off = 0
        while True:
            self._check(k)
            off += sum(lens[done:done + k])
            done += k
            if done == n or not block:
                return done
            self._wait_room(lens[done] + REC_HDR, block, dl, done)
            k = int(lib.lf_kfifo_rec_put_many(h, p + off, len(buf) - off,
                                              arr + done, n - done))

    # -- consumer ------------------------------------------------------------
    # One thread at a time per consumer object, checked by the C in-use
    # word alone: the calls that leave their result in the handle (the
    # message in the scratch buffer, a batch's format, the parts) return
    # with the word still claimed, and the method stores 0 into
    # self._release once it has copied the result (claim_release in
    # _kfifo_core).  Another thread's call in between: ConcurrentUseError.
    # Any exception on the way gives the claim back (_unhold: only if this
    # thread holds it).

    def get_message(self, block: bool = True,
                    timeout: float | None = None) -> bytes:
        """Remove and return the next message.  Empty: ``queue.Empty`` if
        not ``block`` or at the timeout; producer closed and ring drained:
        ``EOFError``; producer died: ``ProducerDied``."""
        h = self._h
        if timeout is not None:
            return self._get_until(block, deadline(block, timeout))
        try:
            n = _get_wait(h) if block else _get(h)
            if n >= 0:
                data = self._out[:n]
                self._release[0] = 0
                return data  # type: ignore[no-any-return]
            return self._get_slow(n, block, FOREVER if block else NOWAIT)
        except BaseException:
            _unhold(h, CONSUMER)
            raise

    get = get_message

    def get_nowait(self) -> bytes:
        """``get(block=False)``."""
        return self._get_until(False, NOWAIT)

    def _get_until(self, block: bool, dl: int) -> bytes:
        h = self._h
        try:
            n = _get(h)
            if n >= 0:
                data = self._out[:n]
                self._release[0] = 0
                return data  # type: ignore[no-any-return]
            return self._get_slow(n, block, dl)
        except BaseException:
            _unhold(h, CONSUMER)
            raise

    def _get_slow(self, n: int, block: bool, dl: int) -> bytes:
        # (callers give the claim back on an exception)
        while True:
            if n == EBIG:
                return self._get_big()
            if self._wait_data(n, block, dl) == EOF:
                self._check(EOF)
            n = int(lib.lf_kfifo_rec_get(self._h))
            if n >= 0:
                data: bytes = self._out[:n]
                self._release[0] = 0
                return data

    def _get_big(self) -> bytes:
        # Longer than the scratch buffer: one copy straight out of the ring
        # (rec_parts keeps the claim; rec_skip runs inside it).
        h = self._h
        self._check(lib.lf_kfifo_rec_parts(h))
        data: bytes = ffi.unpack(h.part[0], h.part_len[0])
        if h.part_len[1]:
            data += ffi.unpack(h.part[1], h.part_len[1])
        self._check(lib.lf_kfifo_rec_skip(h))
        self._release[0] = 0
        return data

    def get_message_into(self, buffer: Any, block: bool = True,
                         timeout: float | None = None) -> int:
        """Copy the next message into ``buffer`` (writable, C-contiguous)
        and return its length; ``ValueError`` (message kept) if it does not
        fit."""
        h = self._h
        p, size = bufptr(buffer, writable=True)
        size = min(size, 0xFFFFFFFF)
        dl = deadline(block, timeout)
        while True:   # (rec_get_into copies inside its own claim)
            n = int(lib.lf_kfifo_rec_get_into(h, p, size))
            if n >= 0:
                return n
            if n == EMSGSIZE:
                raise ValueError(f"next message has {h.msg_len} bytes, "
                                 f"the buffer {len(p)}; the message "
                                 "stays")
            if self._wait_data(n, block, dl) == EOF:
                self._check(EOF)

    def get_many(self, max_items: int = MAX_BATCH, block: bool = True,
                 timeout: float | None = None) -> list[bytes]:
        """Remove up to ``max_items`` messages in one C call (at least one;
        waiting as ``get_message`` does)."""
        h = self._h
        m = index(max_items, "max_items")
        if m < 1:
            raise ValueError(f"max_items must be >= 1, got {m}")
        m = min(m, MAX_BATCH)
        dl = deadline(block, timeout)
        try:
            n = int(_get_many_wait(h, m) if dl == FOREVER else _get_many(h, m))
            while n < 0:
                if n == EBIG:
                    return [self._get_big()]
                if self._wait_data(n, block, dl) == EOF:
                    self._check(EOF)
                n = int(lib.lf_kfifo_rec_get_many(h, m))
            # One C loop splits the copied messages: the struct format the
            # C call wrote, e.g. b"64s64s12s" (a fresh Struct: no cache).
            out = list(_Struct(_string(self._fmt)).unpack(self._out[:n]))
            self._release[0] = 0
            return out
        except BaseException:
            _unhold(h, CONSUMER)
            raise

    def peek_len(self) -> int | None:
        """Length of the next message, ``None`` if there is none."""
        n = int(lib.lf_kfifo_rec_peek_len(self._h))
        if n in (EAGAIN, EOF):
            return None
        return self._check(n)

    def skip_message(self) -> int:
        """Drop the next message; return its length (``queue.Empty`` if
        there is none)."""
        n = int(lib.lf_kfifo_rec_skip(self._h))
        if n == EAGAIN:
            raise queue.Empty
        return self._check(n)

    def message_views(self) -> tuple[memoryview, ...]:
        """Zero-copy: the next message as read-only ``memoryview`` objects
        into the ring, without consuming it: ``()`` if there is none, one
        view, or two if the message wraps around the end of the data area
        (head, then tail).  Consume it with ``skip_message()``; do not use
        the views after that."""
        h = self._h
        n = int(lib.lf_kfifo_rec_parts(h))  # keeps the claim if n >= 0
        if n in (EAGAIN, EOF):
            return ()
        self._check(n)
        try:
            views = []
            for i in range(2 if h.part_len[1] else 1):  # head[, tail]
                # The view's pointer holds the handle (hence the region)
                # alive.
                ptr = ffi.gc(ffi.cast("char *", h.part[i]),
                             lambda _, k=h: None)
                views.append(memoryview(ffi.buffer(ptr, h.part_len[i]))
                             .toreadonly())
        finally:
            self._release[0] = 0
        return tuple(views)

    def __iter__(self) -> Iterator[bytes]:
        """Yield messages, blocking, until the producer closes and the ring
        is drained."""
        get = self.get_message
        while True:
            try:
                yield get()
            except EOFError:
                return
