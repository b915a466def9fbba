"""KfifoQueue with asyncio (src/lockfree/kfifo_async.py) in one process:
get_message_async, put_message_async and ``async for`` against a peer
thread or coroutine (wake-ups, timeouts, bad arguments, end of stream, a
full ring), close() while a coroutine waits, one consumer at a time, and
the demo.  Cancellation: test_kfifo_async_cancel; another process and
idle CPU: test_kfifo_async_processes."""

import asyncio
import queue
import threading
import time

import pytest

from lockfree import KfifoQueue
from lockfree.errors import ConcurrentUseError

from .kfifo_helpers import run_bounded, seq_msg, seq_of, waiter_threads

# -- in one process -----------------------------------------------------------


def test_put_and_get_in_one_loop():
    q = KfifoQueue(1024)

    async def main():
        await q.put_message_async(b"one")
        await q.put_message_async(bytearray(b"two"))
        await q.put_message_async(memoryview(b"three"))
        return [await q.get_message_async() for _ in range(3)]

    assert run_bounded(main()) == [b"one", b"two", b"three"]
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

    msg, waited = run_bounded(main())
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

    run_bounded(main())
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

    run_bounded(main())
    q.close()


def test_end_of_stream_in_get_and_async_for():
    q = KfifoQueue(1024)

    async def main():
        for i in range(5):
            await q.put_message_async(seq_msg(i))
        q.close_producer()
        got = [seq_of(m) async for m in q]
        with pytest.raises(EOFError):
            await q.get_message_async()
        return got

    assert run_bounded(main()) == list(range(5))
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
                got.append(seq_of(q.get_message(timeout=10)))
                time.sleep(0.001)

        t = threading.Thread(target=consume)
        t.start()
        for i in range(n):
            await q.put_message_async(seq_msg(i, 16), timeout=10)
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        return got

    assert run_bounded(main()) == list(range(40))
    q.close()


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
        assert len(waiter_threads()) == 2
        t0 = time.monotonic()
        empty.close()
        full.close()
        closing = time.monotonic() - t0
        with pytest.raises(ValueError, match="closed while a coroutine"):
            await get
        with pytest.raises(ValueError, match="closed while a coroutine"):
            await put
        return closing

    closing = run_bounded(main())
    assert closing < 0.4  # the C waits stop at once, no 0.5 s slice
    assert waiter_threads() == []
    for q in (empty, full):
        with pytest.raises(ValueError, match="closed"):
            run_bounded(q.get_message_async())


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

    assert run_bounded(main()) == b"for the first"
    q.close()


def test_the_demo_runs_and_is_right():
    from lockfree.demos import kfifo_async as demo

    lines = []
    got, ticks, cpu = demo.script(3, 0.1, say=lines.append)
    assert got == [b"message 0", b"message 1", b"message 2"]
    assert ticks >= 10  # the loop ran while the consumer waited
    assert any("cancelled" in line for line in lines)
    assert cpu < 0.5
