"""KfifoQueue with asyncio against a process that uses the blocking API
(fork and spawn): async for over a producer process, an async producer
to a consumer process, a killed producer ends the wait with
ProducerDied, and an awaiting consumer costs no CPU."""

import asyncio
import multiprocessing as mp
import os
import resource
import signal
import time

import pytest

from lockfree import KfifoQueue
from lockfree.errors import ProducerDied

from .kfifo_helpers import run_bounded, seq_msg, seq_of

# -- another process with the blocking API (fork and spawn) -------------------


def _blocking_producer(q, n, close):
    for i in range(n):
        q.put_message(seq_msg(i))
        if i % 100 == 0:
            time.sleep(0.001)  # let the consumer wait sometimes
    if close:
        q.close_producer()


def _blocking_consumer(q, n, out):
    got = [seq_of(q.get_message(timeout=30)) for _ in range(n)]
    out.put(got == list(range(n)))


def test_producer_process_to_async_for(mp_context):
    n = 2000
    q = KfifoQueue(1024, shared=True)
    p = mp_context.Process(target=_blocking_producer, args=(q, n, True))
    p.start()

    async def main():
        return [seq_of(m) async for m in q]

    got = run_bounded(main())
    p.join(30)
    q.close()
    assert p.exitcode == 0
    assert got == list(range(n))


def test_async_producer_to_consumer_process(mp_context):
    n = 2000
    q = KfifoQueue(256, shared=True)  # small: the producer waits for room
    out = mp_context.Queue()
    p = mp_context.Process(target=_blocking_consumer, args=(q, n, out))
    p.start()

    async def main():
        for i in range(n):
            await q.put_message_async(seq_msg(i), timeout=30)

    run_bounded(main())
    assert out.get(timeout=30) is True
    p.join(30)
    q.close()


def _register_and_hang(q):
    q.put_message(b"hello")
    time.sleep(60)


def test_a_killed_producer_ends_the_wait_with_producer_died():
    ctx = mp.get_context("fork")
    q = KfifoQueue(1024, shared=True)
    p = ctx.Process(target=_register_and_hang, args=(q,))
    p.start()

    async def main():
        assert await q.get_message_async(timeout=30) == b"hello"
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, os.kill, p.pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(ProducerDied):
            await q.get_message_async()
        return time.monotonic() - t0

    waited = run_bounded(main())
    p.join(10)
    q.close()
    assert waited < 5  # seen at the end of a waiter slice (0.5 s)


# -- no CPU while waiting -----------------------------------------------------


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def test_an_idle_awaiting_consumer_uses_no_cpu():
    ctx = mp.get_context("fork")
    q = KfifoQueue(1024, shared=True)
    p = ctx.Process(target=_register_and_hang, args=(q,))
    p.start()

    async def main():
        assert await q.get_message_async(timeout=30) == b"hello"
        task = asyncio.create_task(q.get_message_async())
        await asyncio.sleep(0.2)
        c0, t0 = _cpu_seconds(), time.monotonic()
        await asyncio.sleep(2.0)
        used = (_cpu_seconds() - c0) / (time.monotonic() - t0)
        task.cancel()
        return used

    try:
        used = run_bounded(main())
    finally:
        p.kill()
        p.join(10)
        q.close()
    # Measured ~0.1 % (the waiter thread asleep in a futex, one C wait
    # restart per 0.5 s slice); a polling loop would be ~100 %.
    assert used < 0.01, f"{used:.2%} of a core while idle"
