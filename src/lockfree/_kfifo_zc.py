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
one is still alive at a normal exit, ``receive()`` raises ``BufferError``
and does not consume the message (it stays valid and comes again; when the
block raises, the message is consumed and that exception propagates), and
``reserve()`` raises ``BufferError`` and discards the message (a writer
could still change it).  Copy what you keep (``bytes(view[a:b])``).
"""

from __future__ import annotations

import operator
import sys
from types import TracebackType
from typing import Any

from ._ffi import ffi, lib
from ._kfifo_args import (
    EAGAIN,
    EMISUSE,
    EOF,
    FOREVER,
    NOWAIT,
    REC_HDR,
    busy,
    deadline,
    index,
)
from ._kfifo_core import Kfifo, ring_buffer

__all__ = ["KfifoZeroCopy", "Receipt", "Reservation"]

# One C call opens a block, one ends it (csrc/kfifo.h, "Zero-copy records").
_reserve: Any = lib.lf_kfifo_zc_reserve
_commit: Any = lib.lf_kfifo_zc_commit
_abort: Any = lib.lf_kfifo_zc_abort
_receive: Any = lib.lf_kfifo_zc_receive
_consume: Any = lib.lf_kfifo_zc_consume
_leave: Any = lib.lf_kfifo_zc_leave
_FIXED: int = lib.LF_KFIFO_RSV_FIXED
_getrefcount = sys.getrefcount
_LOW32 = 0xFFFFFFFF

# How a block's view is made and checked: the handle has one ``ffi.buffer``
# over the data area per role (``_ring_w``, ``_ring_r``), referenced only by
# the queue object.  A block's view is a slice of a fresh
# ``memoryview(ring)``, whose managed buffer holds one more reference to
# ``ring`` for as long as any view made from it lives (the block's view, a
# slice of it, ``memoryview(view)``, a NumPy array over it).  So at exit,
# after ``view.release()``, a count above the resting one means something
# made from the view outlives the block.  The ring is never held in a
# variable on the way (only on the stack, as ``sys.getrefcount``'s
# argument): a tracer that reads ``frame.f_locals`` (pdb, IDE debuggers,
# snoopers; CPython <= 3.12 copies the locals into a dict) would add a
# reference and fake a leak at every exit.
_get_w: Any = operator.attrgetter("_ring_w")
_get_r: Any = operator.attrgetter("_ring_r")


def _refs_after(view: memoryview, q: Any, ring_of: Any) -> int:
    """Release the block's view and return the reference count of the ring
    buffer ``ring_of(q)`` then; -1 if the view itself cannot be released
    (a consumer of the buffer protocol, e.g. a NumPy array, holds it)."""
    try:
        view.release()
    except BufferError:
        return -1
    return _getrefcount(ring_of(q))


class _Probe:
    _ring_w: Any = None


def _resting_count() -> int:
    """What ``_refs_after`` returns when nothing made from the view is
    alive, measured with the same call as a block's exit
    (``_refs_after(view, q, _get_w)``, the ring in the instance's dict).
    Python versions differ in the references a call holds (CPython 3.11:
    the dict's and getrefcount's argument)."""
    probe = _Probe()
    probe._ring_w = ffi.buffer(ffi.new("char[]", 1))
    counts = [_refs_after(memoryview(probe._ring_w)[:1], probe, _get_w)
              for _ in range(4)]  # the last ones with the call specialised
    return min(counts)


_RESTING = _resting_count()


class Reservation:
    """``q.reserve(nbytes)``: a context manager whose ``__enter__`` returns
    the writable view, and whose ``__exit__`` commits or discards."""

    __slots__ = ("_q", "_n", "_arg", "_block", "_dl", "_view", "_at",
                 "_checked")

    def __init__(self, q: KfifoZeroCopy, nbytes: int, block: bool, dl: int,
                 checked: bool = True, fixed: bool = False) -> None:
        self._q = q
        self._n = nbytes
        # fixed: the message must stay where it is written (reserve_array
        # aligns its data relative to the view's address), where a commit
        # may otherwise copy it elsewhere (csrc/kfifo_rec.c, "Restart").
        self._arg = nbytes | _FIXED if fixed else nbytes
        self._block = block
        self._dl = dl
        self._checked = checked  # False for reserve_array (see there)
        self._view: memoryview | None = None
        self._at = -1

    def __enter__(self) -> memoryview:
        if self._at != -1:
            raise RuntimeError("a reservation is entered once")
        q, n = self._q, self._n
        h = q._h
        # The producer side is held exclusively from here to __exit__
        # (csrc/kfifo_zc.c, lf_kfifo_zc_reserve): any other put, this thread's
        # included, is refused; the wait for room is outside it.
        while True:
            try:
                at = _reserve(h, self._arg)
                if at >= 0:
                    self._at = at
                    self._view = view = memoryview(q._ring_w)[at:at + n]
                    return view
            except BaseException:
                # A signal handler's exception (KeyboardInterrupt...) comes
                # at the interpreter loop's next check, most often right
                # after a C call returns (cffi drops the GIL around it):
                # here, with the block open and no __exit__ to run yet.
                # End it (zc_abort ends only a block this thread has open;
                # if another block of this thread was open, the call above
                # failed, and this ends that one: its exit then raises
                # ConcurrentUseError).  CPython checks on entry to every
                # Python function too, __exit__'s included: a signal there
                # still leaves the block open (bpo-29988).
                self._view = None
                _abort(h)
                raise
            if at == EMISUSE:
                raise busy("producer")
            if at != EAGAIN:
                q._check(at)
            q._wait_room(n + REC_HDR, self._block, self._dl, 0)

    def _address(self) -> int:
        """The reserved bytes' address (reserve_array aligns its data)."""
        return int(ffi.cast("uintptr_t", self._q._h.data)) + self._at

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        q, view = self._q, self._view
        if view is None:  # (not an assert: python -O drops those)
            raise RuntimeError("a block ends once, after its __enter__")
        self._view = None
        outlived = False
        try:
            n = _refs_after(view, q, _get_w)
            if n < 0 or n > _RESTING:  # something made from the view lives
                # What outlived the block keeps the old buffer object; later
                # blocks count on a new one.  reserve_array's array always
                # does (documented there): not an error.
                q._ring_w = ring_buffer(q._data, q._size)
                outlived = self._checked
        except BaseException:  # a signal's exception (see __enter__):
            _abort(q._h)       # as if the block raised
            raise
        if et is None and not outlived:
            r = _commit(q._h)
            if r:
                q._check(r)
            return
        _abort(q._h)
        if outlived:
            raise BufferError(
                "reserve(): an object made from the reserved view (a slice, "
                "memoryview(buf), np.frombuffer(buf)...) is still alive at "
                "the end of the block; the message was discarded (a late "
                "write could change it after the consumer read it)")


class Receipt:
    """``q.receive()``: a context manager whose ``__enter__`` returns the
    next message as a read-only view, and whose ``__exit__`` consumes it."""

    __slots__ = ("_q", "_block", "_dl", "_view", "_checked", "_entered")

    def __init__(self, q: KfifoZeroCopy, block: bool, dl: int,
                 checked: bool = True) -> None:
        self._q = q
        self._block = block
        self._dl = dl
        self._checked = checked  # False for receive_array (see there)
        self._view: memoryview | None = None
        self._entered = False

    def __enter__(self) -> memoryview:
        if self._entered:
            raise RuntimeError("a receipt is entered once")
        q = self._q
        h = q._h
        # Held exclusively (as reserve()); the wait is outside it.
        while True:
            try:
                r = _receive(h)
                if r >= 0:
                    at, n = r >> 32, r & _LOW32
                    self._view = view = \
                        memoryview(q._ring_r)[at:at + n].toreadonly()
                    self._entered = True  # (not before: retry after Empty)
                    return view
            except BaseException:  # a signal's exception (see reserve())
                self._view = None
                _leave(h)
                raise
            if r == EMISUSE:
                raise busy("consumer")
            if q._wait_data(r, self._block, self._dl) == EOF:
                q._check(EOF)

    def _end(self, consume: bool, failing: bool = False) -> None:
        q, view = self._q, self._view
        if view is None:  # (not an assert: python -O drops those)
            raise RuntimeError("a block ends once, after its __enter__")
        self._view = None
        outlived = False
        try:
            n = _refs_after(view, q, _get_r)
            if n < 0 or n > _RESTING:  # as in Reservation.__exit__
                q._ring_r = ring_buffer(q._data, q._size)
                # The block raised: consumed all the same, or a handler
                # that fails on a message would get it for ever (what
                # outlives the block is often just the traceback: a slice
                # passed to the function that raised).  Its exception
                # propagates.
                outlived = self._checked and not failing
        except BaseException:  # a signal's exception: as if it raised
            (_consume if consume else _leave)(q._h)
            raise
        if consume and not outlived:
            r = _consume(q._h)
            if r < 0:
                q._check(r)
            return
        _leave(q._h)
        if outlived:
            raise BufferError(
                "receive(): an object made from the message view (a slice, "
                "memoryview(view), np.frombuffer(view)...) is still alive "
                "at the end of the block; the message was NOT consumed (it "
                "comes again); copy what you keep, e.g. bytes(view)")

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        self._end(True, et is not None)


class KfifoZeroCopy(Kfifo):
    """The zero-copy methods of :class:`~lockfree.KfifoQueue`."""

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
        n = nbytes if type(nbytes) is int else index(nbytes, "nbytes")
        if not 0 <= n <= self._size - REC_HDR:
            raise ValueError(f"nbytes must be in 0..{self._size - REC_HDR} "
                             f"(max_message), got {n}")
        if timeout is None:  # the common case without a call
            return Reservation(self, n, block, FOREVER if block else NOWAIT)
        return Reservation(self, n, block, deadline(block, timeout))

    def receive(self, block: bool = True,
                timeout: float | None = None) -> Receipt:
        """Zero-copy get: ``with q.receive() as view:`` gives the next
        message as a read-only ``memoryview`` inside the ring; leaving the
        block consumes it (also when the block raises).

        Waits as ``get_message`` does (``queue.Empty``, ``EOFError``,
        ``ProducerDied``; the timeout counts from this call).  The consumer
        side is held until the block ends.  ``view`` raises ``ValueError``
        after the block; a view made from it that is still alive at a
        normal exit (slice, ``np.frombuffer(view)``) raises ``BufferError``
        and the message is not consumed."""
        if timeout is None:
            return Receipt(self, block, FOREVER if block else NOWAIT)
        return Receipt(self, block, deadline(block, timeout))

    def close(self) -> None:
        """Give up this object's roles and release its memory (idempotent);
        ``ValueError`` inside a ``reserve()``/``receive()`` block."""
        h = self.__dict__.get("_h")  # (none when attach found it corrupt)
        if h is not None and lib.lf_kfifo_zc_held(h):
            raise ValueError("close() inside a reserve()/receive() block: "
                             "leave the block first")
        super().close()
