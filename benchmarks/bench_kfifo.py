"""Kfifo messages between two processes, against its peers, in one run.

    python benchmarks/bench_kfifo.py [--rounds 5] [--quick] [--no-c]
                                     [--no-latency] [--only NAME,...]
                                     [--json PATH|-]
    pytest benchmarks/bench_kfifo.py --benchmark-only

A producer process sends N messages to a consumer process (fork); every
message carries its sequence number in its first and last 8 bytes, which
the consumer checks (a single mismatch fails the run).  Rings are 8 MiB (or
the library's nearest equivalent, see _kfifo_peers.py).  Cells: 64 B one
per call, 64 B in batches of 256, 64 KiB and 1 MiB, for lockfree
(``put_message``/``get_message`` with a blocking consumer,
``put_many``/``get_many``, ``message_views`` polled, and
``reserve``/``receive`` when KfifoQueue has them) and its peers: kickmsg
(polling and blocking consumers, ``send`` or its ``allocate`` loan),
iceoryx2 (loaned slices, polling), faster-fifo, ``multiprocessing.Queue``
and ``multiprocessing.Pipe``.  The peers are optional (``pip install
'lockfree[bench]'``); a missing one is a note on standard error.  Rounds
interleave every case (the order rotates each round); the table shows the
median and the best round per cell (messages/s for 64 B, GB/s for larger
ones), then the 64 B round trip latency (ping-pong, median per round), the
issue #19 speed targets, and the C figures (``kfifo_bench.c``, skipped with
``--no-c``): 8-byte items between two pinned threads against Concurrency
Kit's ``ck_ring``, and bulk bytes against ``memcpy``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import _kfifo_peers as P
import _kfifo_report as R
import _kfifo_shm as S
import _kfifo_xproc as X
import pytest
from _report import Case, Results, environment

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"
KIB, MIB = 1 << 10, 1 << 20
G64, GBATCH = "64 B, one per call", "64 B, batches of 256"
G64K, G1M = "64 KiB", "1 MiB"
SIZES = {G64: 64, GBATCH: 64, G64K: 64 * KIB, G1M: MIB}
N = {G64: 200_000, GBATCH: 256 * 800, G64K: 4_000, G1M: 400}
LATENCY_N = 20_000
TARGETS = {  # the C rows' (Results table)
    "C 8-byte items, 2 threads": {"ck_ring": 2},
    "C bulk bytes, 2 threads": {"memcpy": 0.5},
}

Impl = P.Impl
LF = Impl("lockfree", "put_message/get_message", "blocking", P.lf_make,
          P.lf_produce, P.lf_consume, short="lf")
LF_MANY = Impl("lockfree", "put_many/get_many", "blocking", P.lf_make,
               P.lf_produce_many, P.lf_consume_many, short="lf")
LF_ZC = Impl("lockfree", "reserve/receive", "blocking", P.lf_make,
             P.lf_produce_reserve, P.lf_consume_receive, short="lf/zc")
LF_VIEWS = Impl("lockfree", "put_message/message_views", "polling",
                P.lf_make, P.lf_produce, P.lf_consume_views, short="lf/views")
KICK = Impl("kickmsg", "send/try_receive", "polling", S.kick_make,
            S.kick_produce, S.kick_consume_poll, short="kick/poll")
KICK_B = Impl("kickmsg", "send/receive", "blocking", S.kick_make,
              S.kick_produce, S.kick_consume_block, short="kick/block")
KICK_ZC = Impl("kickmsg", "allocate/try_receive_view", "polling",
               S.kick_make, S.kick_produce_loan, S.kick_consume_view_poll,
               short="kickz/poll")
KICK_ZC_B = Impl("kickmsg", "allocate/receive_view", "blocking",
                 S.kick_make, S.kick_produce_loan, S.kick_consume_view_block,
                 short="kickz/blk")
IOX = Impl("iceoryx2", "loan_slice_uninit/receive", "polling", S.iox_make,
           S.iox_produce, S.iox_consume, slow=8, short="iceoryx2")
FF = Impl("faster-fifo", "put/get", "blocking", P.ff_make, P.ff_produce,
          P.ff_consume, slow=4, short="ff")
FF_MANY = Impl("faster-fifo", "put_many/get_many", "blocking", P.ff_make,
               P.ff_produce_many, P.ff_consume_many, slow=4, short="ff")
MPQ = Impl("mp.Queue", "put/get", "blocking", P.mpq_make, P.mpq_produce,
           P.mpq_consume, slow=8, short="mp.Queue")
PIPE = Impl("mp.Pipe", "send_bytes/recv_bytes", "blocking", P.pipe_make,
            P.pipe_produce, P.pipe_consume, slow=4, short="mp.Pipe")

ZC = [LF_ZC] if hasattr(__import__("lockfree").KfifoQueue, "reserve") else []
ONE = [LF, *ZC, LF_VIEWS, KICK, KICK_B, KICK_ZC, IOX, FF, MPQ, PIPE]
BIG = [LF, *ZC, LF_VIEWS, KICK_ZC, KICK_ZC_B, IOX, FF, MPQ, PIPE]
CELLS = {G64: ONE, GBATCH: [LF_MANY, FF_MANY], G64K: BIG, G1M: BIG}

# issue #19: (what, subject, anchor(s): the fastest by median counts, min).
# At 64 B every kickmsg row competes (its blocking consumer can be the
# faster one on a loaded machine); for large messages the issue names
# kickmsg's polling consumer.
KICK64 = [KICK, KICK_B, KICK_ZC]
TARGETS_19 = [
    ("64 B one per call >= 1.3x kickmsg", G64, LF, KICK64, 1.3),
    ("64 B one per call, reserve/receive >= 1.3x kickmsg", G64, LF_ZC,
     KICK64, 1.3),
    ("batches >= 50x mp.Queue", GBATCH, LF_MANY, [(G64, MPQ)], 50),
    *[(f"{g} reserve/receive >= {m}x {what}", g, LF_ZC, a, m)
      for g in (G64K, G1M)
      for what, a, m in (("kickmsg polling", [KICK_ZC], 1.0),
                         ("put_message/get_message", [LF], 1.5))],
]


def cases(quick=False, only=None):
    """[(group, impl, size, n)] in the order of the table."""
    k = 10 if quick else 1
    out = []
    for g, impls in CELLS.items():
        for impl in impls:
            if only and impl.impl not in only:
                continue
            n = max(BATCH_MIN if g == GBATCH else 20,
                    N[g] // (impl.slow * k))
            out.append((g, impl, SIZES[g], n - n % P.BATCH
                        if g == GBATCH else n))
    return out


BATCH_MIN = P.BATCH * 4


def _missing(impl) -> str:
    return (f"{impl.impl} not installed: pip install 'lockfree[bench]' to "
            f"compare against {impl.impl}")


def run_rounds(todo, rounds, latency_n=LATENCY_N, log=print):
    """Every case once per round, the order rotating; returns
    {(group, impl): [seconds per round]} and {name: [ns per round]}."""
    times = {(g, i): [] for g, i, _, _ in todo}
    lat = {name: [] for name, *_ in X.LATENCY} if latency_n else {}
    skip = set()
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        for j in range(len(todo)):
            g, impl, size, n = todo[(j + r) % len(todo)]
            if impl.impl in skip:
                continue
            try:
                times[g, impl].append(X.seconds(impl, size, n))
            except ImportError:
                skip.add(impl.impl)
                log(_missing(impl))
        for name, _, make, ends in X.LATENCY if latency_n else ():
            if name in skip:
                continue
            try:
                lat[name].append(X.round_trip_ns(make, ends, latency_n))
            except ImportError:
                skip.add(name)
    return times, lat


# -- the C benchmark ---------------------------------------------------------


def c_figures(rounds=15) -> dict:
    """Build benchmarks/kfifo_bench.c and return its key=value figures."""
    cc = shutil.which(os.environ.get("CC", "gcc"))
    if cc is None:
        raise ImportError("no C compiler")
    exe = HERE / ".kfifo_bench"
    ck = pathlib.Path("/usr/include/ck_ring.h").exists()
    cmd = [cc, "-O2", "-std=gnu11", "-pthread", f"-I{CSRC}", "-o", str(exe),
           str(HERE / "kfifo_bench.c"), *map(str, sorted(CSRC.glob("*.c")))]
    if ck:
        cmd[1:1] = ["-DHAVE_CK"]
        cmd.append("-lck")
    subprocess.run(cmd, check=True)
    try:
        out = subprocess.run([str(exe), str(rounds)], check=True,
                             capture_output=True, text=True).stdout
    finally:
        exe.unlink(missing_ok=True)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def c_results(results, figs):
    g1, g2 = "C 8-byte items, 2 threads", "C bulk bytes, 2 threads"
    g1b = "C 8-byte items, out-of-line calls"
    none = dict
    rows = [
        (Case(g1, "subject", "lockfree", "c-items",
              "lf_kfifo_put_elem/get_elem (inline)", "", none),
         figs["lf_items_per_s"], 1),
        (Case(g1, "anchor", "ck_ring", "c-ck", "ck_ring_enqueue/dequeue_spsc",
              "", none), figs["ck_items_per_s"], 1),
        # For information (no target): the general out-of-line calls.
        (Case(g1b, "subject", "lockfree", "c-items-call",
              "lf_kfifo_put/get (8 B)", "", none),
         figs["lf_call_items_per_s"], 1),
        (Case(g1b, "anchor", "ck_ring", "c-ck-2",
              "ck_ring_enqueue/dequeue_spsc",
              "", none), figs["ck_items_per_s"], 1),
        (Case(g2, "subject", "lockfree", "c-bulk", "lf_kfifo_put/get 64 KiB "
              "(ns/MiB)", "", none), figs["lf_bulk_gb_per_s"], 1e9 / 2**20),
        (Case(g2, "anchor", "memcpy", "c-memcpy", "memcpy 64 KiB (ns/MiB)",
              "", none), figs["memcpy_gb_per_s"], 1e9 / 2**20),
    ]
    for case, rate, unit in rows:
        if rate == "n/a":
            results.add(case, None, TARGETS.get(case.group), "not installed")
        else:
            results.add(case, 1e9 / (float(rate) * unit),
                        TARGETS.get(case.group))


# -- pytest and direct entry points ------------------------------------------


def _case(g, impl, size, n) -> Case:
    role = "subject" if impl.impl == "lockfree" else "anchor"
    name = re.sub(r"\W+", "_", f"{g}-{impl.impl}-{impl.label}").strip("_")
    return Case(g, role, impl.short, name, impl.label, "", dict)


@pytest.mark.parametrize("todo", cases(), ids=lambda t: _case(*t).name)
def test_kfifo_xproc(benchmark, bench_record, todo):
    g, impl, size, n = todo
    try:
        X.seconds(impl, size, max(64, n // 100))  # warm up; probes import
    except ImportError:
        pytest.skip(_missing(impl))
    benchmark.pedantic(X.seconds, args=(impl, size, n), rounds=3,
                       iterations=1)
    st = benchmark.stats.stats
    bench_record(_case(*todo), st.min / n * 1e9, median=st.median / n * 1e9)


def test_kfifo_c(benchmark, bench_record):
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        pytest.skip("no C compiler")
    figs = benchmark.pedantic(c_figures, args=(3,), rounds=1, iterations=1)
    c_results(_Recorder(bench_record), figs)


class _Recorder:
    """Adapts bench_record to the Results.add signature c_results uses."""

    def __init__(self, record):
        self.record = record

    def add(self, case, ns, targets=None, note=""):
        if ns is not None:
            self.record(case, ns, targets)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds (default 5; --quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="a tenth of the messages, one round")
    ap.add_argument("--only", metavar="NAME,NAME",
                    help="implementations to run, e.g. lockfree,kickmsg")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-c", action="store_true")
    ap.add_argument("--json", metavar="PATH",
                    help="write every figure ('-': to standard output; the "
                    "table then goes to standard error)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    only = set(args.only.split(",")) if args.only else None
    out = sys.stderr if args.json == "-" else sys.stdout

    def log(text):
        print(text, file=sys.stderr, flush=True)
    todo = cases(args.quick, only)
    lat_n = 0 if args.no_latency else LATENCY_N // (10 if args.quick else 1)
    if only:
        X.LATENCY[:] = [x for x in X.LATENCY if x[0] in only]
    times, lat = run_rounds(todo, rounds, lat_n, log)
    rows = R.summary(todo, times)
    tgts = R.targets(rows, TARGETS_19)
    print(R.report(rows, lat, tgts, rounds, CELLS), file=out)
    print("\nfastest row per library, median (best): M msg/s for 64 B, "
          "GB/s above\n" + R.matrix(rows, CELLS), file=out)
    figs = None
    if not args.no_c:
        log("timing C (kfifo_bench.c) ...")
        figs = c_figures(15)
        results = Results()
        c_results(results, figs)
        print("\n" + results.format("C: median of 15 short rounds"), file=out)
        print(f"C items, inline lf_kfifo_*_elem / ck_ring paired per round: "
              f"median {figs['lf_over_ck']}x; C bulk / memcpy paired per "
              f"round: median {figs['bulk_over_memcpy']}x", file=out)
    if args.json:
        payload = {"environment": environment(), "rounds": rounds,
                   "quick": args.quick, "cells": rows,
                   "latency_ns": lat, "targets": tgts, "c": figs}
        if args.json == "-":
            json.dump(payload, sys.stdout, indent=1)
            print()
        else:
            with open(args.json, "w") as f:
                json.dump(payload, f, indent=1)
            log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
