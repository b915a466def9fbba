"""What the benchmark files share: cases, timing loops, the ratio table.

A benchmark file (``bench_*.py``) defines ``CASES`` (a list of ``Case``) and,
optionally, ``TARGETS``.  Both ways of running it time the same loops and
print the same table through ``Results``:

* pytest (``conftest.py``): one pytest-benchmark test per case, the table at
  the end of the session;
* directly (``main``, from the file's ``__main__``): ``timeit``, taking the
  cases of a group in turn in 10k-call chunks so drift hits them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import platform
import statistics
import sys
import textwrap
import timeit
from typing import Callable

OPS = 1000    # calls per timed loop: amortises the timer's own overhead
UNROLL = 10   # calls per loop iteration: amortises the loop's overhead
CHUNK = 10    # loops per timeit call in the direct runner (10k calls)

ROLES = ("floor", "subject", "anchor")


@dataclasses.dataclass(frozen=True)
class Case:
    """One implementation of one operation.

    ``stmt`` is the timed statement (one call, or a few lines for an
    emulation); ``setup()`` returns the names it uses, which become fast
    locals of the loop, and raises ``ImportError`` if the implementation is
    not installed.  In a group, the ``floor`` row is what ``this/floor`` is
    relative to, and each ``anchor`` row gets an ``<impl>/this`` column.
    """

    group: str   # one table block and one pytest-benchmark group
    role: str    # "floor", "subject" or "anchor"
    impl: str    # "cffi", "lockfree", "atomics", ...: names anchor columns
    name: str    # short id, unique in the group (pytest test id)
    label: str   # the call as a user writes it, for the table
    stmt: str
    setup: Callable[[], dict]

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")

    def loop(self) -> Callable[[], None]:
        """A function making ``OPS`` executions of ``stmt``.

        Every case gets the same loop shape, ``UNROLL`` copies of ``stmt``
        per iteration, so the loop costs all cases the same (~1 ns/op).
        """
        names = self.setup()
        body = textwrap.indent("\n".join([self.stmt] * UNROLL), " " * 8)
        src = (f"def loop({', '.join(names)}):\n"
               f"    for _ in range({OPS // UNROLL}):\n{body}\n")
        scope = {}
        exec(compile(src, f"<{self.group} {self.name}>", "exec"), scope)
        loop = scope["loop"]
        loop.__defaults__ = tuple(names.values())
        return loop


def environment() -> str:
    try:
        import lockfree
        build = lockfree.build_info()
        lf = f"lockfree {build['version']} ({build['atomics']}), " \
             f"cffi {build['cffi']}"
    except ImportError:  # pragma: no cover
        lf = "lockfree not importable"
    return (f"{platform.python_implementation()} {platform.python_version()}"
            f", {lf}, {platform.machine()}")


class Results:
    """The registry: (group, case, median ns/op) rows, and the table."""

    def __init__(self):
        self.groups: dict[str, list] = {}
        self.targets: dict[str, dict] = {}

    def __bool__(self):
        return bool(self.groups)

    def add(self, case: Case, ns: float | None, targets=None, note=""):
        """Record ``case``'s median ns/op (``None`` plus a ``note`` if it
        could not run).  ``targets``: ``{"floor": max this/floor,
        anchor impl: min anchor/this}``, checked on subject rows."""
        self.groups.setdefault(case.group, []).append((case, ns, note))
        if targets:
            self.targets[case.group] = targets

    def format(self, title: str = "") -> str:
        label_w = max(len(c.label) for rows in self.groups.values()
                      for c, _, _ in rows)
        lines = [title] if title else []
        for group, rows in self.groups.items():
            lines += ["", *self._block(group, rows, label_w)]
        legends = dict.fromkeys(_legend(t) for t in self.targets.values())
        lines += ["", *legends] if legends else []
        return "\n".join(lines)

    def _block(self, group, rows, label_w):
        targets = self.targets.get(group, {})
        floor = next((ns for c, ns, _ in rows if c.role == "floor"), None)
        anchors = {c.impl: ns for c, ns, _ in rows if c.role == "anchor"}
        head = f"{group:<{20 + label_w}} {'ns/op':>9} {'this/floor':>10}"
        head += "".join(f" {a + '/this':>14}" for a in anchors)
        out = [head]
        for case, ns, note in rows:
            line = f"  {case.role:<8}{case.impl:<10}{case.label:<{label_w}}"
            if ns is None:
                out.append(f"{line} {note or 'n/a':>9}")
                continue
            sub = case.role == "subject"
            line += f" {ns:9.1f}"
            line += _cell(ns, floor, 10, hi=sub and targets.get("floor"))
            if sub:
                for impl, anchor_ns in anchors.items():
                    line += _cell(anchor_ns, ns, 14, lo=targets.get(impl))
            out.append(line.rstrip())
        return out


def _cell(num, den, width, lo=None, hi=None) -> str:
    """``num/den`` right-aligned, then ``!`` if it is below ``lo`` or above
    ``hi`` (a missed target)."""
    if num is None or den is None:
        return f" {'n/a':>{width - 1}} "
    ratio = num / den
    miss = (lo and ratio < lo) or (hi and ratio > hi)
    return f" {ratio:{width - 1}.2f}{'!' if miss else ' '}"


def _legend(targets) -> str:
    parts = [f"this/floor <= {v}" if k == "floor" else f"{k}/this >= {v}"
             for k, v in targets.items()]
    return "targets (subject rows): " + ", ".join(parts) + "; ! = missed"


def run_direct(cases, targets=None, repeat=7, calls=200_000) -> Results:
    """Time ``cases`` with ``timeit`` and record their medians.

    Per group, ``repeat`` rounds; in each round every case makes ``calls``
    calls, in chunks of ``CHUNK`` loops taken in turn, so that the machine's
    slow and fast phases hit all cases of the group alike.
    """
    chunks = max(1, math.ceil(calls / (OPS * CHUNK)))
    results = Results()
    groups: dict[str, list] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    for group, members in groups.items():
        print(f"timing {group} ...", file=sys.stderr, flush=True)
        timers = {}
        for case in members:
            try:
                loop = case.loop()
            except ImportError:
                continue
            loop()  # warm up (specialise the bytecode)
            # gc stays on, as under pytest-benchmark and in real use.
            timers[case.name] = timeit.Timer(loop, setup=gc.enable)
        samples = {name: [] for name in timers}
        for _ in range(repeat):
            total = dict.fromkeys(timers, 0.0)
            for _ in range(chunks):
                for name, timer in timers.items():
                    total[name] += timer.timeit(CHUNK)
            for name, seconds in total.items():
                samples[name].append(seconds / (chunks * CHUNK * OPS))
        for case in members:
            if case.name in samples:
                ns = statistics.median(samples[case.name]) * 1e9
                results.add(case, ns, targets)
            else:
                results.add(case, None, targets, note="not installed")
    return results


def main(cases, targets=None, argv=None) -> None:
    """Command line of ``python benchmarks/bench_*.py``."""
    parser = argparse.ArgumentParser(
        description="Time the cases with timeit and print the ratio table.")
    parser.add_argument("--repeat", type=int, default=7,
                        help="rounds per case; the median is reported (7)")
    parser.add_argument("--calls", type=int, default=200_000,
                        help="calls per case per round (200000)")
    args = parser.parse_args(argv)
    results = run_direct(cases, targets, args.repeat, args.calls)
    title = (f"{environment()}\nmedian ns/op of {args.repeat} rounds x "
             f"{args.calls} calls (timeit)")
    print(results.format(title))
