"""bench_kfifo.py's figures: rates per cell, issue #19 targets, the table.

A row is one implementation in one cell: its seconds per round, and the
median and best rate (messages/s for 64 B, GB/s = 1e9 bytes/s above).
"""

from __future__ import annotations

import statistics

import _kfifo_xproc as X
from _report import environment

LIBS = ["lockfree", "kickmsg", "iceoryx2", "faster-fifo", "mp.Queue",
        "mp.Pipe"]


def rate(group, size, n, secs) -> float:
    """Messages/s for 64 B, GB/s (1e9 bytes) for larger messages."""
    return n / secs if size <= 64 else n * size / secs / 1e9


def summary(todo, times):
    rows = []
    for g, impl, size, n in todo:
        secs = times[g, impl]
        if not secs:
            continue
        rates = [rate(g, size, n, s) for s in secs]
        rows.append({"group": g, "impl": impl.impl, "calls": impl.label,
                     "consumer": impl.consumer, "size": size, "n": n,
                     "seconds": secs, "median": statistics.median(rates),
                     "best": max(rates),
                     "unit": "msg/s" if size <= 64 else "GB/s"})
    return rows


def _fmt(v, unit) -> str:
    return f"{v / 1e6:6.2f} M/s" if unit == "msg/s" else f"{v:6.2f} GB/s"


def targets(rows, spec):
    """The issue #19 speed targets: ratios of medians and of bests."""
    by = {(r["group"], r["impl"], r["calls"]): r for r in rows}

    def get(g, impl):
        return by.get((g, impl.impl, impl.label))
    out = []
    for what, g, sub, anchors, need in spec:
        s = get(g, sub)
        cands = [get(*a) if isinstance(a, tuple) else get(g, a)
                 for a in anchors]
        cands = [c for c in cands if c]
        if not s or not cands:
            continue
        a = max(cands, key=lambda c: c["median"])
        med, best = s["median"] / a["median"], s["best"] / a["best"]
        out.append({"target": what, "anchor": f"{a['impl']} {a['calls']}",
                    "median_ratio": med, "best_ratio": best, "min": need,
                    "holds": med >= need and best >= need})
    return out


def report(rows, lat, tgts, rounds, groups) -> str:
    lines = [f"{environment()}", f"median and best of {rounds} interleaved "
             "rounds; producer process -> consumer process, sequence numbers"
             " checked", ""]
    w = max([len(f"{r['impl']} {r['calls']}") for r in rows] + [30])
    lines.append(f"{'':2}{'implementation':<{w}}  {'consumer':<9}"
                 f"{'median':>12} {'best':>12}")
    for g in groups:
        grp = [r for r in rows if r["group"] == g]
        if grp:
            lines.append(g)
        for r in grp:
            lines.append(f"  {r['impl'] + ' ' + r['calls']:<{w}}  "
                         f"{r['consumer']:<9}"
                         f"{_fmt(r['median'], r['unit']):>12}"
                         f" {_fmt(r['best'], r['unit']):>12}")
    if any(lat.values()):
        lines.append("64 B round trip (median of each round's median)")
        for name, label, *_ in X.LATENCY:
            if lat.get(name):
                us = [v / 1e3 for v in lat[name]]
                lines.append(f"  {name + ' ' + label:<{w}}  {'':<9}"
                             f"{statistics.median(us):8.2f} us "
                             f"{min(us):8.2f} us")
    if tgts:
        lines += ["", "issue #19 speed targets (ratio of medians, of bests):"]
        for t in tgts:
            lines.append(f"  {'ok  ' if t['holds'] else 'MISS'} "
                         f"{t['target']}: {t['median_ratio']:.2f}x "
                         f"({t['best_ratio']:.2f}x) vs {t['anchor']}")
    return "\n".join(lines)


def matrix(rows, groups) -> str:
    """The issue's layout: a cell per library, its fastest row by median
    (median, then best)."""
    libs = [lib for lib in LIBS if any(r["impl"] == lib for r in rows)]
    lines = [f"{'':<20}" + "".join(f"{lib:>14}" for lib in libs)]
    for g in groups:
        cells = []
        for lib in libs:
            mine = [r for r in rows if r["group"] == g and r["impl"] == lib]
            if not mine:
                cells.append(f"{'':>14}")
                continue
            r = max(mine, key=lambda r: r["median"])
            v, b = (r["median"], r["best"]) if r["unit"] == "GB/s" else \
                (r["median"] / 1e6, r["best"] / 1e6)
            cells.append(f"{f'{v:.2f} ({b:.2f})':>14}")
        lines.append((f"{g:<20}" + "".join(cells)).rstrip())
    return "\n".join(lines)
