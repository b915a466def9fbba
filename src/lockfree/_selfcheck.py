"""The self-check ``python -m lockfree`` runs: real contention on AtomicInt
between 2 threads and between 2 processes, with exact totals."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

from .atomic import AtomicInt


def _adder(counter, start, n):
    start.wait()
    add = counter.fetch_add
    for _ in range(n):
        add(1)


def _updater(counter, retries, start, n):
    start.wait()
    total = 0
    for _ in range(n):
        total += counter.update(lambda x: x + 1)[1]
    retries.fetch_add(total)


def _run(workers, expected, counter, what) -> bool:
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    dt = time.perf_counter() - t0
    got = counter.load()
    ok = got == expected and all(
        getattr(w, "exitcode", 0) == 0 for w in workers)
    print(f"  {'ok ' if ok else 'FAIL'} {what}: expected {expected:,}, "
          f"got {got:,} ({dt:.2f} s)")
    return ok


def self_check(n: int) -> bool:
    print("self-check (real contention):")
    ok = True
    ctx = mp.get_context("spawn")
    for kind, make, barrier in [
            ("threads", threading.Thread, threading.Barrier(2)),
            ("processes", ctx.Process, ctx.Barrier(2))]:
        with AtomicInt(shared=kind == "processes") as c:
            ok &= _run([make(target=_adder, args=(c, barrier, n))
                        for _ in range(2)], 2 * n, c,
                       f"2 {kind} x {n:,} fetch_add")
        with AtomicInt(shared=True) as c, AtomicInt(shared=True) as r:
            n_cas = n // 4
            ok &= _run([make(target=_updater, args=(c, r, barrier, n_cas))
                        for _ in range(2)], 2 * n_cas, c,
                       f"2 {kind} x {n_cas:,} CAS update() loops")
            print(f"       CAS retries under contention: {r.load():,}")
    print("self-check passed" if ok else "self-check FAILED")
    return ok
