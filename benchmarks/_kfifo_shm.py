"""The shared-memory peers bench_kfifo.py times: kickmsg and iceoryx2.

Adapters as in _kfifo_peers.py (``make``, ``produce``, ``consume``), with
the same message, the same producer work and the same consumer check.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp

from _kfifo_peers import RING, WAIT, _seq, _unique, checker, payload

# -- kickmsg (pub/sub over a slot pool; lossy: see kick_make) -----------------


def kick_make(size: int) -> dict:
    """kickmsg drops a subscriber's oldest entry when its ring is full and
    (0.9.2) frees a slot only when its ring entry is overwritten, so it has
    no backpressure: the producer waits on a credit counter the consumer
    publishes every cap/4 messages (a shared ctypes int), the least that
    makes the run lossless.  cap = ring entries = RING // size; the slot
    pool holds 2 * cap + 2 slots of ``size`` bytes."""
    import kickmsg
    cfg = kickmsg.Config()
    cap = max(8, RING // size)
    cfg.max_subscribers, cfg.sub_ring_capacity = 1, cap
    cfg.pool_size, cfg.max_payload_size = 2 * cap + 2, size
    return {"ns": _unique("lfb"), "cfg": cfg, "cap": cap,
            "credit": mp.get_context("fork").RawValue(ctypes.c_longlong, 0),
            "cleanup": kick_cleanup}


def kick_cleanup(k: dict) -> None:
    """Unlink the namespace's registry and topics (the children end with
    os._exit: nothing of kickmsg's is destroyed there)."""
    import kickmsg
    kickmsg.Registry.unlink(k["ns"])
    for topic in ("t", "ping", "pong"):
        kickmsg.unlink_shm(f"/{k['ns']}_{topic}")  # no-op if absent


def _kick_wait(k, i, limit):
    """Producer side of the credit: the next sequence number it may not
    send yet."""
    credit, cap = k["credit"], k["cap"]
    while i >= limit:
        limit = credit.value + cap
    return limit


def kick_produce(k, size, n, ready):
    import kickmsg
    node = kickmsg.Node("producer", k["ns"])
    send = node.advertise_or_join("t", k["cfg"]).send
    buf, last, limit = payload(size), size - 8, 0
    ready()
    for i in range(n):
        if i >= limit:
            limit = _kick_wait(k, i, limit)
        _seq(buf, 0, i)
        _seq(buf, last, i)
        send(bytes(buf))  # send() takes bytes only


def kick_produce_loan(k, size, n, ready):
    import kickmsg
    node = kickmsg.Node("producer", k["ns"])
    allocate = node.advertise_or_join("t", k["cfg"]).allocate
    data, last, limit = bytes(payload(size)), size - 8, 0
    ready()
    for i in range(n):
        if i >= limit:
            limit = _kick_wait(k, i, limit)
        while (slot := allocate()) is None:
            pass
        with memoryview(slot) as buf:
            buf[:] = data
            _seq(buf, 0, i)
            _seq(buf, last, i)
        slot.publish(size)


def _kick_consume(k, size, n, ready, block, view):
    import kickmsg
    node = kickmsg.Node("consumer", k["ns"])
    sub = node.subscribe_or_create("t", k["cfg"])
    if view:
        get = sub.receive_view if block else sub.try_receive_view
    else:
        get = sub.receive if block else sub.try_receive
    args = (WAIT,) if block else ()
    ht, credit, bad = checker(size), k["credit"], 0
    every = max(1, k["cap"] // 4)
    ready()
    try:
        for i in range(n):
            while (m := get(*args)) is None:
                if block:
                    raise TimeoutError(f"kickmsg: no message in {WAIT} s")
                if sub.lost:  # overwritten before read: fail, not hang
                    raise RuntimeError(f"kickmsg lost {sub.lost} messages")
            if view:
                with m, memoryview(m) as b:
                    ok = ht(b) == (i, i)
            else:
                ok = ht(m) == (i, i)
            bad += not ok
            if not (i + 1) % every:
                credit.value = i + 1
        return bad + sub.lost
    finally:
        node.unlink_topic("t")


def kick_consume_poll(k, size, n, ready):
    return _kick_consume(k, size, n, ready, False, False)


def kick_consume_block(k, size, n, ready):
    return _kick_consume(k, size, n, ready, True, False)


def kick_consume_view_poll(k, size, n, ready):
    return _kick_consume(k, size, n, ready, False, True)


def kick_consume_view_block(k, size, n, ready):
    return _kick_consume(k, size, n, ready, True, True)


# -- iceoryx2 (publish/subscribe of a byte slice, loans) ----------------------


def iox_make(size: int) -> dict:
    """A Slice[c_uint8] service; lossless: safe overflow off and the
    publisher's RetryUntilDelivered backpressure; the subscriber buffers
    RING // size samples."""
    import iceoryx2
    iceoryx2.set_log_level(iceoryx2.LogLevel.Error)
    return {"name": _unique("lockfree-bench/"), "cap": max(8, RING // size)}


def _iox_service(x):
    import iceoryx2 as iox2
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    svc = (node.service_builder(iox2.ServiceName.new(x["name"]))
           .publish_subscribe(iox2.Slice[ctypes.c_uint8])
           .enable_safe_overflow(False)
           .subscriber_max_buffer_size(x["cap"]).history_size(0)
           .max_publishers(1).max_subscribers(1).open_or_create())
    return iox2, node, svc


def iox_produce(x, size, n, ready):
    iox2, node, svc = _iox_service(x)
    loan = (svc.publisher_builder().initial_max_slice_len(size)
            .backpressure_strategy(iox2.BackpressureStrategy
                                   .RetryUntilDelivered)
            .create().loan_slice_uninit)
    # Sample.payload().as_memory_view() builds a ctypes array type per call
    # (~20 us); one array type made once over payload_ptr is the fast way.
    arr, data, last = ctypes.c_uint8 * size, bytes(payload(size)), size - 8
    ready()
    for i in range(n):
        sample = loan(size)
        with memoryview(arr.from_address(sample.payload_ptr)).cast("B") as b:
            b[:] = data
            _seq(b, 0, i)
            _seq(b, last, i)
        sample.assume_init().send()


def iox_consume(x, size, n, ready):
    iox2, node, svc = _iox_service(x)
    receive = svc.subscriber_builder().buffer_size(x["cap"]).create().receive
    arr, ht, bad = ctypes.c_uint8 * size, checker(size), 0
    ready()
    for i in range(n):
        while (sample := receive()) is None:
            pass
        with memoryview(arr.from_address(sample.payload_ptr)).cast("B") as b:
            bad += ht(b) != (i, i)
        sample.delete()
    return bad
