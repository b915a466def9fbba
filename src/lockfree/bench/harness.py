"""One run of the C harness (``lf_bench_run``) as a dict of raw figures.

The harness is a tool, in ``lockfree._tools`` (built without Concurrency
Kit); :func:`use_ck` adds a CK-enabled build of it for the ``ck-*``
primitives (``ck.py``: built on demand when ``<ck_spinlock.h>`` is found).
"""

from __future__ import annotations

import errno
import statistics
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .._tools import ffi, lib

#: Every primitive the C harness knows, in its order ("none" takes no lock:
#: it exists to show the counter check failing).
PRIMITIVES: tuple[str, ...] = tuple(ffi.string(lib.lf_bench_name(i)).decode()
                   for i in range(lib.LF_BENCH_NPRIMS))
MAX_THREADS: int = lib.LF_BENCH_MAX_THREADS
MAX_LINES: int = lib.LF_BENCH_MAX_LINES
CLOCK: str = ffi.string(lib.lf_bench_clock()).decode()

#: A JSON-ready record of figures (what :func:`run` returns; the matrix and
#: the reports add to it).
Record = dict[str, Any]


#: The CK-enabled harness module once :func:`use_ck` loaded it.
CK: types.ModuleType | None = None


class NotAvailable(LookupError):
    """The primitive is not compiled in (Concurrency Kit not loaded)."""


def use_ck(names: Iterable[str] | None = None,
           note: Callable[[str], None] | None = None) -> str | None:
    """Load (building once if needed) the CK-enabled harness for ``names``
    (the ``ck-*`` primitives asked for; default all three); None, or the
    one line saying why not.  ``note(text)`` shows progress (default:
    standard error)."""
    global CK
    from . import ck
    names = list(names or ck.NAMES)
    if note is None:
        def note(text: str) -> None:
            print(text, file=sys.stderr)
    if CK is None:
        try:
            mod = ck.load(names, note)
        except ck.Unavailable as exc:
            return str(exc)
        names_there = tuple(ffi.string(mod.lib.lf_bench_name(i)).decode()
                            for i in range(mod.lib.LF_BENCH_NPRIMS))
        if names_there != PRIMITIVES:
            return f"{', '.join(names)}: the CK harness does not match"
        CK = mod
    if not all(CK.lib.lf_bench_available(PRIMITIVES.index(n))
               for n in names):
        return f"{', '.join(names)}: built, but without Concurrency Kit"
    return None


def _impl(name: str) -> tuple[Any, Any]:
    """(ffi, lib) of the harness that runs ``name``."""
    if CK is not None and name.startswith("ck-"):
        return CK.ffi, CK.lib
    return ffi, lib


def available(name: str) -> bool:
    """True if ``name`` can run (``ck-*``: after :func:`use_ck`)."""
    return bool(_impl(name)[1].lf_bench_available(PRIMITIVES.index(name)))


def run(prim: str, threads: int, duration: float, cs_ns: int = 0,
        ncs_ns: int = 0, lines: int = 1, read_pct: int = 90,
        cpus: Sequence[int | None] | None = None,
        lat_every: int = 1) -> Record:
    """Run ``threads`` C threads on ``prim`` for ``duration`` seconds.

    ``cpus``: the CPU of each thread (``-1`` or ``None``: unpinned).
    ``lat_every``: time one acquisition in this many (a power of two).
    Returns the raw figures plus a few derived ones (see ``_derive``).
    Raises ``ValueError`` for a bad configuration, :class:`NotAvailable`
    for a primitive this build lacks, ``OSError`` if threads could not start.
    """
    if prim not in PRIMITIVES:
        raise ValueError(f"unknown primitive {prim!r}; "
                         f"expected one of {', '.join(PRIMITIVES)}")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be 1..{MAX_THREADS}, not {threads}")
    if duration <= 0 or min(cs_ns, ncs_ns, lines, read_pct, lat_every) < 0:
        raise ValueError("duration must be > 0 and cs_ns, ncs_ns, lines, "
                         "read_pct, lat_every >= 0")
    cpus = list(cpus) if cpus is not None else [-1] * threads
    if len(cpus) < threads:
        raise ValueError(f"{threads} threads need {threads} CPUs, "
                         f"got {len(cpus)}")
    hffi, hlib = _impl(prim)
    cfg = hffi.new("struct lf_bench_config *")
    cfg.prim = PRIMITIVES.index(prim)
    cfg.threads = threads
    cfg.duration_ns = int(duration * 1e9)
    cfg.cs_ns, cfg.ncs_ns = cs_ns, ncs_ns
    cfg.cs_lines, cfg.read_pct, cfg.lat_every = lines, read_pct, lat_every
    for i, cpu in enumerate(cpus[:threads]):
        cfg.cpu[i] = -1 if cpu is None else cpu
    res = hffi.new("struct lf_bench_result *")
    err = hlib.lf_bench_run(cfg, res)  # the GIL is released for the run
    if err == -errno.ENOTSUP:
        raise NotAvailable(
            f"{prim} is not available in this build" + (
                "; use_ck() builds it where libck-dev is installed"
                if prim.startswith("ck-") else ""))
    if err == -errno.EINVAL:
        raise ValueError(
            f"bad benchmark configuration: threads 1..{MAX_THREADS}, lines "
            f"1..{MAX_LINES}, read_pct 0..100, lat_every a power of 2, "
            "durations <= 1 h, cs/ncs <= 1 s, CPUs -1 or valid")
    if err:
        raise OSError(-err, f"lf_bench_run: {errno.errorcode.get(-err)}")
    return _derive(prim, res, threads, cs_ns, ncs_ns, lines,
                   read_pct if prim == "lf-rw-mixed" else 0)


def _derive(prim: str, r: Any, threads: int, cs_ns: int, ncs_ns: int,
            lines: int, read_pct: int) -> Record:
    th = [r.thread[i] for i in range(threads)]
    per = [t.acquisitions for t in th]
    elapsed = r.elapsed_ns / 1e9
    cpu_ns = sum(t.utime_ns + t.stime_ns for t in th)
    mean = statistics.fmean(per)
    return {
        "primitive": prim, "threads": threads, "cs_ns": cs_ns,
        "ncs_ns": ncs_ns, "lines": lines, "read_pct": read_pct,
        "elapsed_s": elapsed,
        "acquisitions": r.acquisitions, "reads": r.reads,
        "writes": r.writes, "timed": r.timed, "counter": r.counter,
        "torn": r.torn,
        "ok": bool(r.ok),
        "mops": r.acquisitions / elapsed / 1e6 if elapsed else 0.0,
        "per_thread": per,
        "min_thread": min(per), "max_thread": max(per),
        "cv": statistics.pstdev(per) / mean if mean else 0.0,
        "cpu_util": cpu_ns / r.elapsed_ns if r.elapsed_ns else 0.0,
        "sys_frac": (sum(t.stime_ns for t in th) / cpu_ns) if cpu_ns else 0.0,
        "cpu_ns_per_acq": cpu_ns / r.acquisitions if r.acquisitions else 0.0,
        "utime_ns": [t.utime_ns for t in th],
        "stime_ns": [t.stime_ns for t in th],
        "vcsw": sum(t.vcsw for t in th), "ivcsw": sum(t.ivcsw for t in th),
        "cpus": [t.cpu for t in th],
        "pin_errors": [t.pin_error for t in th],
        "lat_p50_ns": r.lat_p50_ns, "lat_p99_ns": r.lat_p99_ns,
        "lat_p999_ns": r.lat_p999_ns, "lat_max_ns": r.lat_max_ns,
        "lat_mean_ns": r.lat_mean_ns,
        # Nonzero buckets only: {lower bound in ns (rounded): count}.
        "lat_hist": {f"{lib.lf_bench_bucket_ns(i, r.ticks_per_ns):.1f}":
                     r.hist[i] for i in range(lib.LF_BENCH_BUCKETS)
                     if r.hist[i]},
        "cs_iters": r.cs_iters, "ncs_iters": r.ncs_iters,
        "calibration": {"busy_iters_per_ns": r.iters_per_ns,
                        "clock": CLOCK, "ticks_per_ns": r.ticks_per_ns,
                        "timer_ns": r.timer_ns},
    }
