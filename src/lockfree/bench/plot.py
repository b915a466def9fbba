"""The PNG of ``--plot``: throughput vs threads and vs critical-section
length (log axes, one line per primitive), CPU burned, and acquire-latency
percentiles.  Needs matplotlib (the ``bench`` extra)."""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

from .harness import Record


class PlotUnavailable(ImportError):
    pass


def require_matplotlib() -> types.ModuleType:
    """Import matplotlib with a headless backend, or raise
    :class:`PlotUnavailable` saying how to install it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(
            "--plot needs matplotlib, which is not installed: "
            "pip install 'lockfree[bench]' (or pip install matplotlib)"
        ) from exc
    return plt


def _series(records: Sequence[Record], prim: str, key: str,
            where: Callable[[Record], bool]
            ) -> tuple[list[Any], list[dict[str, Any]]]:
    pts = sorted((r[key], r["median"]) for r in records
                 if r["primitive"] == prim and where(r))
    return [x for x, _ in pts], [m for _, m in pts]


def write(records: Sequence[Record], path: str, title: str = "") -> None:
    """Draw ``records`` (matrix records, or the ``results`` of a --json
    file) into the PNG ``path``; ``title`` goes in small print below."""
    import textwrap

    require_matplotlib()  # the headless backend, before pyplot loads
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    prims = list(dict.fromkeys(r["primitive"] for r in records))
    threads = sorted({r["threads"] for r in records})
    cs_all = sorted({r["cs_ns"] for r in records})
    cs0 = cs_all[0]
    # vs cs: at 2 threads if run (real contention on 2 cores), else the max.
    t_cs = 2 if 2 in threads else threads[-1]
    fig, ax = plt.subplots(2, 2, figsize=(14, 10))
    styles = {p: ("-o" if p.startswith("lf-") else
                  "--s" if p.startswith("pthread") else ":^")
              for p in prims}

    a = ax[0][0]
    for p in prims:
        x, m = _series(records, p, "threads", lambda r: r["cs_ns"] == cs0)
        a.plot(x, [v["mops"] for v in m], styles[p], label=p)
    a.set(xscale="log", yscale="log", xlabel="threads",
          ylabel="M acquisitions/s (all threads)",
          title=f"throughput vs threads (cs {cs0} ns)")
    a.set_xticks(threads, [str(t) for t in threads])

    a = ax[0][1]
    for p in prims:
        x, m = _series(records, p, "cs_ns", lambda r: r["threads"] == t_cs)
        a.plot(x, [v["mops"] for v in m], styles[p], label=p)
    a.set(xscale="symlog", yscale="log", xlabel="critical section, ns "
          "(symlog: 0 is linear)", ylabel="M acquisitions/s",
          title=f"throughput vs critical section ({t_cs} threads)")
    a.set_xscale("symlog", linthresh=max(10, min([c for c in cs_all if c]
                                                 or [10])))

    a = ax[1][0]
    for p in prims:
        x, m = _series(records, p, "threads", lambda r: r["cs_ns"] == cs0)
        a.plot(x, [v["cpu_util"] for v in m], styles[p], label=p)
    a.set(xscale="log", xlabel="threads", ylabel="cores busy (user+sys)",
          title=f"CPU burned vs threads (cs {cs0} ns)")
    a.set_xticks(threads, [str(t) for t in threads])

    a = ax[1][1]
    sel = [r for r in records if r["cs_ns"] == cs0 and r["threads"] == t_cs]
    for k, (key, mark) in enumerate((("lat_p50_ns", "o"), ("lat_p99_ns", "s"),
                                     ("lat_p999_ns", "^"))):
        a.scatter([i + (k - 1) * 0.2 for i in range(len(sel))],
                  [max(r["median"][key], 1) for r in sel], marker=mark,
                  label=key[4:-3].replace("p999", "p99.9"))
    a.set_xticks(range(len(sel)), [r["primitive"] for r in sel],
                 rotation=45, ha="right")
    a.set(yscale="log", ylabel="acquire latency, ns",
          title=f"acquire latency percentiles ({t_cs} threads, cs {cs0} ns)")
    a.legend()

    handles, labels = ax[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=6)
    for a in (ax[0][0], ax[0][1], ax[1][0], ax[1][1]):
        a.grid(True, which="both", alpha=0.3)
    for a in (ax[0][0], ax[1][0]):
        a.xaxis.set_minor_formatter(NullFormatter())
    if title:
        fig.suptitle(textwrap.fill(title, 170), y=0.005, va="bottom",
                     fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.93))
    fig.savefig(path, dpi=90)
    plt.close(fig)
