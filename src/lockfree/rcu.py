"""RCU: read-copy-update with grace periods (see docs/rcu.md).

* ``RcuDomain``: reader slots + grace periods (the C ``lf_rcu_*`` domain).
  ``synchronize()`` waits until every read section that began before it has
  ended; ``call_rcu(fn, obj)`` runs ``fn(obj)`` after a grace period in the
  domain's Python reclaimer thread; ``barrier()``, ``start_poll()`` /
  ``poll_state()``.
* ``RcuCell``: one Python object published under a domain.
  ``with cell.read() as value:``, ``publish(new) -> old``, ``retire(old,
  callback)``, ``update(fn)``.
* ``RcuBuffer``: bytes in (shared) memory, several version slots; readers in
  any process get a zero-copy ``memoryview`` inside their read section.

Threads register a reader slot on their first read section (per domain) and
release it when they exit.  Grace-period waits run in C with the GIL
released, in slices of 50 ms so that Ctrl-C and timeouts are honoured.
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import threading
import time
import traceback
import types
import weakref

from .errors import (RcuDeadlockError, RcuError, RcuNotRegisteredError,
                     RcuRegistryFullError)
from ._ffi import ffi, lib
from .region import Primitive

__all__ = ["RcuDomain", "RcuCell", "RcuBuffer", "RcuError",
           "RcuRegistryFullError", "RcuNotRegisteredError",
           "RcuDeadlockError", "default_domain"]

_SLICE_NS = 50_000_000  # one C wait; Ctrl-C and deadlines are seen between


def _wait(call, timeout, what):
    """Run ``call(slice_ns)`` (a C wait) until it returns 0."""
    deadline = None
    if timeout is not None:
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
        deadline = time.monotonic() + timeout
    while True:
        ns = _SLICE_NS
        if deadline is not None:
            ns = max(0, min(ns, int((deadline - time.monotonic()) * 1e9)))
        rc = call(ns)
        if rc == 0:
            return
        if rc == -errno.EDEADLK:
            raise RcuDeadlockError(
                f"{what} inside a read section of the same RCU domain would "
                "wait for itself forever: leave the read section first")
        if rc != -errno.ETIMEDOUT:
            raise OSError(-rc, f"{what}: {os.strerror(-rc)}")
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"{what}: a reader was still inside a read section after "
                f"{timeout} s")


def _unregister(keep, dom, idx):
    """Finalizer of a _Reader; ``keep`` holds the domain's memory mapped."""
    lib.lf_rcu_unregister(dom, idx)


class _Reader:
    """One thread's reader slot in one domain.

    ``lock()`` / ``unlock()`` are bound cffi calls over the slot pointer
    while registered (one C call each), Python fallbacks otherwise.
    """

    def __init__(self, owner):
        self._owner = weakref.ref(owner)
        self._fin = None
        self.ptr = None
        self._unbind()

    def _unbind(self):
        self.lock = self._lock_unregistered
        self.unlock = self._unlock_unregistered

    def register(self):
        owner = self._owner()
        if owner is None or owner.closed:
            raise ValueError("operation on a closed RCU domain")
        if self.ptr is not None:
            return
        idx = lib.lf_rcu_register(owner._dom)
        if idx < 0:
            raise RcuRegistryFullError(
                f"all {owner._dom.capacity} reader slots of this RCU domain "
                "are taken: create it with a larger capacity, or unregister "
                "threads that no longer read")
        self.ptr = lib.lf_rcu_reader(owner._dom, idx)
        self.idx = idx
        self.lock = types.MethodType(owner._LOCK, self.ptr)
        self.unlock = types.MethodType(lib.lf_rcu_read_unlock, self.ptr)
        self._fin = weakref.finalize(self, _unregister, owner._keep,
                                     owner._dom, idx)
        with owner._tlock:
            owner._readers[idx] = self

    def depth(self) -> int:
        return 0 if self.ptr is None else lib.lf_rcu_read_depth(self.ptr)

    def unregister(self, closing=False):
        if self.ptr is None:
            return
        if self.depth():
            if not closing:
                raise RcuError("cannot unregister a thread inside a read "
                               "section")
        else:
            self._fin()
        self._fin.detach()
        self.ptr = None
        self._unbind()

    def _lock_unregistered(self):
        owner = self._owner()
        if owner is None or owner.closed:
            raise ValueError("read section on a closed RCU domain")
        if not owner._auto:
            raise RcuNotRegisteredError(
                "this thread holds no reader slot of the RCU domain (created "
                "with auto_register=False): call register_thread() first")
        self.register()
        return self.lock()

    def _unlock_unregistered(self):
        raise RcuNotRegisteredError("read_unlock in a thread that holds no "
                                    "reader slot")


class _ThreadReader(threading.local):
    """Per-thread: this thread's _Reader of one domain (made on first use;
    dropped, and its slot released, when the thread exits)."""

    def __init__(self, owner_ref):
        self.reader = _Reader(owner_ref())


def _lock_failed(rc):
    if rc == -errno.EPERM:
        raise RcuNotRegisteredError(
            "this thread's reader slot is not registered (unregistered by "
            "close(), or reclaimed as a dead reader)")
    raise OSError(-rc, os.strerror(-rc))


class _Section:
    """``with domain.read():`` -- a bare read section."""

    __slots__ = ("_r",)

    def __init__(self, reader):
        self._r = reader

    def __enter__(self):
        rc = self._r.lock()
        if rc:
            _lock_failed(rc)

    def __exit__(self, *exc):
        self._r.unlock()


class _DomainBase(Primitive):
    """What RcuDomain and RcuBuffer share: per-thread reader slots and grace
    periods over a C domain at ``self._dom``."""

    _KIND = lib.LF_KIND_RCU
    _LOCK = lib.lf_rcu_read_lock
    _auto = True

    def _init_domain(self, dom):
        self._dom = dom
        self._keep = self._state     # holds the memory while readers live
        self._tlock = threading.Lock()
        self._readers = weakref.WeakValueDictionary()
        self._local = _ThreadReader(weakref.ref(self))
        self._sync = types.MethodType(lib.lf_rcu_synchronize_timeout, dom)

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
        ``TimeoutError`` after ``timeout`` seconds.  A reader process that
        died inside a read section is detected (pid gone or zombie) and its
        slot reclaimed.  The wait runs without the GIL.
        """
        if self.closed:
            self._closed()
        _wait(self._sync, timeout, "synchronize")

    def start_poll(self) -> int:
        """A cookie for ``poll_state``: has a grace period elapsed since?"""
        if self.closed:
            self._closed()
        return lib.lf_rcu_start_poll(self._dom)

    def poll_state(self, cookie: int) -> bool:
        """True once a full grace period has elapsed since ``start_poll``."""
        if self.closed:
            self._closed()
        return bool(lib.lf_rcu_poll_state(self._dom, cookie))

    @property
    def stats(self) -> dict:
        """Counters: capacity, registered readers, completed grace periods,
        reader slots reclaimed from dead processes."""
        if self.closed:
            self._closed()
        d = self._dom
        return {"capacity": d.capacity, "readers": d.nr_readers,
                "grace_periods": d.nr_gp, "dead_readers": d.nr_dead}

    def close(self) -> None:
        """Release this process's reader slots and the memory; idempotent.
        Must not race with read sections of other threads."""
        if self.closed:
            return
        with self._tlock:
            readers = list(self._readers.values())
        for r in readers:
            r.unregister(closing=True)
        self._sync = self._dom = self._keep = None
        super().close()

    @staticmethod
    def _check_capacity(capacity) -> int:
        if not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, not "
                            f"{type(capacity).__name__}")
        if not 1 <= capacity <= lib.LF_RCU_MAX_READERS:
            raise ValueError(f"capacity (reader slots) must be in 1.."
                             f"{lib.LF_RCU_MAX_READERS}, got {capacity}")
        return capacity


class _Reclaimer:
    """call_rcu for Python callbacks: a daemon thread per domain that waits
    for a grace period per batch, then runs the batch (in queue order)."""

    def __init__(self, domain):
        self._sync = domain._sync      # bound C calls: no domain reference
        self._poll = functools.partial(lib.lf_rcu_poll_state, domain._dom)
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
                _wait(self._sync, None, "RCU reclaimer")
            for _, fn, obj in batch:
                if fn is None:
                    continue
                try:
                    fn(obj)
                except Exception:  # a bad callback must not stop the rest
                    traceback.print_exc()
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()


class RcuDomain(_DomainBase):
    """Grace periods shared by several ``RcuCell``s (or C readers).

    ``RcuDomain(capacity=64)``: at most ``capacity`` threads registered at
    once (each holds one 64-byte reader slot).  Placement keywords as for
    every lockfree primitive (``shared=``, ``name=``, ``buffer=``,
    ``offset=``); ``auto_register=False`` makes read sections in threads
    that did not call ``register_thread()`` raise ``RcuNotRegisteredError``.
    """

    _CTYPE = "struct lf_rcu_domain *"

    def __init__(self, capacity: int = 64, *, auto_register: bool = True,
                 buffer=None, offset: int = 0, name: str | None = None,
                 shared: bool = False):
        capacity = self._check_capacity(capacity)

        def init(state):
            if lib.lf_rcu_init(state, capacity):
                raise ValueError("bad RCU domain parameters")
        self._create((capacity, 0, 0, 0), init, buffer=buffer,
                     offset=offset, name=name, shared=shared)
        self._auto = auto_register

    @classmethod
    def _attach_mismatch(cls, region):
        if region.params[1]:  # nslots: only an RcuBuffer has version slots
            return ("this RCU region holds an RcuBuffer, not an RcuDomain: "
                    "attach it with RcuBuffer.attach()")
        return None

    @classmethod
    def _state_size(cls, params) -> int:
        capacity, nslots = params[0], params[1]
        if nslots:
            raise ValueError("this RCU region holds an RcuBuffer")
        cls._check_capacity(capacity)
        return lib.lf_rcu_domain_size(capacity)

    def _bind_calls(self) -> None:
        self._init_domain(self._state)
        self._reclaimer = _Reclaimer(self)

    def read(self):
        """``with domain.read():`` a read section (no value): group reads
        of several cells of this domain in one section."""
        return _Section(self._thread_reader())

    def call_rcu(self, fn, obj) -> None:
        """Run ``fn(obj)`` after a grace period, in the domain's reclaimer
        thread.  ``obj`` stays referenced until then."""
        if self.closed:
            self._closed()
        with self._reclaimer._cond:  # cookies in queue order
            self._reclaimer.call(lib.lf_rcu_start_poll(self._dom), fn, obj)

    def barrier(self, timeout: float | None = None) -> None:
        """Wait until every callback queued before the call has run."""
        if self.closed:
            self._closed()
        if self._local.reader.depth():
            raise RcuDeadlockError("barrier inside a read section would wait "
                                   "for itself forever")
        self._reclaimer.barrier(timeout)

    def close(self) -> None:
        """Run the pending callbacks (waits for their grace period), stop
        the reclaimer thread, release the slots and the memory."""
        if self.closed:
            return
        self.barrier()
        self._reclaimer.stop()
        super().close()

    def __repr__(self):
        if self.closed:
            return f"<RcuDomain {self._placement()}>"
        s = self.stats
        return (f"<RcuDomain capacity={s['capacity']} readers={s['readers']}"
                f" {self._placement()}>")


_default = None
_default_lock = threading.Lock()


def default_domain() -> RcuDomain:
    """The process-wide domain of cells created without ``domain=``
    (capacity 1024 reader threads)."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = RcuDomain(1024)
        return _default


class _CellRead:
    __slots__ = ("_r", "_cell")

    def __init__(self, reader, cell):
        self._r = reader
        self._cell = cell

    def __enter__(self):
        rc = self._r.lock()
        if rc:
            _lock_failed(rc)
        return self._cell._value

    def __exit__(self, *exc):
        self._r.unlock()


class _CellLocal(threading.local):
    def __init__(self, cell_ref):
        cell = cell_ref()
        self.cm = _CellRead(cell._domain._thread_reader(), cell)


class RcuCell:
    """A Python object published under an RCU domain.

    Readers: ``with cell.read() as value:`` never blocks and never waits
    for writers.  Writers: ``publish(new)`` returns the old object;
    ``retire(old, callback)`` runs ``callback(old)`` once every reader that
    could still see ``old`` has left; ``synchronize()`` waits for them.
    """

    def __init__(self, initial=None, domain: RcuDomain | None = None):
        self._domain = default_domain() if domain is None else domain
        if not isinstance(self._domain, RcuDomain):
            raise TypeError("domain must be an RcuDomain, not "
                            f"{type(self._domain).__name__}")
        self._value = initial
        self._wlock = threading.Lock()
        # read() is getattr on a thread-local: C calls only, no frame.
        self.read = functools.partial(getattr,
                                      _CellLocal(weakref.ref(self)), "cm")

    @property
    def domain(self) -> RcuDomain:
        return self._domain

    def read(self):  # documentation; instances use the partial above
        """``with cell.read() as value:`` a read section; ``value`` is the
        object published when it began.  The thread registers on first
        use.  Nested sections are allowed."""

    def get(self):
        """The current object, without a read section (writers; or inside
        ``with domain.read():``)."""
        return self._value

    def publish(self, new):
        """Make ``new`` the current object; return the previous one (which
        readers may still be using: ``retire`` or ``synchronize``)."""
        with self._wlock:
            old, self._value = self._value, new
        return old

    def synchronize(self, timeout: float | None = None) -> None:
        """Wait for every read section of the domain begun before now."""
        self._domain.synchronize(timeout)

    def retire(self, old, callback) -> None:
        """Run ``callback(old)`` after a grace period (reclaimer thread)."""
        self._domain.call_rcu(callback, old)

    def update(self, fn, callback=None):
        """Read-copy-update: publish ``fn(current)`` and return it.

        ``fn`` must build a new object (copy, then modify) and not mutate
        the current one, which readers may be using.  Updates of one cell
        are serialised, so none is lost.  ``callback(old)`` if given runs
        after a grace period.
        """
        with self._wlock:
            old = self._value
            new = fn(old)
            self._value = new
        if callback is not None:
            self.retire(old, callback)
        return new

    def __repr__(self):
        return f"<RcuCell {self._value!r}>"


class _BufRead:
    __slots__ = ("_r", "_data", "_ss", "_views")

    def __init__(self, reader, buf):
        self._r = reader
        self._data = buf._data
        self._ss = buf._slot_size
        self._views = []

    def __enter__(self):
        desc = self._r.lock()
        if desc < 0:
            _lock_failed(desc)
        off = (desc & 255) * self._ss
        view = self._data[off:off + (desc >> 8)]
        self._views.append(view)
        return view

    def __exit__(self, *exc):
        try:
            self._views.pop().release()
        except BufferError:  # re-exported (numpy...): stays mapped, unsafe
            pass
        finally:
            self._r.unlock()


class _BufLocal(threading.local):
    def __init__(self, buf_ref):
        buf = buf_ref()
        self.cm = _BufRead(buf._thread_reader(), buf)


class RcuBuffer(_DomainBase):
    """Bytes published with RCU, readable zero-copy from several processes.

    ``RcuBuffer(size, initial=b"", slots=3, capacity=64, shared=True)``:
    versions of up to ``size`` bytes in ``slots`` slots.  ``with
    buf.read() as view:`` gives a read-only ``memoryview`` of the current
    version, valid until the end of the section (it is released then).
    ``publish(data)`` copies into a free slot and publishes; a slot is
    reused only after a grace period.  Picklable to worker processes when
    in named shared memory.
    """

    _CTYPE = "struct lf_rcu_buf *"
    _LOCK = lib.lf_rcu_buf_read_lock

    def __init__(self, size: int, initial=b"", *, slots: int = 3,
                 capacity: int = 64, auto_register: bool = True,
                 buffer=None, offset: int = 0, name: str | None = None,
                 shared: bool = False):
        params = (capacity, slots, size, 0)
        self._state_size(params)

        def init(state):
            if lib.lf_rcu_buf_init(state, capacity, slots, size):
                raise ValueError("bad RcuBuffer parameters")
        self._create(params, init, buffer=buffer, offset=offset, name=name,
                     shared=shared)
        self._auto = auto_register
        if len(initial):
            self.publish(initial)

    @classmethod
    def _attach_mismatch(cls, region):
        if not region.params[1]:  # no version slots: a plain domain
            return ("this RCU region holds an RcuDomain, not an RcuBuffer: "
                    "attach it with RcuDomain.attach()")
        return None

    @classmethod
    def _state_size(cls, params) -> int:
        capacity, nslots, size = params[0], params[1], params[2]
        cls._check_capacity(capacity)
        if not isinstance(nslots, int) or not isinstance(size, int):
            raise TypeError("slots and size must be ints")
        if not 2 <= nslots <= lib.LF_RCU_BUF_MAX_SLOTS:
            raise ValueError(f"slots must be in 2..{lib.LF_RCU_BUF_MAX_SLOTS}"
                             f", got {nslots}")
        if not 1 <= size <= 1 << 40:
            raise ValueError(f"size must be in 1..2**40 bytes, got {size}")
        return lib.lf_rcu_buf_size(capacity, nslots, size)

    def _bind_calls(self) -> None:
        self._init_domain(lib.lf_rcu_buf_domain(self._state))
        total = self._state_size(self._region.params)
        # ffi.buffer keeps self._state, hence the mapping, alive: views
        # that outlive close() never see unmapped memory.
        data = memoryview(ffi.buffer(self._state, total)).toreadonly()
        self._data = data[self._state.data_off:]
        self._slot_size = self._state.slot_size
        self.size = self._region.params[2]
        self.read = functools.partial(getattr,
                                      _BufLocal(weakref.ref(self)), "cm")
        self._bound.append("read")

    def read(self):  # documentation; instances use the partial above
        """``with buf.read() as view:`` the current version as a read-only
        memoryview, released when the section ends: copy (``bytes(view)``)
        what must outlive it."""
        self._closed()

    def publish(self, data, timeout: float | None = None) -> int:
        """Publish a copy of ``data`` (bytes-like, at most ``size`` bytes)
        as the new version; return its version number.

        Needs a free slot: if every other slot still holds a version that
        readers may see, waits for a grace period (``TimeoutError`` after
        ``timeout`` s; a reader process that died inside a read section is
        detected and skipped).
        """
        if self.closed:
            self._closed()
        src = ffi.from_buffer(data)
        n = len(src)
        if n > self.size:
            raise ValueError(f"{n} bytes do not fit in a slot of "
                             f"{self.size} bytes")
        state = self._state
        _wait(lambda ns: lib.lf_rcu_buf_publish(state, src, n, ns), timeout,
              "RcuBuffer.publish")
        return lib.lf_rcu_buf_version(state)

    @property
    def version(self) -> int:
        """Number of the current version (0: the initial empty one)."""
        if self.closed:
            self._closed()
        return lib.lf_rcu_buf_version(self._state)

    @property
    def stats(self) -> dict:
        s = super().stats
        s["slots_recycled"] = self._state.nr_recycled
        return s

    def close(self) -> None:
        if self.closed:
            return
        self._data = None
        super().close()

    def __repr__(self):
        if self.closed:
            return f"<RcuBuffer {self._placement()}>"
        return (f"<RcuBuffer size={self.size} version={self.version} "
                f"{self._placement()}>")
