"""``python -m lockfree``: what this build is, and a self-check under contention.

Subcommands: ``info`` (the build only) and ``check`` (the default: the build,
then real contention between threads and between processes).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from . import build_info
from ._selfcheck import self_check


def _print_info() -> None:
    info = build_info()
    print(f"lockfree {info['version']}")
    print(f"  atomics   : {info['atomics']}")
    print(f"  arch      : {info['arch']}")
    print(f"  compiler  : gcc {info['compiler']}")
    print(f"  cffi      : {info['cffi']}")
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"  python    : {platform.python_implementation()} "
          f"{platform.python_version()}"
          f"{'' if gil else ' (free-threaded, GIL disabled)'}")
    print(f"  cpus      : {os.cpu_count()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockfree",
        description="Lock-free primitives for Python: build info and tools.")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("info", help="print how this copy was built")
    check = sub.add_parser(
        "check", help="build info, then a self-check under contention "
        "(the default)")
    check.add_argument("-n", type=int, default=200_000, metavar="N",
                       help="increments per worker (default: %(default)s)")
    args = parser.parse_args(argv)
    _print_info()
    if args.command == "info":
        return 0
    n = getattr(args, "n", 200_000)
    if n < 1:
        parser.error("-n must be a positive integer")
    print()
    return 0 if self_check(n) else 1


if __name__ == "__main__":
    sys.exit(main())
