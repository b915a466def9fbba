"""The shared base of the two Kfifo classes (see ``lockfree.kfifo``).

``Kfifo`` owns what both forms of the ring have: the region, the
per-process C handle (``self._h``), roles, the state queries, end of stream,
the error mapping and the blocking helpers (the C constants, argument
checks and exceptions below the class are in ``_kfifo_args.py``).
``KfifoBytes`` (``kfifo_bytes.py``) and ``KfifoQueue`` (``kfifo_queue.py``)
add the calls of their mode; ``Kfifo(capacity, mode)`` and
``Kfifo.attach`` return one of them.
"""

from __future__ import annotations

import functools
import operator
import os
import platform
import queue
import threading
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, overload

from . import _wait
from ._ffi import ffi, lib
from ._kfifo_args import (
    _MODE_NAMES,
    CONSUMER,
    EAGAIN,
    EDEAD,
    EMSGSIZE,
    EOF,
    MAX_BATCH,
    MAX_CAPACITY,
    PRODUCER,
    REC_HDR,
    SCRATCH,
    busy,
    check_capacity,
    full,
)
from .errors import (
    ConsumerDied,
    CorruptStateError,
    ProducerDied,
    RoleError,
    raise_for,
)
from .region import HEADER, Primitive, Region


def ring_buffer(data: Any, size: int) -> Any:
    """An ``ffi.buffer`` of ``size`` bytes over ``data``: the object's
    ``_data``, a pointer to the handle's data area that keeps the handle,
    hence the region's mapping, alive (``h.data`` alone owns nothing).  So a
    zero-copy view or array kept past its block, past ``close()`` or past
    the queue's collection reads mapped memory, never unmapped memory."""
    return ffi.buffer(data, size)


def _hold(keep: tuple[Any, ...], handle: Any) -> None:
    """ffi.gc destructor of the handle: give up its roles.  ``keep`` (the
    region, the state pointer and the scratch buffers) stays alive until this
    has run; at interpreter exit the region may be gone already (a dead
    process's roles are taken over anyway)."""
    if not keep[0].closed:
        lib.lf_kfifo_release(handle)


# KfifoBytes's consumer try-locks (its calls that fill the scratch buffer
# hold one until the bytes are copied out), re-initialised in a fork child
# (a parent thread inside a call at fork time does not exist there).
# KfifoQueue needs none: its C calls keep the consumer claim until the
# caller gives it back (claim_release).
_CONSUMER_LOCKS: weakref.WeakValueDictionary[int, Any] = \
    weakref.WeakValueDictionary()


class _Lock:
    """A weak-referenceable holder of the consumer try-lock."""
    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


def _reinit_consumer_locks() -> None:
    for b in list(_CONSUMER_LOCKS.values()):
        b.lock._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_consumer_locks)


class _UnholdConsumer:
    """``release[0] = 0`` as a C call: gives the consumer claim back with a
    release store (lf_kfifo_unhold), for CPUs that are not TSO."""
    __slots__ = ("h",)

    def __init__(self, h: Any) -> None:
        self.h = h

    def __setitem__(self, i: int, v: int) -> None:
        lib.lf_kfifo_unhold(self.h, CONSUMER)


def claim_release(h: Any) -> Any:
    """What KfifoQueue's consumer calls store 0 into (``r[0] = 0``) to give
    back the consumer claim that a successful rec_get/rec_get_many/
    rec_parts keeps (csrc/shims/kfifo.c, LF_KFIFO_CALL_KEEP) once they have
    copied the result out of the handle.  On x86-64 a memoryview of the
    handle's in-use word: a plain store, ~25 ns, and a release store there
    (TSO: the copy's loads come before it), pairing with the next
    claimant's compare-and-swap.  Elsewhere lf_kfifo_unhold()."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        word = ffi.addressof(h.user[1], "word")
        return memoryview(ffi.buffer(word, 8)).cast("Q")
    return _UnholdConsumer(h)


if TYPE_CHECKING:
    from .kfifo_bytes import KfifoBytes
    from .kfifo_queue import KfifoQueue

_ATTACH = object()  # Primitive.attach calls cls.__new__(cls)


class Kfifo(Primitive):
    """A single-producer single-consumer ring buffer (the kernel's kfifo).

    ``Kfifo(capacity, mode="bytes")`` returns a :class:`KfifoBytes` (a byte
    stream) and ``Kfifo(capacity, "records")`` a :class:`KfifoQueue` (a
    message queue); both are ``Kfifo`` subclasses.  ``capacity`` is rounded
    up to a power of two (at least 8 for a queue), 2 .. 2**31 bytes.
    Placement keywords as for every lockfree primitive: ``shared=True``,
    ``name=``, ``buffer=``/``offset=``; ``Kfifo.attach(name)`` returns the
    class of the ring it finds; objects pickle to ``multiprocessing``.

    Both classes: ``len()`` (bytes queued, length prefixes included),
    ``capacity``, ``free``, ``empty()``, ``full()``, ``close_producer()``,
    ``eof``, ``reset()``, iteration.  Blocking calls default to
    ``block=True`` in both (the ``queue`` module's convention).
    """

    _KIND = lib.LF_KIND_KFIFO
    _CTYPE = "struct lf_kfifo *"
    _MODE: ClassVar[str] = ""
    _CLASSES: ClassVar[dict[str, type[Kfifo]]] = {}
    _h: Any
    _out: Any
    _release: Any
    _lock: threading.Lock

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("_MODE"):
            Kfifo._CLASSES[cls._MODE] = cls

    # For type checkers: Kfifo(n) and Kfifo(n, "bytes") are a KfifoBytes,
    # Kfifo(n, "records") a KfifoQueue (KfifoQueue(n): its own __init__).
    @overload
    def __new__(cls, capacity: int, mode: Literal["bytes"] | None = None, *,
                buffer: Any = None, offset: int = 0, name: str | None = None,
                shared: bool = False) -> KfifoBytes: ...

    @overload
    def __new__(cls, capacity: int, mode: Literal["records"], *,
                buffer: Any = None, offset: int = 0, name: str | None = None,
                shared: bool = False) -> KfifoQueue: ...

    @overload
    def __new__(cls, capacity: int, mode: str, *, buffer: Any = None,
                offset: int = 0, name: str | None = None,
                shared: bool = False) -> Kfifo: ...

    def __new__(cls, capacity: object = _ATTACH, mode: str | None = None,
                **kw: Any) -> Any:
        # Kfifo(...) picks the class by mode; a subclass (and attach, which
        # calls __new__ with no arguments) makes its own kind.
        if cls is Kfifo and capacity is not _ATTACH:
            m = "bytes" if mode is None else mode
            check_capacity(capacity, m)
            cls = Kfifo._CLASSES[m]
        return object.__new__(cls)

    def _init(self, capacity: int, mode: str | None, buffer: Any,
              offset: int, name: str | None, shared: bool) -> None:
        # Each class's __init__ (so that type checkers read Kfifo(n, mode)
        # from the __new__ overloads and KfifoQueue(n) from its __init__).
        if mode is not None and mode != self._MODE:
            raise ValueError(f"a {type(self).__name__} has mode "
                             f"{self._MODE!r}, not {mode!r}")
        size, m = check_capacity(capacity, self._MODE)
        self._create(
            (size, m), lambda st: lib.lf_kfifo_init(st, size, m),
            buffer=buffer, offset=offset, name=name, shared=shared)

    @classmethod
    def region_size(cls, capacity: int, mode: str | None = None) -> int:
        """Bytes a ring of this capacity needs in a caller's buffer."""
        m = mode or cls._MODE or "bytes"
        return int(HEADER) + cls._state_size(check_capacity(capacity, m))

    @classmethod
    def _state_size(cls, params: Any) -> int:
        size, mode = params[0], params[1]
        if mode not in _MODE_NAMES:
            raise ValueError(f"unknown kfifo mode {mode}")
        if not 2 <= size <= MAX_CAPACITY or size & (size - 1):
            raise ValueError(f"kfifo size {size} is not a power of two in "
                             "2..2**31")
        if mode == lib.LF_KFIFO_RECORDS and size < 2 * REC_HDR:
            raise ValueError(f"records kfifo size {size} is below 8")
        return int(lib.lf_kfifo_state_size(size))

    @classmethod
    def _attach_mismatch(cls, region: Region) -> str | None:
        mode = _MODE_NAMES.get(region.params[1])
        if cls._MODE and mode is not None and mode != cls._MODE:
            other = Kfifo._CLASSES[mode].__name__
            return (f"the ring is in {mode!r} mode: attach it with "
                    f"{other}.attach or Kfifo.attach, not {cls.__name__}")
        return None

    # -- setup (Primitive._setup calls it) -----------------------------------

    def _open_handle(self) -> None:
        region: Any = self._region
        size, mode = region.params[:2]
        h = ffi.new("struct lf_kfifo_handle *")
        if lib.lf_kfifo_handle_init(h, self._state, size, mode) != 0:
            del self._h  # no handle yet: close() has no role to give up
            self.close()
            raise ValueError("corrupt Kfifo: its state does not match its "
                             f"header (size {size}, mode {mode})")
        if type(self) is Kfifo:  # Kfifo.attach: the class of the mode
            self.__class__ = Kfifo._CLASSES[_MODE_NAMES[mode]]
        nscratch = min(size, SCRATCH)
        scratch = ffi.new("char[]", nscratch)
        fmt = ffi.new("char[]", MAX_BATCH * lib.LF_KFIFO_FMT_ITEM + 1)
        lib.lf_kfifo_handle_scratch(h, scratch, nscratch, fmt, MAX_BATCH)
        self._h = ffi.gc(h, functools.partial(
            _hold, (self._region, self._state, scratch, fmt)))
        self._size = size
        self._nscratch = nscratch
        self._fmt = fmt
        # Slicing a buffer object made once is the cheapest way from the
        # scratch buffer to a bytes object (~2x faster than ffi.unpack).
        self._out = ffi.buffer(scratch)
        self._release = claim_release(h)
        holder = _Lock()
        _CONSUMER_LOCKS[id(holder)] = holder
        self._lock_holder = holder
        self._lock = holder.lock
        # The data area, for the views of KfifoQueue's zero-copy blocks
        # (_kfifo_zc.py): one buffer object per role.
        # (made once: ffi.gc costs ~1 us, a buffer over it ~0.3 us)
        self._data = ffi.gc(h.data, lambda _, keep=self._h: None)
        self._ring_w = ring_buffer(self._data, size)
        self._ring_r = ring_buffer(self._data, size)

    # -- life cycle ----------------------------------------------------------

    def close(self) -> None:
        """Give up this object's roles and release its memory (idempotent).

        Not ``close_producer()``: closing a producer object does not end the
        stream; another producer may take over.
        """
        if self.closed:
            return
        if "_h" in self.__dict__:
            lib.lf_kfifo_release(self._h)
        for name in ("_ring_w", "_ring_r", "_data"):  # (they map the ring)
            self.__dict__.pop(name, None)
        super().close()

    def close_producer(self) -> None:
        """End the stream: the consumer drains what is left, then sees
        end-of-stream (``EOFError`` / iteration stops / ``eof``).  Later
        puts raise ``ValueError``.  Registers this object as the producer
        if nobody is."""
        self._check(lib.lf_kfifo_close_producer(self._h))

    # -- state ---------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Size of the data area in bytes (a power of two)."""
        self._h  # noqa: B018 - closed: ValueError
        return int(self._size)

    @property
    def mode(self) -> str:
        """``'bytes'`` (KfifoBytes) or ``'records'`` (KfifoQueue)."""
        return self._MODE

    def __len__(self) -> int:
        """Bytes in the ring (length prefixes included for a queue)."""
        return int(self._check(lib.lf_kfifo_len(self._h)))

    @property
    def free(self) -> int:
        """Bytes free (a snapshot; exact for the producer)."""
        return int(self._check(lib.lf_kfifo_avail(self._h)))

    def empty(self) -> bool:
        """True if nothing is readable (a snapshot; exact for the consumer)."""
        return len(self) == 0

    def full(self) -> bool:
        """True if no byte (a queue: no empty message) fits right now."""
        return self.free < (REC_HDR if self._MODE == "records" else 1)

    @property
    def eof(self) -> bool:
        """True once the producer closed and everything was consumed."""
        return bool(lib.lf_kfifo_is_closed(self._h)) and len(self) == 0

    @property
    def closed_for_writing(self) -> bool:
        """True once ``close_producer()`` was called."""
        return bool(lib.lf_kfifo_is_closed(self._h))

    @property
    def producer_pid(self) -> int:
        """Process id of the registered producer, 0 if none."""
        return int(lib.lf_kfifo_owner_pid(self._h, PRODUCER))

    @property
    def consumer_pid(self) -> int:
        """Process id of the registered consumer, 0 if none."""
        return int(lib.lf_kfifo_owner_pid(self._h, CONSUMER))

    def reset(self) -> int:
        """Consumer only: discard everything readable (the kernel's
        ``kfifo_reset_out``, safe while the producer runs); returns the
        bytes dropped.  Registers this object as the consumer."""
        return int(self._check(lib.lf_kfifo_reset(self._h)))

    def _set_indexes(self, idx: int) -> None:
        """Tests and the teaching demo only, both sides idle: an empty ring
        whose free-running 32-bit indexes start at ``idx`` (e.g. just
        below 2**32, to hit every wrap path).  Plain stores into this
        process's mapping of the state; the C library has no such hook."""
        f = self._h.f
        idx = operator.index(idx) & 0xFFFFFFFF
        f.in_cache = f.out_cache = idx
        f.out = idx
        setattr(f, "in", idx)

    def __repr__(self) -> str:
        if self.closed:
            return f"<{type(self).__name__} {self._placement()}>"
        n = lib.lf_kfifo_len(self._h)
        state = f"len={n}" if n >= 0 else "corrupt"
        return (f"<{type(self).__name__} capacity={self._size} "
                f"{state} {self._placement()}>")

    # -- errors and waits (the slow paths of both classes) --------------------

    def _check(self, r: int) -> int:
        """Map a negative C status to its exception; return r otherwise."""
        if r >= 0:
            return r
        self._raise(r)

    def _raise(self, r: int) -> NoReturn:
        h = self._h
        if r == lib.LF_EBUSY:
            pids = {"producer": lib.lf_kfifo_owner_pid(h, PRODUCER),
                    "consumer": lib.lf_kfifo_owner_pid(h, CONSUMER)}
            raise RoleError(
                "this Kfifo already has a live producer and/or consumer "
                f"(registered pids: {pids}); a ring has exactly one of each")
        if r == EOF:
            raise EOFError("the producer closed the Kfifo and it is drained")
        if r == lib.LF_ECLOSED:
            raise ValueError("put on a Kfifo whose producer side is closed")
        if r == EMSGSIZE:
            raise ValueError(f"message larger than this Kfifo can hold "
                             f"(max_message is {self._size - REC_HDR})")
        if r == lib.LF_ECORRUPT:
            raise CorruptStateError("Kfifo", field="in/out indexes or a "
                                    "record length")
        if r == lib.LF_EMISUSE:
            raise busy("producer or consumer")
        raise_for(r, "Kfifo")
        raise AssertionError(r)  # raise_for always raises for r < 0

    def _wait_room(self, need: int, block: bool, deadline: int,
                   written: int) -> None:
        """Wait until ``need`` bytes are free; queue.Full at the deadline."""
        if not block:
            raise full(written)
        h = self._h
        r = _wait.wait(lambda end: int(lib.lf_kfifo_wait_writable(
            h, need, end)), deadline)
        if r == EAGAIN:
            raise full(written)
        if r == EDEAD:
            raise ConsumerDied("the Kfifo is full and its consumer's "
                               "process died")
        self._check(r)

    def _wait_data(self, r: int, block: bool, deadline: int) -> int:
        """After a get returned r < 0: wait for data (then return 0), or
        return EOF, or raise what r means (queue.Empty at the deadline)."""
        if r == EAGAIN and block:
            h = self._h
            r = _wait.wait(lambda end: int(lib.lf_kfifo_wait_readable(h, end)),
                           deadline)
        if r == 0 or r == EOF:
            return r
        if r == EAGAIN:
            raise queue.Empty
        if r == EDEAD:
            raise ProducerDied("the Kfifo is drained and its producer's "
                               "process died without close_producer()")
        return self._check(r)

