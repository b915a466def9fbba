"""KfifoQueue with asyncio (src/lockfree/kfifo_async.py): get_message_async,
put_message_async and ``async for``, against a peer in this process or in a
process that uses the blocking API (fork and spawn); cancellation loses no
message; an awaiting consumer costs no CPU; close() while a coroutine waits.
"""

import asyncio
import multiprocessing as mp
import os
import queue
import random
import resource
import signal
import struct
import threading
import time

import pytest

from lockfree import KfifoQueue, kfifo_async
from lockfree.errors import ConcurrentUseError, ProducerDied

SEQ = struct.Struct("<Q")


def _waiters():
    return [t for t in threading.enumerate()
            if t.name.startswith("lockfree-") and "waiter" in t.name]


def _seq_msg(i, size=64):
    """A message carrying i in its first and last 8 bytes."""
    body = SEQ.pack(i)
    return body + bytes(size - 16) + body


def _seq_of(msg):
    first, last = SEQ.unpack_from(msg), SEQ.unpack_from(msg, len(msg) - 8)
    assert first == last, msg
    return first[0]


def _run(coro, limit=60):
    """asyncio.run with a bound: a broken wake-up fails, never hangs."""
    return asyncio.run(asyncio.wait_for(coro, limit))


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- in one process -----------------------------------------------------------


def test_put_and_get_in_one_loop():
    q = KfifoQueue(1024)

    async def main():
        await q.put_message_async(b"one")
        await q.put_message_async(bytearray(b"two"))
        await q.put_message_async(memoryview(b"three"))
        return [await q.get_message_async() for _ in range(3)]

    assert _run(main()) == [b"one", b"two", b"three"]
    q.close()


def test_a_waiting_get_wakes_on_a_put_from_another_thread():
    q = KfifoQueue(1024)
    q.put_message(b"first")  # registers this object as producer
    q.get_message()          # ... and consumer

    async def main():
        t0 = time.monotonic()
        threading.Timer(0.2, q.put_message, (b"late",)).start()
        msg = await q.get_message_async(timeout=10)
        return msg, time.monotonic() - t0

    msg, waited = _run(main())
    assert msg == b"late"
    assert 0.15 < waited < 5
    q.close()


def test_timeouts_raise_queue_empty_and_queue_full():
    q = KfifoQueue(64)

    async def main():
        t0 = time.monotonic()
        with pytest.raises(queue.Empty):
            await q.get_message_async(timeout=0.2)
        assert time.monotonic() - t0 >= 0.19
        with pytest.raises(queue.Empty):
            await q.get_message_async(timeout=0)
        while not q.full():
            try:
                q.put_message(b"x" * 8, block=False)
            except queue.Full:
                break
        t0 = time.monotonic()
        with pytest.raises(queue.Full):
            await q.put_message_async(b"y" * 8, timeout=0.2)
        assert time.monotonic() - t0 >= 0.19
        with pytest.raises(queue.Full):
            await q.put_message_async(b"y" * 8, timeout=0)

    _run(main())
    q.close()


def test_bad_arguments():
    q = KfifoQueue(64)

    async def main():
        for bad, exc in [(-1, ValueError), (float("nan"), ValueError),
                         ("soon", TypeError)]:
            with pytest.raises(exc):
                await q.get_message_async(timeout=bad)
            with pytest.raises(exc):
                await q.put_message_async(b"x", timeout=bad)
        with pytest.raises(ValueError, match="larger"):
            await q.put_message_async(b"x" * 100)
        with pytest.raises(TypeError):
            await q.put_message_async(12)

    _run(main())
    q.close()


def test_end_of_stream_in_get_and_async_for():
    q = KfifoQueue(1024)

    async def main():
        for i in range(5):
            await q.put_message_async(_seq_msg(i))
        q.close_producer()
        got = [_seq_of(m) async for m in q]
        with pytest.raises(EOFError):
            await q.get_message_async()
        return got

    assert _run(main()) == list(range(5))
    q.close()


def test_a_full_ring_makes_put_message_async_wait_for_room():
    q = KfifoQueue(64)

    async def main():
        n = 40
        # Bursts of puts from a coroutine against gets from a thread: the
        # 64-byte ring holds three 16-byte messages, so puts wait for room.
        got = []

        def consume():
            for _ in range(n):
                got.append(_seq_of(q.get_message(timeout=10)))
                time.sleep(0.001)

        t = threading.Thread(target=consume)
        t.start()
        for i in range(n):
            await q.put_message_async(_seq_msg(i, 16), timeout=10)
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        return got

    assert _run(main()) == list(range(40))
    q.close()


# -- cancellation -------------------------------------------------------------


def test_cancelled_get_loses_no_message_and_frees_the_consumer():
    q = KfifoQueue(1024)
    q.put_message(_seq_msg(0))
    q.get_message()

    async def main():
        task = asyncio.create_task(q.get_message_async())
        await asyncio.sleep(0.1)  # the waiter thread is inside the C wait
        assert len(_waiters()) >= 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The consumer is free again at once (the waiter left C), for a
        # blocking call too: no ConcurrentUseError.
        with pytest.raises(queue.Empty):
            q.get_message(block=False)
        q.put_message(_seq_msg(1))
        return await q.get_message_async(timeout=5)

    assert _seq_of(_run(main())) == 1
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
            q.put_message(_seq_msg(i))
            assert _seq_of(await asyncio.wait_for(q.get_message_async(),
                                                  5)) == i
        return timeouts

    assert _run(main()) == 20
    assert len(_waiters()) <= 1  # one waiter thread, however many awaits
    q.close()
    assert _waiters() == []


def test_cancelled_put_sends_nothing():
    q = KfifoQueue(64)

    async def main():
        n = 0
        while True:
            try:
                q.put_message(_seq_msg(n, 16), block=False)
            except queue.Full:
                break
            n += 1
        task = asyncio.create_task(q.put_message_async(_seq_msg(99, 16)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        got = []
        while True:
            try:
                got.append(_seq_of(q.get_message(block=False)))
            except queue.Empty:
                return got, n

    got, n = _run(main())
    assert got == list(range(n))
    q.close()


def _stream(q, n, seed):
    """Producer process: n sequence-numbered messages, half of them
    followed by a pause of up to 2 ms, so that the consumer often waits;
    then close_producer()."""
    rng = random.Random(seed)
    for i in range(n):
        q.put_message(_seq_msg(i))
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
                got.append(_seq_of(await task))
            except asyncio.CancelledError:
                pass
            except EOFError:
                return got

    got = _run(main())
    p.join(30)
    q.close()
    assert got == list(range(n))
    # The test did cancel waits, many of them inside the C wait.
    assert len(withdrawn) > 100 and sum(withdrawn) > 20, \
        (len(withdrawn), sum(withdrawn))


# -- another process with the blocking API (fork and spawn) -------------------


def _blocking_producer(q, n, close):
    for i in range(n):
        q.put_message(_seq_msg(i))
        if i % 100 == 0:
            time.sleep(0.001)  # let the consumer wait sometimes
    if close:
        q.close_producer()


def _blocking_consumer(q, n, out):
    got = [_seq_of(q.get_message(timeout=30)) for _ in range(n)]
    out.put(got == list(range(n)))


def test_producer_process_to_async_for(mp_context):
    n = 2000
    q = KfifoQueue(1024, shared=True)
    p = mp_context.Process(target=_blocking_producer, args=(q, n, True))
    p.start()

    async def main():
        return [_seq_of(m) async for m in q]

    got = _run(main())
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
            await q.put_message_async(_seq_msg(i), timeout=30)

    _run(main())
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

    waited = _run(main())
    p.join(10)
    q.close()
    assert waited < 5  # seen at the end of a waiter slice (0.5 s)


# -- no CPU while waiting -----------------------------------------------------


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
        used = _run(main())
    finally:
        p.kill()
        p.join(10)
        q.close()
    # Measured ~0.1 % (the waiter thread asleep in a futex, one C wait
    # restart per 0.5 s slice); a polling loop would be ~100 %.
    assert used < 0.01, f"{used:.2%} of a core while idle"


# -- close, misuse ------------------------------------------------------------


def test_close_while_a_coroutine_waits():
    empty, full = KfifoQueue(1024), KfifoQueue(64)
    empty.put_message(b"")
    empty.get_message()
    while True:
        try:
            full.put_message(b"z" * 20, block=False)
        except queue.Full:
            break

    async def main():
        get = asyncio.create_task(empty.get_message_async())
        put = asyncio.create_task(full.put_message_async(b"z" * 20))
        await asyncio.sleep(0.1)
        assert len(_waiters()) == 2
        t0 = time.monotonic()
        empty.close()
        full.close()
        closing = time.monotonic() - t0
        with pytest.raises(ValueError, match="closed while a coroutine"):
            await get
        with pytest.raises(ValueError, match="closed while a coroutine"):
            await put
        return closing

    closing = _run(main())
    assert closing < 0.4  # the C waits stop at once, no 0.5 s slice
    assert _waiters() == []
    for q in (empty, full):
        with pytest.raises(ValueError, match="closed"):
            _run(q.get_message_async())


def test_one_consumer_at_a_time():
    q = KfifoQueue(1024)
    q.put_message(b"")
    q.get_message()

    async def main():
        first = asyncio.create_task(q.get_message_async())
        await asyncio.sleep(0.05)
        with pytest.raises(ConcurrentUseError):
            await q.get_message_async()
        errors = []

        def other_thread():
            try:
                q.get_message(block=False)
            except ConcurrentUseError:
                errors.append("busy")

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert errors == ["busy"]
        q.put_message(b"for the first")
        return await first

    assert _run(main()) == b"for the first"
    q.close()


def test_the_demo_runs_and_is_right():
    from lockfree.demos import kfifo_async as demo

    lines = []
    got, ticks, cpu = demo.script(3, 0.1, say=lines.append)
    assert got == [b"message 0", b"message 1", b"message 2"]
    assert ticks >= 10  # the loop ran while the consumer waited
    assert any("cancelled" in line for line in lines)
    assert cpu < 0.5
