"""Kfifo: a single-producer single-consumer ring buffer (the kernel's kfifo).

One producer and one consumer, in two threads or two processes, move bytes
(``mode="bytes"``: a stream, partial puts and gets) or whole messages
(``mode="records"``: length-prefixed, all-or-nothing) through a
power-of-two ring in a lockfree region.  See ``docs/kfifo.md``.

Roles are registered in the shared state on first use: the first object (in
any process) that puts becomes the producer, the first that gets becomes the
consumer; a second live one gets ``RoleError``.  A role whose process died is
taken over by the next object that asks for it.

Blocking calls wait in C with the GIL released (spin, yield, then sleep on
a futex: csrc/lockwait.h's policy), in slices of at most
``lockfree._wait.SLICE_NS``, so Ctrl-C works and a dead peer is noticed;
``timeout`` raises ``queue.Full`` / ``queue.Empty``.

One thread at a time per role of an object: a producer (or consumer) call
made while another thread is inside a producer (consumer) call of the same
object raises ``ConcurrentUseError`` and changes nothing.  Handing an object
from one thread to another, one call after the other, is fine.
"""

from __future__ import annotations

import functools
import operator
import os
import queue
import struct
import threading
import types
import weakref
from array import array

from . import _wait
from .errors import (ConcurrentUseError, ConsumerDied, CorruptStateError,
                     ModeError, PeerDied, ProducerDied, RoleError, raise_for)
from ._ffi import ffi, lib
from .region import HEADER, Primitive

__all__ = ["Kfifo", "RoleError", "PeerDied", "ProducerDied", "ConsumerDied",
           "ModeError", "ConcurrentUseError"]

MODES = {"bytes": lib.LF_KFIFO_BYTES, "records": lib.LF_KFIFO_RECORDS}
_MODE_NAMES = {v: k for k, v in MODES.items()}
MAX_CAPACITY = lib.LF_KFIFO_MAX_SIZE      # 2**31: in - out must fit 32 bits
REC_HDR = lib.LF_KFIFO_REC_HDR            # the 4-byte length prefix
SCRATCH = 256 * 1024                      # per-object copy-out buffer
MAX_BATCH = 4096                          # messages per get_many C call

_EAGAIN, _EOF, _EDEAD = lib.LF_EAGAIN, lib.LF_EOF, lib.LF_EDEAD
_EBIG, _EMSGSIZE, _EINVAL = lib.LF_EBIG, lib.LF_EMSGSIZE, lib.LF_EINVAL
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


def _index(n, name="n"):
    """An int argument (bool too, as everywhere in Python); else TypeError."""
    try:
        return operator.index(n)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(n).__name__}") \
            from None


def _deadline(block, timeout):
    """The queue convention's deadline (validates the timeout: NaN, a
    negative number -> ValueError; a non-number -> TypeError)."""
    return _wait.queue_deadline(block, timeout)


def _busy(role):
    return ConcurrentUseError(
        f"this Kfifo's {role} side is in use by another thread right now; "
        "give each thread its own object's role, or serialise the calls")


# Consumer locks of live objects, re-initialised in a fork child (a parent
# thread inside a call at fork time does not exist there).
_CONSUMER_LOCKS = weakref.WeakSet()


class _Busy:
    """A try-lock around a consumer call: ``ConcurrentUseError`` if another
    thread is inside one (the C in-use word guards single C calls; this also
    covers the copy out of the per-object scratch buffer after the call and
    the multi-call slow paths)."""
    __slots__ = ("lock", "__weakref__")

    def __init__(self):
        self.lock = threading.Lock()


def _reinit_consumer_locks():
    for b in list(_CONSUMER_LOCKS):
        b.lock._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_consumer_locks)


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
            del self._h  # no handle yet: close() has no role to give up
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
        if self.closed:
            return
        if "_h" in self.__dict__:
            lib.lf_kfifo_release(self._h)
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
        if r == lib.LF_EBUSY:
            pids = {"producer": lib.lf_kfifo_owner_pid(h, _PRODUCER),
                    "consumer": lib.lf_kfifo_owner_pid(h, _CONSUMER)}
            raise RoleError(
                "this Kfifo already has a live producer and/or consumer "
                f"(registered pids: {pids}); a ring has exactly one of each")
        if r == _EOF:
            raise EOFError("the producer closed the Kfifo and it is drained")
        if r == lib.LF_ECLOSED:
            raise ValueError("put on a Kfifo whose producer side is closed")
        if r == _EMSGSIZE:
            raise ValueError(f"message larger than this Kfifo can hold "
                             f"(max_message is {self._size - REC_HDR})")
        if r == lib.LF_ECORRUPT:
            raise CorruptStateError("Kfifo", field="in/out indexes or a "
                                    "record length")
        if r == lib.LF_EMISUSE:
            raise _busy("producer or consumer")
        raise_for(r, "Kfifo")

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
        n = self._len()
        state = f"len={n}" if n >= 0 else "corrupt"
        return (f"<Kfifo mode={self._mode} capacity={self._size} "
                f"{state} {self._placement()}>")

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


def _nbytes(x):
    """Bytes of a bytes-like item (what ``b"".join`` takes from it)."""
    try:
        return memoryview(x).nbytes
    except TypeError:
        raise TypeError("put_many() needs bytes-like objects, not "
                        f"{type(x).__name__}") from None


def _waiters(self, h):
    """The blocking helpers shared by both modes (closures over the bound
    C waits): wait for room / for data until a deadline, raising what the
    result means."""
    wait_readable = types.MethodType(lib.lf_kfifo_wait_readable, h)
    wait_writable = types.MethodType(lib.lf_kfifo_wait_writable, h)
    check = self._check
    wait = _wait.wait

    def wait_room(need, block, deadline, written):
        """Wait until need bytes are free; queue.Full at the deadline."""
        if not block:
            raise _full(written)
        r = wait(lambda end: wait_writable(need, end), deadline)
        if r == _EAGAIN:
            raise _full(written)
        if r == _EDEAD:
            raise ConsumerDied("the Kfifo is full and its consumer's "
                               "process died")
        check(r)

    def wait_data(r, block, deadline):
        """After a get returned r < 0: wait for data (then return 0), or
        return _EOF, or raise what r means (queue.Empty at the deadline)."""
        if r == _EAGAIN and block:
            r = wait(wait_readable, deadline)
        if r == 0 or r == _EOF:
            return r
        if r == _EAGAIN:
            raise queue.Empty
        if r == _EDEAD:
            raise ProducerDied("the Kfifo is drained and its producer's "
                               "process died without close_producer()")
        return check(r)

    return wait_room, wait_data


def _consumer_lock(self):
    busy = _Busy()
    _CONSUMER_LOCKS.add(busy)
    self._busy = busy
    return busy.lock.acquire, busy.lock.release


_FOREVER, _NOWAIT = _wait.FOREVER, _wait.NOWAIT


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
    wait_room, wait_data = _waiters(self, h)
    enter, leave = _consumer_lock(self)
    unpack, string, join = ffi.unpack, ffi.string, b"".join
    from_buffer, Struct = ffi.from_buffer, struct.Struct
    # Slicing a buffer object made once is the cheapest way from the
    # scratch buffer to a bytes object (~2x faster than ffi.unpack).
    out = ffi.buffer(scratch)
    check = self._check

    # Fast paths: one C call.  block=True without a timeout calls the
    # *_wait C functions, which wait (up to one slice) inside the same call
    # when the ring is full/empty; other cases and errors go to *_slow.
    # Producer calls are single C calls (or whole messages each), guarded by
    # the C in-use word; consumer calls hold the object's consumer lock
    # (enter/leave) until the message is copied out of the scratch buffer.

    def put_message(data, block=True, timeout=None):
        if timeout is None:
            put, deadline = (rec_put_wait, _FOREVER) if block else \
                (rec_put, _NOWAIT)
        else:
            put, deadline = rec_put, _deadline(block, timeout)
        try:
            if type(data) is bytes:  # cffi passes bytes' own memory
                r = put(data, len(data))
            else:  # (cffi would take a list of 1-byte items: refuse it)
                data, n = _bufptr(data)
                r = put(data, n)
        except OverflowError:  # 4 GiB or more
            r = _EMSGSIZE
        if r:
            put_slow(r, data, block, deadline)

    def put_slow(r, data, block, deadline):
        if not isinstance(data, (bytes, ffi.CData)):
            data = _bufptr(data)[0]
        n = len(data)
        while r == _EAGAIN:
            wait_room(n + REC_HDR, block, deadline, 0)
            r = rec_put(data, n)
        check(r)

    def get_message(block=True, timeout=None):
        deadline = (_FOREVER if block else _NOWAIT) if timeout is None \
            else _deadline(block, timeout)
        if not enter(False):
            raise _busy("consumer")
        try:
            n = rec_get_wait() if deadline == _FOREVER else rec_get()
            if n >= 0:
                return out[:n]
            return get_slow(n, block, deadline)
        finally:
            leave()

    def get_slow(n, block, deadline):
        while True:
            if n == _EBIG:
                return get_big()
            if wait_data(n, block, deadline) == _EOF:
                check(_EOF)
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
        deadline = _deadline(block, timeout)
        if not enter(False):
            raise _busy("consumer")
        try:
            while True:
                n = rec_get_into(p, size)
                if n >= 0:
                    return n
                if n == _EMSGSIZE:
                    raise ValueError(f"next message has {h.msg_len} bytes, "
                                     f"the buffer {len(p)}; the message "
                                     "stays")
                if wait_data(n, block, deadline) == _EOF:
                    check(_EOF)
        finally:
            leave()

    def peek_len():
        if not enter(False):
            raise _busy("consumer")
        try:
            n = rec_peek_len()
        finally:
            leave()
        if n == _EAGAIN or n == _EOF:
            return None
        return check(n)

    def skip_message():
        if not enter(False):
            raise _busy("consumer")
        try:
            n = rec_skip()
        finally:
            leave()
        if n == _EAGAIN:
            raise queue.Empty
        return check(n)

    def put_many(items, block=True, timeout=None):
        deadline = (_FOREVER if block else _NOWAIT) if timeout is None \
            else _deadline(block, timeout)
        if not isinstance(items, (list, tuple)):
            items = list(items)
        try:
            buf = join(items)
        except TypeError:
            raise TypeError("put_many() needs a list of bytes-like objects "
                            "(C-contiguous buffers)") from None
        try:
            # Each item's bytes, not len(): a 2-D array or an array('I')
            # has fewer items than bytes.
            lens = array("I", [len(x) if type(x) is bytes else _nbytes(x)
                               for x in items])
        except OverflowError:
            raise ValueError("message larger than 4 GiB") from None
        count = len(lens)
        k = rec_put_many(buf, len(buf), from_buffer("uint32_t[]", lens),
                         count)
        if k == count:
            return k
        return put_many_slow(k, buf, lens, block, deadline)

    def put_many_slow(k, buf, lens, block, deadline):
        arr = from_buffer("uint32_t[]", lens)
        count = len(lens)
        p = from_buffer(buf)
        done = off = 0
        while True:
            check(k)
            off += sum(lens[done:done + k])
            done += k
            if done == count:
                return done
            if not block:
                return done
            wait_room(lens[done] + REC_HDR, block, deadline, done)
            k = rec_put_many(p + off, len(buf) - off, arr + done,
                             count - done)

    def get_many(max_items=MAX_BATCH, block=True, timeout=None):
        max_items = _index(max_items, "max_items")
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        max_items = min(max_items, MAX_BATCH)
        deadline = (_FOREVER if block else _NOWAIT) if timeout is None \
            else _deadline(block, timeout)
        if not enter(False):
            raise _busy("consumer")
        try:
            n = rec_get_many_wait(max_items) if deadline == _FOREVER \
                else rec_get_many(max_items)
            while n < 0:
                if n == _EBIG:
                    return [get_big()]
                if wait_data(n, block, deadline) == _EOF:
                    check(_EOF)
                n = rec_get_many(max_items)
            # One C loop splits the copied messages: the struct format the
            # C call wrote, e.g. b"64s64s12s" (a fresh Struct: no cache).
            return list(Struct(string(fmt)).unpack(out[:n]))
        finally:
            leave()

    def message_views():
        if not enter(False):
            raise _busy("consumer")
        try:
            n = rec_parts()
        finally:
            leave()
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
    hold = bind(lib.lf_kfifo_hold)
    unhold = bind(lib.lf_kfifo_unhold)
    wait_room, wait_data = _waiters(self, h)
    enter, leave = _consumer_lock(self)
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
        if not block:
            w = bput(data, n if n <= size else size)
            return w if w >= 0 else check(w)
        # Blocking: several C calls write one caller's bytes; the claim on
        # the producer role keeps another thread's bytes out of them.
        deadline = _deadline(True, timeout)
        if hold(_PRODUCER):
            raise _busy("producer")
        try:
            p = data if isinstance(data, ffi.CData) else ffi.from_buffer(data)
            done = check(bput(p, min(n, size)))
            while done < n:
                wait_room(1, True, deadline, done)
                done += check(bput(p + done, min(n - done, size)))
            return done
        finally:
            unhold(_PRODUCER)

    def get(n, block=False, timeout=None):
        n = _index(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        deadline = (_FOREVER if block else _NOWAIT) if timeout is None \
            else _deadline(block, timeout)
        if not enter(False):
            raise _busy("consumer")
        try:
            while n:
                if n <= nscratch:
                    k = get_scratch(n)
                    if k > 0:
                        return out[:k]
                else:
                    k = bparts(n if n <= size else size)
                    if k > 0:
                        return get_parts(k)
                if k != _EAGAIN or not block:
                    status(k)
                    break
                if wait_data(k, block, deadline) == _EOF:
                    break
            return b""
        finally:
            leave()

    def get_parts(k):
        data = unpack(h.part[0], h.part_len[0])
        if h.part_len[1]:
            data += unpack(h.part[1], h.part_len[1])
        check(bskip(k))
        return data

    def get_into(buffer, block=False, timeout=None):
        p, n = _bufptr(buffer, writable=True)
        n = min(n, size)
        deadline = (_FOREVER if block else _NOWAIT) if timeout is None \
            else _deadline(block, timeout)
        if not enter(False):
            raise _busy("consumer")
        try:
            k = bget(p, n)
            while k == _EAGAIN and block and n:
                if wait_data(k, block, deadline) == _EOF:
                    return 0
                k = bget(p, n)
            return k if k >= 0 else status(k)
        finally:
            leave()

    def peek(n):
        n = _index(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        buf = ffi.new("char[]", min(n, size))
        if not enter(False):
            raise _busy("consumer")
        try:
            return unpack(buf, status(bpeek(buf, len(buf))))
        finally:
            leave()

    def skip(n):
        n = _index(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return status(bskip(min(n, size)))

    def linear_view():
        if not enter(False):
            raise _busy("consumer")
        try:
            k = status(bparts(size))
        finally:
            leave()
        # The view's pointer holds the handle (hence the region) alive.
        p = ffi.gc(ffi.cast("char *", h.part[0]), lambda _, k=keep: None)
        return memoryview(ffi.buffer(p, h.part_len[0] if k else 0)
                          ).toreadonly()

    for fn in (put, get, get_into, peek, skip, linear_view):
        self._install(fn)
