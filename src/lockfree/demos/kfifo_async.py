"""kfifo with asyncio: a blocking producer process, an awaiting consumer."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import time
from collections.abc import Callable

from ..kfifo import KfifoQueue

Say = Callable[[str], object]

TITLE = ("kfifo + asyncio: await messages from a blocking producer process; "
         "the loop stays free, a cancel loses nothing, waiting costs no CPU")


def _produce(q: KfifoQueue, n: int, gap: float) -> None:
    """The producer process: plain blocking calls, no asyncio."""
    for i in range(n):
        time.sleep(gap)
        q.put_message(b"message %d" % i)
    time.sleep(gap)
    q.close_producer()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _consume(q: KfifoQueue, gap: float, say: Say) -> tuple[
        list[bytes], int, float]:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(gap / 10)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    t0 = time.monotonic()
    got: list[bytes] = []
    # A wait that is cancelled (a timeout much shorter than the gap): the
    # waiter thread only waits, so the message it was waiting for stays.
    try:
        got.append(await asyncio.wait_for(q.get_message_async(), gap / 20))
    except asyncio.TimeoutError:
        say(f"  {time.monotonic() - t0:5.2f} s  a get_message_async() "
            "cancelled by wait_for (timeout): nothing was taken")
    c0 = _cpu()
    async for msg in q:
        got.append(msg)
        say(f"  {time.monotonic() - t0:5.2f} s  got {msg!r}  (heartbeat "
            f"ticks so far: {ticks})")
    cpu = (_cpu() - c0) / (time.monotonic() - t0)
    say(f"  {time.monotonic() - t0:5.2f} s  end of stream "
        "(close_producer): the async for loop ends")
    beat.cancel()
    return got, ticks, cpu


def script(n: int = 4, gap: float = 0.3, say: Say = print) -> tuple[
        list[bytes], int, float]:
    """Run the demo; (messages received, heartbeat ticks, CPU fraction of
    this process while it mostly waited)."""
    with KfifoQueue(1 << 12, shared=True) as q:
        p = mp.get_context("fork").Process(target=_produce, args=(q, n, gap))
        p.start()
        say(f"A producer process puts {n} messages, one every {gap} s, "
            "with the blocking put_message(); this process awaits them in "
            "an event loop that also runs a heartbeat coroutine.")
        try:
            got, ticks, cpu = asyncio.run(_consume(q, gap, say))
        finally:
            p.join(10)
    say(f"The heartbeat ticked {ticks} times while the consumer waited: the "
        "wait is in a waiter thread (asleep in C on the ring's futex, GIL "
        "released), not on the loop.")
    say(f"This process used {cpu:.2%} of a core over the run, the "
        "heartbeat's own wake-ups included: waiting costs no CPU (a "
        "consumer that polled would use a whole core).")
    return got, ticks, cpu


def run(args: argparse.Namespace) -> int:
    n = 4  # a story in seconds: --iterations does not apply
    got, _, _ = script(n)
    return 0 if got == [b"message %d" % i for i in range(n)] else 1
