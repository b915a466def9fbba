"""Per-op cost of AtomicInt next to a bare cffi call and two anchors.

    pytest benchmarks/bench_atomic.py --benchmark-only
    python benchmarks/bench_atomic.py

For each operation (one group each): the floor, a bare cffi call of the same
arity into a no-op C function; the C function the method calls, called bare
(``c-op`` rows: what the operation itself and the conversion of its result
cost beyond the floor, e.g. a new int object for a large returned value);
AtomicInt's method hoisted to a local
(``f = a.fetch_add``) and called as users write it (``a.fetch_add(1)``);
the ``atomics`` package (if installed); ``multiprocessing.Value`` + its lock.

``LOCKFREE_BENCH_OLD=<old install>/lockfree`` adds ``old-*`` rows: the same
calls on that build's AtomicInt, imported beside the installed one (see
``_oldbuild.py``), so old and new are timed in one run, interleaved.
"""

import multiprocessing

import pytest
from _oldbuild import old_lockfree
from _report import Case, main

from lockfree import AtomicInt
from lockfree._ffi import lib as core
from lockfree._tools import lib  # the FFI floor lf_noop*

TARGETS = {"floor": 1.4, "atomics": 20, "mp.Value": 5}
OLD = old_lockfree()

_MP_CAS = """\
with lock:
    seen = v.value
    if seen == 0:
        v.value = 0"""

_MP_BTS = """\
with lock:
    seen = v.value
    v.value = seen | 1"""

# operation: (call arguments, atomics method, multiprocessing.Value statement)
_OPS = {
    "load": ((), "load", "v.value"),
    "store": (("0",), "store", "v.value = 0"),
    "exchange": (("0",), "exchange", "with lock: v.value = 0"),
    "fetch_add": (("1",), "fetch_add", "with lock: v.value += 1"),
    "test_and_set_bit": (("0",), "bit_test_set", _MP_BTS),
    "cmpxchg": (("0", "0"), "cmpxchg_strong", _MP_CAS),
    "compare_exchange": (("0", "0"), "cmpxchg_strong", _MP_CAS),
}

# operation: [(C function the method calls, its arguments after the pointer)]
_C_OPS = {
    "load": [("lf_atomic_load", ())],
    "store": [("lf_atomic_store", ("0",))],
    "exchange": [("lf_atomic_exchange", ("0",))],
    "fetch_add": [("lf_atomic_fetch_inc", ()),
                  ("lf_atomic_fetch_add", ("3",))],
    "test_and_set_bit": [("lf_atomic_test_and_set_bit", ("0",))],
    "cmpxchg": [("lf_atomic_cmpxchg", ("0", "0"))],
    "compare_exchange": [("lf_atomic_try_cmpxchg", ("0", "0"))],
}

_MP_LABELS = {_MP_CAS: "with lock: CAS", _MP_BTS: "with lock: v |= 1"}


def _call(fn, *args):
    return f"{fn}({', '.join(args)})"


def _floor(arity):
    fn = getattr(lib, f"lf_noop{arity}")
    # ._h is the pointer AtomicInt's methods pass; it keeps the AtomicInt's
    # memory alive.
    return lambda: {"f": fn, "p": AtomicInt()._h}


def _c_op(name):
    return lambda: {"c": getattr(core, name), "p": AtomicInt()._h}


def _lockfree(op, cls=AtomicInt):
    def setup():
        a = cls()
        return {"a": a, "f": getattr(a, op)}
    return setup


def _atomics(method):
    def setup():
        import atomics  # optional: ImportError reports "not installed"
        return {"f": getattr(atomics.atomic(width=8, atype=atomics.INT),
                             method)}
    return setup


def _mp_value():
    v = multiprocessing.Value("q", lock=True)
    return {"v": v, "lock": v.get_lock()}


def _cases():
    for op, (args, method, mp_stmt) in _OPS.items():
        group = f"atomic-{op}"
        floor = _call("f", "p", *args)
        call = _call("f", *args)
        yield Case(group, "floor", "cffi", "floor",
                   f"f = lib.lf_noop{len(args) + 1}; {floor}", floor,
                   _floor(len(args) + 1))
        for name, c_args in _C_OPS[op]:
            stmt = _call("c", "p", *c_args)
            yield Case(group, "subject", "cffi", f"c-op-{name}",
                       f"c = lib.{name}; {stmt}", stmt, _c_op(name))
        yield Case(group, "subject", "lockfree", "lockfree",
                   f"f = a.{op}; {call}", call, _lockfree(op))
        attr = _call(f"a.{op}", *args)
        yield Case(group, "subject", "lockfree", "lockfree-attr", attr, attr,
                   _lockfree(op))
        if OLD is not None:
            yield Case(group, "subject", "lockfree", "old-lockfree",
                       f"old-f = a.{op}; {call}", call,
                       _lockfree(op, OLD.AtomicInt))
            yield Case(group, "subject", "lockfree", "old-lockfree-attr",
                       f"old-{attr}", attr, _lockfree(op, OLD.AtomicInt))
        if op == "fetch_add":
            # fetch_add(1) takes a one-argument C call (lf_atomic_fetch_inc);
            # any other delta pays the two-argument call plus a frame.
            other = _call("f", "3")
            yield Case(group, "subject", "lockfree", "lockfree-delta3",
                       f"f = a.{op}; {other}", other, _lockfree(op))
            other = _call(f"a.{op}", "3")
            yield Case(group, "subject", "lockfree", "lockfree-attr-delta3",
                       other, other, _lockfree(op))
            if OLD is not None:
                yield Case(group, "subject", "lockfree",
                           "old-lockfree-attr-delta3", f"old-{other}", other,
                           _lockfree(op, OLD.AtomicInt))
        yield Case(group, "anchor", "atomics", "atomics",
                   f"f = b.{method}; {call}", call, _atomics(method))
        yield Case(group, "anchor", "mp.Value", "mp.Value",
                   _MP_LABELS.get(mp_stmt, mp_stmt),
                   mp_stmt, _mp_value)


CASES = list(_cases())


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.group}-{c.name}")
def test_atomic(bench_case, case):
    bench_case(case)


if __name__ == "__main__":
    main(CASES, TARGETS)
