"""once: why double-checked locking checks twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..atomic import AtomicInt
from ..once import Once
from ..spinlock import SpinLock

if TYPE_CHECKING:
    import argparse

TITLE = "double-checked locking: why the check under the lock is needed"


def single_check(done: AtomicInt, lock: SpinLock,
                 init: Callable[[], object]) -> None:
    """The broken version: check, lock, init -- no second check."""
    if not done.load():
        with lock:
            init()
            done.store(1)


def scripted(second_check: bool,
             say: Callable[[str], object] = print) -> int:
    """Two threads both pass the unlocked check before either locks.

    The interleaving is forced with events, so the result is the same every
    run.  Returns how many times the initialiser ran.
    """
    done, lock, runs = AtomicInt(), SpinLock(), AtomicInt()
    t1_checked, t2_finished = threading.Event(), threading.Event()

    def init(who: str) -> None:
        runs.fetch_add(1)
        say(f"  {who}: runs init()  (init has now run {runs.load()}x)")

    def t1() -> None:
        if not done.load():
            say("  T1: checks done -> 0, goes for the lock ... (preempted)")
            t1_checked.set()
            t2_finished.wait()
            with lock:
                say("  T1: takes the lock")
                if second_check and done.load():
                    say("  T1: checks done again -> 1: nothing to do")
                    return
                init("T1")
                done.store(1)

    def t2() -> None:
        t1_checked.wait()
        if not done.load():
            say("  T2: checks done -> 0, takes the lock")
            with lock:
                if not second_check or not done.load():
                    init("T2")
                    done.store(1)
        say("  T2: releases the lock")
        t2_finished.set()

    threads = [threading.Thread(target=t1), threading.Thread(target=t2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = runs.load()
    for a in (done, lock, runs):
        a.close()
    return n


def race(second_check: bool, rounds: int, threads: int = 4) -> int:
    """Fresh flag per round, all threads racing; rounds that ran init > 1x."""
    bad = 0
    for _ in range(rounds):
        with Once() as once, AtomicInt() as runs:
            start = threading.Barrier(threads)

            def worker(start: threading.Barrier) -> None:
                start.wait()
                if second_check:
                    once.call_once(runs.fetch_add, 1)
                else:  # the same flag and lock, minus the second check
                    single_check(once._done, once._lock,
                                 lambda: runs.fetch_add(1))

            ts = [threading.Thread(target=worker, args=(start,))
                  for _ in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            bad += runs.load() > 1
    return bad


def run(args: argparse.Namespace) -> int:
    rounds = args.iterations or 300
    print("Lazy one-time initialisation with double-checked locking:\n"
          "    if (!done) { lock(); if (!done) { init(); done = 1; } "
          "unlock(); }\n")
    print("Scripted: T1 and T2 both see done == 0 before either locks.")
    print("\nWithout the second check:")
    broken = scripted(second_check=False)
    print(f"  => init ran {broken} times")
    print("\nWith the second check (lockfree.Once):")
    fixed = scripted(second_check=True)
    print(f"  => init ran {fixed} time")
    print(f"\nUnscripted race, {rounds} rounds x 4 threads, fresh flag each "
          "round:")
    bad_broken = race(False, rounds)
    bad_fixed = race(True, rounds)
    print(f"  single check : init ran more than once in {bad_broken} rounds")
    print(f"  double check : init ran more than once in {bad_fixed} rounds")
    print("\nThe first check keeps the common case (already initialised) "
          "down to one\natomic load. The second check, under the lock, is "
          "what makes it correct:\nthe lock only serialises the "
          "initialisers, it does not stop a second one\nthat already "
          "passed the first check.")
    return 0 if broken == 2 and fixed == 1 and bad_fixed == 0 else 1
