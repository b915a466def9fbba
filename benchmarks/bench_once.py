"""Per-op cost of Once.call_once on the already-initialised path.

    pytest benchmarks/bench_once.py --benchmark-only
    python benchmarks/bench_once.py

That path is one Python method call and one ``AtomicInt.load()`` (a
one-argument cffi call): the floor is a bare one-argument cffi call.  The
stdlib way to run an initialiser once per process is a lock-guarded flag
(double-checked in Python) or ``functools.cache`` on a no-argument function.
"""

import functools
import threading

import pytest
from _report import Case, main

from lockfree import AtomicInt, Once
from lockfree._tools import lib  # the FFI floor lf_noop*

TARGETS = {}  # no target in the issue: the ratios are printed


def _floor():
    return {"f": lib.lf_noop1, "p": AtomicInt()._state}


def _once():
    once = Once()
    once.call_once(lambda: None)
    return {"once": once, "init": lambda: None}


def _flag():
    state = {"done": False}
    lock = threading.Lock()

    def call_once(init):
        if not state["done"]:
            with lock:
                if not state["done"]:
                    init()
                    state["done"] = True
    call_once(lambda: None)
    return {"call_once": call_once, "init": lambda: None}


def _cache():
    init = functools.cache(lambda: None)
    init()
    return {"init": init}


GROUP = "once-call_once-done"
CASES = [
    Case(GROUP, "floor", "cffi", "floor", "f = lib.lf_noop1; f(p)", "f(p)",
         _floor),
    Case(GROUP, "subject", "lockfree", "lockfree", "once.call_once(init)",
         "once.call_once(init)", _once),
    Case(GROUP, "anchor", "threading", "threading",
         "double-checked flag + threading.Lock", "call_once(init)", _flag),
    Case(GROUP, "anchor", "functools", "functools",
         "functools.cache'd initialiser", "init()", _cache),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.group}-{c.name}")
def test_once(bench_case, case):
    bench_case(case)


if __name__ == "__main__":
    main(CASES, TARGETS)
