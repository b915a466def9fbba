"""RCU: read-copy-update with grace periods (see docs/rcu.md).

* ``RcuDomain``: reader slots + grace periods (the C ``lf_rcu_*`` domain).
  ``synchronize()`` waits until every read section that began before it has
  ended; ``call_rcu(fn, obj)`` runs ``fn(obj)`` after a grace period in the
  domain's Python reclaimer thread; ``barrier()``, ``start_poll()`` /
  ``poll_state()``.
* ``RcuCell[T]``: one Python object published under a domain.
  ``with cell.read() as value:``, ``publish(new) -> old``, ``retire(old,
  callback)``, ``update(fn)``.
* ``RcuBuffer``: bytes in (shared) memory, several version slots; readers in
  any process get a zero-copy ``memoryview`` inside their read section.

Threads register a reader slot on their first read section (per domain) and
release it when they exit; a process that inherits an object through fork
registers slots of its own.  Attach validates the shared state and copies
its geometry into a private handle (see ``lockfree._rcu_core``).
Grace-period waits run in C with the GIL released, in slices of 50 ms so
that Ctrl-C and timeouts are honoured.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from ._ffi import ffi, lib
from ._rcu_core import (
    DomainBase,
    ReadSection,
    Reclaimer,
    _Reader,
    check_callable,
    check_capacity,
    lock_failed,
)
from .errors import (
    RcuDeadlockError,
    RcuError,
    RcuNotRegisteredError,
    RcuRegistryFullError,
)
from .rcu_buffer import BufferRead, RcuBuffer
from .region import HEADER

__all__ = ["RcuDomain", "RcuCell", "RcuBuffer", "RcuError",
           "RcuRegistryFullError", "RcuNotRegisteredError",
           "RcuDeadlockError", "default_domain", "ReadSection", "CellRead",
           "BufferRead"]

T = TypeVar("T")


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
                 buffer: Any = None, offset: int = 0,
                 name: str | None = None, shared: bool = False) -> None:
        capacity = check_capacity(capacity)

        def init(state: Any) -> None:
            if lib.lf_rcu_init(state, capacity):
                raise ValueError("bad RCU domain parameters")
        self._create((capacity, 0, 0, 0), init, buffer=buffer,
                     offset=offset, name=name, shared=shared)
        self._auto = auto_register

    @classmethod
    def _attach_mismatch(cls, region: Any) -> str | None:
        if region.params[1]:  # nslots: only an RcuBuffer has version slots
            return ("this RCU region holds an RcuBuffer, not an RcuDomain: "
                    "attach it with RcuBuffer.attach()")
        return None

    @classmethod
    def region_size(cls, capacity: int = 64) -> int:
        """Bytes a domain of ``capacity`` reader slots needs in a buffer."""
        return int(HEADER) + int(
            lib.lf_rcu_domain_size(check_capacity(capacity)))

    @classmethod
    def _state_size(cls, params: Any) -> int:
        capacity, nslots = params[0], params[1]
        if nslots:
            raise ValueError("this RCU region holds an RcuBuffer")
        check_capacity(capacity)
        return int(lib.lf_rcu_domain_size(capacity))

    def _open_handle(self) -> None:
        region: Any = self._region
        dh = ffi.new("struct lf_rcu_dh *")
        field = ffi.new("char **")
        rc = lib.lf_rcu_handle_init(dh, self._state, self._avail(),
                                    region.params[0], field)
        if rc:
            self._handle_failed(rc, field)
        self._init_domain(dh)
        self._reclaimer = Reclaimer(dh, self._keep)

    def read(self) -> ReadSection:
        """``with domain.read():`` a read section with no value: group the
        reads of several cells of this domain in one section.

        Any thread; never blocks (two C calls: read_lock on enter,
        read_unlock on exit).  The thread registers on its first section
        (``RcuRegistryFullError`` if no slot is free;
        ``RcuNotRegisteredError`` with ``auto_register=False``).  Nested
        sections are allowed.  ``ValueError`` once closed.
        """
        section: ReadSection = self._local.section
        return section

    def call_rcu(self, fn: Callable[[T], object], obj: T) -> None:
        """Run ``fn(obj)`` after a grace period, in the domain's reclaimer
        thread; ``obj`` stays referenced until then.

        Never waits (queues the call); any thread, also inside a read
        section.  Exceptions of ``fn`` are printed and do not stop later
        callbacks.  ``TypeError`` if ``fn`` is not callable, ``ValueError``
        once closed (the stopped reclaimer raises it).
        """
        check_callable(fn, "call_rcu's fn")
        self._reclaimer.call(fn, obj)

    def barrier(self, timeout: float | None = None) -> None:
        """Wait until every callback queued before the call has run.

        Outside a read section of this domain (inside one:
        ``RcuDeadlockError``); ``TimeoutError`` after ``timeout`` seconds,
        ``ValueError`` once closed.  Costs at least one grace period when
        callbacks are pending.
        """
        if self._thread_reader().depth():
            raise RcuDeadlockError("barrier inside a read section would wait "
                                   "for itself forever")
        self._reclaimer.barrier(timeout)

    def close(self) -> None:
        """Run the pending callbacks (waits for their grace period), stop
        the reclaimer thread, release the slots and the memory;
        idempotent."""
        if self.closed:
            return
        self.barrier()
        self._reclaimer.stop()
        super().close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<RcuDomain {self._placement()}>"
        s = self.stats
        return (f"<RcuDomain capacity={s['capacity']} readers={s['readers']}"
                f" {self._placement()}>")


_default: RcuDomain | None = None
_default_lock = threading.Lock()


def default_domain() -> RcuDomain:
    """The process-wide domain of cells created without ``domain=``
    (capacity 1024 reader threads)."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = RcuDomain(1024)
        return _default


class CellRead(Generic[T]):
    """What ``RcuCell.read()`` returns: ``with cell.read() as value:``
    gives the object published when the section began.  One object per
    cell and thread; entering never blocks (two C calls)."""

    __slots__ = ("_rh", "_reader", "_cell")

    def __init__(self, reader: _Reader, cell: RcuCell[T]) -> None:
        self._reader = reader
        self._rh = reader.rh
        self._cell = cell

    def __enter__(self, *, _lock: Any = lib.lf_rcu_read_lock) -> T:
        """Begin the section (registers the thread on its first one);
        return the current object."""
        rc = _lock(self._rh)
        if rc:
            lock_failed(self._reader, rc)
        return self._cell._value

    def __exit__(self, *exc: object,
                 _unlock: Any = lib.lf_rcu_read_unlock) -> None:
        """End the section."""
        _unlock(self._rh)


class _CellLocal(threading.local):
    """Per-thread: the thread's CellRead of one cell (made on first use)."""

    def __init__(self, cell_ref: weakref.ref[RcuCell[Any]]) -> None:
        cell = cell_ref()
        if cell is None:  # pragma: no cover - the caller holds it
            raise ValueError("read of a collected RcuCell")
        self.cm: CellRead[Any] = CellRead(cell._domain._thread_reader(), cell)


class RcuCell(Generic[T]):
    """A Python object of type ``T`` published under an RCU domain.

    Readers: ``with cell.read() as value:`` never blocks and never waits
    for writers.  Writers: ``publish(new)`` returns the old object;
    ``retire(old, callback)`` runs ``callback(old)`` once every reader that
    could still see ``old`` has left; ``synchronize()`` waits for them.
    ``RcuCell[list[str]]`` is the type of a cell holding a ``list[str]``.
    """

    @overload
    def __init__(self: RcuCell[None], initial: None = None,
                 domain: RcuDomain | None = None) -> None: ...

    @overload
    def __init__(self, initial: T, domain: RcuDomain | None = None) -> None:
        ...

    def __init__(self, initial: Any = None,
                 domain: RcuDomain | None = None) -> None:
        """``initial``: the first object; ``domain``: the grace periods it
        shares (default: ``default_domain()``)."""
        dom = default_domain() if domain is None else domain
        if not isinstance(dom, RcuDomain):
            raise TypeError("domain must be an RcuDomain, not "
                            f"{type(dom).__name__}")
        self._domain = dom
        self._value: T = initial
        self._wlock = threading.Lock()
        self._local = _CellLocal(weakref.ref(self))

    @property
    def domain(self) -> RcuDomain:
        """The RcuDomain whose grace periods protect this cell."""
        return self._domain

    def read(self) -> CellRead[T]:
        """``with cell.read() as value:`` a read section; ``value`` is the
        object published when it began, safe to use until the section ends.

        Any thread; never blocks, never waits for writers (two C calls and
        a thread-local lookup).  The thread registers in the domain on its
        first section (``RcuRegistryFullError`` if no slot is free,
        ``RcuNotRegisteredError`` with ``auto_register=False``).  Nested
        sections are allowed.  ``ValueError`` once the domain is closed.
        """
        return self._local.cm

    def get(self) -> T:
        """The current object, without a read section (for writers, or
        inside ``with domain.read():``).  Never blocks."""
        return self._value

    def publish(self, new: T) -> T:
        """Make ``new`` the current object; return the previous one, which
        readers may still be using (``retire`` it or ``synchronize``).
        Any thread; serialised with other writers of the cell by a lock
        held for an assignment; never waits for readers."""
        with self._wlock:
            old, self._value = self._value, new
        return old

    def synchronize(self, timeout: float | None = None) -> None:
        """Wait for every read section of the domain begun before now
        (``RcuDomain.synchronize``: ``RcuDeadlockError`` inside a read
        section, ``TimeoutError`` after ``timeout`` seconds)."""
        self._domain.synchronize(timeout)

    def retire(self, old: T, callback: Callable[[T], object]) -> None:
        """Run ``callback(old)`` after a grace period, in the domain's
        reclaimer thread.  Never waits; ``TypeError`` if ``callback`` is
        not callable, ``ValueError`` once the domain is closed."""
        check_callable(callback, "retire's callback")
        self._domain.call_rcu(callback, old)

    def update(self, fn: Callable[[T], T],
               callback: Callable[[T], object] | None = None) -> T:
        """Read-copy-update: publish ``fn(current)`` and return it.

        ``fn`` must build a new object (copy, then modify) and not mutate
        the current one, which readers may be using.  Updates of one cell
        are serialised (``fn`` runs under the cell's writer lock: it must
        not update the same cell), so none is lost; readers never wait.
        ``callback(old)``, if given, runs after a grace period (see
        ``retire``).  ``TypeError`` if ``fn`` or ``callback`` is not
        callable; what ``fn`` raises propagates and nothing is published.
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

    def __repr__(self) -> str:
        return f"<RcuCell {self._value!r}>"
