"""Seqlock benchmarks: the C benchmark, Python reads, writer rates.

    python benchmarks/bench_seqlock.py [--no-c] [--repeat N] [--calls N]
    pytest benchmarks/bench_seqlock.py --benchmark-only   (pytest-benchmark)

C: compiles benchmarks/bench_seqlock_c.c with every csrc/*.c (-O2, asm
atomics) and runs it: uncontended read of a 32-byte record vs Concurrency
Kit's ck_sequence (or a labelled reimplementation without libck-dev), and
the writer's rate with a reader thread hammering, seqlock vs readers that
take the lock, and the cost of one cache-line transfer (a store to a line
the other core has just read, then a locked instruction).

Python, ``CASES`` (the _report table): ns per read of a 4-field record
("qqqd") in shared memory: floor = a bare one-argument cffi call; subjects
= ``SeqRecord.read()`` (hoisted, and as users write it: ``r.read()``,
attribute lookup included; classic, latch) and ``SeqBytes.read()``;
anchors = the obvious alternatives, a ``multiprocessing.Lock`` around a
shared ctypes struct and a ``multiprocessing.Array``.  Target:
mp.Lock/this >= 1.5.  Writes ("write-qqqd"): floor = a bare two-argument
cffi call; ``r.write(1, 2, 3, 4.0)`` (packs, one C call; also with
``timeout=``) and ``b.write(data)``; anchor = an mp.Lock held while storing
the ctypes struct's four fields (no target: printed for comparison).

Then the writer's rate alone and with a reader *process* hammering, for
SeqRecord and for mp.Lock + ctypes (lockfree.demos.writer_rate), and the
floor any shared write pays: ``store``, one ``AtomicInt.store()`` per call
with the reader polling that word.  Target: SeqRecord's writer keeps >= 0.90
of its solo rate.
"""

import ctypes
import glob
import multiprocessing
import os
import subprocess
import sys
import tempfile
from multiprocessing import sharedctypes

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import Case  # noqa: E402
from _report import main as report_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP = "read-qqqd"
WGROUP = "write-qqqd"


def _floor():
    from lockfree._tools import ffi, lib  # the FFI floor lf_noop1
    return {"f": lib.lf_noop1, "p": ffi.new("char[]", 64)}


def _floor2():
    from lockfree._tools import ffi, lib
    return {"f": lib.lf_noop2, "p": ffi.new("char[]", 64)}


def _seq(latch=False):
    def setup():
        from lockfree import SeqRecord
        r = SeqRecord("qqqd", (1, 2, 3, 4.0), latch=latch, shared=True)
        _keep.append(r)
        return {"read": r.read, "write": r.write, "r": r}
    return setup


def _seqbytes():
    from lockfree import SeqBytes
    b = SeqBytes(32, bytes(32), shared=True)
    _keep.append(b)
    return {"read": b.read, "b": b, "data": bytes(32)}


def _mp_lock():
    from lockfree.demos.writer_rate import Rec
    s = sharedctypes.RawValue(Rec, 1, 2, 3, 4.0)
    return {"lock": multiprocessing.Lock(), "s": s}


def _mp_array():
    arr = multiprocessing.Array(ctypes.c_int64, 4)
    return {"lock": arr.get_lock(), "a": arr}


_keep = []  # objects the timed loops read; closed at exit
CASES = [
    Case(GROUP, "floor", "cffi", "noop1", "f = lib.lf_noop1; f(p)",
         "f(p)", _floor),
    Case(GROUP, "subject", "lockfree", "seqrecord",
         "read = r.read; read()", "read()", _seq()),
    Case(GROUP, "subject", "lockfree", "seqrecord-attr", "r.read()",
         "r.read()", _seq()),
    Case(GROUP, "subject", "lockfree", "seqrecord-latch",
         "SeqRecord(latch=True).read()", "read()", _seq(True)),
    Case(GROUP, "subject", "lockfree", "seqbytes32",
         "SeqBytes(32).read() (bytes)", "read()", _seqbytes),
    Case(GROUP, "anchor", "mp.Lock", "mplock-ctypes",
         "with lock: (s.a, s.b, s.c, s.d)",
         "with lock: t = (s.a, s.b, s.c, s.d)", _mp_lock),
    Case(GROUP, "anchor", "mp.Array", "mparray",
         "with a.get_lock(): a[:]", "with lock: t = a[:]", _mp_array),
    Case(WGROUP, "floor", "cffi", "noop2", "f = lib.lf_noop2; f(p, 1)",
         "f(p, 1)", _floor2),
    Case(WGROUP, "subject", "lockfree", "seqrecord", "r.write(1, 2, 3, 4.0)",
         "r.write(1, 2, 3, 4.0)", _seq()),
    Case(WGROUP, "subject", "lockfree", "seqrecord-timeout",
         "r.write(1, 2, 3, 4.0, timeout=1.0)",
         "r.write(1, 2, 3, 4.0, timeout=1.0)", _seq()),
    Case(WGROUP, "subject", "lockfree", "seqbytes32", "b.write(data)",
         "b.write(data)", _seqbytes),
    # impl named apart from the read group's anchor: no target on writes
    Case(WGROUP, "anchor", "lock+ctypes", "mplock-ctypes",
         "with lock: s.a, s.b, s.c, s.d = ...",
         "with lock: s.a = 1; s.b = 2; s.c = 3; s.d = 4.0", _mp_lock),
]
TARGETS = {"mp.Lock": 1.5}


def run_c(repeats):
    csrc = os.path.join(ROOT, "csrc")
    src = os.path.join(ROOT, "benchmarks", "bench_seqlock_c.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "bench_seqlock_c")
        subprocess.run(["gcc", "-O2", "-std=gnu11", "-I" + csrc, src,
                        *sorted(glob.glob(os.path.join(csrc, "*.c"))),
                        "-lpthread", "-o", exe], check=True)
        out = subprocess.run([exe, str(repeats)], check=True,
                             capture_output=True, text=True).stdout
    print(out, end="")
    return dict(line.split("=", 1) for line in out.splitlines()
                if "=" in line)


def writer_rates(trials=21, seconds=0.05):
    from lockfree.demos import writer_rate
    print(f"\nwriter rate, {trials} hammered trials of {seconds}s, each "
          "paired with the solo trials around it (median ratio, [quartiles]);"
          "\n'run' = per second not spent waiting for a CPU")
    out = {}
    for kind in writer_rate.KINDS:
        m = writer_rate.measure(kind, seconds=seconds, trials=trials)
        out[kind] = m
        print(f"writer[{kind}] solo={m['solo'] / 1e3:.0f}k/s "
              f"hammered={m['hammered'] / 1e3:.0f}k/s "
              f"ratio={m['ratio']:.3f} [{m['ratio_q1']:.2f}-"
              f"{m['ratio_q3']:.2f}] | solo_run={m['solo_run'] / 1e3:.0f}"
              f"k/s hammered_run={m['hammered_run'] / 1e3:.0f}k/s "
              f"ratio_run={m['ratio_run']:.3f} | lost "
              f"{m['lost_ns']:.0f} ns/write | reader "
              f"{m['reader_reads_per_s'] / 1e3:.0f}k reads/s")
    return out


def main():
    args = sys.argv[1:]
    no_c = "--no-c" in args
    if no_c:
        args.remove("--no-c")
    if not no_c:
        run_c(15)
    try:
        report_main(CASES, TARGETS, args)
    finally:
        for obj in _keep:
            obj.close()
    writer_rates()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.group}-{c.name}")
def test_seqlock(bench_case, case):
    bench_case(case)


if __name__ == "__main__":
    main()
