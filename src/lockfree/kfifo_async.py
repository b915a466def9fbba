"""asyncio for the message queue: ``get_message_async``,
``put_message_async`` and ``async for`` on a :class:`KfifoQueue`.

The other side may be another process that knows nothing of asyncio (the
blocking API), so nothing can ring a doorbell for the event loop.  The
coroutine therefore tries the non-blocking call first (no thread hop when a
message or room is there), and only when it would block hands the WAIT to
a waiter thread: one daemon thread per role of a queue object, started on
first need, that sleeps in C (``lf_kfifo_wait_readable_or`` /
``lf_kfifo_wait_writable_or``: the futex wait of the blocking API, GIL
released, no CPU while idle) and wakes the loop with
``loop.call_soon_threadsafe``.  The coroutine then makes the call itself,
on the loop's thread.  The waiter never consumes or produces, so cancelling
a pending ``get_message_async`` loses no message; cancelling stops the C
wait at once (``lf_kfifo_wait_stop``: a flag and a futex wake), and
``close()`` stops and joins the threads.  See ``docs/kfifo.md``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import queue
import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import _wait
from ._ffi import ffi, lib
from ._kfifo_args import (
    CONSUMER,
    EAGAIN,
    EDEAD,
    EOF,
    FOREVER,
    NOWAIT,
    PRODUCER,
    REC_HDR,
    busy,
    deadline,
    full,
)
from .errors import ConsumerDied, ProducerDied

if TYPE_CHECKING:
    from ._kfifo_core import Kfifo

    _Base = Kfifo
else:
    _Base = object

__all__ = ["KfifoAsync"]

STOPPED = 1  # what the stoppable C waits return when stopped
WAIT_SLICE_NS = 500_000_000  # a dead peer is seen within this
_JOIN_S = 1.0  # the C wait ends within microseconds of a stop; a bound


class _Request:
    """One wait a coroutine asked for: its deadline, the loop to wake."""
    __slots__ = ("need", "deadline", "loop", "fut")

    def __init__(self, need: int, dl: int, loop: asyncio.AbstractEventLoop,
                 fut: asyncio.Future[int]) -> None:
        self.need, self.deadline, self.loop, self.fut = need, dl, loop, fut


def _resolve(fut: asyncio.Future[int], r: int) -> None:
    if not fut.done():  # cancelled meanwhile: nothing to tell
        fut.set_result(r)


def _deliver(req: _Request, r: int) -> None:
    """From the waiter thread: the wait's result to the coroutine."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
        req.loop.call_soon_threadsafe(_resolve, req.fut, r)


class _Waiter:
    """The waiter thread of one role (CONSUMER or PRODUCER) of one object.

    It holds the C handle (hence the ring's memory), never the queue
    object, so an object nobody references is still collected (a finalizer
    then stops the thread).  State changes happen under ``cv``; the C wait
    itself runs outside it."""

    def __init__(self, h: Any, role: int, name: str) -> None:
        self.h = h
        self.role = role
        self.stop = ffi.new("uint32_t *")
        self.cv = threading.Condition(threading.Lock())
        self.req: _Request | None = None   # the wait asked for, if any
        self.active: _Request | None = None  # the wait in C, if any
        self.shutdown = False
        self.thread = threading.Thread(target=self._run, name=name,
                                       daemon=True)
        _WAITERS.add(self)
        self.thread.start()

    def alive(self) -> bool:
        # In a fork child the thread is gone (and its lock may be held by
        # a parent thread that does not exist there): a new waiter is made.
        return not self.shutdown and self.thread.is_alive()

    def _run(self) -> None:
        cv = self.cv
        while True:
            with cv:
                while self.req is None and not self.shutdown:
                    cv.wait()
                if self.shutdown:
                    if self.req is not None:  # asked for, never started
                        _deliver(self.req, STOPPED)
                    return
                req = self.active = self.req
                assert req is not None
                self.stop[0] = 0
            try:
                r = self._wait(req)
            except BaseException:  # noqa: BLE001 - reported, never lost
                r = lib.LF_EINVAL
            with cv:
                self.active = None
                if self.req is req:
                    self.req = None
                cv.notify_all()
            _deliver(req, r)

    def _wait(self, req: _Request) -> int:
        h, stop, need = self.h, self.stop, req.need
        if self.role == CONSUMER:
            def call(end: int) -> int:
                return int(lib.lf_kfifo_wait_readable_or(h, end, stop))
        else:
            def call(end: int) -> int:
                return int(lib.lf_kfifo_wait_writable_or(h, need, end, stop))
        # A stop ends the C wait at once, so no slices are needed for that;
        # they are for the peer's liveness, which the C wait checks when a
        # slice ends (its futex sleep lasts until the deadline).  Each new
        # C wait spins and yields first (~0.5 ms of CPU): the blocking
        # API's 50 ms slices would cost an idle waiter ~1 % of a core.
        dl = req.deadline
        while True:
            end = _wait.now_ns() + WAIT_SLICE_NS
            end = dl if dl < end else end
            r = call(end)
            if r != EAGAIN or end == dl:
                return r
            if self.shutdown:  # (a stop raced with the slice's end)
                return STOPPED

    def submit(self, req: _Request) -> None:
        with self.cv:
            if self.req is not None or self.active is not None:
                raise busy("consumer" if self.role == CONSUMER
                           else "producer")
            self.req = req
            self.cv.notify_all()

    def withdraw(self, req: _Request) -> None:
        """The coroutine was cancelled: stop its wait and return once the
        thread is out of C (so the role's in-use word is free again for
        the next call, from any thread)."""
        with self.cv:
            if self.req is req:
                self.req = None
            if self.active is req:
                lib.lf_kfifo_wait_stop(self.h, self.role, self.stop)
                self.cv.wait_for(lambda: self.active is not req, _JOIN_S)

    def close(self) -> None:
        """Stop the thread (its pending wait returns STOPPED) and join it."""
        if not self.thread.is_alive():
            self.shutdown = True
            return
        with self.cv:
            self.shutdown = True
            if self.active is not None:
                lib.lf_kfifo_wait_stop(self.h, self.role, self.stop)
            self.cv.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join(_JOIN_S)


_WAITERS: weakref.WeakSet[_Waiter] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # Before the interpreter tears down: no waiter inside C on a ring
    # whose memory goes away.
    for w in list(_WAITERS):
        w.close()


def _forget_all() -> None:
    _WAITERS.clear()  # a fork child: the threads are the parent's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)


class KfifoAsync(_Base):
    """The asyncio half of :class:`KfifoQueue` (a mixin: it uses the
    queue's ``get_message``/``put_message`` and the handle ``_h``)."""

    _waiters: dict[int, _Waiter] | None = None

    if TYPE_CHECKING:  # KfifoQueue's blocking calls, which this builds on
        def get_message(self, block: bool = True,
                        timeout: float | None = None) -> bytes: ...

        def put_message(self, data: Any, block: bool = True,
                        timeout: float | None = None) -> None: ...

    # -- the waiter threads -------------------------------------------------

    def _waiter(self, role: int) -> _Waiter:
        ws = self._waiters
        if ws is None:
            ws = self._waiters = {}
            weakref.finalize(self, _close_waiters, ws)
        w = ws.get(role)
        if w is None or not w.alive():
            side = "consumer" if role == CONSUMER else "producer"
            w = ws[role] = _Waiter(self._h, role,
                                   f"lockfree-{side}-waiter-{id(self):x}")
        return w

    async def _wait_async(self, role: int, need: int, dl: int) -> int:
        """Wait in the role's waiter thread; the C wait's result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        req = _Request(need, dl, loop, fut)
        w = self._waiter(role)
        w.submit(req)
        try:
            r = await fut
        except BaseException:
            w.withdraw(req)
            raise
        if r == STOPPED:
            raise ValueError(f"{type(self).__name__} closed while a "
                             "coroutine waited on it")
        return r

    def _stop_waiters(self) -> None:
        if self._waiters:
            _close_waiters(self._waiters)

    def close(self) -> None:
        """Give up this object's roles and release its memory (idempotent;
        not ``close_producer()``: another producer may take over).  The
        waiter threads end first; a coroutine waiting in
        ``get_message_async``/``put_message_async`` gets ``ValueError``."""
        self._stop_waiters()
        super().close()

    # -- consumer -----------------------------------------------------------

    async def get_message_async(self, timeout: float | None = None) -> bytes:
        """Remove and return the next message, awaiting one if the ring is
        empty (no thread hop when a message is there).  As ``get_message``:
        ``queue.Empty`` at the timeout, ``EOFError`` once the producer
        closed and the ring is drained, ``ProducerDied``.  Cancelling it
        loses no message.  One caller at a time (``ConcurrentUseError``
        for a second consumer call while it waits)."""
        dl = FOREVER if timeout is None else deadline(True, timeout)
        get = self.get_message
        while True:
            try:
                return get(False)
            except queue.Empty:
                if dl == NOWAIT:
                    raise
            # Hold the consumer's try-lock while waiting, as get_message()
            # holds it while blocked: another consumer call (any thread,
            # any coroutine) is then ConcurrentUseError.
            lock = self._lock
            if not lock.acquire(False):
                raise busy("consumer")
            try:
                r = await self._wait_async(CONSUMER, 1, dl)
            finally:
                lock.release()
            if r == EAGAIN:
                raise queue.Empty
            if r == EDEAD:
                raise ProducerDied("the Kfifo is drained and its producer's "
                                   "process died without close_producer()")
            if r != EOF:  # EOF: the get above raises EOFError
                self._check(r)

    def __aiter__(self) -> KfifoAsync:
        """``async for msg in q``: messages until the producer closes and
        the ring is drained (as the blocking iterator)."""
        return self

    async def __anext__(self) -> bytes:
        try:
            try:  # a message there: no inner coroutine
                return self.get_message(False)
            except queue.Empty:
                return await self.get_message_async()
        except EOFError:
            raise StopAsyncIteration from None

    # -- producer -----------------------------------------------------------

    async def put_message_async(self, data: Any,
                                timeout: float | None = None) -> None:
        """Append one message, awaiting room if the ring is full (no thread
        hop when it fits).  As ``put_message``: ``queue.Full`` at the
        timeout, ``ValueError`` if it can never fit or the producer side is
        closed, ``ConsumerDied``.  Cancelled: the message is not sent."""
        dl = deadline(True, timeout)
        put = self.put_message
        while True:
            try:
                put(data, False)
                return
            except queue.Full:
                if dl == NOWAIT:
                    raise
            need = (len(data) if type(data) is bytes
                    else memoryview(data).nbytes) + REC_HDR
            r = await self._wait_async(PRODUCER, need, dl)
            if r == EAGAIN:
                raise full(0)
            if r == EDEAD:
                raise ConsumerDied("the Kfifo is full and its consumer's "
                                   "process died")
            self._check(r)


def _close_waiters(ws: dict[int, _Waiter]) -> None:
    for w in ws.values():
        w.close()
    ws.clear()
