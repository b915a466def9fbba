"""``bench --python``: the lock benchmark with Python threads and processes.

Each worker loops ``acquire(); counter += 1; release()`` for the duration,
through the same bound methods users call.  Implementations: the lockfree
locks, ``threading.Lock`` (threads only), ``multiprocessing.Lock``, and the
floor: two bare one-argument cffi calls (``lockfree._tools.lib.lf_noop1``
bound to a pointer, the cheapest binding lockfree uses) in place of acquire
and release, which no cffi-based lock can beat.  Where the lockfree figures
sit on the floor, the FFI boundary (the GIL released and retaken, errno saved,
~100 ns a call) dominates, not the lock.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import statistics
import sys
import threading
import time
import types
from collections.abc import Callable, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import progress, report
from .harness import Record

if TYPE_CHECKING:
    import argparse
    import multiprocessing.process
    import multiprocessing.synchronize

CHUNK = 64  # iterations between clock reads
FLOOR = "cffi floor: 2x lf_noop1"

COLUMNS = ("implementation", "workers", "k ops/s", "ns/op/worker",
           "x floor", "per-worker min/max", "CV", "check")


class _Lock(Protocol):
    """What the benchmark calls: the lockfree locks, threading.Lock and
    multiprocessing.Lock all have these two."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


def _floor_calls() -> tuple[Callable[[], object], Callable[[], object], Any]:
    from .._tools import ffi, lib
    p = ffi.new("char[]", 64)
    f = types.MethodType(lib.lf_noop1, p)
    return f, f, p


def _make(impl: str, processes: bool) -> _Lock | None:
    """The lock object for ``impl`` (None for the floor: each worker makes
    its own pointer)."""
    import lockfree
    ctx = mp.get_context("spawn")
    makers: dict[str, Callable[[], _Lock | None]] = {
        FLOOR: lambda: None,
        "lockfree.SpinLock": lambda: lockfree.SpinLock(shared=processes),
        "lockfree.TicketLock": lambda: lockfree.TicketLock(shared=processes),
        "lockfree.RWSpinLock (write)":
            lambda: lockfree.RWSpinLock(shared=processes),
        "threading.Lock": threading.Lock,
        "multiprocessing.Lock": ctx.Lock,
    }
    return makers[impl]()


IMPLS = (FLOOR, "lockfree.SpinLock", "lockfree.TicketLock",
         "lockfree.RWSpinLock (write)", "threading.Lock",
         "multiprocessing.Lock")


def _body(lock: _Lock | None, box: MutableSequence[int],
          start: threading.Event | multiprocessing.synchronize.Event,
          duration: float, counts: MutableSequence[int], i: int) -> None:
    acquire: Callable[[], object]
    release: Callable[[], object]
    if lock is None:
        acquire, release, _keep = _floor_calls()
    else:
        acquire, release = lock.acquire, lock.release
    start.wait()
    stop = time.perf_counter() + duration
    n = 0
    while time.perf_counter() < stop:
        for _ in range(CHUNK):
            acquire()
            box[0] += 1
            release()
        n += CHUNK
    counts[i] = n


def _once(impl: str, mode: str, workers: int, duration: float) -> Record:
    processes = mode == "processes"
    lock = _make(impl, processes)
    box: MutableSequence[int]
    counts: MutableSequence[int]
    start: threading.Event | multiprocessing.synchronize.Event
    make: Callable[..., threading.Thread | multiprocessing.process.BaseProcess]
    if processes:
        ctx = mp.get_context("spawn")
        box, counts = ctx.RawArray("q", 1), ctx.RawArray("q", workers)
        start = ctx.Event()
        make = ctx.Process
    else:
        box, counts, start = [0], [0] * workers, threading.Event()
        make = threading.Thread
    ws = [make(target=_body, args=(lock, box, start, duration, counts, i))
          for i in range(workers)]
    for w in ws:
        w.start()
    if processes:
        time.sleep(0.05)  # let spawned children import before the start
    start.set()
    for w in ws:
        w.join()
    close = getattr(lock, "close", None)
    if close is not None:
        close()
    per = list(counts)
    total = sum(per)
    mean = statistics.fmean(per)
    return {"total": total, "per_worker": per, "duration_s": duration,
            "counter": box[0],
            "ok": None if impl == FLOOR else box[0] == total,
            "kops": total / duration / 1e3,
            "ns_per_op": duration / mean * 1e9 if mean else float("inf"),
            "min": min(per), "max": max(per),
            "cv": statistics.pstdev(per) / mean if mean else 0.0}


@dataclasses.dataclass
class Settings:
    workers: list[int]
    duration: float
    repeat: int

    def configs(self) -> list[tuple[str, int, str]]:
        return [(mode, n, impl) for mode in ("threads", "processes")
                for n in self.workers for impl in IMPLS
                if not (mode == "processes" and impl == "threading.Lock")]


def run(s: Settings, bar: progress.Bar | None = None) -> list[Record]:
    recs: dict[tuple[str, int, str], Record] = {}
    for _ in range(s.repeat):
        for mode, n, impl in s.configs():
            if bar:
                bar(f"{mode} x{n} {impl}")
            rec = recs.setdefault((mode, n, impl), {
                "mode": mode, "workers": n, "implementation": impl,
                "repeats": []})
            rec["repeats"].append(_once(impl, mode, n, s.duration))
    for rec in recs.values():
        reps = rec["repeats"]
        rec["ok"] = None if impl_is_floor(rec) else all(r["ok"] for r in reps)
        rec["median"] = {k: statistics.median(r[k] for r in reps)
                         for k in ("kops", "ns_per_op", "min", "max", "cv")}
    return list(recs.values())


def impl_is_floor(rec: Record) -> bool:
    return bool(rec["implementation"] == FLOOR)


def sections(records: Sequence[Record]) -> list[report.Section]:
    floors = {(r["mode"], r["workers"]): r["median"]["ns_per_op"]
              for r in records if impl_is_floor(r)}
    out: list[report.Section] = []
    for mode in ("threads", "processes"):
        rows: list[tuple[str, ...]] = []
        for r in (r for r in records if r["mode"] == mode):
            m, floor = r["median"], floors.get((mode, r["workers"]))
            rows.append((
                r["implementation"], str(r["workers"]), f"{m['kops']:.0f}",
                f"{m['ns_per_op']:.0f}",
                f"{m['ns_per_op'] / floor:.2f}" if floor else "-",
                f"{m['min']:.0f}/{m['max']:.0f}", f"{m['cv']:.2f}",
                "n/a" if r["ok"] is None else "ok" if r["ok"] else "FAIL"))
        out.append((f"Python {mode}: acquire(); counter += 1; release()",
                    rows))
    return out


def main(args: argparse.Namespace, info: dict[str, Any],
         header: Callable[[dict[str, Any], str], str],
         write_json: Callable[[str, dict[str, Any]], None]) -> int:
    quick = args.quick
    s = Settings(workers=args.threads or ([1, 2] if quick else [1, 2, 4]),
                 duration=args.duration or (0.1 if quick else 0.3),
                 repeat=args.repeat or 1)
    bar = progress.bar(len(s.configs()) * s.repeat)
    try:
        records = run(s, bar)
    finally:
        bar.close()
    head = header(info, f"Python-level | {s.duration} s per run x "
                  f"{s.repeat} repeat(s) | ns/op/worker: wall time per "
                  "acquire+release pair of one worker; x floor: that over "
                  "the floor's (two bare cffi calls)")
    report.render(sections(records), head, COLUMNS,
                  stream=sys.stderr if args.json == "-" else None)
    if args.json:
        write_json(args.json, {
            "schema": "lockfree-bench/1", "mode": "python", "machine": info,
            "settings": dataclasses.asdict(s), "results": records})
    return 0 if all(r["ok"] is not False for r in records) else 1
