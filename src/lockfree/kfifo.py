"""Kfifo: a single-producer single-consumer ring buffer (the kernel's kfifo).

One producer and one consumer, in two threads or two processes, move bytes
(``mode="bytes"``: a stream, partial puts and gets) or whole messages
(``mode="records"``: length-prefixed, all-or-nothing) through a
power-of-two ring in a lockfree region.  See ``docs/kfifo.md``.

Roles are registered in the shared state on first use: the first object (in
any process) that puts becomes the producer, the first that gets becomes the
consumer; a second live one gets ``RoleError``.  A role whose process died is
taken over by the next object that asks for it.

Blocking calls wait in C with the GIL released, in slices of at most
``SLICE`` seconds (spin briefly, then sleep on a futex), so Ctrl-C works and
a dead peer is noticed; ``timeout`` raises ``queue.Full`` / ``queue.Empty``.
"""

from __future__ import annotations

import functools
import operator
import queue
import struct
import time
import types
from array import array

from .errors import (ConsumerDied, ModeError, PeerDied, ProducerDied,
                     RoleError)
from ._ffi import ffi, lib
from .region import HEADER, Primitive

__all__ = ["Kfifo", "RoleError", "PeerDied", "ProducerDied", "ConsumerDied",
           "ModeError"]

MODES = {"bytes": lib.LF_KFIFO_BYTES, "records": lib.LF_KFIFO_RECORDS}
_MODE_NAMES = {v: k for k, v in MODES.items()}
MAX_CAPACITY = lib.LF_KFIFO_MAX_SIZE      # 2**31: in - out must fit 32 bits
REC_HDR = lib.LF_KFIFO_REC_HDR            # the 4-byte length prefix
SLICE = 0.1                               # longest sleep per C call (s)
SCRATCH = 256 * 1024                      # per-object copy-out buffer
MAX_BATCH = 4096                          # messages per get_many C call

_EAGAIN, _EOF, _EDEAD = lib.LF_KFIFO_EAGAIN, lib.LF_KFIFO_EOF, \
    lib.LF_KFIFO_EDEAD
_EBIG = lib.LF_KFIFO_EBIG
_PRODUCER, _CONSUMER = lib.LF_KFIFO_ROLE_PRODUCER, lib.LF_KFIFO_ROLE_CONSUMER


def _check_capacity(capacity, mode) -> tuple[int, int]:
    """(data bytes rounded up to a power of two, mode number)."""
    try:
        capacity = operator.index(capacity)
    except TypeError:
        raise TypeError("capacity must be an int, not "
                        f"{type(capacity).__name__}") from None
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'bytes' or 'records', not {mode!r}")
    if capacity < 2 or capacity > MAX_CAPACITY:
        raise ValueError(f"capacity must be in 2..2**31 bytes, got {capacity}")
    size = 1 << (capacity - 1).bit_length()
    if mode == "records":
        size = max(size, 2 * REC_HDR)
    return size, MODES[mode]


def _hold(keep, handle):
    """ffi.gc destructor of the handle: give up its roles.  ``keep`` (the
    region, the state pointer and the scratch buffers) stays alive until this
    has run.  At interpreter exit the region's finalizer may already have
    released the memory: then there is nothing to touch (a dead process's
    roles are taken over anyway)."""
    if not keep[0].closed:
        lib.lf_kfifo_release(handle)


def _deadline(timeout):
    if timeout is None:
        return None
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return time.monotonic() + timeout


def _wait(wait, args, deadline, empty_exc):
    """Call ``wait(*args, slice_ns)`` until it reports ready (0), raising
    ``empty_exc`` at the deadline; other codes are returned."""
    while True:
        if deadline is None:
            ns = int(SLICE * 1e9)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise empty_exc
            ns = int(min(SLICE, left) * 1e9)
        r = wait(*args, ns)
        if r != _EAGAIN:
            return r


def _bufptr(data, writable=False):
    """(char pointer, nbytes) over any C-contiguous (writable) buffer."""
    try:
        p = ffi.from_buffer(data, require_writable=writable)
    except TypeError:
        raise TypeError("expected a bytes-like object (bytes, bytearray, "
                        f"memoryview, array...), not {type(data).__name__}"
                        ) from None
    except (BufferError, ValueError) as exc:
        raise TypeError(f"expected a C-contiguous{' writable' * writable} "
                        f"buffer ({exc})") from None
    return p, len(p)


class Kfifo(Primitive):
    """A single-producer single-consumer ring buffer.

    ``Kfifo(capacity, mode="bytes")``: ``capacity`` is rounded up to a power
    of two (at least 8 in records mode), 2 .. 2**31 bytes.  Placement
    keywords as for every lockfree primitive: ``shared=True``, ``name=``,
    ``buffer=``/``offset=`` (see ``lockfree.region``); ``Kfifo.attach(name)``
    attaches, and the object pickles to ``multiprocessing`` workers.

    Byte mode: ``put``, ``get``, ``get_into``, ``peek``, ``skip``,
    ``linear_view``.  Records mode: ``put_message``, ``get_message``,
    ``get_message_into``, ``peek_len``, ``skip_message``, ``put_many``,
    ``get_many``.  Both: ``len()``, ``capacity``, ``free``, ``empty()``,
    ``full()``, ``close_producer()``, ``eof``, ``reset()``, iteration.
    Calls of the other mode raise ``ModeError``.
    """

    _KIND = lib.LF_KIND_KFIFO
    _CTYPE = "struct lf_kfifo *"
    _h = None

    def __init__(self, capacity: int, mode: str = "bytes", *, buffer=None,
                 offset: int = 0, name: str | None = None,
                 shared: bool = False):
        size, m = _check_capacity(capacity, mode)
        self._create((size, m), lambda st: lib.lf_kfifo_init(st, size, m),
                     buffer=buffer, offset=offset, name=name, shared=shared)

    @classmethod
    def region_size(cls, capacity: int, mode: str = "bytes") -> int:
        """Bytes a Kfifo of this capacity needs in a caller's buffer."""
        return HEADER + cls._state_size(_check_capacity(capacity, mode))

    @classmethod
    def _state_size(cls, params) -> int:
        size, mode = params[0], params[1]
        if mode not in _MODE_NAMES:
            raise ValueError(f"unknown kfifo mode {mode}")
        if not 2 <= size <= MAX_CAPACITY or size & (size - 1):
            raise ValueError(f"kfifo size {size} is not a power of two in "
                             "2..2**31")
        if mode == lib.LF_KFIFO_RECORDS and size < 2 * REC_HDR:
            raise ValueError(f"records kfifo size {size} is below 8")
        return lib.lf_kfifo_state_size(size)

    # -- binding -------------------------------------------------------------

    def _bind_calls(self) -> None:
        size, mode = self._region.params[:2]
        h = ffi.new("struct lf_kfifo_handle *")
        if lib.lf_kfifo_handle_init(h, self._state, size, mode) != 0:
            self.close()
            raise ValueError("corrupt Kfifo: its state does not match its "
                             f"header (size {size}, mode {mode})")
        nscratch = min(size, SCRATCH)
        scratch = ffi.new("char[]", nscratch)
        fmt = ffi.new("char[]", MAX_BATCH * lib.LF_KFIFO_FMT_ITEM + 1)
        lib.lf_kfifo_handle_scratch(h, scratch, nscratch, fmt, MAX_BATCH)
        self._h = h = ffi.gc(h, functools.partial(
            _hold, (self._region, self._state, scratch, fmt)))
        self._mode = _MODE_NAMES[mode]
        self._size = size
        self._scratch = scratch
        for attr, fn in (("_len", "len"), ("_avail", "avail"),
                         ("_is_closed", "is_closed"), ("_reset", "reset")):
            self._bind(attr, getattr(lib, "lf_kfifo_" + fn), h)
        if mode == lib.LF_KFIFO_RECORDS:
            _bind_records(self, h, scratch, fmt)
        else:
            _bind_bytes(self, h, scratch, nscratch)

    def _install(self, fn, name=None):
        name = name or fn.__name__
        fn.__doc__ = getattr(type(self), name).__doc__
        self.__dict__[name] = fn
        self._bound.append(name)

    # -- life cycle ------------------------------------------------------------

    def close(self) -> None:
        """Give up this object's roles and release its memory (idempotent).

        Not ``close_producer()``: closing a producer object does not end the
        stream; another producer may take over.
        """
        if self._h is not None:
            lib.lf_kfifo_release(self._h)
            self._h = None
        super().close()

    def close_producer(self) -> None:
        """End the stream: the consumer drains what is left, then sees
        end-of-stream (``EOFError`` / iteration stops / ``eof``).  Later
        puts raise ``ValueError``.  Registers this object as the producer
        if nobody is."""
        self._check(lib.lf_kfifo_close_producer(self._live()))

    def _live(self):
        if self._h is None:
            self._closed()
        return self._h

    # -- state ---------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Size of the data area in bytes (a power of two)."""
        return self._size

    @property
    def mode(self) -> str:
        """``'bytes'`` or ``'records'``."""
        return self._mode

    @property
    def max_message(self) -> int:
        """Largest message a records ring can hold (capacity - 4)."""
        return self._size - REC_HDR

    _len = _avail = _is_closed = _reset = Primitive._closed

    def __len__(self) -> int:
        """Bytes in the ring (length prefixes included in records mode)."""
        return self._check(self._len())

    @property
    def free(self) -> int:
        """Bytes free (a snapshot; exact for the producer)."""
        return self._check(self._avail())

    def empty(self) -> bool:
        """True if nothing is readable (a snapshot; exact for the consumer)."""
        return len(self) == 0

    def full(self) -> bool:
        """True if no byte (records: no empty message) fits right now."""
        return self.free < (REC_HDR if self._mode == "records" else 1)

    @property
    def eof(self) -> bool:
        """True once the producer closed and everything was consumed."""
        return bool(self._is_closed()) and len(self) == 0

    @property
    def closed_for_writing(self) -> bool:
        """True once ``close_producer()`` was called."""
        return bool(self._is_closed())

    @property
    def producer_pid(self) -> int:
        """Process id of the registered producer, 0 if none."""
        return lib.lf_kfifo_owner_pid(self._live(), _PRODUCER)

    @property
    def consumer_pid(self) -> int:
        """Process id of the registered consumer, 0 if none."""
        return lib.lf_kfifo_owner_pid(self._live(), _CONSUMER)

    def reset(self) -> int:
        """Consumer only: discard everything readable (the kernel's
        ``kfifo_reset_out``, safe while the producer runs); returns the
        bytes dropped.  Registers this object as the consumer."""
        return self._check(self._reset())

    def _set_indexes(self, idx: int) -> None:
        """Tests only, both sides idle: an empty ring whose free-running
        32-bit indexes start at ``idx`` (e.g. just below 2**32)."""
        lib.lf_kfifo_debug_set_index(self._live(), idx)

    def _check(self, r):
        """Map a negative C status to its exception; return r otherwise."""
        if r >= 0:
            return r
        h = self._live()
        if r == lib.LF_KFIFO_EBUSY:
            pids = {"producer": lib.lf_kfifo_owner_pid(h, _PRODUCER),
                    "consumer": lib.lf_kfifo_owner_pid(h, _CONSUMER)}
            raise RoleError(
                "this Kfifo already has a live producer and/or consumer "
                f"(registered pids: {pids}); a ring has exactly one of each")
        if r == _EOF:
            raise EOFError("the producer closed the Kfifo and it is drained")
        if r == lib.LF_KFIFO_ECLOSED:
            raise ValueError("put on a Kfifo whose producer side is closed")
        if r == lib.LF_KFIFO_EMSGSIZE:
            raise ValueError(f"message larger than this Kfifo can hold "
                             f"(max_message is {self._size - REC_HDR})")
        if r == lib.LF_KFIFO_ECORRUPT:
            raise RuntimeError("Kfifo shared state is corrupt (impossible "
                               "indexes or record length)")
        raise RuntimeError(f"Kfifo internal error {r}")

    def __iter__(self):
        """Consumer side: yield messages (records) or chunks (bytes),
        blocking, until the producer closes and the ring is drained."""
        get = self.get_message if self._mode == "records" else \
            functools.partial(self.get, SCRATCH, True)
        while True:
            try:
                item = get()
            except EOFError:
                return
            if not item and self._mode == "bytes":
                return
            yield item

    def __repr__(self) -> str:
        if self.closed:
            return f"<Kfifo {self._placement()}>"
        return (f"<Kfifo mode={self._mode} capacity={self._size} "
                f"len={len(self)} {self._placement()}>")

    # -- documented methods: the live ones are bound in _bind_* ---------------

    def _wrong_mode(self, *args, **kwargs):
        self._closed() if self.closed else None
        other = "records" if self._mode == "bytes" else "bytes"
        raise ModeError(f"this Kfifo is in {self._mode!r} mode; the method "
                        f"needs mode={other!r} (fixed at creation)")

    def put(self, data, block: bool = False, timeout=None) -> int:
        """Bytes mode: write as much of ``data`` (any bytes-like object) as
        fits and return the count (0 if full), like ``kfifo_in``.  With
        ``block=True`` write all of it, waiting for room; ``queue.Full`` at
        the timeout (its ``written`` attribute says how much went in)."""
        self._wrong_mode()

    def get(self, n: int, block: bool = False, timeout=None) -> bytes:
        """Bytes mode: read up to ``n`` bytes (``b''`` if empty).  With
        ``block=True`` wait for at least one byte (``queue.Empty`` at the
        timeout); ``b''`` then means end-of-stream."""
        self._wrong_mode()

    def get_into(self, buffer, block: bool = False, timeout=None) -> int:
        """Bytes mode: read into a writable buffer; return the count."""
        self._wrong_mode()

    def peek(self, n: int) -> bytes:
        """Bytes mode: up to ``n`` readable bytes, without consuming them."""
        self._wrong_mode()

    def skip(self, n: int) -> int:
        """Bytes mode: consume up to ``n`` bytes unread; return the count."""
        self._wrong_mode()

    def linear_view(self) -> memoryview:
        """Bytes mode, zero-copy: a read-only view of the readable bytes up
        to the end of the data area (``kfifo_out_linear``).  Consume them
        with ``skip(k)``; do not use the view after that."""
        self._wrong_mode()

    def put_message(self, data, block: bool = True, timeout=None) -> None:
        """Records mode: append one message (all or nothing).  Full:
        ``queue.Full`` if not ``block`` or at the timeout; too large for the
        ring: ``ValueError``; consumer died while waiting: ``ConsumerDied``.
        """
        self._wrong_mode()

    def get_message(self, block: bool = True, timeout=None) -> bytes:
        """Records mode: remove and return the next message.  Empty:
        ``queue.Empty`` if not ``block`` or at the timeout; producer closed
        and ring drained: ``EOFError``; producer died: ``ProducerDied``."""
        self._wrong_mode()

    def get_message_into(self, buffer, block: bool = True,
                         timeout=None) -> int:
        """Records mode: copy the next message into ``buffer`` and return its
        length; ``ValueError`` (message kept) if it does not fit."""
        self._wrong_mode()

    def peek_len(self) -> int | None:
        """Records mode: length of the next message, ``None`` if empty."""
        self._wrong_mode()

    def skip_message(self) -> int:
        """Records mode: drop the next message; return its length."""
        self._wrong_mode()

    def message_views(self) -> tuple:
        """Records mode, zero-copy: the next message as read-only
        ``memoryview`` objects into the ring, without consuming it: ``()``
        if there is none, one view, or two if the message wraps around the
        end of the data area (head, then tail).  Consume it with
        ``skip_message()``; do not use the views after that."""
        self._wrong_mode()

    def put_many(self, items, block: bool = True, timeout=None) -> int:
        """Records mode: append messages in one C call; return how many.
        Not blocking: as many as fit.  Blocking: all of them, or
        ``queue.Full`` at the timeout (``written`` attribute: how many)."""
        self._wrong_mode()

    def get_many(self, max_items: int = MAX_BATCH, block: bool = True,
                 timeout=None) -> list:
        """Records mode: remove up to ``max_items`` messages in one C call
        (at least one; waiting as ``get_message`` does)."""
        self._wrong_mode()


def _full(written):
    exc = queue.Full(f"Kfifo full ({written} written)")
    exc.written = written
    return exc


def _bind_records(self, h, scratch, fmt):
    """Install the records-mode methods as closures over the bound C calls
    (one C call and one Python frame on the fast path)."""
    def bind(cfunc):
        return types.MethodType(cfunc, h)
    rec_put = bind(lib.lf_kfifo_rec_put)
    rec_put_wait = bind(lib.lf_kfifo_rec_put_wait)
    rec_get_wait = bind(lib.lf_kfifo_rec_get_wait)
    rec_get_many_wait = bind(lib.lf_kfifo_rec_get_many_wait)
    rec_put_many = bind(lib.lf_kfifo_rec_put_many)
    rec_get = bind(lib.lf_kfifo_rec_get)
    rec_get_into = bind(lib.lf_kfifo_rec_get_into)
    rec_get_many = bind(lib.lf_kfifo_rec_get_many)
    rec_parts = bind(lib.lf_kfifo_rec_parts)
    rec_skip = bind(lib.lf_kfifo_rec_skip)
    rec_peek_len = bind(lib.lf_kfifo_rec_peek_len)
    wait_readable = bind(lib.lf_kfifo_wait_readable)
    wait_writable = bind(lib.lf_kfifo_wait_writable)
    unpack, string, join = ffi.unpack, ffi.string, b"".join
    from_buffer, Struct = ffi.from_buffer, struct.Struct
    # Slicing a buffer object made once is the cheapest way from the
    # scratch buffer to a bytes object (~2x faster than ffi.unpack).
    out = ffi.buffer(scratch)
    check = self._check

    def wait_room(need, block, deadline, written):
        if not block:
            raise _full(written)
        r = _wait(wait_writable, (need,), deadline, _full(written))
        if r == _EDEAD:
            raise ConsumerDied("the Kfifo is full and its consumer's "
                               "process died")
        check(r)

    def wait_data(r, block, deadline):
        """After get returned r < 0: wait, or raise what r means."""
        if r == _EAGAIN and block:
            r = _wait(wait_readable, (), deadline, queue.Empty())
            if r == 0:
                return
        if r == _EAGAIN:
            raise queue.Empty
        if r == _EDEAD:
            raise ProducerDied("the Kfifo is drained and its producer's "
                               "process died without close_producer()")
        check(r)

    # Fast paths: one C call.  block=True without a timeout calls the
    # *_wait C functions, which wait (up to one slice) inside the same call
    # when the ring is full/empty; other cases and errors go to *_slow.

    def put_message(data, block=True, timeout=None):
        put = rec_put_wait if block and timeout is None else rec_put
        try:
            if type(data) is bytes:  # cffi passes bytes' own memory
                r = put(data, len(data))
            else:  # (cffi would take a list of 1-byte items: refuse it)
                data, n = _bufptr(data)
                r = put(data, n)
        except OverflowError:  # 4 GiB or more
            r = lib.LF_KFIFO_EMSGSIZE
        if r:
            put_slow(r, data, block, timeout)

    def put_slow(r, data, block, timeout):
        if not isinstance(data, (bytes, ffi.CData)):
            data = _bufptr(data)[0]
        n = len(data)
        deadline = _deadline(timeout) if block else None
        while r == _EAGAIN:
            wait_room(n + REC_HDR, block, deadline, 0)
            r = rec_put(data, n)
        check(r)

    def get_message(block=True, timeout=None):
        n = rec_get_wait() if block and timeout is None else rec_get()
        if n >= 0:
            return out[:n]
        return get_slow(n, block, timeout)

    def get_slow(n, block, timeout):
        deadline = _deadline(timeout) if block else None
        while True:
            if n == _EBIG:
                return get_big()
            wait_data(n, block, deadline)
            n = rec_get()
            if n >= 0:
                return out[:n]

    def get_big():
        # Longer than the scratch buffer: one copy straight out of the ring.
        check(rec_parts())
        data = unpack(h.part[0], h.part_len[0])
        if h.part_len[1]:
            data += unpack(h.part[1], h.part_len[1])
        check(rec_skip())
        return data

    def get_message_into(buffer, block=True, timeout=None):
        p, size = _bufptr(buffer, writable=True)
        size = min(size, 0xFFFFFFFF)
        deadline = _deadline(timeout) if block else None
        while True:
            n = rec_get_into(p, size)
            if n >= 0:
                return n
            if n == lib.LF_KFIFO_EMSGSIZE:
                raise ValueError(f"next message has {h.msg_len} bytes, the "
                                 f"buffer {len(p)}; the message stays")
            wait_data(n, block, deadline)

    def peek_len():
        n = rec_peek_len()
        if n == _EAGAIN or n == _EOF:
            return None
        return check(n)

    def skip_message():
        n = rec_skip()
        if n == _EAGAIN:
            raise queue.Empty
        return check(n)

    def put_many(items, block=True, timeout=None):
        buf = join(items)
        try:
            lens = array("I", map(len, items))
        except OverflowError:
            raise ValueError("message larger than 4 GiB") from None
        count = len(lens)
        k = rec_put_many(buf, len(buf), from_buffer("uint32_t[]", lens),
                         count)
        if k == count:
            return k
        return put_many_slow(k, items, buf, lens, block, timeout)

    def put_many_slow(k, items, buf, lens, block, timeout):
        if k == lib.LF_KFIFO_EINVAL:
            # len() is not the byte size (an array of wider items, or an
            # iterator that join() consumed): recount.
            if not isinstance(items, (list, tuple)):
                raise TypeError("put_many() needs a list or tuple of "
                                "bytes-like objects")
            lens = array("I", [memoryview(x).nbytes for x in items])
        arr = from_buffer("uint32_t[]", lens)
        count = len(lens)
        p = from_buffer(buf)
        if k == lib.LF_KFIFO_EINVAL:
            k = rec_put_many(p, len(buf), arr, count)
        deadline = _deadline(timeout) if block else None
        done = off = 0
        while True:
            check(k)
            off += sum(lens[done:done + k])
            done += k
            if done == count:
                return done
            try:
                wait_room(lens[done] + REC_HDR, block, deadline, done)
            except queue.Full:
                if not block:
                    return done
                raise
            k = rec_put_many(p + off, len(buf) - off, arr + done,
                             count - done)

    def get_many(max_items=MAX_BATCH, block=True, timeout=None):
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        n = rec_get_many_wait(max_items) if block and timeout is None \
            else rec_get_many(max_items)
        if n < 0:
            deadline = _deadline(timeout) if block else None
            while n < 0:
                if n == _EBIG:
                    return [get_big()]
                wait_data(n, block, deadline)
                n = rec_get_many(max_items)
        # One C loop splits the copied messages: the struct format the C
        # call wrote, e.g. b"64s64s12s" (a fresh Struct: no format cache).
        return list(Struct(string(fmt)).unpack(out[:n]))

    def message_views():
        n = rec_parts()
        if n == _EAGAIN or n == _EOF:
            return ()
        check(n)
        views = []
        for i in range(2 if h.part_len[1] else 1):  # head[, tail]
            # The view's pointer holds the handle (hence the region)
            # alive, as linear_view's does.
            ptr = ffi.gc(ffi.cast("char *", h.part[i]), lambda _, k=h: None)
            views.append(memoryview(ffi.buffer(ptr, h.part_len[i]))
                         .toreadonly())
        return tuple(views)

    for fn in (put_message, get_message, get_message_into, peek_len,
               skip_message, message_views, put_many, get_many):
        self._install(fn)


def _bind_bytes(self, h, scratch, nscratch):
    """Install the byte-mode methods (see _bind_records)."""
    def bind(cfunc):
        return types.MethodType(cfunc, h)
    bput = bind(lib.lf_kfifo_put)
    bget = bind(lib.lf_kfifo_get)
    get_scratch = bind(lib.lf_kfifo_get_scratch)
    bpeek = bind(lib.lf_kfifo_peek)
    bskip = bind(lib.lf_kfifo_skip)
    bparts = bind(lib.lf_kfifo_parts)
    wait_readable = bind(lib.lf_kfifo_wait_readable)
    wait_writable = bind(lib.lf_kfifo_wait_writable)
    unpack = ffi.unpack
    check = self._check
    keep = self._h
    size = self._size
    out = ffi.buffer(scratch)  # sliced: see _bind_records

    def status(r):
        """0 for 'nothing now' (empty), raise for real errors."""
        return 0 if r == _EAGAIN or r == _EOF else check(r)

    def put(data, block=False, timeout=None):
        if type(data) is bytes:
            n = len(data)
        else:
            data, n = _bufptr(data)
        w = bput(data, n if n <= size else size)
        if w == n or (w >= 0 and not block):
            return w
        return put_slow(data, n, check(w), timeout)

    def put_slow(data, n, done, timeout):
        p = data if isinstance(data, ffi.CData) else _bufptr(data)[0]
        deadline = _deadline(timeout)
        while done < n:
            r = _wait(wait_writable, (1,), deadline, _full(done))
            if r == _EDEAD:
                raise ConsumerDied("the Kfifo is full and its consumer's "
                                   "process died")
            check(r)
            done += check(bput(p + done, min(n - done, size)))
        return done

    def wait_data(block, timeout):
        """True if data (or EOF) is there, False at EOF handled by caller."""
        r = _wait(wait_readable, (), _deadline(timeout), queue.Empty())
        if r == _EDEAD:
            raise ProducerDied("the Kfifo is drained and its producer's "
                               "process died without close_producer()")
        return r

    def get(n, block=False, timeout=None):
        if 0 < n <= nscratch:
            k = get_scratch(n)
            if k > 0:
                return out[:k]
        elif n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        elif n == 0:
            return b""
        else:
            k = bparts(n if n <= size else size)
            if k > 0:
                return get_parts(k)
        if k == _EAGAIN and block and wait_data(block, timeout) == 0:
            return get(n)
        status(k)
        return b""

    def get_parts(k):
        data = unpack(h.part[0], h.part_len[0])
        if h.part_len[1]:
            data += unpack(h.part[1], h.part_len[1])
        check(bskip(k))
        return data

    def get_into(buffer, block=False, timeout=None):
        p, n = _bufptr(buffer, writable=True)
        n = min(n, size)
        k = bget(p, n)
        if k == _EAGAIN and block and n and wait_data(block, timeout) == 0:
            k = bget(p, n)
        return k if k >= 0 else status(k)

    def peek(n):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        buf = ffi.new("char[]", min(n, size))
        return unpack(buf, status(bpeek(buf, len(buf))))

    def skip(n):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return status(bskip(min(n, size)))

    def linear_view():
        k = status(bparts(size))
        # The view's pointer holds the handle (hence the region) alive.
        p = ffi.gc(ffi.cast("char *", h.part[0]), lambda _, k=keep: None)
        return memoryview(ffi.buffer(p, h.part_len[0] if k else 0)
                          ).toreadonly()

    for fn in (put, get, get_into, peek, skip, linear_view):
        self._install(fn)
