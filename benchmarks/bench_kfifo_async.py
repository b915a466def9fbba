"""KfifoQueue with asyncio: an awaiting consumer next to a blocking one.

    pytest benchmarks/bench_kfifo_async.py --benchmark-only
    python benchmarks/bench_kfifo_async.py [--rounds 5] [--quick]

A producer process (fork) sends N 64-byte messages with the blocking
``put_message``, each carrying its sequence number in its first and last 8
bytes; the consumer, in this process, checks every number.  The time runs
from the producer's start (after a barrier) to the consumer's last message
(``time.perf_counter``, comparable across processes).  Consumers:

* (a) blocking ``get_message()`` in the main thread (the anchor);
* (b) ``await q.get_message_async()`` in a coroutine;
* (c) ``async for msg in q`` (the producer ends with ``close_producer()``).

The cases are interleaved round by round; each row is the best and the
median of the rounds, and (b)/(a) is the ratio of the rates (target >=
0.5), also paired per round.  Then the idle CPU of an awaiting consumer
(and of a blocking one, for reference) while the producer sends nothing:
``resource.getrusage`` of this process over a few seconds (target < 1 %
of a core).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import resource
import statistics
import struct
import sys
import threading
import time

import pytest
from _report import Case, Results, environment

SIZE = 64
N = 200_000
SEQ = struct.Struct("<Q")
GROUP = "xproc 64 B, consumer kind"
TARGETS = {GROUP: {"blocking": 0.5}}


def _producer(q, n, barrier, out):
    pack, put = SEQ.pack, q.put_message
    pad = bytes(SIZE - 16)
    msgs = [pack(i) + pad + pack(i) for i in range(n)]  # made beforehand
    barrier.wait()
    t0 = time.perf_counter()
    for m in msgs:
        put(m)
    q.close_producer()
    out.put(t0)


def _check(msg, i):
    if SEQ.unpack_from(msg)[0] != i or SEQ.unpack_from(msg, SIZE - 8)[0] != i:
        raise AssertionError(f"message {i} carries the wrong number")


def _blocking(q, n):
    get, unpack = q.get_message, SEQ.unpack_from
    for i in range(n):
        m = get()
        if unpack(m)[0] != i or unpack(m, SIZE - 8)[0] != i:
            _check(m, i)


async def _awaiting(q, n):
    get, unpack = q.get_message_async, SEQ.unpack_from
    for i in range(n):
        m = await get()
        if unpack(m)[0] != i or unpack(m, SIZE - 8)[0] != i:
            _check(m, i)


async def _async_for(q, n):
    unpack, i = SEQ.unpack_from, 0
    async for m in q:
        if unpack(m)[0] != i or unpack(m, SIZE - 8)[0] != i:
            _check(m, i)
        i += 1
    if i != n:
        raise AssertionError(f"{i} messages, not {n}")


CONSUMERS = {
    "blocking": ("anchor", "get_message()  (blocking, main thread)",
                 _blocking),
    "await": ("subject", "await get_message_async()", _awaiting),
    "async for": ("subject", "async for msg in q", _async_for),
}


def xproc_seconds(kind: str, n: int) -> float:
    """Seconds for n messages from a producer process to this consumer."""
    from lockfree import KfifoQueue

    ctx = mp.get_context("fork")
    q = KfifoQueue(1 << 20, shared=True)
    barrier, out = ctx.Barrier(2), ctx.SimpleQueue()
    p = ctx.Process(target=_producer, args=(q, n, barrier, out))
    consume = CONSUMERS[kind][2]
    try:
        p.start()
        barrier.wait()
        if kind == "blocking":
            consume(q, n)
        else:
            asyncio.run(consume(q, n))
        t1 = time.perf_counter()
        t0 = out.get()
        p.join(60)
        return t1 - t0
    finally:
        if p.is_alive():
            p.kill()
        q.close()


def _register_and_wait(q, stop):
    q.put_message(b"hello")
    stop.wait()


def idle_cpu(kind: str, seconds: float) -> float:
    """Fraction of a core this process uses while its consumer waits for
    a message that does not come (the producer process is alive)."""
    from lockfree import KfifoQueue

    ctx = mp.get_context("fork")
    q = KfifoQueue(1024, shared=True)
    stop = ctx.Event()
    p = ctx.Process(target=_register_and_wait, args=(q, stop))
    p.start()

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def measure() -> float:
        time.sleep(0.2)
        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        return (cpu() - c0) / (time.monotonic() - t0)

    try:
        q.get_message(timeout=30)
        if kind == "blocking":
            def wait() -> None:
                # ProducerDied at the end, when the producer exits.
                with contextlib.suppress(Exception):
                    q.get_message(timeout=seconds + 5)

            t = threading.Thread(target=wait, daemon=True)
            t.start()
            used = measure()
        else:
            async def main() -> float:
                task = asyncio.create_task(q.get_message_async())
                used = await asyncio.get_running_loop().run_in_executor(
                    None, measure)
                task.cancel()
                return used
            used = asyncio.run(main())
        return used
    finally:
        stop.set()
        p.join(10)
        if kind == "blocking":
            t.join(seconds + 10)
        q.close()


def measure(rounds: int, n: int) -> dict[str, list[float]]:
    """ns per message of each consumer kind, rounds interleaved."""
    runs: dict[str, list[float]] = {k: [] for k in CONSUMERS}
    for r in range(rounds):
        for kind in CONSUMERS:
            runs[kind].append(xproc_seconds(kind, n) / n * 1e9)
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {1e3 / v[-1]:.2f} M/s" for k, v in runs.items()),
            file=sys.stderr, flush=True)
    return runs


def _case(kind: str) -> Case:
    role, label, _ = CONSUMERS[kind]
    name = kind.replace(" ", "_")
    return Case(GROUP, role, kind, name, label, "", dict)


# -- pytest and direct entry points ------------------------------------------


def test_kfifo_async_xproc(benchmark, bench_record):
    runs = benchmark.pedantic(measure, args=(3, N // 4), rounds=1,
                              iterations=1)
    for kind, ns in runs.items():
        bench_record(_case(kind), min(ns), TARGETS[GROUP],
                     median=statistics.median(ns))


@pytest.mark.parametrize("kind", ["await", "blocking"])
def test_kfifo_async_idle_cpu(kind):
    used = idle_cpu(kind, 2.0)
    print(f"\nidle {kind} consumer: {used:.3%} of a core")
    if kind == "await":
        assert used < 0.01


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="a quarter of the messages, 1 s idle measurements")
    args = ap.parse_args(argv)
    n = N // 4 if args.quick else N
    runs = measure(args.rounds, n)
    results = Results()
    for kind, ns in runs.items():
        results.add(_case(kind), min(ns), TARGETS[GROUP],
                    median=statistics.median(ns))
    print(results.format(f"{environment()}\nns per message ({n} messages "
                         f"of {SIZE} B), best and median of {args.rounds} "
                         "interleaved rounds; the machine is shared, "
                         "expect noise"))
    print("\nrates, best (median) of the rounds:")
    for kind, ns in runs.items():
        print(f"  {kind:<10} {1e3 / min(ns):6.2f} M/s "
              f"({1e3 / statistics.median(ns):.2f})")
    for kind in ("await", "async for"):
        paired = [a / b for a, b in zip(runs["blocking"], runs[kind],
                                        strict=True)]
        print(f"{kind} / blocking rate, paired per round: best "
              f"{max(paired):.2f}, median {statistics.median(paired):.2f} "
              f"(rounds: {' '.join(f'{x:.2f}' for x in paired)}; "
              "target >= 0.5)")
    secs = 1.0 if args.quick else 3.0
    for kind in ("await", "blocking"):
        used = idle_cpu(kind, secs)
        print(f"idle {kind} consumer: {used:.3%} of a core over {secs:.0f} s"
              + ("  (target < 1 %)" if kind == "await" else ""))


if __name__ == "__main__":
    main()
