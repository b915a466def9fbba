"""lost-update: a plain counter loses increments, an atomic one does not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._tools import ffi, lib

if TYPE_CHECKING:
    import argparse

TITLE = "C threads increment a plain counter and an atomic one"


def measure(threads: int, iters: int) -> tuple[int, int]:
    """Run the C workload; return (plain total, atomic total)."""
    out = ffi.new("int64_t[2]")
    err = lib.lf_demo_lost_update(threads, iters, out)
    if err:
        raise OSError(-err, "lf_demo_lost_update failed")
    return out[0], out[1]


def run(args: argparse.Namespace) -> int:
    threads, iters = args.threads or 4, args.iterations or 10_000_000
    expected = threads * iters
    print(f"{threads} C threads each add 1 to a shared counter {iters:,} "
          "times; then\nthe same with an atomic counter:")
    print("  plain : counter = counter + 1   (load, add, store: three steps)")
    print("  atomic: lock xadd [counter], 1   (one indivisible instruction)\n")
    plain, atomic = measure(threads, iters)
    print(f"  {'':8}{'expected':>14}{'got':>14}{'lost':>14}")
    for name, got in (("plain", plain), ("atomic", atomic)):
        lost = expected - got
        print(f"  {name:8}{expected:>14,}{got:>14,}{lost:>14,}"
              f"  ({100 * lost / expected:.1f} %)")
    print("\nTwo threads load the same value, both add 1, both store: one "
          "increment\nvanishes. The atomic add holds the cache line for the "
          "whole read-modify-write,\nso no other core can slip in between.")
    if plain == expected:
        print("(No update was lost this time: the threads happened not to "
              "overlap.\n Try more threads or iterations.)")
    return 0 if atomic == expected else 1
