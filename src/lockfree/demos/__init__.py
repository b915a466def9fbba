"""Teaching demos: ``python -m lockfree demo [NAME]``.

Each demo module has a one-line ``TITLE`` and a ``run(args) -> int`` that
prints a short narrative and the numbers it is about.  Demos whose point
depends on an interleaving script it, so they are deterministic.
"""

from __future__ import annotations

import importlib

# name -> module; the order is the order of a course.
DEMOS = {
    "lost-update": "lost_update",
    "cas-retry": "cas_retry",
    "spin-vs-mutex": "spin_vs_mutex",
    "rcu": "rcu",
    "aba": "aba",
    "seqlock": "torn_read",
    "writer-rate": "writer_rate",
    "once": "once",
}


def load(name: str):
    return importlib.import_module(f"{__name__}.{DEMOS[name]}")


def listing() -> str:
    width = max(map(len, DEMOS))
    lines = ["demos (python -m lockfree demo NAME):"]
    lines += [f"  {name:<{width}}  {load(name).TITLE}" for name in DEMOS]
    return "\n".join(lines)
