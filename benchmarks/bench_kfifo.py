"""Kfifo throughput next to its anchors, measured in the same run.

    pytest benchmarks/bench_kfifo.py --benchmark-only
    python benchmarks/bench_kfifo.py [--rounds 3] [--quick]

Python, between two processes (fork): a producer process sends N messages,
a consumer process receives them; the time is from the producer's start
(after a barrier) to the consumer's last message (``time.perf_counter``,
CLOCK_MONOTONIC, comparable across processes).  Rows are ns per message,
the median of ``--rounds`` runs:

* 64-byte messages, one per call: ``put_message``/``get_message`` against
  ``multiprocessing.Queue`` put/get, ``multiprocessing.Pipe``
  send_bytes/recv_bytes, and ``faster_fifo.Queue`` put/get (if installed);
* 64-byte messages in batches of 256: ``put_many``/``get_many`` against the
  same ``multiprocessing.Queue`` figure and faster-fifo's put_many/get_many;
* 1 MiB messages: Kfifo (8 MiB ring) against ``Pipe.send_bytes`` (GB/s
  printed too).

C (``kfifo_bench.c``, compiled here with gcc -O2 against csrc/): 8-byte
items between two pinned threads, with the inline element API
(``lf_kfifo_put_elem``/``lf_kfifo_get_elem``) and with the out-of-line
``lf_kfifo_put``/``lf_kfifo_get``, against Concurrency Kit's ``ck_ring``
SPSC (when ``ck_ring.h`` is installed; the ratio is also printed paired per
round, since the VM's speed drifts between rounds), and bulk bytes against
single-thread ``memcpy``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import time

import pytest
from _report import Case, Results, environment

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"
SMALL, BATCH, BIG = 64, 256, 1 << 20

TARGETS = {
    "xproc 64 B, one per call": {"mp.Queue": 10, "mp.Pipe": 3},
    "xproc 64 B, batches of 256": {"mp.Queue": 50},
    "C 8-byte items, 2 threads": {"ck_ring": 2},
    "C bulk bytes, 2 threads": {"memcpy": 0.5},
}

# -- transports: (setup in the parent, producer loop, consumer loop) ---------


def _kfifo(mode_many=False, capacity=1 << 20):
    def make():
        from lockfree import Kfifo
        return Kfifo(capacity, "records", shared=True)
    return make


def _send_kfifo(q, msg, n):
    put = q.put_message
    for _ in range(n):
        put(msg)


def _recv_kfifo(q, n):
    get = q.get_message
    for _ in range(n):
        get()


def _send_kfifo_many(q, msg, n):
    batch, put_many = [msg] * BATCH, q.put_many
    for _ in range(n // BATCH):
        put_many(batch)


def _recv_kfifo_many(q, n):
    got, get_many = 0, q.get_many
    while got < n:
        got += len(get_many(BATCH))


def _make_mpq():
    return mp.get_context("fork").Queue()


def _send_q(q, msg, n):
    put = q.put
    for _ in range(n):
        put(msg)


def _recv_q(q, n):
    get = q.get
    for _ in range(n):
        get()


def _make_pipe():
    return mp.get_context("fork").Pipe(duplex=False)  # (recv, send)


def _send_pipe(ends, msg, n):
    send = ends[1].send_bytes
    for _ in range(n):
        send(msg)


def _recv_pipe(ends, n):
    recv = ends[0].recv_bytes
    for _ in range(n):
        recv()


def _make_ff(size=64 << 20):
    def make():
        import faster_fifo  # optional anchor: ImportError = not installed
        return faster_fifo.Queue(max_size_bytes=size)
    return make


def _send_ff_many(q, msg, n):
    batch = [msg] * BATCH
    for _ in range(n // BATCH):
        q.put_many(batch, timeout=60)


def _recv_ff(q, n):
    get = q.get
    for _ in range(n):
        get(timeout=60)


def _recv_ff_many(q, n):
    got = 0
    while got < n:
        got += len(q.get_many(timeout=60, max_messages_to_get=BATCH))


def _close(obj):
    if hasattr(obj, "close_producer"):  # a Kfifo: unlink its segment
        obj.close()
    elif isinstance(obj, tuple):
        for end in obj:
            end.close()


# -- the cross-process timing loop ------------------------------------------


def _producer(send, obj, size, n, barrier, out):
    msg = os.urandom(size)
    barrier.wait()
    t0 = time.perf_counter()
    send(obj, msg, n)
    out.put(("t0", t0))


def _consumer(recv, obj, n, barrier, out):
    barrier.wait()
    recv(obj, n)
    out.put(("t1", time.perf_counter()))


def xproc_seconds(make, send, recv, size, n) -> float:
    """Seconds for n messages of size bytes, producer -> consumer process."""
    ctx = mp.get_context("fork")
    obj = make()
    barrier, out = ctx.Barrier(2), ctx.SimpleQueue()
    procs = [ctx.Process(target=_consumer, args=(recv, obj, n, barrier, out)),
             ctx.Process(target=_producer,
                         args=(send, obj, size, n, barrier, out))]
    try:
        for p in procs:
            p.start()
        times = dict(out.get() for _ in procs)
        for p in procs:
            p.join(60)
        return times["t1"] - times["t0"]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        _close(obj)


def _case(group, role, impl, label, make, send, recv, size, n):
    """A Case whose setup() returns what xproc_seconds needs."""
    def setup():
        return {"make": make, "send": send, "recv": recv, "size": size,
                "n": n}
    name = re.sub(r"\W+", "_", f"{group}-{impl}").strip("_")
    return Case(group, role, impl, name, label, "", setup)


def py_cases(quick=False):
    k = 4 if quick else 1
    g1, g2, g3 = ("xproc 64 B, one per call", "xproc 64 B, batches of 256",
                  "xproc 1 MiB messages")
    mpq = ("mp.Queue", "q.put(m) / q.get()", _make_mpq, _send_q, _recv_q,
           SMALL, 100_000 // k)
    return [
        _case(g1, "subject", "lockfree", "put_message(m) / get_message()",
              _kfifo(), _send_kfifo, _recv_kfifo, SMALL, 1_000_000 // k),
        _case(g1, "subject", "lockfree q.put",
              "q.put(m) / q.get()  (KfifoQueue)",
              _kfifo(), _send_q, _recv_q, SMALL, 1_000_000 // k),
        _case(g1, "anchor", *mpq),
        _case(g1, "anchor", "mp.Pipe", "send_bytes(m) / recv_bytes()",
              _make_pipe, _send_pipe, _recv_pipe, SMALL, 300_000 // k),
        _case(g1, "anchor", "faster-fifo", "q.put(m) / q.get()", _make_ff(),
              _send_q, _recv_ff, SMALL, 300_000 // k),
        _case(g2, "subject", "lockfree", "put_many(256) / get_many(256)",
              _kfifo(), _send_kfifo_many, _recv_kfifo_many, SMALL,
              BATCH * (16_000 // k)),
        _case(g2, "anchor", *mpq),
        _case(g2, "anchor", "faster-fifo", "put_many(256) / get_many(256)",
              _make_ff(), _send_ff_many, _recv_ff_many, SMALL,
              BATCH * (4_000 // k)),
        _case(g3, "subject", "lockfree", "put_message / get_message (1 MiB)",
              _kfifo(capacity=8 << 20), _send_kfifo, _recv_kfifo, BIG,
              2_000 // k),
        _case(g3, "anchor", "mp.Pipe", "send_bytes / recv_bytes (1 MiB)",
              _make_pipe, _send_pipe, _recv_pipe, BIG, 1_000 // k),
    ]


def time_case(case, rounds) -> float | None:
    """Median ns per message over rounds, or None if not installed."""
    kw = case.setup()
    try:
        runs = [xproc_seconds(**kw) for _ in range(rounds)]
    except ImportError:
        return None
    return statistics.median(runs) / kw["n"] * 1e9


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


def _rates(results) -> list[str]:
    """Messages (or GB) per second of every row, for the closing lines."""
    lines = []
    for group, rows in results.groups.items():
        for case, ns, *_ in rows:
            if ns is None:
                continue
            if "1 MiB" in group:
                rate = f"{BIG / ns:.2f} GB/s"
            elif "bulk" in group:
                rate = f"{2**20 / ns:.2f} GB/s"
            else:
                rate = f"{1e3 / ns:.2f} M/s"
            lines.append(f"  {group:<28} {case.impl:<12} {rate}")
    return lines


# -- pytest and direct entry points ------------------------------------------


@pytest.mark.parametrize("case", py_cases(), ids=lambda c: c.name)
def test_kfifo_xproc(benchmark, bench_record, case):
    kw = case.setup()
    try:
        xproc_seconds(**{**kw, "n": BATCH})  # warm up; probes the import
    except ImportError as exc:
        pytest.skip(f"{case.impl} not installed ({exc})")
    benchmark.pedantic(xproc_seconds, kwargs=kw, rounds=3, iterations=1)
    ns = benchmark.stats.stats.median / kw["n"] * 1e9
    bench_record(case, ns, TARGETS.get(case.group))


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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="a quarter of the messages")
    ap.add_argument("--no-c", action="store_true")
    args = ap.parse_args(argv)
    results = Results()
    for case in py_cases(args.quick):
        print(f"timing {case.group}: {case.impl} ...", file=sys.stderr,
              flush=True)
        ns = time_case(case, args.rounds)
        results.add(case, ns, TARGETS.get(case.group),
                    note="" if ns is not None else "not installed")
    if not args.no_c:
        print("timing C (kfifo_bench.c) ...", file=sys.stderr, flush=True)
        figs = c_figures(15)
        c_results(results, figs)
    print(results.format(f"{environment()}\nmedian ns per message of "
                         f"{args.rounds} runs (C: median of 15 short "
                         "rounds); the machine "
                         "is shared, expect noise"))
    if not args.no_c:
        print(f"\nC items, inline lf_kfifo_*_elem / ck_ring paired per round: "
              f"median {figs['lf_over_ck']}x (rounds: "
              f"{figs.get('lf_over_ck_rounds', '')})")
        print(f"C bulk / memcpy paired per round: median "
              f"{figs['bulk_over_memcpy']}x")
    print("\nrates:\n" + "\n".join(_rates(results)))


if __name__ == "__main__":
    main()
