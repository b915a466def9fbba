"""``python -m lockfree bench``: argument parsing and the run itself."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from . import harness, machine, matrix, progress, report

DESCRIPTION = """\
Benchmark locks under contention.  The timed loop runs in C threads (no
Python in it): acquire, a critical section of --cs-ns busy work over
--lines shared cache lines, release, --ncs-ns busy work.  Reports
throughput, fairness, acquire-latency percentiles, CPU burned and a
correctness check of the protected counter.  The default matrix takes about
a minute on 2 cores; --quick a few seconds.  --python runs the same idea
with Python threads and processes (lockfree vs threading/multiprocessing
locks, and the cffi call floor)."""

EPILOG = "primitives: " + ", ".join(harness.PRIMITIVES) + \
    " ('none' takes no lock: its counter check fails)."


def _int_list(lo: int, hi: int) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.replace(",", " ").split()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected integers like 1,2,4, got {text!r}") from None
        bad = [v for v in values if not lo <= v <= hi]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"each value must be in {lo}..{hi}, got {text!r}")
        return values
    return parse


def _int(lo: int, hi: int) -> Callable[[str], int]:
    parse_list = _int_list(lo, hi)

    def parse(text: str) -> int:
        values = parse_list(text)
        if len(values) != 1:
            raise argparse.ArgumentTypeError(
                f"expected one integer, got {text!r}")
        return values[0]
    return parse


def _pow2(text: str) -> int:
    value = _int(1, 1 << 20)(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(
            f"must be a power of two, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.001 <= value <= 600:
        raise argparse.ArgumentTypeError(
            f"must be 0.001..600 seconds, got {text}")
    return value


def _primitives(text: str) -> list[str]:
    names = [n for n in text.replace(",", " ").split() if n]
    if names == ["all"]:
        return list(matrix.DEFAULT_PRIMITIVES)
    bad = [n for n in names if n not in harness.PRIMITIVES]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown primitive(s) {', '.join(bad) or text!r}; choose from "
            f"{', '.join(harness.PRIMITIVES)} or all")
    return list(dict.fromkeys(names))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="benchmark locks vs mutexes (C threads;"
                       " --python: Python threads/processes)",
                       description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: fewer points, short runs")
    p.add_argument("--python", action="store_true",
                   help="Python-level mode: Python threads and processes")
    p.add_argument("--threads", type=_int_list(1, harness.MAX_THREADS),
                   metavar="N,N", help="thread counts (default 1,2,4)")
    p.add_argument("--cs-ns", type=_int_list(0, 10**9), metavar="NS,NS",
                   help="critical-section lengths in ns "
                   "(default 0,100,1000,5000)")
    p.add_argument("--ncs-ns", type=_int(0, 10**9), default=0, metavar="NS",
                   help="busy work between release and acquire (default 0)")
    p.add_argument("--lines", type=_int(1, harness.MAX_LINES), default=1,
                   metavar="K", help="shared cache lines the critical "
                   "section touches (default 1)")
    p.add_argument("--read-pct", type=_int(0, 100), default=90, metavar="P",
                   help="reads in lf-rw-mixed, percent (default 90)")
    p.add_argument("--lat-every", type=_pow2, default=matrix.LAT_EVERY,
                   metavar="N",
                   help="time one acquisition in N (a power of two; "
                   "default %(default)s).  Each timing costs two clock "
                   "reads, about an uncontended lock pair: 1 (time all) "
                   "makes throughput measure the clock")
    p.add_argument("--primitives", type=_primitives, metavar="NAME,NAME",
                   help="what to run (default: all but none)")
    p.add_argument("--duration", type=_seconds, metavar="S",
                   help="seconds per run (default 0.35; --quick 0.04)")
    p.add_argument("--repeat", type=_int(1, 1000), metavar="N",
                   help="runs per point; medians are reported (default 1)")
    p.add_argument("--pin", choices=machine.POLICIES, default="cores",
                   help="thread placement: separate physical cores "
                   "(default), SMT siblings, or none (unpinned)")
    p.add_argument("--json", metavar="PATH",
                   help="write every raw figure and the machine info "
                   "('-': to standard output; the table then goes to "
                   "standard error)")
    p.add_argument("--plot", metavar="PATH", help="write a PNG (matplotlib)")
    p.set_defaults(func=lambda args: run(args, p))
    return p


def _check_paths(args: argparse.Namespace,
                 parser: argparse.ArgumentParser) -> None:
    for opt in ("json", "plot"):
        path = getattr(args, opt)
        if path is not None and not (opt == "json" and path == "-"):
            d = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(d) or os.path.isdir(path):
                parser.error(f"--{opt} {path}: not a writable file path "
                             f"(directory {d} must exist)")
    if args.plot is not None:
        if args.python:
            parser.error("--plot draws the C benchmark; not with --python")
        from .plot import PlotUnavailable, require_matplotlib
        try:
            require_matplotlib()
        except PlotUnavailable as exc:
            parser.error(str(exc))


def settings(args: argparse.Namespace) -> matrix.Settings:
    base = matrix.QUICK if args.quick else matrix.DEFAULT
    return matrix.Settings(
        primitives=args.primitives or list(matrix.DEFAULT_PRIMITIVES),
        threads=args.threads or base["threads"],
        cs_ns=args.cs_ns if args.cs_ns is not None else base["cs_ns"],
        duration=args.duration or base["duration"],
        repeat=args.repeat or base["repeat"], ncs_ns=args.ncs_ns,
        lines=args.lines, read_pct=args.read_pct, pin=args.pin,
        lat_every=args.lat_every)


def header(info: dict[str, Any], extra: str) -> str:
    lf = info["lockfree"]
    load = info["loadavg"]
    return (f"lockfree {lf['version']} bench | {info['cpu_model']} | "
            f"{info['smt_summary']} | {info['kernel']} | {info['python']} | "
            f"atomics {lf['atomics']}, gcc {lf['compiler']} | clock "
            f"{info['clock']}\n{extra}"
            + (f" | load avg {load[0]:.1f} at start (shared machine: "
               "expect noise, use --repeat)" if load else ""))


def _note(text: str) -> None:
    """Progress, notes and "wrote ..." lines: standard error, so that
    standard output holds only the report (or the JSON of ``--json -``)."""
    print(text, file=sys.stderr)


def _out(args: argparse.Namespace) -> TextIO:
    """Where the human-readable report goes: standard output, unless the
    JSON goes there (``--json -``)."""
    return sys.stderr if args.json == "-" else sys.stdout


def _write_json(path: str, payload: dict[str, Any]) -> None:
    if path == "-":
        json.dump(payload, sys.stdout, indent=1)
        sys.stdout.write("\n")
        sys.stdout.flush()
        return
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    _note(f"wrote {path}")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    _check_paths(args, parser)
    if args.python:
        from . import pylevel
        return pylevel.main(args, machine.info(), header, _write_json)
    s = settings(args)
    ck = [p for p in s.primitives if p.startswith("ck-")]
    why = harness.use_ck(ck, _note) if ck else None
    if why:
        _note(why)  # one line: what is missing and how to get it
    info = machine.info()
    prims, missing = s.runnable()
    missing_lf = [p for p in missing if p not in ck]
    if missing_lf:
        _note(f"not available in this build: {', '.join(missing_lf)}")
    if not prims:
        parser.error("none of the requested primitives is available")
    bar = progress.bar(len(s.configs()) * s.repeat)
    try:
        records, notes = matrix.run_matrix(s, bar)
    finally:
        bar.close()
    for note in notes:
        _note(f"note: {note}")
    cal = records[0]["repeats"][0]["calibration"]
    head = header(info, f"pin {s.pin} | {s.duration} s per run x "
                  f"{s.repeat} repeat(s) | latency sampled: 1 acquisition in "
                  f"{s.lat_every} timed (throughput includes that) | busy "
                  "loop "
                  f"{cal['busy_iters_per_ns']:.2f} iterations/ns, timer "
                  f"{cal['timer_ns']:.0f} ns")
    out = _out(args)
    report.render(report.sections(records), report.legend(head), stream=out)
    found = report.claims(records)
    print("\n" + report.claims_text(found), file=out)
    failed = sorted({r["primitive"] for r in records if not r["ok"]})
    if failed:
        print(f"\ncounter check FAILED for: {', '.join(failed)}"
              + (" ('none' takes no lock: expected)" if failed == ["none"]
                 else ""), file=out)
    if args.json:
        _write_json(args.json, {
            "schema": "lockfree-bench/1", "mode": "c", "machine": info,
            "settings": dataclasses.asdict(s), "notes": notes,
            "unavailable": missing, "claims": found, "results": records})
    if args.plot:
        from . import plot
        plot.write(records, args.plot, title=head.replace("\n", " | "))
        _note(f"wrote {args.plot}")
    return 1 if failed else 0
