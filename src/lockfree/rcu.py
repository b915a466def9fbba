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
release it when they exit; a process that inherits an object through fork
registers slots of its own.  Attach validates the shared state and copies its
geometry into a private handle (see ``lockfree._rcu_core``).  Grace-period waits run in C with the GIL
released, in slices of 50 ms so that Ctrl-C and timeouts are honoured.
"""

from __future__ import annotations

import functools
import threading
import weakref

from ._ffi import ffi, lib
from ._rcu_core import (DomainBase, Reclaimer, Section, check_callable,
                        check_capacity, lock_failed)
from .errors import (RcuDeadlockError, RcuError, RcuNotRegisteredError,
                     RcuRegistryFullError)
from .region import HEADER
from .rcu_buffer import RcuBuffer

__all__ = ["RcuDomain", "RcuCell", "RcuBuffer", "RcuError",
           "RcuRegistryFullError", "RcuNotRegisteredError",
           "RcuDeadlockError", "default_domain"]


class RcuDomain(DomainBase):
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
        capacity = check_capacity(capacity)

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
    def region_size(cls, capacity: int = 64) -> int:
        """Bytes a domain of ``capacity`` reader slots needs in a buffer."""
        return HEADER + lib.lf_rcu_domain_size(check_capacity(capacity))

    @classmethod
    def _state_size(cls, params) -> int:
        capacity, nslots = params[0], params[1]
        if nslots:
            raise ValueError("this RCU region holds an RcuBuffer")
        check_capacity(capacity)
        return lib.lf_rcu_domain_size(capacity)

    def _bind_calls(self) -> None:
        dh = ffi.new("struct lf_rcu_dh *")
        field = ffi.new("char **")
        rc = lib.lf_rcu_handle_init(dh, self._state, self._avail(),
                                    self._region.params[0], field)
        if rc:
            self._handle_failed(rc, field)
        self._init_domain(dh)
        self._reclaimer = Reclaimer(self)

    def read(self):
        """``with domain.read():`` a read section (no value): group reads
        of several cells of this domain in one section."""
        return Section(self._thread_reader())

    def call_rcu(self, fn, obj) -> None:
        """Run ``fn(obj)`` after a grace period, in the domain's reclaimer
        thread.  ``obj`` stays referenced until then."""
        if self.closed:
            self._closed()
        check_callable(fn, "call_rcu's fn")
        with self._reclaimer._cond:  # cookies in queue order
            self._reclaimer.call(lib.lf_rcu_start_poll(self._dh), fn, obj)

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
            lock_failed(self._r, rc)
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
        check_callable(callback, "retire's callback")
        self._domain.call_rcu(callback, old)

    def update(self, fn, callback=None):
        """Read-copy-update: publish ``fn(current)`` and return it.

        ``fn`` must build a new object (copy, then modify) and not mutate
        the current one, which readers may be using.  Updates of one cell
        are serialised, so none is lost.  ``callback(old)`` if given runs
        after a grace period.
        """
        check_callable(fn, "update's fn")
        if callback is not None:
            check_callable(callback, "update's callback")
        with self._wlock:
            old = self._value
            new = fn(old)
            self._value = new
        if callback is not None:
            self.retire(old, callback)
        return new

    def __repr__(self):
        return f"<RcuCell {self._value!r}>"
