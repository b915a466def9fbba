"""The benchmark matrix: primitives x threads x critical-section lengths,
repeated with the configurations interleaved, reduced to medians."""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from . import harness, machine
from .harness import Record
from .progress import Bar

#: Default matrix: ~1 minute on 2 cores with every primitive.  4 threads
#: oversubscribe a 2-core machine on purpose.
DEFAULT: dict[str, Any] = {"threads": [1, 2, 4],
                           "cs_ns": [0, 100, 1000, 5000],
                           "duration": 0.35, "repeat": 1}
#: Latency sampling: time one acquisition in this many.  Two clock reads
#: cost about as much as an uncontended lock pair, so timing every one
#: measured the clock; 1 in 1024 leaves throughput within noise of
#: untimed runs and still gives thousands of samples per run.
LAT_EVERY = 1024
#: --quick: a few seconds.
QUICK: dict[str, Any] = {"threads": [1, 2, 4], "cs_ns": [0, 1000],
                         "duration": 0.04, "repeat": 1}
#: What the default matrix runs ("none" only when asked for).
DEFAULT_PRIMITIVES = [p for p in harness.PRIMITIVES if p != "none"]

#: Figures reduced to their median over repeats.
MEDIAN_KEYS = ("mops", "min_thread", "max_thread", "cv", "cpu_util",
               "sys_frac", "cpu_ns_per_acq", "lat_p50_ns", "lat_p99_ns",
               "lat_p999_ns", "lat_max_ns", "lat_mean_ns", "vcsw", "ivcsw")


@dataclasses.dataclass
class Settings:
    primitives: list[str]
    threads: list[int]
    cs_ns: list[int]
    duration: float
    repeat: int = 1
    ncs_ns: int = 0
    lines: int = 1
    read_pct: int = 90
    pin: str = "cores"
    # One acquisition in LAT_EVERY is timed (two clock reads): timing every
    # one made every lock look alike (clock overhead, not the lock).
    lat_every: int = LAT_EVERY

    def runnable(self) -> tuple[list[str], list[str]]:
        """(primitives to run, primitives not built in)."""
        ok = [p for p in self.primitives if harness.available(p)]
        return ok, [p for p in self.primitives if p not in ok]

    def configs(self) -> list[tuple[int, int, str]]:
        """(cs_ns, threads, primitive) in run order: the primitives of one
        (cs, threads) point run back to back, so drift hits them alike."""
        prims, _ = self.runnable()
        return [(cs, t, p) for cs in self.cs_ns for t in self.threads
                for p in prims]


def run_matrix(s: Settings, progress: Bar | None = None
               ) -> tuple[list[Record], list[str]]:
    """Run every configuration ``s.repeat`` times (all configurations once,
    then again: interleaved).  Returns (records, notes); a record holds the
    raw repeats and their medians.  ``progress(label)`` is called before
    each run."""
    records: dict[tuple[int, int, str], Record] = {}
    notes: list[str] = []
    plans: dict[int, tuple[list[int], str]] = {}
    for t in s.threads:
        cpus, policy, note = machine.pin_plan(s.pin, t)
        plans[t] = (cpus, policy)
        if note and note not in notes:
            notes.append(note)
    for rep in range(s.repeat):
        for cs, t, prim in s.configs():
            if progress:
                progress(f"{prim} T={t} cs={cs}ns ({rep + 1}/{s.repeat})")
            raw = harness.run(prim, t, s.duration, cs, s.ncs_ns, s.lines,
                              s.read_pct, plans[t][0], s.lat_every)
            rec = records.setdefault((cs, t, prim), {
                "primitive": prim, "threads": t, "cs_ns": cs,
                "ncs_ns": s.ncs_ns, "lines": s.lines,
                "read_pct": raw["read_pct"], "pin": plans[t][1],
                "cpus": plans[t][0], "repeats": []})
            rec["repeats"].append(raw)
    out = []
    for rec in records.values():
        reps = rec["repeats"]
        rec["ok"] = all(r["ok"] for r in reps)
        rec["median"] = {k: statistics.median(r[k] for r in reps)
                         for k in MEDIAN_KEYS}
        out.append(rec)
    return out, notes
