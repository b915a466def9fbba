"""The machine a benchmark ran on: CPU model, SMT topology, pinning.

Topology comes from ``/sys/devices/system/cpu/cpu*/topology/``: logical CPUs
with the same (package, core) are SMT siblings ("hyper-threads") sharing one
physical core's execution units.  A spinning waiter on the lock holder's
sibling steals issue slots from it (the reason ``pause`` exists), so the
pinning policy matters:

* ``cores``: one thread per physical core first (the first sibling of
  each), wrapping round when threads outnumber cores;
* ``siblings``: fill both siblings of a core before the next core;
* ``none``: let the scheduler place threads.

On a machine without SMT ``siblings`` is impossible; :func:`pin_plan` says
so and falls back to ``cores``.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

POLICIES = ("cores", "siblings", "none")
_SYS = "/sys/devices/system/cpu"


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def topology() -> list[list[int]]:
    """Physical cores as sorted lists of the logical CPUs this process may
    use, ordered by their first CPU.  Without /sys: one CPU per core."""
    allowed = sorted(os.sched_getaffinity(0))
    cores: dict[tuple[str, str], list[int]] = {}
    for cpu in allowed:
        top = f"{_SYS}/cpu{cpu}/topology"
        key = (_read(f"{top}/physical_package_id", "0"),
               _read(f"{top}/core_id", f"cpu{cpu}"))
        cores.setdefault(key, []).append(cpu)
    return sorted(cores.values())


def pin_plan(policy: str, threads: int,
             cores: list[list[int]] | None = None
             ) -> tuple[list[int], str, str]:
    """``(cpus, effective_policy, note)``: the CPU of each thread (-1:
    unpinned) for ``policy``, and a note when the policy could not be
    followed (no SMT for ``siblings``)."""
    if policy not in POLICIES:
        raise ValueError(f"pin policy must be one of {POLICIES}, "
                         f"not {policy!r}")
    cores = topology() if cores is None else cores
    if policy == "none":
        return [-1] * threads, "none", ""
    note = ""
    smt = any(len(c) > 1 for c in cores)
    if policy == "siblings" and not smt:
        note = (f"this machine has no SMT ({len(cores)} cores, one thread "
                "each): --pin siblings is impossible, pinned to separate "
                "cores instead")
        policy = "cores"
    if policy == "cores":
        order = [c[0] for c in cores] + [cpu for c in cores for cpu in c[1:]]
    else:
        order = [cpu for c in cores for cpu in c]
    return [order[i % len(order)] for i in range(threads)], policy, note


def cpu_model() -> str:
    text = _read("/proc/cpuinfo")
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1) if m else platform.processor() or platform.machine()


def smt_summary(cores: list[list[int]] | None = None) -> str:
    cores = topology() if cores is None else cores
    logical = sum(len(c) for c in cores)
    per = {len(c) for c in cores}
    if per == {1}:
        return f"{len(cores)} cores, no SMT (1 thread per core)"
    groups = " ".join("{" + ",".join(map(str, c)) + "}" for c in cores)
    return (f"{len(cores)} cores, {logical} logical CPUs, SMT siblings: "
            f"{groups}")


def info() -> dict[str, Any]:
    """Everything about the machine and the build a result depends on."""
    from .. import build_info
    from . import harness
    from .harness import CLOCK, PRIMITIVES, available

    cores = topology()
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": sum(len(c) for c in cores),
        "physical_cores": len(cores),
        "smt": any(len(c) > 1 for c in cores),
        "smt_siblings": cores,
        "smt_summary": smt_summary(cores),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} "
                  f"{platform.python_version()}",
        "lockfree": build_info(),
        "clock": CLOCK,
        "unavailable": [p for p in PRIMITIVES if not available(p)],
        # The ck-* primitives' harness: built on demand (bench/ck.py).
        "ck_harness": harness.CK.__file__ if harness.CK else None,
        "loadavg": load,
        "online": _read(f"{_SYS}/online"),
    }
