"""What the kfifo test modules share: the index wrap point, and the
asyncio tests' sequence-numbered messages, bounded run and waiter
threads."""

import asyncio
import struct
import threading

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
