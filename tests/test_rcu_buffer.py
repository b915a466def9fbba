"""RcuBuffer: versions and their recycling, readers in other processes
(checksums, a reader dying inside or holding a version), pickling."""

import hashlib
import os
import pickle
import signal
import struct
import threading
import time

import pytest

from lockfree import (
    RcuBuffer,
    RcuDomain,
)

from .conftest import LONG


def _in_thread(fn):
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_buffer_versions_and_recycling():
    with RcuBuffer(32, b"v0", slots=2) as b:
        with b.read() as view:
            assert bytes(view) == b"v0" and view.readonly
            first = view
        with pytest.raises(ValueError):  # released with the section
            bytes(first)
        for i in range(1, 20):
            assert b.publish(b"v%d" % i) == i + 1
        with b.read() as view:
            assert bytes(view) == b"v19"
        assert b.version == 20
        assert b.stats["slots_recycled"] >= 18


def test_buffer_reader_keeps_its_version():
    with RcuBuffer(16, b"old", slots=3) as b:
        b.synchronize()  # the slot of version 0 is reusable without a wait
        inside, leave = threading.Event(), threading.Event()
        seen = []

        def reader():
            with b.read() as view:
                inside.set()
                leave.wait(10)
                seen.append(bytes(view))
        t = _in_thread(reader)
        assert inside.wait(10)
        b.publish(b"new", timeout=5)    # a never-used slot: no wait
        b.publish(b"newer", timeout=5)  # version 0's slot: no wait
        with pytest.raises(TimeoutError):  # reusing "old"'s slot must wait
            b.publish(b"newest", timeout=0.2)
        leave.set()
        t.join(10)
        assert seen == [b"old"]
        b.publish(b"newest", timeout=5)


def _record(version, size):
    body = hashlib.sha256(struct.pack("<Q", version)).digest() * \
        (1 + version % (size // 32 - 2))
    body = struct.pack("<Q", version) + body
    return body + hashlib.sha256(body).digest()


def _check(view):
    data = bytes(view)
    if len(data) < 40:
        return -1
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        return None
    return struct.unpack_from("<Q", body)[0]


def _writer_proc(buf, n, size):
    for v in range(1, n + 1):
        buf.publish(_record(v, size), timeout=30)
    buf.close()


def _reader_proc(buf, stop, result):
    torn = reads = 0
    last = -1
    versions = set()
    while not stop.is_set() or reads < 50:
        with buf.read() as view:
            v = _check(view)
        reads += 1
        if v is None or (v >= 0 and v < last):
            torn += 1
        elif v >= 0:
            last = v
            versions.add(v)
    result.put((reads, torn, len(versions)))
    buf.close()


def test_buffer_cross_process_checksums(mp_context):
    size = 2048
    n = 2000 if LONG else 300
    with RcuBuffer(size, slots=3, shared=True) as buf:
        stop, result = mp_context.Event(), mp_context.Queue()
        reader = mp_context.Process(target=_reader_proc,
                                    args=(buf, stop, result))
        writer = mp_context.Process(target=_writer_proc,
                                    args=(buf, n, size))
        reader.start()
        writer.start()
        writer.join(60)
        stop.set()
        reads, torn, distinct = result.get(timeout=60)
        reader.join(10)
        assert writer.exitcode == 0 and reader.exitcode == 0
        assert torn == 0
        assert reads >= 50 and distinct >= 1
        assert buf.version == n
        with buf.read() as view:
            assert _check(view) == n
        assert buf.stats["slots_recycled"] >= n - 3


def _die_inside(buf, inside, how):
    with buf.read():
        inside.set()
        if how == "exit":
            os._exit(0)
        time.sleep(60)


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_dead_reader_process_does_not_hang_writer(mp_context, how):
    with RcuBuffer(64, b"a", slots=2, shared=True) as buf:
        inside = mp_context.Event()
        p = mp_context.Process(target=_die_inside, args=(buf, inside, how))
        p.start()
        assert inside.wait(30)
        if how == "kill":
            os.kill(p.pid, signal.SIGKILL)
        buf.publish(b"b", timeout=10)
        # Reusing slot "a" needs a grace period past the dead reader (a
        # zombie until joined, then gone).
        buf.publish(b"c", timeout=10)
        assert buf.stats["dead_readers"] == 1
        assert buf.stats["readers"] == 0  # the dead one no longer counts
        p.join(10)
        buf.publish(b"d", timeout=10)


def _hold(buf, inside, leave):
    with buf.read():
        inside.set()
        leave.wait(30)
    buf.close()


def test_live_reader_process_times_out(mp_context):
    with RcuBuffer(64, b"a", slots=2, shared=True) as buf:
        buf.synchronize()  # version 0's slot is free: "b" needs no wait
        inside, leave = mp_context.Event(), mp_context.Event()
        p = mp_context.Process(target=_hold, args=(buf, inside, leave))
        p.start()
        try:
            assert inside.wait(30)
            buf.publish(b"b", timeout=5)
            with pytest.raises(TimeoutError):
                buf.publish(b"c", timeout=0.3)
            with pytest.raises(TimeoutError):
                buf.synchronize(timeout=0.3)
        finally:
            leave.set()
            p.join(30)
        buf.publish(b"c", timeout=10)
        assert buf.stats["dead_readers"] == 0


def test_buffer_pickles_and_attaches():
    with RcuBuffer(16, b"hi", shared=True) as b:
        b2 = pickle.loads(pickle.dumps(b))
        with b2.read() as view:
            assert bytes(view) == b"hi"
        b2.publish(b"yo")
        with b.read() as view:
            assert bytes(view) == b"yo"
        b2.close()
    with pytest.raises(TypeError):
        pickle.dumps(RcuBuffer(8))


def test_domain_and_buffer_refuse_each_others_segments():
    with RcuDomain(shared=True) as d, RcuBuffer(64, shared=True) as b:
        with pytest.raises(ValueError, match="holds an RcuDomain, not an "
                           "RcuBuffer"):
            RcuBuffer.attach(d.name)
        with pytest.raises(ValueError, match="holds an RcuBuffer, not an "
                           "RcuDomain"):
            RcuDomain.attach(b.name)
