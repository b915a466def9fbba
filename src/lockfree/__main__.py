"""``python -m lockfree``: this build, and a self-check under contention.

Subcommands: ``info`` (the build only), ``check`` (the default: the build,
then real contention between threads and between processes), ``demo``
(teaching demos) and ``bench`` (lock benchmarks, ``lockfree.bench``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence

from . import __version__, build_info, demos
from ._selfcheck import self_check
from .bench import cli as bench_cli
from .demos import DEMOS, listing


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line (the docs' CLI examples are checked against it)."""
    # "lockfree" when run as the console script, else "python -m lockfree".
    prog = os.path.basename(sys.argv[0] or "")
    parser = argparse.ArgumentParser(
        prog=prog if prog == "lockfree" else "python -m lockfree",
        description="Lock-free primitives for Python: build info and tools.")
    parser.add_argument("--version", action="version",
                        version=f"lockfree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("info", help="print how this copy was built")
    check = sub.add_parser(
        "check", help="build info, then a self-check under contention "
        "(the default)")
    check.add_argument("-n", type=int, default=200_000, metavar="N",
                       help="increments per worker (default: %(default)s)")
    demo = sub.add_parser("demo", help="teaching demos (list them with no "
                          "NAME)")
    demo.add_argument("name", nargs="?", choices=list(DEMOS), metavar="NAME",
                      help="one of: " + ", ".join(DEMOS))
    demo.add_argument("--threads", type=_positive, metavar="N",
                      help="worker threads (lost-update)")
    demo.add_argument("--workers", type=_positive, nargs="+",
                      dest="threads_list", metavar="N",
                      help="worker counts to compare (cas-retry)")
    demo.add_argument("--iterations", type=_positive, metavar="N",
                      help="iterations per worker")
    demo.add_argument("--plot", metavar="PATH",
                      help="also draw the numbers to a PNG (demos: "
                      + ", ".join(n for n in DEMOS if demos.plots(n)) + ")")
    bench_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return int(args.func(args))
    if args.command == "demo":
        if args.name is None:
            print(listing())
            return 0
        if args.plot and not demos.plots(args.name):
            parser.error(f"demo {args.name} has no --plot")
        return int(demos.load(args.name).run(args))
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
