"""What the kfifo test modules share: the index wrap point, the asyncio
tests' sequence-numbered messages, bounded run and waiter threads, and
the producer-kill round of the SIGKILL tests."""

import asyncio
import os
import signal
import struct
import threading
import time

import pytest

from lockfree import ProducerDied

WRAP = 2**32

SEQ = struct.Struct("<Q")


def waiter_threads():
    """The kfifo_async waiter threads alive now."""
    return [t for t in threading.enumerate()
            if t.name.startswith("lockfree-") and "waiter" in t.name]


def seq_msg(i, size=64):
    """A message carrying i in its first and last 8 bytes."""
    body = SEQ.pack(i)
    return body + bytes(size - 16) + body


def seq_of(msg):
    first, last = SEQ.unpack_from(msg), SEQ.unpack_from(msg, len(msg) - 8)
    assert first == last, msg
    return first[0]


def run_bounded(coro, limit=60):
    """asyncio.run with a bound: a broken wake-up fails, never hangs."""
    return asyncio.run(asyncio.wait_for(coro, limit))


def await_true(cond, seconds=30):
    """Poll cond() every millisecond until it holds; fail after seconds."""
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def kill_producer_round(p, q, cons, want, check, progress, seconds):
    """One round of a producer-kill test: start producer process p (it
    puts messages want, want+1, ... and sets progress to the count
    committed), check(msg, seq) what cons gets for seconds (and until
    something came), SIGKILL p, then get every message it committed, in
    order, until ProducerDied.  Returns the next expected seq."""
    p.start()
    # Until it has taken the dead one's role, a get would say ProducerDied
    # (rightly: the registered producer is dead).
    await_true(lambda: q.producer_pid == p.pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end or want == progress.value == 0:
        check(cons.get_message(timeout=30), want)
        want += 1
    os.kill(p.pid, signal.SIGKILL)
    with pytest.raises(ProducerDied):
        while True:
            check(cons.get_message(timeout=30), want)
            want += 1
    p.join(10)
    assert want >= progress.value        # every committed one came
    return want
