"""AtomicInt: a signed 64-bit integer updated with single atomic instructions.

The Linux kernel's ``atomic64_t`` for Python threads and processes.  Every
operation is one x86-64 instruction (``lock xadd``, ``lock cmpxchg``,
``xchg``, ``lock bts``/``btr`` or a plain load), so it is lock-free and
wait-free, and sequentially consistent: all threads and processes see all
operations in one order.

Arithmetic wraps like C ``int64_t`` on two's-complement hardware:
``fetch_add(1)`` on ``2**63 - 1`` leaves ``-2**63``.  Arguments must fit in
``int64`` (``-2**63 .. 2**63 - 1``), otherwise ``OverflowError`` (as with
``array('q')``); non-integers raise ``TypeError``.

Cost: one Python method and one cffi call per operation.  Each method calls
its cffi function through a module global (``_load = lib.lf_atomic_load``)
and passes ``self._h``, the state pointer; after ``close()`` reading
``self._h`` raises ``ValueError`` (``lockfree.region``).  Globals, not
keyword-only default arguments: CPython (3.11-3.13) does not specialize a
call to a function with keyword-only parameters, which measured 15-25 % slower
per call here; a method with no defaults gets the fastest call path.
``fetch_add``, ``fetch_sub``, ``add_fetch`` and ``sub_fetch`` send a delta of
``1`` to a one-argument C call (the kernel's ``atomic64_fetch_inc`` family),
about half the cost of the two-argument call any other delta takes (cffi
builds an argument tuple for two or more).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ._ffi import lib
from .region import Primitive

if TYPE_CHECKING:
    from .region import BufferLike

__all__ = ["AtomicInt", "UpdateResult"]

_ONE = 1  # fetch_add(1) & co: ``delta is _ONE`` (small ints are one object)

# The C functions the methods call, typed as they call them (lib is untyped).
_load: Callable[[Any], int] = lib.lf_atomic_load
_store: Callable[[Any, int], None] = lib.lf_atomic_store
_exchange: Callable[[Any, int], int] = lib.lf_atomic_exchange
_cmpxchg: Callable[[Any, int, int], int] = lib.lf_atomic_cmpxchg
_try_cmpxchg: Callable[[Any, int, int], bool] = lib.lf_atomic_try_cmpxchg
_fetch_add: Callable[[Any, int], int] = lib.lf_atomic_fetch_add
_fetch_sub: Callable[[Any, int], int] = lib.lf_atomic_fetch_sub
_add_fetch: Callable[[Any, int], int] = lib.lf_atomic_add_fetch
_sub_fetch: Callable[[Any, int], int] = lib.lf_atomic_sub_fetch
_fetch_inc: Callable[[Any], int] = lib.lf_atomic_fetch_inc
_fetch_dec: Callable[[Any], int] = lib.lf_atomic_fetch_dec
_inc_return: Callable[[Any], int] = lib.lf_atomic_inc_return
_dec_return: Callable[[Any], int] = lib.lf_atomic_dec_return
_test_and_set_bit: Callable[[Any, int], int] = lib.lf_atomic_test_and_set_bit
_test_and_clear_bit: Callable[[Any, int], int] = \
    lib.lf_atomic_test_and_clear_bit
_set_bit: Callable[[Any, int], int] = lib.lf_atomic_set_bit
_clear_bit: Callable[[Any, int], int] = lib.lf_atomic_clear_bit
_test_bit: Callable[[Any, int], int] = lib.lf_atomic_test_bit


# The bit group checks bit numbers in C: a number above 63 makes the call
# return LF_EINVAL (negative) and change nothing, a negative or huge one makes
# cffi raise OverflowError, a non-integer TypeError.  The method indexes
# _BIT with the result: 0 and 1 give the bool, a negative result an
# IndexError; any of the three errors sends it to _bit(), which raises the
# documented error or converts an index-like object (NumPy integers) for one
# more call.  So the fast path checks nothing in Python: a test_and_set_bit
# measured 1.45x a bare two-argument cffi call with a Python-side check (a
# frozenset lookup; 1.82x with a _bit() call), 1.35x with this (same run,
# benchmarks/bench_atomic.py).
_BIT = (False, True)
_NOT_A_BIT = (IndexError, OverflowError, TypeError)


def _bit(nr: int) -> int:
    nr = operator.index(nr)
    if not 0 <= nr < 64:
        raise ValueError(f"bit number must be in 0..63, got {nr}")
    return nr


class UpdateResult(NamedTuple):
    """What :meth:`AtomicInt.update` returns: the value it stored and how
    many CAS attempts failed first."""

    value: int
    retries: int


class AtomicInt(Primitive):
    """A signed 64-bit integer with atomic operations.

    ``AtomicInt(value=0)`` lives in private memory (threads only).  Placement
    keywords, shared by every lockfree primitive (see ``lockfree.region``):

    * ``shared=True``: a new named shared-memory segment owned by this object
      (unlinked when it is closed); picklable to ``multiprocessing`` workers.
    * ``name="..."``: a new segment with that name; ``unlink()`` it yourself.
    * ``buffer=buf, offset=0``: inside a writable buffer (``bytearray``,
      ``mmap``, ``SharedMemory`` or its ``.buf``); the region takes
      ``AtomicInt.region_size()`` bytes (72) and must start 8-byte aligned.
      A ``SharedMemory`` instance (not its ``.buf``) makes it picklable.

    ``AtomicInt.attach(name)`` / ``AtomicInt.attach(buffer=buf, offset=0)``
    attach to an existing one.  Guarantees: lock-free and wait-free; never
    blocks; sequentially consistent.  Use as a context manager or call
    ``close()`` to release the memory.

    Operators: ``int(a)`` and ``operator.index(a)`` load the value, ``repr``
    shows it.  No arithmetic operators (``a += 1`` is a ``TypeError``: write
    ``a.fetch_add(1)``), and comparing with an int (``a == 5``) raises
    ``TypeError`` instead of comparing identities: write ``a.load() == 5``.
    """

    _KIND = lib.LF_KIND_ATOMIC
    _CTYPE = "lf_atomic_t *"
    _NPARAMS = 0  # no geometry: every operation is on the one counter

    def __init__(self, value: int = 0, *, buffer: BufferLike | None = None,
                 offset: int = 0, name: str | None = None,
                 shared: bool = False) -> None:
        self._create((), lambda state: lib.lf_atomic_init(state, value),
                     buffer=buffer, offset=offset, name=name, shared=shared)

    @classmethod
    def _state_size(cls, params: tuple[int, ...]) -> int:
        return 8

    def _open_handle(self) -> None:
        """Nothing per process: every method passes ``self._h``, the state
        pointer ``Primitive._setup`` sets."""

    # -- single operations: one C call each ---------------------------------

    def load(self) -> int:
        """Return the current value (a plain load; wait-free)."""
        return _load(self._h)

    def store(self, value: int) -> None:
        """Set the value (``xchg``: a full barrier; wait-free)."""
        _store(self._h, value)

    def exchange(self, value: int) -> int:
        """Set the value and return the previous one (``xchg``)."""
        return _exchange(self._h, value)

    def compare_exchange(self, expected: int,
                         desired: int) -> tuple[bool, int]:
        """If the value equals ``expected``, set it to ``desired``.

        Returns ``(success, observed)``: ``(True, expected)`` if the swap
        happened (``lock cmpxchg``), else ``(False, v)`` with ``v`` a value
        the integer held during the call, never equal to ``expected``: the
        fresh value to retry with.  (The C call reports success only; on
        failure a load reads ``v``, and if that load finds ``expected`` the
        CAS is simply tried again.)  A plain tuple: a named one would cost a
        Python-level constructor on this hot path.  ``cmpxchg`` builds no
        tuple at all.
        """
        if _try_cmpxchg(self._h, expected, desired):
            return True, expected
        return self._compare_exchange_failed(expected, desired)

    def _compare_exchange_failed(self, expected: int,
                                 desired: int) -> tuple[bool, int]:
        # The CAS failed: a load tells the value; if that equals expected the
        # CAS could succeed now, so try again (rare).  A failed call thus
        # linearizes at the load, which saw != expected.
        h = self._h
        while True:
            seen = _load(h)
            if seen != expected:
                return False, seen
            if _try_cmpxchg(h, expected, desired):
                return True, expected

    def cmpxchg(self, old: int, new: int) -> int:
        """The kernel's ``atomic64_cmpxchg``: if the value equals ``old``,
        set it to ``new``; return the value found either way (the swap
        happened iff it equals ``old``).  One C call, no tuple.
        """
        return _cmpxchg(self._h, old, new)

    # A delta of one (the int object 1: small ints are one object in
    # CPython) takes the one-argument C call, which costs about half the
    # two-argument one; anything else, bools and bad types included, goes to
    # the two-argument call, which converts or rejects it.

    def fetch_add(self, delta: int) -> int:
        """Add ``delta`` and return the previous value (``lock xadd``).

        ``fetch_add(1)`` is the fastest update: a one-argument C call."""
        if delta is _ONE:
            return _fetch_inc(self._h)
        return _fetch_add(self._h, delta)

    def fetch_sub(self, delta: int) -> int:
        """Subtract ``delta`` and return the previous value."""
        if delta is _ONE:
            return _fetch_dec(self._h)
        return _fetch_sub(self._h, delta)

    def add_fetch(self, delta: int) -> int:
        """Add ``delta`` and return the new value."""
        if delta is _ONE:
            return _inc_return(self._h)
        return _add_fetch(self._h, delta)

    def sub_fetch(self, delta: int) -> int:
        """Subtract ``delta`` and return the new value."""
        if delta is _ONE:
            return _dec_return(self._h)
        return _sub_fetch(self._h, delta)

    def update(self, fn: Callable[[int], int]) -> UpdateResult:
        """Apply ``fn`` atomically with the CAS retry loop; return
        ``UpdateResult(value, retries)`` (a named tuple: the new value and
        the number of failed CAS attempts).

        This is the loop every lock-free algorithm is built on::

            do {
                old = load(addr);
                new = fn(old);
            } while (!CAS(addr, old, new));

        ``fn`` must be a pure function of the old value: it may run several
        times, once per attempt, whenever another thread or process changed
        the value between the load and the CAS.  ``retries`` counts the failed
        CAS attempts (0 when uncontended).  As the kernel's
        ``atomic64_try_cmpxchg`` does, a failed CAS hands back the value it
        saw, so the retry starts from that instead of loading again.

        Lock-free but not wait-free: some thread always makes progress, but
        one unlucky thread can retry indefinitely under contention.
        """
        h = self._h
        old = _load(h)
        retries = 0
        while True:
            new = fn(old)
            seen = _cmpxchg(h, old, new)
            if seen == old:
                return UpdateResult(new, retries)
            old = seen
            retries += 1

    # -- the kernel's bit group (bit numbers 0..63) --------------------------

    def test_and_set_bit(self, nr: int) -> bool:
        """Set bit ``nr`` and return its previous state (``lock bts``)."""
        try:
            return _BIT[_test_and_set_bit(self._h, nr)]
        except _NOT_A_BIT:
            pass  # (not a bit number: _bit raises outside the handler)
        return _BIT[_test_and_set_bit(self._h, _bit(nr))]

    def test_and_clear_bit(self, nr: int) -> bool:
        """Clear bit ``nr`` and return its previous state (``lock btr``)."""
        try:
            return _BIT[_test_and_clear_bit(self._h, nr)]
        except _NOT_A_BIT:
            pass  # (not a bit number: _bit raises outside the handler)
        return _BIT[_test_and_clear_bit(self._h, _bit(nr))]

    def set_bit(self, nr: int) -> None:
        """Set bit ``nr`` atomically."""
        try:
            _BIT[_set_bit(self._h, nr)]  # (IndexError: a bad nr)
            return
        except _NOT_A_BIT:
            pass
        _set_bit(self._h, _bit(nr))

    def clear_bit(self, nr: int) -> None:
        """Clear bit ``nr`` atomically."""
        try:
            _BIT[_clear_bit(self._h, nr)]
            return
        except _NOT_A_BIT:
            pass
        _clear_bit(self._h, _bit(nr))

    def test_bit(self, nr: int) -> bool:
        """Return bit ``nr`` of the current value."""
        try:
            return _BIT[_test_bit(self._h, nr)]
        except _NOT_A_BIT:
            pass  # (not a bit number: _bit raises outside the handler)
        return _BIT[_test_bit(self._h, _bit(nr))]

    # -- conveniences --------------------------------------------------------

    @property
    def value(self) -> int:
        """The current value (``load()``); assigning calls ``store()``.

        ``a.value += 1`` is a load and a store, NOT atomic: use
        ``a.fetch_add(1)``."""
        return self.load()

    @value.setter
    def value(self, v: int) -> None:
        self.store(v)

    def __int__(self) -> int:
        """``int(a)``: one ``load()``."""
        return self.load()

    def __index__(self) -> int:
        """``operator.index(a)`` (``hex(a)``, ``range(a)``): one ``load()``."""
        return self.load()

    def __eq__(self, other: object) -> bool:
        """Identity, as for any object; comparing with an int is a
        ``TypeError`` (a silent ``False`` would hide the missing
        ``load()``)."""
        if isinstance(other, int):
            raise TypeError(
                "an AtomicInt does not compare with an int: compare "
                f"a.load() == {other!r} (one atomic read)")
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, int):
            raise TypeError(
                "an AtomicInt does not compare with an int: compare "
                f"a.load() != {other!r} (one atomic read)")
        return NotImplemented

    __hash__ = Primitive.__hash__

    def __repr__(self) -> str:
        if self.closed:
            return f"<AtomicInt {self._placement()}>"
        return f"<AtomicInt value={self.load()} {self._placement()}>"
