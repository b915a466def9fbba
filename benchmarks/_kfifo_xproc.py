"""Producer process -> consumer process timing, and ping-pong latency.

``seconds(impl, size, n)`` forks a consumer and a producer (fork start
method: nothing is pickled).  The consumer opens its end first, then the
producer opens its own; both wait on a barrier, the producer reads the
clock (``time.perf_counter``: CLOCK_MONOTONIC, comparable across
processes) and sends; the consumer reads it after the last message.  A
consumer that saw any message with the wrong sequence numbers, or a process
that failed, makes the run raise ``RuntimeError``: a benchmark that loses
or corrupts messages has no figure.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import struct
import time
import traceback
from collections.abc import Callable
from typing import Any

import _kfifo_peers as peers
import _kfifo_shm as shm

CTX = mp.get_context("fork")
TIMEOUT = 120.0


def _child(role, fn, obj, size, n, first, second, out):
    try:
        if role == "producer":
            first.wait(TIMEOUT)  # the consumer's end is open

        def ready():
            if role == "consumer":
                first.wait(TIMEOUT)
            second.wait(TIMEOUT)
            if role == "producer":
                out.put(("t0", time.perf_counter()))
        result = fn(obj, size, n, ready)
        if role == "consumer":
            out.put(("t1", time.perf_counter()))
            out.put(("bad", result))
        out.put((role, "ok"))
    except BaseException:
        out.put((role, traceback.format_exc()))
        first.abort()
        second.abort()


def seconds(impl: peers.Impl, size: int, n: int) -> float:
    """Seconds for n messages of size bytes, producer -> consumer process
    (ImportError: the library is not installed)."""
    obj = impl.make(size)
    first, second, out = CTX.Barrier(2), CTX.Barrier(2), CTX.SimpleQueue()
    procs = [CTX.Process(target=_child, args=(role, fn, obj, size, n, first,
                                              second, out), daemon=True)
             for role, fn in (("consumer", impl.consume),
                              ("producer", impl.produce))]
    try:
        for p in procs:
            p.start()
        got: dict[str, Any] = {}
        deadline = time.monotonic() + TIMEOUT
        while not {"consumer", "producer"} <= got.keys():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{impl.impl} {impl.label}: no result in "
                                   f"{TIMEOUT} s")
            while not out.empty():
                k, v = out.get()
                got[k] = v
                if k in ("consumer", "producer") and v != "ok":
                    raise RuntimeError(f"{impl.impl} {impl.label} {k}:\n{v}")
            time.sleep(0.001)
        for p in procs:
            p.join(TIMEOUT)
        if got["bad"]:
            raise RuntimeError(f"{impl.impl} {impl.label}: {got['bad']} of "
                               f"{n} messages had wrong sequence numbers")
        return float(got["t1"] - got["t0"])
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        peers.close(obj)


# -- 64 B round trip ---------------------------------------------------------

_PING = struct.Struct("<q48xq")


def _pinger(send, recv, n) -> list[int]:
    """Times n round trips one by one; checks the echoed numbers."""
    buf, ns, clock = bytearray(64), [], time.perf_counter_ns
    for i in range(n):
        _PING.pack_into(buf, 0, i, i)
        t = clock()
        send(buf)
        m = recv()
        ns.append(clock() - t)
        if _PING.unpack_from(m) != (i, i):
            raise RuntimeError(f"round trip {i}: got {_PING.unpack_from(m)}")
    return ns


def _ponger(send, recv, n) -> None:
    for _ in range(n):
        send(recv())


def lf_pair() -> Any:
    from lockfree import KfifoQueue
    return KfifoQueue(1 << 16, shared=True), KfifoQueue(1 << 16, shared=True)


def lf_ends(pair, side):
    a, b = pair  # ping goes through a, pong through b
    return ((a.put_message, b.get_message) if side == "ping"
            else (b.put_message, a.get_message))


def kick_pair() -> Any:
    k = shm.kick_make(64)
    k["cfg"].pool_size = 64
    k["cfg"].sub_ring_capacity = 16
    return k


def kick_ends(k, side):
    """Polling try_receive on both sides (kickmsg's fastest path)."""
    import kickmsg
    node = kickmsg.Node(side, k["ns"])
    out, inp = ("ping", "pong") if side == "ping" else ("pong", "ping")
    sub = node.subscribe_or_create(inp, k["cfg"])
    pub = node.advertise_or_join(out, k["cfg"])
    k.setdefault("nodes", []).append(node)  # keep alive
    try_receive, send = sub.try_receive, pub.send

    def recv():
        while (m := try_receive()) is None:
            pass
        return m
    return (lambda b: send(bytes(b))), recv


def pipe_pair() -> Any:
    return CTX.Pipe(duplex=True)


def pipe_ends(pair, side):
    end = pair[0] if side == "ping" else pair[1]
    return end.send_bytes, end.recv_bytes


LATENCY: list[tuple[str, str, Callable, Callable]] = [
    ("lockfree", "put_message/get_message, blocking", lf_pair, lf_ends),
    ("kickmsg", "send/try_receive, polling", kick_pair, kick_ends),
    ("mp.Pipe", "send_bytes/recv_bytes", pipe_pair, pipe_ends),
]


def _pong_child(ends, pair, n, barrier, out):
    try:
        send, recv = ends(pair, "pong")
        barrier.wait(TIMEOUT)
        _ponger(send, recv, n)
        out.put("ok")
    except BaseException:
        out.put(traceback.format_exc())
        barrier.abort()


def round_trip_ns(make, ends, n: int) -> float:
    """Median ns of n 64-byte round trips (the first 10% discarded as
    warm-up); the pinger runs in this process."""
    pair = make()
    barrier, out = CTX.Barrier(2), CTX.SimpleQueue()
    pong = CTX.Process(target=_pong_child, args=(ends, pair, n, barrier, out),
                       daemon=True)
    pong.start()
    try:
        send, recv = ends(pair, "ping")
        barrier.wait(TIMEOUT)
        ns = _pinger(send, recv, n)
        pong.join(TIMEOUT)
        status = out.get()
        if status != "ok":
            raise RuntimeError(status)
        return float(statistics.median(ns[n // 10:]))
    finally:
        if pong.is_alive():
            pong.kill()
            pong.join()
        if isinstance(pair, tuple):
            for x in pair:
                x.close()
        else:
            peers.close(pair)
