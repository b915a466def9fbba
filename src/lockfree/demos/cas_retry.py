"""cas-retry: the CAS retry loop under contention, in C and in Python."""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.synchronize
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._tools import ffi, lib
from ..atomic import AtomicInt

if TYPE_CHECKING:
    import argparse

    from matplotlib.figure import Figure

#: (histogram of retries per increment, total attempts, final value)
Result = tuple[list[int], int, int]

TITLE = "the CAS retry loop: attempts, retries per success, histogram"
BINS = 6  # 0, 1, 2, 3, 4, 5+ retries
LOOP = """    do {
        old = load(&counter);
        new = old + 1;
    } while (!CAS(&counter, old, new));"""


def c_threads(threads: int, iters: int) -> Result:
    """Histogram of retries per increment, total attempts, final value."""
    hist = ffi.new("int64_t[]", BINS)
    out = ffi.new("int64_t[2]")
    err = lib.lf_demo_cas_retry(threads, iters, hist, BINS, out)
    if err:
        raise OSError(-err, "lf_demo_cas_retry failed")
    return list(hist), int(out[1]), int(out[0])


def _py_worker(counter: AtomicInt, hist: list[AtomicInt],
               start: multiprocessing.synchronize.Barrier,
               iters: int) -> None:
    start.wait()
    local = [0] * BINS
    for _ in range(iters):
        retries = counter.update(lambda old: old + 1)[1]
        local[min(retries, BINS - 1)] += 1
    for b, n in enumerate(local):
        hist[b].fetch_add(n)


def py_processes(procs: int, iters: int) -> Result:
    """The same loop from Python processes over shared memory."""
    ctx = mp.get_context("spawn")
    counter = AtomicInt(shared=True)
    hist = [AtomicInt(shared=True) for _ in range(BINS)]
    try:
        start = ctx.Barrier(procs)
        workers = [ctx.Process(target=_py_worker,
                               args=(counter, hist, start, iters))
                   for _ in range(procs)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        counts = [h.load() for h in hist]
        attempts = sum(n * (b + 1) for b, n in enumerate(counts[:-1]))
        attempts += counts[-1] * BINS  # a lower bound for the last bin
        return counts, attempts, counter.load()
    finally:
        for a in (counter, *hist):
            a.close()


def _report(label: str, n: int, iters: int, result: Result) -> bool:
    hist, attempts, final = result
    ok = final == n * iters
    print(f"  {label:<12} {final:>10,} {'ok' if ok else 'WRONG':>5} "
          f"{attempts:>11,} {attempts / (n * iters) - 1:>8.3f}   "
          + " ".join(f"{h:>7,}" for h in hist))
    return ok


def plot(rows: Sequence[tuple[str, Result]], path: str) -> None:
    """Retry histograms, one group of bars per worker count (log scale)."""
    from . import save_plot

    def draw(plt: types.ModuleType) -> Figure:
        fig: Figure
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(rows)
        for k, (label, (hist, _, _)) in enumerate(rows):
            total = sum(hist) or 1
            ax.bar([b + k * width for b in range(BINS)],
                   [h / total for h in hist], width, label=label)
        ax.set_xticks([b + 0.4 - width / 2 for b in range(BINS)])
        ax.set_xticklabels([str(b) for b in range(BINS - 1)]
                           + [f"{BINS - 1}+"])
        ax.set_yscale("log")
        ax.set_xlabel("CAS retries before the increment succeeded")
        ax.set_ylabel("share of increments")
        ax.set_title("CAS retry loop under contention")
        ax.legend(fontsize=8)
        return fig
    save_plot(draw, path)


def run(args: argparse.Namespace) -> int:
    iters = args.iterations or 200_000
    py_iters = max(1, iters // 10)
    print("Each worker increments one shared counter with the retry loop:\n")
    print(LOOP + "\n")
    head = " ".join(f"{k:>7}" for k in ("0", "1", "2", "3", "4",
                                        f"{BINS - 1}+"))
    print(f"  {'workers':<12} {'final':>10} {'':>5} {'attempts':>11} "
          f"{'retries':>8}   increments that needed k retries")
    print(f"  {'':<12} {'':>10} {'':>5} {'':>11} {'/success':>8}   {head}")
    ok = True
    rows: list[tuple[str, Result]] = []
    for n in args.threads_list or (1, 2, 4):
        rows.append((f"{n} C threads", c_threads(n, iters)))
        ok &= _report(f"{n} C thr", n, iters, rows[-1][1])
    for n in args.threads_list or (1, 2, 4):
        rows.append((f"{n} Py processes", py_processes(n, py_iters)))
        ok &= _report(f"{n} Py proc", n, py_iters, rows[-1][1])
    if getattr(args, "plot", None):
        plot(rows, args.plot)
    print("\nOne worker never retries. With more workers than one, a CAS "
          "fails whenever\nanother worker changed the counter between the "
          "load and the CAS; the loop\nthen retries from the value it saw. "
          "Some worker always succeeds (lock-free),\nbut nobody is promised "
          "to (not wait-free). Python workers hold the value\nlonger "
          "between load and CAS (interpreter + cffi call), so a larger "
          "share of\ntheir attempts collide. This machine has "
          f"{mp.cpu_count()} CPUs: with more workers than\nCPUs, "
          "preemption between load and CAS causes retries too.")
    return 0 if ok else 1
