"""What the benchmark files share: cases, timing loops, the ratio table.

A benchmark file (``bench_*.py``) defines ``CASES`` (a list of ``Case``) and,
optionally, ``TARGETS``.  Both ways of running it time the same loops and
print the same table through ``Results``:

* pytest (``conftest.py``): one pytest-benchmark test per case, the table at
  the end of the session;
* directly (``main``, from the file's ``__main__``): ``timeit``, taking the
  cases of a group in turn in 10k-call chunks so drift hits them alike.

Each case's figure is the best (minimum) ns/op over its timed loops of
``OPS`` calls, with the median beside it.  This VM has phases, seconds to
minutes long and interleaved down to the millisecond, in which something
outside it slows it down: a bare one-argument cffi call costs ~100 ns
undisturbed and ~135 ns then, and interpreted Python code slows down more
than the call.  Timing noise only ever adds, so the minimum of many short
loops is the undisturbed speed (what ``timeit``'s documentation recommends
reporting).  Every ratio is printed twice, of the best figures and, in
parentheses, of the medians, and a missed target is marked on each: the
disturbed phases change the ratios too (a ratio against an anchor written
in Python grows, a wrapper's ratio against a bare C call grows as well).
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
import typing
from collections.abc import Callable

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


class Row(typing.NamedTuple):
    """One case's figures in a Results table."""

    case: Case
    ns: float | None      # best ns/op, or the one figure measured
    note: str             # why ns is None
    median: float | None  # median ns/op (= ns for a single figure)


class Results:
    """The registry: per group, a list of Row; and the table."""

    def __init__(self):
        self.groups: dict[str, list] = {}
        self.targets: dict[str, dict] = {}

    def __bool__(self):
        return bool(self.groups)

    def add(self, case: Case, ns: float | None, targets=None, note="",
            median: float | None = None):
        """Record ``case``'s ns/op: the best of its timed loops, with their
        ``median``, or one figure measured some other way (``median``
        left out); ``None`` plus a ``note`` if it could not run.
        ``targets``: ``{"floor": max this/floor, anchor impl: min
        anchor/this}``, checked on subject rows, for the best figures and
        for the medians."""
        self.groups.setdefault(case.group, []).append(
            Row(case, ns, note, ns if median is None else median))
        if targets:
            self.targets[case.group] = targets

    def format(self, title: str = "") -> str:
        label_w = max(len(row.case.label) for rows in self.groups.values()
                      for row in rows)
        lines = [title] if title else []
        for group, rows in self.groups.items():
            lines += ["", *self._block(group, rows, label_w)]
        legends = dict.fromkeys(_legend(t) for t in self.targets.values())
        lines += ["", *legends] if legends else []
        return "\n".join(lines)

    def _block(self, group, rows, label_w):
        targets = self.targets.get(group, {})
        floor = next(((r.ns, r.median) for r in rows
                      if r.case.role == "floor"), None)
        anchors = {r.case.impl: (r.ns, r.median) for r in rows
                   if r.case.role == "anchor"}
        head = (f"{group:<{20 + label_w}} {'ns/op':>9} {'median':>8}"
                f" {'this/floor':>15}")
        head += "".join(f" {a + '/this':>15}" for a in anchors)
        out = [head]
        for case, ns, note, med in rows:
            line = f"  {case.role:<8}{case.impl:<10}{case.label:<{label_w}}"
            if ns is None:
                out.append(f"{line} {note or 'n/a':>9}")
                continue
            sub = case.role == "subject"
            line += f" {ns:9.1f} {med:8.1f}"
            line += _cell((ns, med), floor, hi=sub and targets.get("floor"))
            if sub:
                for impl, a in anchors.items():
                    line += _cell(a, (ns, med), lo=targets.get(impl))
            out.append(line.rstrip())
        return out


def _cell(num, den, lo=None, hi=None) -> str:
    """``num/den`` for the best figures, then for the medians in
    parentheses, each followed by ``!`` if it is below ``lo`` or above
    ``hi`` (a missed target); 15 characters."""
    if num is None or den is None or None in num or None in den:
        return f" {'n/a':>15}"
    cells = []
    for n, d in zip(num, den, strict=True):
        ratio = n / d
        miss = (lo and ratio < lo) or (hi and ratio > hi)
        cells.append(f"{ratio:.2f}{'!' if miss else ' '}")
    return f" {cells[0]:>7}({cells[1]:>6})"


def _legend(targets) -> str:
    parts = [f"this/floor <= {v}" if k == "floor" else f"{k}/this >= {v}"
             for k, v in targets.items()]
    return ("targets (subject rows): " + ", ".join(parts) + "; ! = missed;"
            " ratios of the best ns/op, then (of the medians)")


def run_direct(cases, targets=None, repeat=7, calls=200_000) -> Results:
    """Time ``cases`` with ``timeit``; record the best and the median ns/op
    of each case's loops.

    Per group, ``repeat`` rounds; in each round every case makes ``calls``
    calls, in chunks of ``CHUNK`` loops taken in turn, so that the machine's
    slow and fast phases hit all cases of the group alike.  Each loop of
    ``OPS`` calls is timed on its own.
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
        for _ in range(repeat * chunks):
            for name, timer in timers.items():
                samples[name] += timer.repeat(CHUNK, 1)
        for case in members:
            if case.name in samples:
                s = samples[case.name]
                results.add(case, min(s) / OPS * 1e9, targets,
                            median=statistics.median(s) / OPS * 1e9)
            else:
                results.add(case, None, targets, note="not installed")
    return results


def main(cases, targets=None, argv=None) -> None:
    """Command line of ``python benchmarks/bench_*.py``."""
    parser = argparse.ArgumentParser(
        description="Time the cases with timeit and print the ratio table.")
    parser.add_argument("--repeat", type=int, default=7,
                        help="rounds per case (7)")
    parser.add_argument("--calls", type=int, default=200_000,
                        help="calls per case per round (200000)")
    args = parser.parse_args(argv)
    results = run_direct(cases, targets, args.repeat, args.calls)
    title = (f"{environment()}\nbest and median ns/op of the loops of "
             f"{OPS} calls, {args.repeat} rounds x {args.calls} calls "
             f"(timeit)")
    print(results.format(title))
