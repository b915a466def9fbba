"""Teaching demos: ``python -m lockfree demo [NAME]``.

Each demo module has a one-line ``TITLE`` and a ``run(args) -> int`` that
prints a short narrative and the numbers it is about.  Demos whose point
depends on an interleaving script it, so they are deterministic.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.context import (
        DefaultContext,
        ForkContext,
        ForkServerContext,
        SpawnContext,
    )
    from typing import TypeAlias

    from matplotlib.figure import Figure

    #: A multiprocessing context (``mp.get_context(...)``) a demo runs in.
    MpContext: TypeAlias = (DefaultContext | SpawnContext | ForkContext
                            | ForkServerContext)

# name -> module; the order is the order of a course.
DEMOS = {
    "lost-update": "lost_update",
    "cas-retry": "cas_retry",
    "spin-vs-mutex": "spin_vs_mutex",
    "rcu": "rcu",
    "kfifo": "kfifo",
    "kfifo-async": "kfifo_async",
    "aba": "aba",
    "seqlock": "torn_read",
    "writer-rate": "writer_rate",
    "once": "once",
}


def load(name: str) -> types.ModuleType:
    return importlib.import_module(f"{__name__}.{DEMOS[name]}")


def plots(name: str) -> bool:
    """True if demo ``name`` can draw its numbers (``--plot PATH``)."""
    return hasattr(load(name), "plot")


def save_plot(draw: Callable[[types.ModuleType], Figure],
              path: str) -> None:
    """Run ``draw(plt)`` on a fresh headless figure and save it to path."""
    from ..bench.plot import require_matplotlib

    plt = require_matplotlib()
    fig = draw(plt)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot written to {path}")


def listing() -> str:
    width = max(map(len, DEMOS))
    lines = ["demos (python -m lockfree demo NAME):"]
    lines += [f"  {name:<{width}}  {load(name).TITLE}" for name in DEMOS]
    return "\n".join(lines)
