"""The table and the two claims of the article "Lock-free programming
through the Linux kernel", checked against matrix records."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .harness import Record

SPINLOCKS = ("lf-tas", "lf-ttas", "pthread-spin", "ck-fas")
MUTEX = "pthread-mutex"

#: One table: (title, rows); a row is a tuple of cells in column order.
Section = tuple[str, list[tuple[str, ...]]]

HEADER = ("primitive", "thr", "Mops/s", "x mutex", "per-thread min/max",
          "CV", "p50", "p99", "p99.9", "CPU", "sys", "check")


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.1f}ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f}us"
    return f"{ns:.0f}ns"


def _count(n: float) -> str:
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _index(records: Sequence[Record]
           ) -> dict[tuple[int, int, str], Record]:
    return {(r["cs_ns"], r["threads"], r["primitive"]): r for r in records}


def sections(records: Sequence[Record]) -> list[Section]:
    """[(title, rows)], one section per critical-section length; rows are
    tuples of strings in HEADER order."""
    idx = _index(records)
    out: list[Section] = []
    for cs in sorted({r["cs_ns"] for r in records}):
        rows: list[tuple[str, ...]] = []
        for rec in (r for r in records if r["cs_ns"] == cs):
            m = rec["median"]
            mutex = idx.get((cs, rec["threads"], MUTEX))
            ratio = (m["mops"] / mutex["median"]["mops"]
                     if mutex and mutex["median"]["mops"] else None)
            name = rec["primitive"]
            if rec["read_pct"]:
                name += f" ({rec['read_pct']}% r)"
            rows.append((
                name, str(rec["threads"]), f"{m['mops']:.2f}",
                f"{ratio:.2f}" if ratio is not None else "-",
                f"{_count(m['min_thread'])}/{_count(m['max_thread'])}",
                f"{m['cv']:.2f}", fmt_ns(m["lat_p50_ns"]),
                fmt_ns(m["lat_p99_ns"]), fmt_ns(m["lat_p999_ns"]),
                f"{m['cpu_util']:.2f}", f"{100 * m['sys_frac']:.0f}%",
                "ok" if rec["ok"] else "FAIL"))
        rows.sort(key=lambda row: (int(row[1]), row[0]))
        first = next(r for r in records if r["cs_ns"] == cs)
        title = (f"critical section {cs} ns over {first['lines']} cache "
                 f"line(s), non-critical {first['ncs_ns']} ns")
        out.append((title, rows))
    return out


def legend(settings_text: str) -> str:
    return (f"{settings_text}\n"
            "Mops/s: million acquisitions/s, all threads; x mutex: vs "
            "pthread-mutex at the same point; per-thread min/max: "
            "acquisitions of the least/most served thread; CV: their "
            "coefficient of variation (0 = fair); p50/p99/p99.9: acquire "
            "latency; CPU: cores busy (user+sys CPU s per wall s); sys: "
            "share in the kernel; check: protected counter == exclusive "
            "acquisitions and no torn reads.  Medians over repeats.")


def plain_table(title: str, rows: Sequence[tuple[str, ...]],
                columns: tuple[str, ...] = HEADER) -> str:
    """Column 0 left-aligned, the others right; a blank line whenever
    column 1 (threads/workers) changes."""
    widths = [max(len(h), *(len(r[i]) for r in rows))
              for i, h in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False)))

    sep = "-" * len(line(columns))
    body = [line(r) if i == 0 or r[1] == rows[i - 1][1] else "\n" + line(r)
            for i, r in enumerate(rows)]
    return "\n".join([title, sep, line(columns), sep, *body])


def render(secs: Sequence[Section], header: str,
           columns: tuple[str, ...] = HEADER,
           stream: TextIO | None = None) -> None:
    """Print ``header`` and the ``[(title, rows)]`` sections: rich tables on
    a terminal when rich is installed, else plain text."""
    stream = stream or sys.stdout
    if stream.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            console = Console(file=stream)
            console.print(header)
            for title, rows in secs:
                t = Table(title=title, title_justify="left")
                for i, h in enumerate(columns):
                    t.add_column(h, justify="left" if i == 0 else "right")
                for i, r in enumerate(rows):
                    t.add_row(*r, end_section=i + 1 < len(rows)
                              and rows[i + 1][1] != r[1])
                console.print(t)
            return
    print(header, file=stream)
    for title, rows in secs:
        print("\n" + plain_table(title, rows, columns), file=stream)


def claims(records: Sequence[Record]) -> dict[str, list[dict[str, Any]]]:
    """The claims of "Lock-free programming through the Linux kernel",
    checked at every (cs, threads) point:

    1. a spinlock is "an order of magnitude faster than a mutex" for a
       critical section of a few instructions (the shortest cs here);
    2. pthread_spin_lock is "more than twice as fast" as pthread_mutex_lock.
    """
    idx = _index(records)
    out: dict[str, list[dict[str, Any]]] = {
        "spin_vs_mutex": [], "pthread_spin_vs_mutex": []}
    points = sorted({(r["cs_ns"], r["threads"]) for r in records})
    for cs, t in points:
        mutex = idx.get((cs, t, MUTEX))
        if not mutex or not mutex["median"]["mops"]:
            continue
        base = mutex["median"]["mops"]
        spins = {p: idx[(cs, t, p)]["median"]["mops"] / base
                 for p in SPINLOCKS if (cs, t, p) in idx}
        if spins:
            best = max(spins, key=lambda p: spins[p])
            out["spin_vs_mutex"].append({
                "cs_ns": cs, "threads": t, "best": best,
                "ratio": spins[best], "ratios": spins,
                "holds": spins[best] >= 10})
        if "pthread-spin" in spins:
            out["pthread_spin_vs_mutex"].append({
                "cs_ns": cs, "threads": t, "ratio": spins["pthread-spin"],
                "holds": spins["pthread-spin"] > 2})
    return out


def claims_text(c: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["Claims of \"Lock-free programming through the Linux kernel\" "
             "(throughput ratio to pthread-mutex; holds = >= 10x for 1, "
             "> 2x for 2):"]
    if c["spin_vs_mutex"]:
        lines.append("  1. best spinlock vs mutex (\"an order of magnitude"
                     " faster\"):")
        lines += [f"     cs {x['cs_ns']:>5} ns, {x['threads']} thr: "
                  f"{x['best']:<13} {x['ratio']:6.2f}x  "
                  f"{'holds' if x['holds'] else 'does not hold'}"
                  for x in c["spin_vs_mutex"]]
    if c["pthread_spin_vs_mutex"]:
        lines.append("  2. pthread-spin vs pthread-mutex (\"more than twice"
                     " as fast\"):")
        lines += [f"     cs {x['cs_ns']:>5} ns, {x['threads']} thr: "
                  f"{x['ratio']:6.2f}x  "
                  f"{'holds' if x['holds'] else 'does not hold'}"
                  for x in c["pthread_spin_vs_mutex"]]
    if len(lines) == 1:
        lines.append("  (needs pthread-mutex and a spinlock in the run)")
    return "\n".join(lines)
