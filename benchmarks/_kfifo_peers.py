"""The implementations bench_kfifo.py times: one small adapter per library.

An adapter is ``make(size)``, run in the parent before the fork (it imports
the library, so a missing one raises ImportError there, and returns what
both sides share), ``produce(obj, size, n, ready)`` and ``consume(obj,
size, n, ready) -> mismatches``, each run in its own forked process.  Both
open their end, call ``ready()`` (the consumer's end is open before the
producer opens its own), then loop.

Every message carries its sequence number in its first and last 8 bytes.
What a producer does per message is the same everywhere: write the number
twice into a buffer that already holds the payload (``struct.pack_into``)
and hand the buffer over; the library copies it into its ring (or, for a
loan/reserve API, the producer copies the preallocated payload into the
loaned slot with one slice assignment, then writes the numbers).  Every
consumer reads both numbers of every message (one ``unpack_from``) and
counts the messages whose numbers are not the expected ones.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RING = 8 << 20      # bytes of ring (or the nearest equivalent) per case
BATCH = 256
SMALL = 4096        # lockfree's producer hands messages up to this as bytes
WAIT = 60.0         # seconds a blocking call waits before the run fails
_seq = struct.Struct("<q").pack_into
_names = iter(range(1 << 30))


def payload(size: int) -> bytearray:
    """A message buffer: random payload, its numbers written per message."""
    return bytearray(os.urandom(size))


def checker(size: int) -> Callable[[Any], tuple[int, int]]:
    """``f(buf) -> (first 8 bytes, last 8 bytes)`` as little-endian ints."""
    return struct.Struct(f"<q{size - 16}xq").unpack_from


def _unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_names)}"


@dataclass(frozen=True)
class Impl:
    impl: str            # library (column of the table)
    label: str           # the calls timed
    consumer: str        # "blocking" or "polling"
    make: Callable[[int], Any]
    produce: Callable[..., None]
    consume: Callable[..., int]
    slow: int = 1        # message count divisor (slow transports)
    short: str = ""      # <= 10 characters: the pytest table's impl column


# -- lockfree ----------------------------------------------------------------


def lf_make(size: int) -> Any:
    from lockfree import KfifoQueue
    return KfifoQueue(RING, shared=True)


def lf_produce(q, size, n, ready):
    """put_message takes any buffer, but one that is not bytes costs a
    cffi from_buffer (~1.5 us here, 2.2 against 0.9 us a 64 B put with
    bytes(buf)): small messages go as bytes(buf), as kickmsg's send."""
    buf, last, put = payload(size), size - 8, q.put_message
    ready()
    if size > SMALL:
        for i in range(n):
            _seq(buf, 0, i)
            _seq(buf, last, i)
            put(buf)
        return
    for i in range(n):
        _seq(buf, 0, i)
        _seq(buf, last, i)
        put(bytes(buf))


def lf_consume(q, size, n, ready):
    ht, get, bad = checker(size), q.get_message, 0
    ready()
    for i in range(n):
        if ht(get()) != (i, i):
            bad += 1
    return bad


def batch_buffers(size: int) -> tuple[array, list[memoryview]]:
    """BATCH messages of ``size`` bytes (a multiple of 8) in one array of
    8-byte words, and a view per message: ``number()`` writes the sequence
    numbers of a whole batch with two slice assignments."""
    words = array("q", os.urandom(size * BATCH))
    mv = memoryview(words).cast("B")
    return words, [mv[j * size:(j + 1) * size] for j in range(BATCH)]


def number(words: array, size: int, base: int) -> None:
    seq, w = array("q", range(base, base + BATCH)), size // 8
    words[0::w] = seq
    words[w - 1::w] = seq


def check_batch(msgs: list, size: int, first: int) -> int:
    """Mismatched messages in a received batch, its numbers compared in C
    (two array slices against the expected range)."""
    got, w = array("q", b"".join(msgs)), size // 8
    want = array("q", range(first, first + len(msgs)))
    if got[0::w] == want == got[w - 1::w]:
        return 0
    return sum(a != b for a, b in zip(got[0::w], want, strict=True)) + \
        sum(a != b for a, b in zip(got[w - 1::w], want, strict=True))


def lf_produce_many(q, size, n, ready):
    words, msgs = batch_buffers(size)
    put_many = q.put_many
    ready()
    for base in range(0, n, BATCH):
        number(words, size, base)
        put_many(msgs)


def lf_consume_many(q, size, n, ready):
    get_many, bad, i = q.get_many, 0, 0
    ready()
    while i < n:
        msgs = get_many(BATCH)
        bad += check_batch(msgs, size, i)
        i += len(msgs)
    return bad


def lf_produce_reserve(q, size, n, ready):
    data, last, reserve = bytes(payload(size)), size - 8, q.reserve
    ready()
    for i in range(n):
        with reserve(size) as buf:
            buf[:] = data
            _seq(buf, 0, i)
            _seq(buf, last, i)


def lf_consume_receive(q, size, n, ready):
    ht, receive, bad = checker(size), q.receive, 0
    ready()
    for i in range(n):
        with receive() as view:
            if ht(view) != (i, i):
                bad += 1
    return bad


def lf_consume_views(q, size, n, ready):
    """Polls message_views() (it never blocks), then skip_message()."""
    ht, views, skip, bad = checker(size), q.message_views, q.skip_message, 0
    ready()
    for i in range(n):
        while not (vs := views()):
            pass
        # A message that wraps around the ring's end comes in two parts.
        if ht(vs[0] if len(vs) == 1 else b"".join(vs)) != (i, i):
            bad += 1
        del vs
        skip()
    return bad


# -- faster-fifo, multiprocessing --------------------------------------------


def ff_make(size: int) -> Any:
    import faster_fifo
    return faster_fifo.Queue(max_size_bytes=RING)


def ff_produce(q, size, n, ready):
    buf, last, put = payload(size), size - 8, q.put
    ready()
    for i in range(n):
        _seq(buf, 0, i)
        _seq(buf, last, i)
        put(buf, timeout=WAIT)  # pickled at once: buf may change after


def ff_consume(q, size, n, ready):
    ht, get, bad = checker(size), q.get, 0
    ready()
    for i in range(n):
        bad += ht(get(timeout=WAIT)) != (i, i)
    return bad


def ff_produce_many(q, size, n, ready):
    words, msgs = batch_buffers(size)
    ready()
    for base in range(0, n, BATCH):
        number(words, size, base)
        # put_many pickles each item, and a memoryview does not pickle.
        q.put_many([m.tobytes() for m in msgs], timeout=WAIT)


def ff_consume_many(q, size, n, ready):
    bad, i = 0, 0
    ready()
    while i < n:
        msgs = q.get_many(timeout=WAIT, max_messages_to_get=BATCH)
        bad += check_batch(msgs, size, i)
        i += len(msgs)
    return bad


def mpq_make(size: int) -> Any:
    return mp.get_context("fork").Queue()


def mpq_produce(q, size, n, ready):
    buf, last, put = payload(size), size - 8, q.put
    ready()
    for i in range(n):
        _seq(buf, 0, i)
        _seq(buf, last, i)
        put(bytes(buf))  # pickled later by a feeder thread: a snapshot


def mpq_consume(q, size, n, ready):
    ht, get, bad = checker(size), q.get, 0
    ready()
    for i in range(n):
        bad += ht(get(timeout=WAIT)) != (i, i)
    return bad


def pipe_make(size: int) -> Any:
    return mp.get_context("fork").Pipe(duplex=False)  # (recv end, send end)


def pipe_produce(ends, size, n, ready):
    buf, last, send = payload(size), size - 8, ends[1].send_bytes
    ready()
    for i in range(n):
        _seq(buf, 0, i)
        _seq(buf, last, i)
        send(buf)


def pipe_consume(ends, size, n, ready):
    ht, recv, bad = checker(size), ends[0].recv_bytes, 0
    ready()
    for i in range(n):
        bad += ht(recv()) != (i, i)
    return bad


def close(obj: Any) -> None:
    if hasattr(obj, "close_producer"):  # a Kfifo: unlink its segment
        obj.close()
    elif isinstance(obj, tuple):
        for end in obj:
            end.close()
    elif isinstance(obj, dict) and "cleanup" in obj:
        obj["cleanup"](obj)
    elif hasattr(obj, "close"):
        obj.close()
