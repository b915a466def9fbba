"""Per-op cost of the spinlocks' hot paths next to a bare cffi call and the
stdlib locks.

    pytest benchmarks/bench_spinlock.py --benchmark-only
    python benchmarks/bench_spinlock.py
    LOCKFREE_BENCH_OLD=<dir> python benchmarks/bench_spinlock.py

Per lock and path, an uncontended acquire+release pair hoisted to locals
(``a(); r()``) and written as users write it (``l.acquire();
l.release()``), and, in a ``<lock>-with`` group, as ``with``.  The floor is
two bare one-argument cffi calls (``f(p); f(p)`` with ``f =
lib.lf_noop1``): a pair of C calls, which no cffi-based lock can go below.
In the ``spinlock-ttas`` groups two more rows show what CPython allows:
``c-pair``, the C functions SpinLock calls, called bare (``t(p); r(p)``),
and ``minimal``, a class whose ``acquire``/``release``/``__enter__``/
``__exit__`` only pass ``self._h`` to them: no argument check, no error
check, the least a method can do, so the least any lock written as Python
methods over cffi can cost.
Anchors: ``threading.Lock`` and ``multiprocessing.Lock``, the stdlib
equivalents (the stdlib has no reader-writer or ticket lock: they anchor
those groups too).

Targets (issue #17): the pair as users write it <= 1.5x the floor, ``with``
<= 2.0x, hoisted forms not slower than before.  The direct runner checks
1.5 on the pair groups and 2.0 on the ``-with`` groups; under pytest (one
``TARGETS`` per file) 1.5 is marked on every row.

``LOCKFREE_BENCH_OLD=<dir>`` (the ``lockfree`` package directory of
another install, see ``_oldbuild.py``) adds ``old-*`` rows for that build,
Python layer and C extension, imported beside the installed one, so old
and new are timed in one run, interleaved.

Contended behaviour is not per-op cost: see ``python -m lockfree bench``
(C threads) and ``python -m lockfree bench --python``.
"""

import multiprocessing
import os
import sys
import threading

import pytest
from _oldbuild import old_lockfree
from _report import Case, run_direct

from lockfree import SpinLock
from lockfree._ffi import lib as core
from lockfree._tools import lib  # the FFI floor lf_noop*

PAIR_TARGET, WITH_TARGET = 1.5, 2.0
#: for pytest (one dict per file): the pair target.
TARGETS = {"floor": PAIR_TARGET}

PAIR = "a(); r()"

_try, _rel = core.lf_spin_try_acquire, core.lf_spin_release


class _Minimal:
    """The least a lock written as methods over cffi can do: each method
    passes ``self._h`` to the C function, checks nothing."""

    def __init__(self):
        self._lock = SpinLock()  # keeps the memory
        self._h = self._lock._h

    def acquire(self):
        return _try(self._h)

    def release(self):
        _rel(self._h)

    def __enter__(self):
        return _try(self._h)

    def __exit__(self, exc_type, exc, tb):
        _rel(self._h)


def _c_pair():
    lock = SpinLock()
    return {"t": _try, "r": _rel, "p": lock._h, "l": lock}


OLD = old_lockfree()


def _floor():
    return {"f": lib.lf_noop1, "p": SpinLock()._state}


def _pair(make, acquire="acquire", release="release"):
    def setup():
        lock = make()
        return {"l": lock, "a": getattr(lock, acquire),
                "r": getattr(lock, release)}
    return setup


def _groups(mod):
    """group: (lock factory, acquire method, release method, with stmt)"""
    return {
        "spinlock-ttas": (mod.SpinLock, "acquire", "release", "with l: pass"),
        "spinlock-tas": (lambda: mod.SpinLock("tas"), "acquire", "release",
                         "with l: pass"),
        "ticketlock": (mod.TicketLock, "acquire", "release", "with l: pass"),
        "rwspinlock-write": (mod.RWSpinLock, "acquire", "release",
                             "with l: pass"),
        "rwspinlock-read": (mod.RWSpinLock, "acquire_read", "release_read",
                            "with l.read(): pass"),
    }


def _subjects(group, with_group, make, acq, rel, with_stmt, tag=""):
    yield Case(group, "subject", "lockfree", f"{tag}lockfree",
               f"{tag}a = l.{acq}; r = l.{rel}; {PAIR}", PAIR,
               _pair(make, acq, rel))
    attr = f"l.{acq}(); l.{rel}()"
    yield Case(group, "subject", "lockfree", f"{tag}lockfree-attr",
               f"{tag}{attr}", attr, _pair(make, acq, rel))
    yield Case(with_group, "subject", "lockfree", f"{tag}lockfree-with",
               f"{tag}{with_stmt}", with_stmt, _pair(make, acq, rel))


def _cases():
    old = _groups(OLD) if OLD is not None else {}
    for group, (make, acq, rel, with_stmt) in _groups(sys.modules[
            "lockfree.spinlock"]).items():
        with_group = f"{group}-with"
        for g in (group, with_group):
            yield Case(g, "floor", "cffi", "floor",
                       "f = lib.lf_noop1; f(p); f(p)", "f(p); f(p)", _floor)
        yield from _subjects(group, with_group, make, acq, rel, with_stmt)
        if group == "spinlock-ttas":
            yield Case(group, "subject", "cffi", "c-pair",
                       "t = lib.lf_spin_try_acquire; r = ...; t(p); r(p)",
                       "t(p); r(p)", _c_pair)
            yield Case(group, "subject", "minimal", "minimal",
                       "minimal methods: l.acquire(); l.release()",
                       "l.acquire(); l.release()", _pair(_Minimal))
            yield Case(with_group, "subject", "minimal", "minimal-with",
                       "minimal methods: with l: pass", "with l: pass",
                       _pair(_Minimal))
        if group in old:
            yield from _subjects(group, with_group, *old[group], tag="old-")
        yield Case(group, "anchor", "threading", "threading",
                   f"threading.Lock: {PAIR}", PAIR, _pair(threading.Lock))
        yield Case(group, "anchor", "mp", "mp",
                   f"multiprocessing.Lock: {PAIR}", PAIR,
                   _pair(multiprocessing.Lock))


CASES = list(_cases())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.group}-{c.name}")
def test_spinlock(bench_case, case):
    bench_case(case)


def _main_with_targets(argv=None):
    """``main``, with the ``with`` groups checked against their own
    target (2.0x) and the pair groups against 1.5x."""
    import argparse

    from _report import OPS, environment
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    pairs = [c for c in CASES if not c.group.endswith("-with")]
    withs = [c for c in CASES if c.group.endswith("-with")]
    results = run_direct(pairs, {"floor": PAIR_TARGET}, args.repeat,
                         args.calls)
    more = run_direct(withs, {"floor": WITH_TARGET}, args.repeat, args.calls)
    results.groups.update(more.groups)
    results.targets.update(more.targets)
    old = os.environ.get("LOCKFREE_BENCH_OLD")
    print(results.format(
        f"{environment()}\nbest and median ns/op of the loops of {OPS} "
        f"calls, {args.repeat} rounds x {args.calls} calls (timeit)"
        + (f"; old-* rows: the build in {old}" if old
           else "")))


if __name__ == "__main__":
    _main_with_targets()
