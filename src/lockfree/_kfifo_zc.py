"""Zero-copy messages of KfifoQueue: ``reserve()`` and ``receive()``.

``KfifoZeroCopy`` is a base class of :class:`~lockfree.KfifoQueue` (its
methods are the queue's methods); it is here to keep ``kfifo_queue.py``
small.  Both work because records never wrap (csrc/kfifo.h): every message
is one contiguous range of the ring's data area.

- ``with q.reserve(n) as buf:`` -- ``buf`` is a writable ``memoryview`` of
  exactly ``n`` bytes inside the ring.  A normal exit commits the message
  (one store-release of the producer index, as a put); an exception
  discards it (nothing was published) and propagates.
- ``with q.receive() as view:`` -- ``view`` is a read-only ``memoryview``
  of the next message inside the ring.  Leaving the block consumes it, on
  an exception too (the block had the message; giving it again would turn
  a bad message into an endless loop).

The role is held for the whole block: the producer (consumer) side's
in-use word, so another thread's put (get) raises ``ConcurrentUseError``,
and so does a put (get) of the same thread inside its own block.  The view
is released at exit: using it afterwards raises ``ValueError``.  Objects
made from the view (slices, ``memoryview(view)``, ``view.cast()``,
``np.frombuffer(view)``) share its memory and are NOT released with it: if
one is still alive at exit, ``receive()`` raises ``BufferError`` and does
not consume the message (it stays valid and comes again), and
``reserve()`` raises ``BufferError`` and discards the message (a writer
could still change it).  Copy what you keep (``bytes(view[a:b])``).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from ._ffi import ffi, lib
from ._kfifo_core import (
    CONSUMER,
    EAGAIN,
    EOF,
    PRODUCER,
    REC_HDR,
    Kfifo,
    busy,
    deadline,
    index,
)

__all__ = ["KfifoZeroCopy", "Receipt", "Reservation"]

_reserve: Any = lib.lf_kfifo_rec_reserve
_commit: Any = lib.lf_kfifo_rec_commit
_abort: Any = lib.lf_kfifo_rec_abort
_receive: Any = lib.lf_kfifo_rec_receive
_consume: Any = lib.lf_kfifo_rec_consume
_open: Any = lib.lf_kfifo_zc_open
_close: Any = lib.lf_kfifo_zc_close
_getrefcount = sys.getrefcount


def _release(view: memoryview, buf: Any) -> bool:
    """Release the block's view; True if nothing made from it is alive.

    ``buf`` is the ``ffi.buffer`` the view was made over, referenced only
    by this frame and, while any view made from it lives, by that view's
    managed buffer: a count above this frame's own two references (the
    variable and the argument) means a slice, ``memoryview(view)`` or a
    NumPy array over it outlives the block."""
    try:
        view.release()
    except BufferError:  # a consumer of the buffer protocol holds it
        return False
    return _getrefcount(buf) <= 3  # buf, the argument, the caller's local


class Reservation:
    """``q.reserve(nbytes)``: a context manager whose ``__enter__`` returns
    the writable view, and whose ``__exit__`` commits or discards."""

    __slots__ = ("_q", "_n", "_block", "_dl", "_h", "_view", "_buf",
                 "_checked")

    def __init__(self, q: KfifoZeroCopy, nbytes: int, block: bool, dl: int,
                 checked: bool = True) -> None:
        self._q = q
        self._n = nbytes
        self._block = block
        self._dl = dl
        self._checked = checked  # False for reserve_array (see there)
        self._h: Any = None
        self._view: memoryview | None = None
        self._buf: Any = None

    def __enter__(self) -> memoryview:
        if self._h is not None:
            raise RuntimeError("a reservation is entered once")
        q = self._q
        h = q._h
        # The producer side is held exclusively (csrc/kfifo.c,
        # lf_kfifo_zc_open): any other put, this thread's included, is
        # refused until the block ends; the wait for room is outside it.
        while True:
            if _open(h, PRODUCER):
                raise busy("producer")
            try:
                r = int(_reserve(h, self._n))
                if r != EAGAIN:
                    q._check(r)
                    break
            except BaseException:
                _close(h, PRODUCER)
                raise
            _close(h, PRODUCER)
            q._wait_room(self._n + REC_HDR, self._block, self._dl, 0)
        self._h = h
        q._zc_open += 1
        self._buf = ffi.buffer(h.part[0], self._n)
        self._view = memoryview(self._buf)
        return self._view

    def _address(self) -> int:
        """The reserved bytes' address (reserve_array aligns its data)."""
        return int(ffi.cast("uintptr_t", self._h.part[0]))

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        h, view, buf = self._h, self._view, self._buf
        self._view = self._buf = None
        assert view is not None
        clean = _release(view, buf) or not self._checked
        del buf
        try:
            if et is None and clean:
                self._q._check(int(_commit(h)))
            else:
                _abort(h)
        finally:
            self._q._zc_open -= 1
            _close(h, PRODUCER)
        if not clean:
            raise BufferError(
                "reserve(): an object made from the reserved view (a slice, "
                "memoryview(buf), np.frombuffer(buf)...) is still alive at "
                "the end of the block; the message was discarded (a late "
                "write could change it after the consumer read it)")


class Receipt:
    """``q.receive()``: a context manager whose ``__enter__`` returns the
    next message as a read-only view, and whose ``__exit__`` consumes it."""

    __slots__ = ("_q", "_block", "_dl", "_h", "_view", "_buf", "_checked",
                 "_locked")

    def __init__(self, q: KfifoZeroCopy, block: bool, dl: int,
                 checked: bool = True) -> None:
        self._q = q
        self._block = block
        self._dl = dl
        self._checked = checked  # False for receive_array (see there)
        self._h: Any = None
        self._view: memoryview | None = None
        self._buf: Any = None
        self._locked = False

    def __enter__(self) -> memoryview:
        if self._h is not None:
            raise RuntimeError("a receipt is entered once")
        q = self._q
        h = q._h
        lock = q._lock
        if not lock.acquire(False):
            raise busy("consumer")
        try:
            # Held exclusively (as reserve()); the wait is outside it.
            while True:
                if _open(h, CONSUMER):
                    raise busy("consumer")
                try:
                    n = int(_receive(h))
                except BaseException:
                    _close(h, CONSUMER)
                    raise
                if n >= 0:
                    break
                _close(h, CONSUMER)
                if q._wait_data(n, self._block, self._dl) == EOF:
                    q._check(EOF)
        except BaseException:
            lock.release()
            raise
        self._h = h
        q._zc_open += 1
        self._buf = ffi.buffer(h.part[0], n)
        self._view = memoryview(self._buf).toreadonly()
        return self._view

    def _end(self, consume: bool) -> None:
        h, view, buf = self._h, self._view, self._buf
        self._view = self._buf = None
        assert view is not None
        clean = _release(view, buf) or not self._checked
        del buf
        try:
            if clean and consume:
                self._q._check(int(_consume(h)))
        finally:
            self._q._zc_open -= 1
            _close(h, CONSUMER)
            self._q._lock.release()
        if not clean:
            raise BufferError(
                "receive(): an object made from the message view (a slice, "
                "memoryview(view), np.frombuffer(view)...) is still alive "
                "at the end of the block; the message was NOT consumed (it "
                "comes again); copy what you keep, e.g. bytes(view)")

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        self._end(True)


class KfifoZeroCopy(Kfifo):
    """The zero-copy methods of :class:`~lockfree.KfifoQueue`."""

    _zc_open = 0  # open reserve()/receive() blocks: close() refuses

    def reserve(self, nbytes: int, block: bool = True,
                timeout: float | None = None) -> Reservation:
        """Zero-copy put: ``with q.reserve(nbytes) as buf:`` gives a
        writable ``memoryview`` of exactly ``nbytes`` bytes inside the ring;
        a normal exit commits the message, an exception discards it.

        Waits for room as ``put_message`` does (``queue.Full`` when not
        ``block`` or at the timeout, counted from this call); ``nbytes``
        above ``max_message``: ``ValueError``.  The producer side is held
        until the block ends (``ConcurrentUseError`` for any other put
        meanwhile).  ``buf`` raises ``ValueError`` after the block; views
        made from it must not outlive it (``BufferError``, message
        discarded)."""
        n = index(nbytes, "nbytes")
        most = self.capacity - REC_HDR
        if not 0 <= n <= most:
            raise ValueError(f"nbytes must be in 0..{most} (max_message), "
                             f"got {n}")
        return Reservation(self, n, bool(block), deadline(block, timeout))

    def receive(self, block: bool = True,
                timeout: float | None = None) -> Receipt:
        """Zero-copy get: ``with q.receive() as view:`` gives the next
        message as a read-only ``memoryview`` inside the ring; leaving the
        block consumes it (also when the block raises).

        Waits as ``get_message`` does (``queue.Empty``, ``EOFError``,
        ``ProducerDied``; the timeout counts from this call).  The consumer
        side is held until the block ends.  ``view`` raises ``ValueError``
        after the block; a view made from it that is still alive at exit
        (slice, ``np.frombuffer(view)``) raises ``BufferError`` and the
        message is not consumed."""
        return Receipt(self, bool(block), deadline(block, timeout))

    def close(self) -> None:
        """Give up this object's roles and release its memory (idempotent);
        ``ValueError`` inside a ``reserve()``/``receive()`` block."""
        if self._zc_open and not self.closed:
            raise ValueError("close() inside a reserve()/receive() block: "
                             "leave the block first")
        super().close()
