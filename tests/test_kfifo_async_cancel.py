"""KfifoQueue with asyncio: a cancelled get_message_async or
put_message_async (task.cancel(), asyncio.wait_for timeouts, and at
random moments against a producer process) loses no message, sends
nothing, and frees the role at once."""

import asyncio
import multiprocessing as mp
import queue
import random
import time

import pytest

from lockfree import KfifoQueue, kfifo_async

from .kfifo_helpers import run_bounded, seq_msg, seq_of, waiter_threads

# -- cancellation -------------------------------------------------------------


def test_cancelled_get_loses_no_message_and_frees_the_consumer():
    q = KfifoQueue(1024)
    q.put_message(seq_msg(0))
    q.get_message()

    async def main():
        task = asyncio.create_task(q.get_message_async())
        await asyncio.sleep(0.1)  # the waiter thread is inside the C wait
        assert len(waiter_threads()) >= 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The consumer is free again at once (the waiter left C), for a
        # blocking call too: no ConcurrentUseError.
        with pytest.raises(queue.Empty):
            q.get_message(block=False)
        q.put_message(seq_msg(1))
        return await q.get_message_async(timeout=5)

    assert seq_of(run_bounded(main())) == 1
    q.close()


def test_wait_for_timeouts_lose_nothing():
    q = KfifoQueue(1024)
    q.put_message(b"")
    q.get_message()

    async def main():
        timeouts = 0
        for i in range(20):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(q.get_message_async(), 0.01)
            timeouts += 1
            q.put_message(seq_msg(i))
            assert seq_of(await asyncio.wait_for(q.get_message_async(),
                                                  5)) == i
        return timeouts

    assert run_bounded(main()) == 20
    assert len(waiter_threads()) <= 1  # one waiter thread, however many awaits
    q.close()
    assert waiter_threads() == []


def test_cancelled_put_sends_nothing():
    q = KfifoQueue(64)

    async def main():
        n = 0
        while True:
            try:
                q.put_message(seq_msg(n, 16), block=False)
            except queue.Full:
                break
            n += 1
        task = asyncio.create_task(q.put_message_async(seq_msg(99, 16)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        got = []
        while True:
            try:
                got.append(seq_of(q.get_message(block=False)))
            except queue.Empty:
                return got, n

    got, n = run_bounded(main())
    assert got == list(range(n))
    q.close()


def _stream(q, n, seed):
    """Producer process: n sequence-numbered messages, half of them
    followed by a pause of up to 2 ms, so that the consumer often waits;
    then close_producer()."""
    rng = random.Random(seed)
    for i in range(n):
        q.put_message(seq_msg(i))
        if rng.random() < 0.5:
            time.sleep(rng.random() * 0.002)
    q.close_producer()


def test_cancellation_at_random_moments_loses_nothing(monkeypatch):
    n = 1000
    ctx = mp.get_context("fork")
    q = KfifoQueue(4096, shared=True)
    withdrawn = []
    withdraw = kfifo_async._Waiter.withdraw

    def counting_withdraw(self, req):
        withdrawn.append(self.active is req)  # was it inside the C wait?
        withdraw(self, req)

    monkeypatch.setattr(kfifo_async._Waiter, "withdraw", counting_withdraw)
    p = ctx.Process(target=_stream, args=(q, n, 1))
    p.start()
    rng = random.Random(2)

    async def main():
        got = []
        while True:
            task = asyncio.ensure_future(q.get_message_async(timeout=30))
            # Cancel after 0 to 5 loop turns or a sleep of up to 1 ms:
            # before the fast path, while the waiter waits, or after it
            # woke the loop but before the coroutine resumed.
            k = rng.randrange(8)
            if k < 6:
                for _ in range(k):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(rng.random() * 0.001)
            if not task.done():
                task.cancel()
            try:
                got.append(seq_of(await task))
            except asyncio.CancelledError:
                pass
            except EOFError:
                return got

    got = run_bounded(main())
    p.join(30)
    q.close()
    assert got == list(range(n))
    # The test did cancel waits, many of them inside the C wait.
    assert len(withdrawn) > 100 and sum(withdrawn) > 20, \
        (len(withdrawn), sum(withdrawn))
