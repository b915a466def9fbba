"""What RcuDomain and RcuBuffer share: per-process handles, per-thread
reader registrations, grace periods and the call_rcu reclaimer thread.

Shared memory is input from other processes: at create or attach the C side
validates the domain (and the buffer's geometry) once and copies it into a
private handle (``struct lf_rcu_dh`` / ``lf_rcu_bh``, see csrc/rcu.h); every
call afterwards goes through the handle.  Each thread's registration is a
private ``struct lf_rcu_rh``: a copy inherited through ``fork`` registers a
slot of its own on its first read section in the child, so parent and child
never share a reader slot.
"""

from __future__ import annotations

import collections
import threading
import traceback
import types
import weakref

from . import _wait
from .errors import (ConcurrentUseError, CorruptStateError, RcuDeadlockError,
                     RcuError, RcuNotRegisteredError, RcuRegistryFullError,
                     raise_for)
from ._ffi import ffi, lib
from .region import HEADER, Primitive


def check_capacity(capacity) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not "
                        f"{type(capacity).__name__}")
    if not 1 <= capacity <= lib.LF_RCU_MAX_READERS:
        raise ValueError(f"capacity (reader slots) must be in 1.."
                         f"{lib.LF_RCU_MAX_READERS}, got {capacity}")
    return capacity


def check_callable(fn, name: str):
    if not callable(fn):
        raise TypeError(f"{name} must be callable, not {type(fn).__name__}")


def sync_failed(rc: int, what: str, timeout) -> None:
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


def lock_failed(reader, rc: int) -> int:
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
        n = "" if owner is None or owner.closed else f"{owner._dh.capacity} "
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


def _unregister(keep, rh):
    """Finalizer of a _Reader; ``keep`` holds the memory and the handles."""
    lib.lf_rcu_unregister(rh)


class _Reader:
    """One thread's registration in one domain: ``lock()`` / ``unlock()``
    are bound cffi calls over its private handle (one C call each)."""

    def __init__(self, owner):
        self.owner = weakref.ref(owner)
        self.rh = ffi.new("struct lf_rcu_rh *")
        lib.lf_rcu_rh_init(self.rh, owner._dh,
                           ffi.NULL if owner._bh is None else owner._bh)
        self._keep = owner._keep
        self.lock = types.MethodType(owner._LOCK, self.rh)
        self.unlock = types.MethodType(lib.lf_rcu_read_unlock, self.rh)
        self._fin = weakref.finalize(self, _unregister, owner._keep, self.rh)
        with owner._tlock:
            owner._readers.add(self)

    @property
    def registered(self) -> bool:
        return self.rh.idx >= 0

    def register(self):
        owner = self.owner()
        if owner is None or owner.closed:
            raise ValueError("operation on a closed RCU object")
        if lib.lf_rcu_register(self.rh) < 0:
            lock_failed(self, lib.LF_ENOSPC)

    def depth(self) -> int:
        return lib.lf_rcu_read_depth(self.rh)

    def unregister(self, closing=False):
        rc = lib.lf_rcu_unregister(self.rh)
        if rc and not closing:
            raise RcuError("cannot unregister a thread inside a read "
                           "section")


class _ThreadReader(threading.local):
    """Per-thread: this thread's _Reader of one domain (made on first use;
    dropped, and its slot released, when the thread exits)."""

    def __init__(self, owner_ref):
        self.reader = _Reader(owner_ref())


class Section:
    """``with domain.read():`` -- a bare read section."""

    __slots__ = ("_r",)

    def __init__(self, reader):
        self._r = reader

    def __enter__(self):
        rc = self._r.lock()
        if rc:
            lock_failed(self._r, rc)

    def __exit__(self, *exc):
        self._r.unlock()


class DomainBase(Primitive):
    """Per-thread reader slots and grace periods over a validated handle
    ``self._dh`` (and ``self._bh`` for an RcuBuffer)."""

    _KIND = lib.LF_KIND_RCU
    _LOCK = lib.lf_rcu_read_lock
    _auto = True
    _bh = None

    def _handle_failed(self, rc, field):
        """Attach (or create) found the state corrupt: release, raise."""
        what = type(self).__name__
        region = self._region
        self._state = self._region = None
        self._bound = []
        region.close()
        if rc == lib.LF_ECORRUPT:
            name = ffi.string(field[0]).decode() if field[0] else None
            raise CorruptStateError(what, field=name)
        raise_for(rc, what)

    def _avail(self) -> int:
        """Bytes mapped from the state on (not what the header says)."""
        return self._region.avail - HEADER

    def _init_domain(self, dh, bh=None):
        self._dh = dh
        self._bh = bh
        # Holds the memory (gc'd state pointer) and the handles while
        # readers live.
        self._keep = (self._state, dh, bh)
        self._tlock = threading.Lock()
        self._readers = weakref.WeakSet()
        self._local = _ThreadReader(weakref.ref(self))
        self._sync = types.MethodType(lib.lf_rcu_synchronize_until, dh)

    def _thread_reader(self) -> _Reader:
        if self.closed:
            self._closed()
        return self._local.reader

    def register_thread(self) -> None:
        """Take a reader slot for the calling thread now (read sections do
        it on first use unless ``auto_register=False``).  Raises
        ``RcuRegistryFullError`` if all slots are taken."""
        self._thread_reader().register()

    def unregister_thread(self) -> None:
        """Release the calling thread's slot (threads release it on exit)."""
        self._thread_reader().unregister()

    def synchronize(self, timeout: float | None = None) -> None:
        """Wait until every read section begun before the call has ended.

        Raises ``RcuDeadlockError`` inside a read section of this domain,
        ``TimeoutError`` after ``timeout`` seconds (``ValueError`` for a
        negative or NaN timeout).  A reader process that died inside a read
        section is detected (pid gone or zombie) and its slot reclaimed.
        The wait runs without the GIL, in slices so that Ctrl-C works.
        """
        if self.closed:
            self._closed()
        deadline = _wait.deadline_in(timeout)
        sync_failed(_wait.wait(self._sync, deadline), "synchronize",
                    timeout)

    def start_poll(self) -> int:
        """A cookie for ``poll_state``: has a grace period elapsed since?"""
        if self.closed:
            self._closed()
        return lib.lf_rcu_start_poll(self._dh)

    def poll_state(self, cookie: int) -> bool:
        """True once a full grace period has elapsed since ``start_poll``."""
        if self.closed:
            self._closed()
        if isinstance(cookie, bool) or not isinstance(cookie, int):
            raise TypeError(f"cookie must be an int from start_poll(), not "
                            f"{type(cookie).__name__}")
        if not 0 <= cookie < 1 << 64:
            raise ValueError(f"cookie out of range: {cookie}")
        return bool(lib.lf_rcu_poll_state(self._dh, cookie))

    @property
    def stats(self) -> dict:
        """Counters: capacity, registered readers, completed grace periods,
        reader slots reclaimed from dead processes."""
        if self.closed:
            self._closed()
        d = self._dh.d
        return {"capacity": self._dh.capacity, "readers": d.nr_readers,
                "grace_periods": d.nr_gp, "dead_readers": d.nr_dead}

    def close(self) -> None:
        """Release this process's reader slots and the memory; idempotent.
        Must not race with read sections of other threads."""
        if self.closed:
            return
        with self._tlock:
            readers = list(self._readers)
        for r in readers:
            r.unregister(closing=True)
        self._sync = None
        super().close()


class Reclaimer:
    """call_rcu for Python callbacks: a daemon thread per domain that waits
    for a grace period per batch, then runs the batch (in queue order)."""

    def __init__(self, domain):
        self._sync = domain._sync      # bound C calls: no domain reference
        self._poll = types.MethodType(lib.lf_rcu_poll_state, domain._dh)
        self._cond = threading.Condition()
        self._queue = collections.deque()
        self._queued = self._done = 0
        self._thread = None
        self._stop = False

    def call(self, cookie, fn, obj):
        with self._cond:
            if self._stop:
                raise ValueError("call_rcu on a closed RCU domain")
            self._queue.append((cookie, fn, obj))
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lockfree-rcu-reclaimer",
                    daemon=True)
                self._thread.start()
            self._cond.notify()

    def barrier(self, timeout=None):
        if timeout is not None:
            timeout = _wait.seconds(timeout)
        with self._cond:
            target = self._queued
            if not self._cond.wait_for(lambda: self._done >= target,
                                       timeout):
                raise TimeoutError("RCU barrier: callbacks still pending "
                                   f"after {timeout} s")

    def stop(self, timeout=None):
        with self._cond:
            self._stop = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _grace_period(self):
        """Wait for one (in slices).  This thread is never a reader, so no
        LF_EDEADLK; any other code can only come from a scribbled domain:
        the batch then runs now (Python objects: wrong order, no crash)."""
        _wait.wait(self._sync, _wait.FOREVER)

    def _run(self):
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
            # Cookies grow in queue order: the last one covers the batch.
            if not self._poll(batch[-1][0]):
                self._grace_period()
            for _, fn, obj in batch:
                try:
                    fn(obj)
                except Exception:  # a bad callback must not stop the rest
                    traceback.print_exc()
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()
