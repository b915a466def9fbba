"""Spinlock benchmarks: the C benchmark, then the Python-level comparison.

    python benchmarks/bench_spinlock.py [--no-c] [--repeats N]
    pytest benchmarks/bench_spinlock.py --benchmark-only   (pytest-benchmark)

C: compiles benchmarks/bench_spinlock_c.c with every csrc/*.c (-O2, asm
atomics) and runs it: uncontended pair ns vs pthread_spin_lock /
pthread_mutex / ck_spinlock_fas, and 2-thread throughput medians.

Python: ns per acquire()+release() pair, median of interleaved repeats, for
each lockfree lock, two bare one-argument cffi calls (lockfree.lib.lf_noop1,
from local variables), threading.Lock and multiprocessing.Lock; prints the
ratios to the bare pair (target: SpinLock <= 1.4x).
"""

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import multiprocessing
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_c(repeats):
    csrc = os.path.join(ROOT, "csrc")
    src = os.path.join(ROOT, "benchmarks", "bench_spinlock_c.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "bench_spinlock_c")
        cmd = ["gcc", "-O2", "-std=gnu11", "-I" + csrc, src,
               *sorted(glob.glob(os.path.join(csrc, "*.c"))),
               "-lpthread", "-o", exe]
        subprocess.run(cmd, check=True)
        out = subprocess.run([exe, str(repeats)], check=True,
                             capture_output=True, text=True).stdout
    print(out, end="")
    return dict(line.split("=", 1) for line in out.splitlines()
                if "=" in line)


def python_pairs(repeats=25, number=100000):
    import lockfree
    from lockfree import lib, ffi

    p = ffi.new("char[]", 64)
    f = lib.lf_noop1
    locks = {
        "SpinLock(ttas)": lockfree.SpinLock(),
        "SpinLock(tas)": lockfree.SpinLock("tas"),
        "TicketLock": lockfree.TicketLock(),
        "RWSpinLock(write)": lockfree.RWSpinLock(),
        "threading.Lock": threading.Lock(),
        "multiprocessing.Lock": multiprocessing.Lock(),
    }
    cases = {"2x bare lf_noop1": ("f(p); f(p)", {"f": f, "p": p})}
    for name, lock in locks.items():
        cases[name] = ("a(); r()", {"a": lock.acquire, "r": lock.release})
    rw = locks["RWSpinLock(write)"]
    cases["RWSpinLock(read)"] = ("a(); r()", {"a": rw.acquire_read,
                                              "r": rw.release_read})
    cases["with SpinLock"] = ("with l: pass", {"l": locks["SpinLock(ttas)"]})
    res = {k: [] for k in cases}
    for _ in range(repeats):  # interleaved: noise hits every case alike
        for name, (stmt, g) in cases.items():
            res[name].append(timeit.timeit(stmt, globals=g, number=number)
                             / number * 1e9)
    bare = statistics.median(res["2x bare lf_noop1"])
    print(f"python={sys.version.split()[0]} repeats={repeats} "
          f"number={number}")
    out = {}
    for name, v in res.items():
        med = statistics.median(v)
        out[name] = med
        print(f"py_pair_ns[{name}]={med:.1f} (min {min(v):.1f}) "
              f"ratio_to_2x_bare={med / bare:.3f}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-c", action="store_true")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if not args.no_c:
        run_c(args.repeats)
    python_pairs()


# -- pytest-benchmark ------------------------------------------------------------

def _pair(benchmark, acquire, release):
    def run():
        acquire()
        release()
    benchmark(run)


def test_bench_spinlock_pair(benchmark):
    import lockfree
    lock = lockfree.SpinLock()
    _pair(benchmark, lock.acquire, lock.release)


def test_bench_bare_noop1_pair(benchmark):
    from lockfree import lib, ffi
    p = ffi.new("char[]", 64)
    f = lib.lf_noop1
    _pair(benchmark, lambda: f(p), lambda: f(p))


def test_bench_threading_lock_pair(benchmark):
    lock = threading.Lock()
    _pair(benchmark, lock.acquire, lock.release)


def test_bench_multiprocessing_lock_pair(benchmark):
    lock = multiprocessing.Lock()
    _pair(benchmark, lock.acquire, lock.release)


if __name__ == "__main__":
    main()
