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

Cost: one cffi call per operation (about 0.1 µs: cffi releases and retakes
the GIL and saves errno on every call), with no Python frame in between for
``load``, ``store``, ``exchange`` and ``cmpxchg``.  ``fetch_add``,
``fetch_sub``, ``add_fetch`` and ``sub_fetch`` are a small Python function
that sends a delta of ``1`` to a one-argument C call (the kernel's
``atomic64_fetch_inc`` family), about half the cost of the two-argument call
any other delta takes (cffi builds an argument tuple for two or more).
"""

from __future__ import annotations

import functools
import operator

from ._ffi import lib
from .region import Primitive, specialize

__all__ = ["AtomicInt"]


def _bit(nr) -> int:
    nr = operator.index(nr)
    if not 0 <= nr < 64:
        raise ValueError(f"bit number must be in 0..63, got {nr}")
    return nr


def _compare_exchange_template(expected, desired):
    # Per object (region.specialize): try_cas, retry and st are globals of
    # a namespace private to one AtomicInt.  The C call reports success
    # only: no int64 to box and compare.
    if try_cas(st, expected, desired):  # noqa: F821
        return True, expected
    return retry(expected, desired)  # noqa: F821


def _compare_exchange_retry(try_cas, load, st, expected, desired):
    # The CAS failed: a load tells the value; if that equals expected the CAS
    # could succeed now, so try again (rare).  A failed call thus
    # linearizes at the load, which saw != expected.
    while True:
        seen = load(st)
        if seen != expected:
            return False, seen
        if try_cas(st, expected, desired):
            return True, expected


def _add_template(delta):
    # Per object and operation (region.specialize): one, add and st are
    # globals of a private namespace.  A delta of one (the int 1: small ints
    # are one object in CPython) takes the one-argument C call, which costs
    # about half the two-argument one (cffi builds no argument tuple for
    # it); anything else, bools and bad types included, goes to the
    # two-argument call, which converts or rejects it.
    if delta is ONE:  # noqa: F821
        return one(st)  # noqa: F821
    return add(st, delta)  # noqa: F821


_ADDS = {"fetch_add": "fetch_inc", "fetch_sub": "fetch_dec",
         "add_fetch": "inc_return", "sub_fetch": "dec_return"}


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
    """

    _KIND = lib.LF_KIND_ATOMIC
    _CTYPE = "lf_atomic_t *"
    _NPARAMS = 0  # no geometry: every operation is on the one counter

    def __init__(self, value: int = 0, *, buffer=None, offset: int = 0,
                 name: str | None = None, shared: bool = False):
        self._create((), lambda state: lib.lf_atomic_init(state, value),
                     buffer=buffer, offset=offset, name=name, shared=shared)

    @classmethod
    def _state_size(cls, params) -> int:
        return 8

    def _bind_calls(self) -> None:
        # Shadow the documented methods below: bound methods of the cffi
        # functions (no Python frame), or per-object copies of a template
        # (region.specialize) where a frame is needed.
        for attr in ("load", "store", "exchange", "cmpxchg"):
            self._bind(attr, getattr(lib, "lf_atomic_" + attr))
        for attr, one in _ADDS.items():
            fn = specialize(_add_template, "AtomicInt." + attr, ONE=1,
                            one=getattr(lib, "lf_atomic_" + one),
                            add=getattr(lib, "lf_atomic_" + attr),
                            st=self._state)
            fn.__doc__ = getattr(AtomicInt, attr).__doc__
            self.__dict__[attr] = fn
            self._bound.append(attr)
        self._bind("_tas_bit", lib.lf_atomic_test_and_set_bit)
        self._bind("_tac_bit", lib.lf_atomic_test_and_clear_bit)
        self._bind("_set_bit", lib.lf_atomic_set_bit)
        self._bind("_clear_bit", lib.lf_atomic_clear_bit)
        self._bind("_test_bit", lib.lf_atomic_test_bit)

        self.__dict__["compare_exchange"] = fn = specialize(
            _compare_exchange_template, "AtomicInt.compare_exchange",
            try_cas=lib.lf_atomic_try_cmpxchg, st=self._state,
            retry=functools.partial(_compare_exchange_retry,
                                    lib.lf_atomic_try_cmpxchg,
                                    lib.lf_atomic_load, self._state))
        # st (an ffi.gc pointer) keeps the memory mapped
        fn.__doc__ = AtomicInt.compare_exchange.__doc__
        self._bound.append("compare_exchange")

    # The methods below document the API and serve closed objects; live
    # instances call the bound C functions installed by _bind_calls.

    def load(self) -> int:
        """Return the current value (a plain load; wait-free)."""
        self._closed()

    def store(self, value: int) -> None:
        """Set the value (``xchg``: a full barrier; wait-free)."""
        self._closed()

    def exchange(self, value: int) -> int:
        """Set the value and return the previous one (``xchg``)."""
        self._closed()

    def compare_exchange(self, expected: int, desired: int) -> tuple:
        """If the value equals ``expected``, set it to ``desired``.

        Returns ``(success, observed)``: ``(True, expected)`` if the swap
        happened (``lock cmpxchg``), else ``(False, v)`` with ``v`` a value
        the integer held during the call, never equal to ``expected``: the
        fresh value to retry with.  (The C call reports success only; on
        failure a load reads ``v``, and if that load finds ``expected`` the
        CAS is simply tried again.)  Building the tuple costs a Python
        frame; ``cmpxchg`` does not.
        """
        self._closed()

    def cmpxchg(self, old: int, new: int) -> int:
        """The kernel's ``atomic64_cmpxchg``: if the value equals ``old``,
        set it to ``new``; return the value found either way (the swap
        happened iff it equals ``old``).  One C call, no Python frame.
        """
        self._closed()

    def fetch_add(self, delta: int) -> int:
        """Add ``delta`` and return the previous value (``lock xadd``).

        ``fetch_add(1)`` is the fastest update: one one-argument C call."""
        self._closed()

    def fetch_sub(self, delta: int) -> int:
        """Subtract ``delta`` and return the previous value."""
        self._closed()

    def add_fetch(self, delta: int) -> int:
        """Add ``delta`` and return the new value."""
        self._closed()

    def sub_fetch(self, delta: int) -> int:
        """Subtract ``delta`` and return the new value."""
        self._closed()

    def update(self, fn) -> tuple:
        """Apply ``fn`` atomically with the CAS retry loop; return
        ``(new_value, retries)``.

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
        cas = self.cmpxchg
        old = self.load()
        retries = 0
        while True:
            new = fn(old)
            seen = cas(old, new)
            if seen == old:
                return new, retries
            old = seen
            retries += 1

    # -- the kernel's bit group (bit numbers 0..63) --------------------------

    def test_and_set_bit(self, nr: int) -> bool:
        """Set bit ``nr`` and return its previous state (``lock bts``)."""
        return self._tas_bit(_bit(nr))

    def test_and_clear_bit(self, nr: int) -> bool:
        """Clear bit ``nr`` and return its previous state (``lock btr``)."""
        return self._tac_bit(_bit(nr))

    def set_bit(self, nr: int) -> None:
        """Set bit ``nr`` atomically."""
        self._set_bit(_bit(nr))

    def clear_bit(self, nr: int) -> None:
        """Clear bit ``nr`` atomically."""
        self._clear_bit(_bit(nr))

    def test_bit(self, nr: int) -> bool:
        """Return bit ``nr`` of the current value."""
        return self._test_bit(_bit(nr))

    # -- conveniences --------------------------------------------------------

    _tas_bit = _tac_bit = _set_bit = _clear_bit = _test_bit = \
        Primitive._closed

    @property
    def value(self) -> int:
        """The current value (``load()``); assigning calls ``store()``."""
        return self.load()

    @value.setter
    def value(self, v: int) -> None:
        self.store(v)

    def __int__(self) -> int:
        return self.load()

    __index__ = __int__

    def __repr__(self) -> str:
        if self.closed:
            return f"<AtomicInt {self._placement()}>"
        return f"<AtomicInt value={self.load()} {self._placement()}>"
