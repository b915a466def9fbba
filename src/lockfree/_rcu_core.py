"""What RcuDomain and RcuBuffer share: per-process handles, per-thread
reader registrations, grace periods and the call_rcu reclaimer thread.

Shared memory is input from other processes: at create or attach the C side
validates the domain (and the buffer's geometry) once and copies it into a
private handle (``struct lf_rcu_dh`` / ``lf_rcu_bh``, see csrc/rcu.h); every
call afterwards goes through the handle (``self._h`` is the domain handle;
after ``close()`` reading it raises ``ValueError``, see lockfree.region).
Each thread's registration is a private ``struct lf_rcu_rh``: a copy
inherited through ``fork`` registers a slot of its own on its first read
section in the child, so parent and child never share a reader slot.
"""

from __future__ import annotations

import collections
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from . import _wait
from ._ffi import ffi, lib
from .errors import (
    ConcurrentUseError,
    CorruptStateError,
    RcuDeadlockError,
    RcuError,
    RcuNotRegisteredError,
    RcuRegistryFullError,
    raise_for,
)
from .region import HEADER, Primitive


def check_capacity(capacity: object) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not "
                        f"{type(capacity).__name__}")
    if not 1 <= capacity <= lib.LF_RCU_MAX_READERS:
        raise ValueError(f"capacity (reader slots) must be in 1.."
                         f"{lib.LF_RCU_MAX_READERS}, got {capacity}")
    return capacity


def check_callable(fn: object, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, not {type(fn).__name__}")


def sync_failed(rc: int, what: str, timeout: float | None) -> None:
    """Raise for a grace-period wait's result (0: return)."""
    if rc == 0:
        return
    if rc == lib.LF_EAGAIN:
        raise TimeoutError(f"{what}: a reader was still inside a read "
                           f"section after {timeout} s")
    if rc == lib.LF_EDEADLK:
        raise RcuDeadlockError(
            f"{what} inside a read section of the same RCU domain would "
            "wait for itself forever: leave the read section first")
    if rc == lib.LF_ECORRUPT:
        raise CorruptStateError(what, field="RcuBuffer version slots")
    raise_for(rc, what)


def lock_failed(reader: _Reader, rc: int) -> int:
    """A read_lock returned ``rc`` < 0: register and retry (first section
    of a thread), or raise.  Returns the retried lock's result."""
    if rc == lib.LF_EPERM and not reader.registered:
        owner = reader.owner()
        if owner is None or owner.closed:
            raise ValueError("read section on a closed RCU object")
        if not owner._auto:
            raise RcuNotRegisteredError(
                "this thread holds no reader slot of the RCU domain (created "
                "with auto_register=False): call register_thread() first")
        reader.register()
        rc = reader.lock()
        if rc >= 0:
            return rc
    if rc == lib.LF_EPERM:
        raise RcuNotRegisteredError(
            "this thread's reader slot is not registered (unregistered by "
            "close(), or reclaimed as a dead reader)")
    if rc == lib.LF_ENOSPC:
        owner = reader.owner()
        n = "" if owner is None or owner.closed else f"{reader.capacity} "
        raise RcuRegistryFullError(
            f"all {n}reader slots of this RCU domain are taken: create it "
            "with a larger capacity, or unregister threads that no longer "
            "read")
    if rc == lib.LF_EMISUSE:
        raise ConcurrentUseError("an RCU reader registration of another "
                                 "thread was used")
    if rc == lib.LF_ECORRUPT:
        raise CorruptStateError("RcuBuffer",
                                field="current (slot number) or meta.length")
    raise_for(rc, "RCU read section")


def _unregister(keep: object, rh: Any) -> None:
    """Finalizer of a _Reader; ``keep`` holds the memory and the handles."""
    lib.lf_rcu_unregister(rh)


class _Reader:
    """One thread's registration in one domain, over its private handle
    ``rh`` (read sections call the C read_lock/unlock on ``rh`` directly)."""

    __slots__ = ("owner", "rh", "capacity", "_lock", "_keep", "_fin",
                 "__weakref__")

    def __init__(self, owner: DomainBase) -> None:
        dh = owner._h  # ValueError once the owner is closed
        self.owner = weakref.ref(owner)
        self.rh = ffi.new("struct lf_rcu_rh *")
        lib.lf_rcu_rh_init(self.rh, dh,
                           ffi.NULL if owner._bh is None else owner._bh)
        self.capacity = int(dh.capacity)
        self._lock = owner._LOCK
        self._keep = owner._keep
        self._fin = weakref.finalize(self, _unregister, owner._keep, self.rh)
        with owner._tlock:
            owner._readers.add(self)

    @property
    def registered(self) -> bool:
        return bool(self.rh.idx >= 0)

    def lock(self) -> int:
        return int(self._lock(self.rh))

    def register(self) -> None:
        owner = self.owner()
        if owner is None or owner.closed:
            raise ValueError("operation on a closed RCU object")
        if lib.lf_rcu_register(self.rh) < 0:
            lock_failed(self, lib.LF_ENOSPC)

    def depth(self) -> int:
        return int(lib.lf_rcu_read_depth(self.rh))

    def unregister(self, closing: bool = False) -> None:
        rc = lib.lf_rcu_unregister(self.rh)
        if rc and not closing:
            raise RcuError("cannot unregister a thread inside a read "
                           "section")


class ReadSection:
    """What ``RcuDomain.read()`` returns: ``with domain.read():`` is a bare
    read section of the calling thread (one object per thread; nesting is
    allowed).  Entering never blocks: two C calls (read_lock, read_unlock)."""

    __slots__ = ("_rh", "_reader")

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        self._rh = reader.rh

    def __enter__(self, *, _lock: Any = lib.lf_rcu_read_lock) -> None:
        """Begin the section (registers the thread on its first one)."""
        rc = _lock(self._rh)
        if rc:
            lock_failed(self._reader, rc)

    def __exit__(self, *exc: object,
                 _unlock: Any = lib.lf_rcu_read_unlock) -> None:
        """End the section."""
        _unlock(self._rh)


class _ThreadReader(threading.local):
    """Per-thread: this thread's _Reader of one domain and the context
    manager its ``read()`` returns (made on first use; dropped, and the slot
    released, when the thread exits)."""

    def __init__(self, owner_ref: weakref.ref[DomainBase]) -> None:
        owner = owner_ref()
        if owner is None:  # pragma: no cover - the caller holds it
            raise ValueError("operation on a collected RCU object")
        self.reader = _Reader(owner)
        self.section = owner._section(self.reader)


class ClosedLocal:
    """``_local`` of a closed domain or buffer: every read raises."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise ValueError(f"operation on a closed {self._what}")


class DomainBase(Primitive):
    """Per-thread reader slots and grace periods over a validated handle
    ``self._h`` (and ``self._bh`` for an RcuBuffer)."""

    _KIND = lib.LF_KIND_RCU
    _LOCK: Any = lib.lf_rcu_read_lock  # the C read_lock of this kind
    _auto = True
    _bh: Any = None
    _local: Any

    def _handle_failed(self, rc: int, field: Any) -> None:
        """Attach (or create) found the state corrupt: release, raise."""
        what = type(self).__name__
        region: Any = self._region
        self._state = self._region = None
        region.close()
        if rc == lib.LF_ECORRUPT:
            name = ffi.string(field[0]).decode() if field[0] else None
            raise CorruptStateError(what, field=name)
        raise_for(rc, what)

    def _avail(self) -> int:
        """Bytes mapped from the state on (not what the header says)."""
        region: Any = self._region
        return int(region.avail) - int(HEADER)

    def _init_domain(self, dh: Any, bh: Any = None) -> None:
        self._h = dh
        self._bh = bh
        # Holds the memory (gc'd state pointer) and the handles while
        # readers live.
        self._keep = (self._state, dh, bh)
        self._tlock = threading.Lock()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._local = _ThreadReader(weakref.ref(self))

    def _section(self, reader: _Reader) -> Any:
        """The per-thread object ``read()`` returns (made once a thread)."""
        return ReadSection(reader)

    def _thread_reader(self) -> _Reader:
        reader: _Reader = self._local.reader  # ValueError once closed
        return reader

    def _sync_slice(self, end: int) -> int:
        """One slice of a grace-period wait (for ``_wait.wait``)."""
        return int(lib.lf_rcu_synchronize_until(self._h, end))

    def register_thread(self) -> None:
        """Take a reader slot for the calling thread now.

        Read sections do it on their first use unless the object was
        created with ``auto_register=False``.  Raises
        ``RcuRegistryFullError`` if all ``capacity`` slots are taken,
        ``ValueError`` once closed.  One C call (a scan of the slots).
        """
        self._thread_reader().register()

    def unregister_thread(self) -> None:
        """Release the calling thread's slot now (threads release it when
        they exit).  Raises ``RcuError`` inside a read section,
        ``ValueError`` once closed."""
        self._thread_reader().unregister()

    def synchronize(self, timeout: float | None = None) -> None:
        """Wait until every read section begun before the call has ended.

        Call it from any thread outside a read section of this domain:
        inside one it raises ``RcuDeadlockError``.  ``TimeoutError`` after
        ``timeout`` seconds (``None``: no limit; ``ValueError`` for a
        negative or NaN timeout, ``TypeError`` for a non-number),
        ``ValueError`` once closed.  A reader process that died inside a
        read section is detected (pid gone or zombie) and its slot
        reclaimed.  The wait runs in C without the GIL, in 50 ms slices so
        that Ctrl-C works; with no reader inside a section it costs one
        scan of the slots.
        """
        deadline = _wait.deadline_in(timeout)
        sync_failed(_wait.wait(self._sync_slice, deadline), "synchronize",
                    timeout)

    def start_poll(self) -> int:
        """A cookie for ``poll_state()``: has a grace period elapsed since
        this call?  Never waits (one C call); any thread."""
        return int(lib.lf_rcu_start_poll(self._h))

    def poll_state(self, cookie: int) -> bool:
        """True once a full grace period has elapsed since the
        ``start_poll()`` that returned ``cookie``.  Never waits (one C
        call, which may scan the slots); ``TypeError`` for a non-int,
        ``ValueError`` for a cookie outside 0..2**64-1 or once closed."""
        h = self._h
        if isinstance(cookie, bool) or not isinstance(cookie, int):
            raise TypeError(f"cookie must be an int from start_poll(), not "
                            f"{type(cookie).__name__}")
        if not 0 <= cookie < 1 << 64:
            raise ValueError(f"cookie out of range: {cookie}")
        return bool(lib.lf_rcu_poll_state(h, cookie))

    @property
    def stats(self) -> dict[str, int]:
        """Counters: capacity, registered readers, completed grace periods,
        reader slots reclaimed from dead processes (``ValueError`` once
        closed)."""
        h = self._h
        d = h.d
        return {"capacity": int(h.capacity), "readers": int(d.nr_readers),
                "grace_periods": int(d.nr_gp), "dead_readers": int(d.nr_dead)}

    def close(self) -> None:
        """Release this process's reader slots and the memory; idempotent.
        Must not race with read sections of other threads."""
        if self.closed:
            return
        with self._tlock:
            readers = list(self._readers)
        for r in readers:
            r.unregister(closing=True)
        self._local = ClosedLocal(type(self).__name__)
        super().close()


class Reclaimer:
    """call_rcu for Python callbacks: a daemon thread per domain that waits
    for a grace period per batch, then runs the batch (in queue order).

    Holds the domain's handle and memory (``keep``), not the domain."""

    def __init__(self, dh: Any, keep: object) -> None:
        self._dh = dh
        self._keep = keep
        self.cond = threading.Condition()
        self._queue: collections.deque[
            tuple[int, Callable[[Any], object], object]] = collections.deque()
        self._queued = self._done = 0
        self._thread: threading.Thread | None = None
        self._stop = False

    def call(self, fn: Callable[[Any], object], obj: object) -> None:
        with self.cond:  # cookies in queue order
            if self._stop:
                raise ValueError("call_rcu on a closed RCU domain")
            self._queue.append((int(lib.lf_rcu_start_poll(self._dh)), fn,
                                obj))
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lockfree-rcu-reclaimer",
                    daemon=True)
                self._thread.start()
            self.cond.notify()

    def barrier(self, timeout: float | None = None) -> None:
        if timeout is not None:
            timeout = _wait.seconds(timeout)
        with self.cond:
            target = self._queued
            if not self.cond.wait_for(lambda: self._done >= target,
                                      timeout):
                raise TimeoutError("RCU barrier: callbacks still pending "
                                   f"after {timeout} s")

    def stop(self, timeout: float | None = None) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _sync_slice(self, end: int) -> int:
        return int(lib.lf_rcu_synchronize_until(self._dh, end))

    def _grace_period(self) -> None:
        """Wait for one (in slices).  This thread is never a reader, so no
        LF_EDEADLK; any other code can only come from a scribbled domain:
        the batch then runs now (Python objects: wrong order, no crash)."""
        _wait.wait(self._sync_slice, _wait.FOREVER)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._queue and not self._stop:
                    self.cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
            # Cookies grow in queue order: the last one covers the batch.
            if not lib.lf_rcu_poll_state(self._dh, batch[-1][0]):
                self._grace_period()
            for _, fn, obj in batch:
                try:
                    fn(obj)
                except Exception:  # a bad callback must not stop the rest
                    traceback.print_exc()
            with self.cond:
                self._done += len(batch)
                self.cond.notify_all()
