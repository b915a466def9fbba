"""Per-op cost of the spinlocks' hot paths next to a bare cffi call and the
stdlib locks.

    pytest benchmarks/bench_spinlock.py --benchmark-only
    python benchmarks/bench_spinlock.py

One group per lock and path: an uncontended acquire+release pair, hoisted
to locals (``a(); r()``), written as users write it (``l.acquire();
l.release()``) and as ``with``.  The floor is two bare one-argument cffi
calls (``f(p); f(p)`` with ``f = lib.lf_noop1``): a pair of C calls, which
no cffi-based lock can go below.  Anchors: ``threading.Lock`` and
``multiprocessing.Lock``, the stdlib equivalents (the stdlib has no
reader-writer or ticket lock: they anchor those groups too).

Contended behaviour is not per-op cost: see ``python -m lockfree bench``
(C threads) and ``python -m lockfree bench --python``.
"""

import multiprocessing
import threading

import pytest

from _report import Case, main
from lockfree import RWSpinLock, SpinLock, TicketLock
from lockfree._tools import lib  # the FFI floor lf_noop*

#: docs/spinlock.md's target for the Python wrapper: a pair within 1.4x of
#: two bare cffi calls.
TARGETS = {"floor": 1.4}

PAIR = "a(); r()"


def _floor():
    return {"f": lib.lf_noop1, "p": SpinLock()._state}


def _pair(make, acquire="acquire", release="release"):
    def setup():
        lock = make()
        return {"l": lock, "a": getattr(lock, acquire),
                "r": getattr(lock, release)}
    return setup


# group: (lock factory, acquire method, release method, with statement)
_GROUPS = {
    "spinlock-ttas": (SpinLock, "acquire", "release", "with l: pass"),
    "spinlock-tas": (lambda: SpinLock("tas"), "acquire", "release",
                     "with l: pass"),
    "ticketlock": (TicketLock, "acquire", "release", "with l: pass"),
    "rwspinlock-write": (RWSpinLock, "acquire", "release", "with l: pass"),
    "rwspinlock-read": (RWSpinLock, "acquire_read", "release_read",
                        "with l.read(): pass"),
}


def _cases():
    for group, (make, acq, rel, with_stmt) in _GROUPS.items():
        yield Case(group, "floor", "cffi", "floor",
                   "f = lib.lf_noop1; f(p); f(p)", "f(p); f(p)", _floor)
        yield Case(group, "subject", "lockfree", "lockfree",
                   f"a = l.{acq}; r = l.{rel}; {PAIR}", PAIR,
                   _pair(make, acq, rel))
        attr = f"l.{acq}(); l.{rel}()"
        yield Case(group, "subject", "lockfree", "lockfree-attr", attr, attr,
                   _pair(make, acq, rel))
        yield Case(group, "subject", "lockfree", "lockfree-with", with_stmt,
                   with_stmt, _pair(make, acq, rel))
        yield Case(group, "anchor", "threading", "threading",
                   f"threading.Lock: {PAIR}", PAIR, _pair(threading.Lock))
        yield Case(group, "anchor", "mp", "mp",
                   f"multiprocessing.Lock: {PAIR}", PAIR,
                   _pair(multiprocessing.Lock))


CASES = list(_cases())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.group}-{c.name}")
def test_spinlock(bench_case, case):
    bench_case(case)


if __name__ == "__main__":
    main(CASES, TARGETS)
