"""rcu: a timeline of publish, grace period and reclamation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..rcu import RcuCell, RcuDomain

TITLE = "RCU timeline: v1 is reclaimed only after its last reader leaves"


def timeline(hold: float = 0.3,
             say: Callable[[str], object] = print) -> list[tuple[str, str]]:
    """Script two readers of v1 and a publish of v2; return the events."""
    events: list[tuple[str, str]] = []
    t0 = time.monotonic()

    def log(who: str, what: str) -> None:
        events.append((who, what))
        say(f"  {1000 * (time.monotonic() - t0):7.1f} ms  {who:<9} {what}")

    entered = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]
    with RcuDomain() as domain:
        cell = RcuCell({"version": 1}, domain=domain)

        def reader(i: int) -> None:
            with cell.read() as v:
                log(f"reader {i}", f"enters a read section, sees "
                    f"v{v['version']}")
                entered[i].set()
                release[i].wait()
                log(f"reader {i}", f"still using v{v['version']}, leaves")

        readers = [threading.Thread(target=reader, args=(i,))
                   for i in range(2)]
        for r in readers:
            r.start()
        for e in entered:
            e.wait()
        old = cell.publish({"version": 2})
        log("writer", "publishes v2 (new readers see v2 from now on)")
        reclaimed = threading.Event()

        def free(obj: dict[str, int]) -> None:
            log("reclaimer", f"grace period over: frees v{obj['version']}")
            reclaimed.set()
        cell.retire(old, free)
        log("writer", "retires v1: callback queued until a grace period")
        with cell.read() as v:
            log("reader 3", f"enters after the publish, sees "
                f"v{v['version']}")
        for i in range(2):
            time.sleep(hold)
            not_yet = "" if reclaimed.is_set() else " not"
            log("(time)", f"reclaimer has{not_yet} run")
            release[i].set()
            readers[i].join()
        reclaimed.wait(10)
        domain.barrier()
    return events


def run(args: Any) -> int:
    print("Two readers hold v1; the writer publishes v2 and retires v1.\n"
          "The callback that frees v1 must wait for the grace period: until "
          "every\nreader that could have seen v1 has left its read "
          "section.\n")
    events = timeline()
    order = [w for w, _ in events]
    # v1 freed strictly after both v1 readers left:
    freed = order.index("reclaimer")
    last_leave = max(i for i, (w, what) in enumerate(events)
                     if w.startswith("reader") and "leaves" in what)
    print("\nReaders never waited and never took a lock; the writer did not "
          "wait either:\nit queued the free. A new reader saw v2 at once.")
    return 0 if freed > last_leave else 1
