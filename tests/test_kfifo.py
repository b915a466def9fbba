"""Kfifo: semantics in both modes, index wrap-around, bad input, roles,
blocking, cross-process stress, crash safety."""

import array
import inspect
import math
import os
import pickle
import queue
import random
import signal
import struct
import threading
import time
import zlib
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import lockfree._wait
import lockfree.kfifo
from lockfree import (
    AtomicInt,
    ConsumerDied,
    Kfifo,
    KfifoBytes,
    KfifoQueue,
    ProducerDied,
    RoleError,
)
from lockfree.errors import ConcurrentUseError, CorruptStateError
from lockfree.region import HEADER

from .conftest import LONG

WRAP = 2**32


# -- basics ------------------------------------------------------------------

def test_capacity_is_rounded_up_to_a_power_of_two():
    assert Kfifo(2).capacity == 2
    assert Kfifo(10).capacity == 16
    assert Kfifo(4096).capacity == 4096
    assert Kfifo(3, "records").capacity == 8      # records: at least 8
    assert Kfifo(100, "records").max_message == 124


@pytest.mark.parametrize("bad", [0, 1, -5, 2**31 + 1, 2**40])
def test_capacity_out_of_range(bad):
    with pytest.raises(ValueError, match="capacity"):
        Kfifo(bad)


@pytest.mark.parametrize("bad", [1.5, "16", None])
def test_capacity_wrong_type(bad):
    with pytest.raises(TypeError):
        Kfifo(bad)


def test_mode_checked():
    with pytest.raises(ValueError, match="mode"):
        Kfifo(16, "stream")
    with pytest.raises(TypeError):
        Kfifo(16, 1)


def test_bytes_put_get_peek_skip_partial():
    q = Kfifo(16)
    assert q.mode == "bytes" and q.empty() and not q.full()
    # partial, like kfifo_in:
    assert q.put(b"0123456789abcdefXYZ", block=False) == 16
    assert q.full() and len(q) == 16 and q.free == 0
    assert q.put(b"more", block=False) == 0
    assert q.peek(4) == b"0123" and len(q) == 16
    assert q.get(4, block=False) == b"0123"
    assert q.skip(2) == 2
    assert q.get(100, block=False) == b"6789abcdef"
    assert q.get(5, block=False) == b"" and q.empty()
    assert q.get(0, block=False) == b""
    q.close()


def test_bytes_get_into_and_linear_view():
    q = Kfifo(16)
    q._set_indexes(WRAP - 4)            # readable bytes wrap at the end
    assert q.put(b"abcdefgh", block=False) == 8
    view = q.linear_view()
    assert view.readonly and bytes(view) == b"abcd"   # up to the end
    del view
    assert q.skip(4) == 4
    assert bytes(q.linear_view()) == b"efgh"
    buf = bytearray(10)
    assert q.get_into(buf, block=False) == 4 and buf[:4] == b"efgh"
    assert bytes(q.linear_view()) == b""
    q.close()


def test_records_message_views_zero_copy():
    # Records never wrap: a record that does not fit before the end of the
    # data area starts at offset 0 after padding, so a message is one view.
    q = Kfifo(32, "records")
    assert q.message_views() == ()                       # empty
    q._set_indexes(WRAP - 6)      # offset 26: 6 bytes before the end
    q.put_message(b"abcdefgh")    # 12 bytes: 6 of padding, then offset 0
    assert len(q) == 6 + 12 and q.qsize() == 1
    (view,) = q.message_views()
    assert bytes(view) == b"abcdefgh" and view.readonly
    assert len(q) == 18           # a peek: nothing consumed
    del view
    assert q.skip_message() == 8
    q.put_message(b"")                   # an empty message at offset 12
    q.put_message(b"xyz")
    assert [bytes(v) for v in q.message_views()] == [b""]
    q.skip_message()
    assert [bytes(v) for v in q.message_views()] == [b"xyz"]
    assert q.get_message() == b"xyz"
    q._set_indexes(WRAP - 2)      # 2 bytes left: padding without a marker
    q.put_message(b"12345")
    assert len(q) == 2 + 9
    (one,) = q.message_views()
    assert bytes(one) == b"12345"
    assert q.get_message() == b"12345"
    q.close_producer()
    assert q.message_views() == ()                       # end of stream
    q.close()


def test_records_basic_and_peek_len():
    q = Kfifo(64, "records")
    assert q.peek_len() is None
    q.put_message(b"hello")
    q.put_message(b"")
    assert len(q) == 4 + 5 + 4
    assert q.peek_len() == 5
    assert q.get_message() == b"hello"
    assert q.get_message() == b""
    with pytest.raises(queue.Empty):
        q.get_message(block=False)
    q.put_message(b"xyz")
    assert q.skip_message() == 3 and q.empty()
    q.close()


def test_records_all_or_nothing_and_oversize():
    q = Kfifo(32, "records")           # max_message 28
    q.put_message(b"a" * 20)           # uses 24 bytes, 8 left
    with pytest.raises(queue.Full):
        q.put_message(b"b" * 5, block=False)   # needs 9
    assert q.qsize() == 1 and len(q) == 32   # no message went in: only
    # the padding to the end (published alone: the 9 bytes go at offset 0)
    with pytest.raises(ValueError, match="max_message is 28"):
        q.put_message(b"c" * 29)
    with pytest.raises(ValueError):
        q.put_many([b"ok", b"c" * 29])
    assert q.get_message() == b"a" * 20 and q.empty()
    q.put_message(b"d" * 28)           # exactly max_message
    assert q.get_message() == b"d" * 28
    q.close()


def test_put_many_get_many_and_partial_batches():
    q = Kfifo(64, "records")
    items = [bytes([i]) * i for i in range(8)]      # 0..7 bytes
    assert q.put_many(items) == 8
    assert q.get_many(3) == items[:3]
    assert q.get_many() == items[3:]
    # Not blocking: as many as fit, all or nothing each.
    assert q.put_many([b"x" * 10] * 10, block=False) == 4   # 14 bytes each
    assert q.get_many() == [b"x" * 10] * 4
    with pytest.raises(queue.Full) as info:
        q.put_many([b"y" * 10] * 10, timeout=0.01)
    assert info.value.written == 4
    with pytest.raises(ValueError):
        q.get_many(0)
    q.close()


def test_buffer_protocol_inputs():
    q = Kfifo(256, "records")
    q.put_message(bytearray(b"ba"))
    q.put_message(memoryview(b"xmvx")[1:3])
    q.put_message(array.array("i", [1, 2]))
    q.put_many([bytearray(b"1"), memoryview(b"22"), array.array("h", [3])])
    assert [q.get_message() for _ in range(3)] == [
        b"ba", b"mv", array.array("i", [1, 2]).tobytes()]
    assert q.get_many() == [b"1", b"22", array.array("h", [3]).tobytes()]
    b = Kfifo(64)
    assert b.put(memoryview(bytearray(b"abc")), block=False) == 3
    assert b.put(array.array("H", [0x4142]), block=False) == 2
    want = b"abc" + array.array("H", [0x4142]).tobytes()
    assert b.get(10, block=False) == want
    np = pytest.importorskip("numpy")
    a = np.arange(5, dtype=np.float64)
    q.put_message(a)
    q.put_many([a, a[:2]])
    assert q.get_message() == a.tobytes()
    assert q.get_many() == [a.tobytes(), a[:2].tobytes()]
    with pytest.raises(TypeError):
        q.put_message(a[::2])          # not contiguous
    q.close()
    b.close()


def test_get_message_into():
    q = Kfifo(64, "records")
    q.put_message(b"0123456789")
    small = bytearray(4)
    with pytest.raises(ValueError, match="10 bytes"):
        q.get_message_into(small, block=False)
    buf = bytearray(16)
    assert q.get_message_into(buf) == 10 and buf[:10] == b"0123456789"
    q.close()


@pytest.mark.parametrize("bad", ["text", 12, None, [b"x"], 3.0])
def test_wrong_types(bad):
    q = Kfifo(64, "records")
    with pytest.raises(TypeError):
        q.put_message(bad)
    with pytest.raises(TypeError):
        q.put_many([bad])
    b = Kfifo(64)
    with pytest.raises(TypeError):
        b.put(bad, block=False)
    assert q.empty() and b.empty()
    for target in (bad, b"read-only"):
        with pytest.raises(TypeError):
            b.get_into(target, block=False)
        with pytest.raises(TypeError):
            q.get_message_into(target, block=False)
    q.close()
    b.close()


def test_each_class_has_only_its_methods():
    b, r = Kfifo(64), Kfifo(64, "records")
    assert type(b) is KfifoBytes and type(r) is KfifoQueue
    assert isinstance(b, Kfifo) and isinstance(r, Kfifo)
    assert b.mode == "bytes" and r.mode == "records"
    for name in ("put_message", "get_message", "put_many", "get_many",
                 "peek_len", "message_views", "qsize", "put_nowait",
                 "get_nowait", "max_message"):
        assert not hasattr(b, name), name
    for name in ("peek", "skip", "get_into", "linear_view"):
        assert not hasattr(r, name), name
    with pytest.raises(ValueError, match="mode"):
        KfifoQueue(64, "bytes")
    assert type(KfifoQueue(64, "records")) is KfifoQueue
    b.close()
    r.close()


PUBLIC = {KfifoBytes: ["put", "get", "get_into", "peek", "skip",
                       "linear_view", "close", "close_producer", "reset",
                       "empty", "full", "__len__", "__iter__"],
          KfifoQueue: ["put", "get", "put_nowait", "get_nowait", "qsize",
                       "put_message", "get_message", "get_message_into",
                       "put_many", "get_many", "peek_len", "skip_message",
                       "message_views", "close", "close_producer", "reset",
                       "empty", "full", "__len__", "__iter__"]}


@pytest.mark.parametrize("cls", [KfifoBytes, KfifoQueue])
def test_methods_live_on_the_class_with_real_signatures(cls):
    q = cls(64)
    for name in PUBLIC[cls]:
        assert name not in vars(q), name
        assert callable(getattr(cls, name)), name
        params = inspect.signature(getattr(q, name)).parameters
        assert all(p.kind is not p.VAR_POSITIONAL for p in params.values())
    sig = inspect.signature(q.get)
    assert sig.parameters["block"].default is True
    assert sig.parameters["timeout"].default is None
    assert inspect.signature(q.put).parameters["block"].default is True
    q.close()


@pytest.mark.parametrize("cls", [KfifoBytes, KfifoQueue])
def test_closed_class_raises_value_error_also_via_saved_methods(cls):
    q = cls(64)
    saved = [q.put, q.get, q.empty, q.reset, q.close_producer]
    q.close()
    assert "closed" in repr(q)
    for call in (lambda: saved[0](b"x"), lambda: saved[1](block=False)
                 if cls is KfifoQueue else saved[1](1, block=False),
                 saved[2], saved[3], saved[4], lambda: len(q),
                 lambda: q.free, lambda: q.capacity,
                 lambda: q.put(b"x", block=False)):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_queue_module_interface():
    q = KfifoQueue(32)
    assert q.empty() and not q.full() and q.qsize() == 0
    q.put(b"abc")
    q.put_nowait(b"de")
    assert q.qsize() == 2 and len(q) == 4 + 3 + 4 + 2
    while q.free >= 4:
        q.put_nowait(b"")
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(b"")
    with pytest.raises(queue.Full):
        q.put(b"x", timeout=0.01)
    assert q.get() == b"abc" and q.get_nowait() == b"de"
    while not q.empty():
        assert q.get_nowait() == b""
    assert q.qsize() == 0
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.close()


def test_attach_picks_the_class_of_the_ring():
    for mode, cls, other in (("bytes", KfifoBytes, KfifoQueue),
                             ("records", KfifoQueue, KfifoBytes)):
        q = Kfifo(64, mode, shared=True)
        a = Kfifo.attach(q.name)
        assert type(a) is cls
        b = cls.attach(q.name)
        assert type(b) is cls
        with pytest.raises(ValueError, match=f"{mode!r} mode"):
            other.attach(q.name)
        for x in (a, b, q):
            x.close()


def test_closed_object_raises_value_error():
    q = Kfifo(64, "records")
    get = q.get_message
    q.close()
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put_message(b"x")
    with pytest.raises(ValueError, match="closed"):
        len(q)
    with pytest.raises(ValueError, match="closed"):  # a saved method too
        get(block=False)
    assert "closed" in repr(q)


# -- the kernel's wrap-around: every index near 2^32, every split point ------

@pytest.mark.parametrize("size", [8, 16])
def test_every_split_point_and_index_wrap_bytes(size):
    q = Kfifo(size)
    data = bytes(range(1, 256))
    for start in range(WRAP - 2 * size, WRAP + size):
        for n in range(size + 1):
            q._set_indexes(start % WRAP)
            assert q.put(data[:n], block=False) == n
            assert len(q) == n and q.free == size - n
            assert q.peek(n) == data[:n]
            assert q.get(size, block=False) == data[:n]
            assert q.empty()
    q.close()


def test_every_split_point_and_index_wrap_records():
    # Records never wrap: from every offset, a record that does not fit
    # before the end goes to offset 0 after padding; one that cannot fit
    # with the padding (single-threaded: nobody passes it) is queue.Full,
    # publishes the padding alone, and goes in once a get passed it.
    size = 16
    q = Kfifo(size, "records")
    data = bytes(range(1, 256))
    for start in range(WRAP - 2 * size, WRAP + size):
        tail = size - start % size
        for n in range(size - 4 + 1):
            pad = 0 if tail >= n + 4 else tail
            q._set_indexes(start % WRAP)
            if pad + n + 4 > size:
                with pytest.raises(queue.Full):
                    q.put_message(data[:n], block=False)
                assert len(q) == pad and q.qsize() == 0
                with pytest.raises(queue.Empty):
                    q.get_message(block=False)   # passes the padding
                assert len(q) == 0
                q.put_message(data[:n])
                assert q.get_message() == data[:n]
                continue
            q.put_message(data[:n])
            assert len(q) == pad + n + 4
            assert q.peek_len() == n
            assert q.get_message() == data[:n] and len(q) == 0
            q._set_indexes(start % WRAP)
            q.put_many([data[:n]])
            assert q.get_many() == [data[:n]]
            buf = bytearray(n)
            q._set_indexes(start % WRAP)
            q.put_message(data[:n])
            assert q.get_message_into(buf) == n and buf == data[:n]
    q.close()


def test_large_message_beyond_scratch_wraps():
    q = Kfifo(1 << 20, "records")
    big = os.urandom(700_000)          # > the 256 KiB scratch: parts path
    q._set_indexes(WRAP - 1_200_000)   # after padding; the index wraps
    q.put_message(big)
    assert q.get_message() == big
    q.put_many([big])
    assert q.get_many() == [big]
    b = Kfifo(1 << 20)
    b._set_indexes(WRAP - 300_000)
    assert b.put(big, block=False) == 700_000
    assert b.get(700_000, block=False) == big
    q.close()
    b.close()


class KfifoModel(RuleBasedStateMachine):
    """Both modes against a deque of bytes, starting just below 2^32."""

    @initialize(size_log=st.integers(3, 6), below=st.integers(0, 200),
                records=st.booleans())
    def setup(self, size_log, below, records):
        self.records = records
        self.q = Kfifo(2**size_log, "records" if records else "bytes")
        self.size = self.q.capacity
        self.q._set_indexes((WRAP - below) % WRAP)
        self.model = deque()   # messages (records) or single bytes

    def teardown(self):
        self.q.close()

    def used(self):
        if self.records:
            return sum(4 + len(m) for m in self.model)
        return len(self.model)

    @precondition(lambda self: not self.records)
    @rule(data=st.binary(max_size=80))
    def put(self, data):
        n = self.q.put(data, block=False)
        assert n == min(len(data), self.size - self.used())
        self.model.extend(data[:n])

    @precondition(lambda self: not self.records)
    @rule(n=st.integers(0, 80), how=st.sampled_from(["get", "peek",
                                                     "skip", "into"]))
    def take(self, n, how):
        want = bytes(list(self.model)[:n])
        if how == "peek":
            assert self.q.peek(n) == want
            return
        if how == "get":
            assert self.q.get(n, block=False) == want
        elif how == "skip":
            assert self.q.skip(n) == len(want)
        else:
            buf = bytearray(n)
            assert self.q.get_into(buf, block=False) == len(want)
            assert bytes(buf[:len(want)]) == want
        for _ in want:
            self.model.popleft()

    def _room(self, n, pin, used):
        """Records never wrap: (fits, padding) for an n-byte message at
        producer index pin with used bytes in the ring; a padding that fits
        alone is published even when the message does not fit."""
        tail = self.size - pin % self.size
        pad = 0 if tail >= n + 4 else tail
        if pad + n + 4 <= self.size - used:
            return True, pad
        return False, pad if pad and self.size - used >= pad else 0

    def _pin(self):
        return getattr(self.q._h.f, "in")

    @precondition(lambda self: self.records)
    @rule(data=st.binary(max_size=40))
    def put_message(self, data):
        used, pin = len(self.q), self._pin()
        if len(data) > self.size - 4:
            with pytest.raises(ValueError):
                self.q.put_message(data, block=False)
            return
        fits, pad = self._room(len(data), pin, used)
        if not fits:
            with pytest.raises(queue.Full):
                self.q.put_message(data, block=False)
            assert len(self.q) == used + pad      # only padding went in
        else:
            self.q.put_message(data, block=False)
            self.model.append(data)
            assert len(self.q) == used + pad + 4 + len(data)

    @precondition(lambda self: self.records)
    @rule(items=st.lists(st.binary(max_size=12), max_size=6))
    def put_many(self, items):
        if any(len(m) > self.size - 4 for m in items):
            with pytest.raises(ValueError):   # checked before writing any
                self.q.put_many(items, block=False)
            return
        used, pin = len(self.q), self._pin()
        k = self.q.put_many(items, block=False)
        fit = 0
        for m in items:
            fits, pad = self._room(len(m), pin, used)
            pin += pad + (4 + len(m) if fits else 0)
            used += pad + (4 + len(m) if fits else 0)
            if not fits:
                break
            fit += 1
        assert k == fit and len(self.q) == used
        self.model.extend(items[:k])

    @precondition(lambda self: self.records)
    @rule(how=st.sampled_from(["get", "many", "into", "skip", "peek"]),
          k=st.integers(1, 5))
    def get_message(self, how, k):
        if not self.model:
            if how == "peek":
                assert self.q.peek_len() is None
            elif how == "many":
                with pytest.raises(queue.Empty):
                    self.q.get_many(k, block=False)
            else:
                with pytest.raises(queue.Empty):
                    self.q.get_message(block=False)
            return
        if how == "peek":
            assert self.q.peek_len() == len(self.model[0])
        elif how == "get":
            assert self.q.get_message(block=False) == self.model.popleft()
        elif how == "skip":
            assert self.q.skip_message() == len(self.model.popleft())
        elif how == "into":
            buf = bytearray(64)
            n = self.q.get_message_into(buf, block=False)
            assert bytes(buf[:n]) == self.model.popleft()
        else:
            got = self.q.get_many(k, block=False)
            want = [self.model.popleft()
                    for _ in range(min(k, len(self.model)))]
            assert got == want

    @invariant()
    def lengths(self):
        assert self.q.free == self.size - len(self.q)
        if not self.records:
            assert len(self.q) == self.used()
            assert self.q.empty() == (not self.model)
            return
        # Records: plus padding not passed yet, less than a lap.
        assert 0 <= len(self.q) - self.used() < self.size
        assert self.q.qsize() == len(self.model)


KfifoModel.TestCase.settings = settings(
    max_examples=400 if LONG else 60, stateful_step_count=60, deadline=None)
TestKfifoModel = KfifoModel.TestCase



# -- bad input (issue #16, point 7) -------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), 1.0, 2.5, "3", None])
def test_counts_must_be_ints(bad):
    """get(float('nan')) used to return the whole ring."""
    b, r = Kfifo(64), Kfifo(64, "records")
    b.put(b"abcdef", block=False)
    r.put_message(b"m")
    for call in (b.get, b.peek, b.skip, r.get_many,
                 lambda n: b.get(n, True, 1)):
        with pytest.raises(TypeError, match="int"):
            call(bad)
    assert b.get(10, block=False) == b"abcdef" and r.get_many(True) == [b"m"]
    b.close()
    r.close()


def _returns_within(call, seconds=5.0):
    """Run call() in a thread; its exception, or a failure if it hangs."""
    out = []

    def run():
        try:
            call()
            out.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            out.append(exc)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the call blocked (it used to, forever)"
    return out[0]


def test_nan_timeout_is_value_error_not_a_hang():
    r, b = Kfifo(16, "records"), Kfifo(8)
    r.put_message(b"x" * 12)       # full
    calls = [lambda: r.put_message(b"y", timeout=math.nan),
             lambda: r.put_many([b"y"], timeout=math.nan),
             lambda: b.put(b"123456789", True, math.nan),
             lambda: b.get(4, True, math.nan)]
    for call in calls:
        assert isinstance(_returns_within(call), ValueError)
    r.get_message()                # empty now
    for call in (lambda: r.get_message(timeout=math.nan),
                 lambda: r.get_many(timeout=math.nan),
                 lambda: r.get_message_into(bytearray(16), True, math.nan)):
        assert isinstance(_returns_within(call), ValueError)
    for call in (lambda: r.get_message(timeout="1"),
                 lambda: b.get(1, True, [])):
        assert isinstance(_returns_within(call), TypeError)
    r.close()
    b.close()


def test_buffers_as_their_bytes_or_type_error():
    np = pytest.importorskip("numpy")
    r, b = Kfifo(256, "records"), Kfifo(256)
    grid = np.arange(6, dtype="u1").reshape(2, 3)      # C-contiguous 2-D
    r.put_message(grid)
    assert r.get_message() == grid.tobytes()
    assert b.put(grid, block=False) == 6
    assert b.get(6, block=False) == grid.tobytes()
    skewed = np.arange(12, dtype="u1").reshape(3, 4)[:, ::2]
    for call in (lambda: r.put_message(skewed),
                 lambda: b.put(skewed, block=False),
                 lambda: b.put(skewed, block=True),
                 lambda: r.put_many([b"ok", skewed]),
                 lambda: r.get_message_into(np.zeros((4, 4), "u1")[:, ::2]),
                 lambda: b.get_into(np.zeros((4, 4), "u1")[:, ::2],
                                    block=False)):
        with pytest.raises(TypeError):
            call()
    assert r.empty() and b.empty()
    r.close()
    b.close()


def test_put_many_splits_at_each_items_bytes():
    """put_many took len() as the byte count: a 2-D array (len 2, 6 bytes)
    next to a zero-size one (len 4, 0 bytes) added up to the joined length
    and the batch was split at the wrong places, silently."""
    np = pytest.importorskip("numpy")
    r = Kfifo(256, "records")
    grid = np.arange(6, dtype="u1").reshape(2, 3)
    for items in ([grid, np.zeros((4, 0), dtype="u1"), b"xy"],
                  [array.array("I", [1, 2]), grid, b"", bytearray(b"z")]):
        assert r.put_many(items) == len(items)
        assert r.get_many() == [memoryview(x).tobytes() for x in items]
    r.close()


def test_repr_of_a_corrupt_kfifo_does_not_raise():
    buf = bytearray(Kfifo.region_size(64, "records"))
    q = Kfifo(64, "records", buffer=buf)
    struct.pack_into("<I", buf, HEADER, 1000)          # in: 1000 > size
    text = repr(q)
    assert "corrupt" in text and "capacity=64" in text
    with pytest.raises(CorruptStateError):
        len(q)
    with pytest.raises(CorruptStateError):
        q.get_message(block=False)
    q.close()
    assert "Kfifo" in repr(q)


# -- misuse: one role, two threads at once (issue #16, point 8) --------------

N_MISUSE = 3000


def _hammer(put, tid, errors):
    """Send N_MISUSE frames (tid, seq, pattern), retrying a call that was
    refused because the other thread was inside one."""
    for seq in range(N_MISUSE):
        frame = struct.pack("<II", tid, seq) + bytes([tid * 16 + seq % 7]) * 8
        while True:
            try:
                put(frame)
                break
            except ConcurrentUseError:
                errors[tid] += 1


@pytest.mark.parametrize("mode", ["records", "bytes"])
def test_two_threads_on_one_producer_are_refused_not_garbled(mode):
    """Two threads putting through one producer object lost messages
    (records) and garbled frames (bytes) silently.  Now the call that
    overlaps another raises ConcurrentUseError and writes nothing, so every
    frame arrives once, whole, and each thread's in order."""
    q = Kfifo(64, mode)                  # small: puts often wait for room
    put = q.put_message if mode == "records" else \
        (lambda f: q.put(f, block=True, timeout=30))
    errors = [0, 0]
    threads = [threading.Thread(target=_hammer, args=(put, i, errors))
               for i in (0, 1)]
    for t in threads:
        t.start()
    nxt, pending = [0, 0], b""
    for _ in range(2 * N_MISUSE):
        if mode == "records":
            frame = q.get_message(timeout=30)
        else:   # odd-sized reads: the ring has room for part of a frame
            while len(pending) < 16:
                pending += q.get(5, block=True, timeout=30)
            frame, pending = pending[:16], pending[16:]
        tid, seq = struct.unpack_from("<II", frame)
        assert tid in (0, 1) and seq == nxt[tid], (tid, seq, nxt)
        assert frame[8:] == bytes([tid * 16 + seq % 7]) * 8, frame
        nxt[tid] += 1
    for t in threads:
        t.join(30)
    assert q.empty() and nxt == [N_MISUSE, N_MISUSE]
    assert sum(errors) > 0, "the threads never overlapped: nothing proven"
    q.close()


def test_two_threads_on_one_consumer_are_refused_not_lost():
    q = Kfifo(64, "records")
    got, errors = [[], []], [0, 0]
    n = 2 * N_MISUSE

    def consume(i):
        while sum(map(len, got)) < n:
            try:
                got[i].append(q.get_message(timeout=0.05))
            except ConcurrentUseError:
                errors[i] += 1
            except queue.Empty:
                pass
    threads = [threading.Thread(target=consume, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for seq in range(n):
        q.put_message(struct.pack("<I", seq), timeout=30)
    for t in threads:
        t.join(30)
    seqs = [struct.unpack("<I", m)[0] for m in got[0] + got[1]]
    assert sorted(seqs) == list(range(n))             # once each, none lost
    for part in got:                                  # in order per thread
        s = [struct.unpack("<I", m)[0] for m in part]
        assert s == sorted(s)
    assert sum(errors) > 0, "the threads never overlapped: nothing proven"
    q.close()


def test_handing_a_role_to_another_thread_is_fine():
    q = Kfifo(64, "records")
    for i in range(20):
        t = threading.Thread(target=q.put_message, args=(b"%d" % i,))
        t.start()
        t.join()
        out = []
        t = threading.Thread(
            target=lambda out=out: out.append(q.get_message()))
        t.start()
        t.join()
        assert out == [b"%d" % i]
    q.close()

# -- placement, attach, pickling, bad attach ---------------------------------

def test_in_a_caller_buffer_and_attach():
    size = Kfifo.region_size(64, "records")
    buf = bytearray(size + 8)
    q = Kfifo(64, "records", buffer=buf, offset=8)
    q.put_message(b"via buffer")
    q2 = Kfifo.attach(buffer=buf, offset=8)
    assert q2.mode == "records" and q2.capacity == 64
    assert q2.get_message() == b"via buffer"
    q.close()
    q2.close()


def test_attach_rejects_other_kinds_sizes_versions():
    with AtomicInt(shared=True) as a, \
            pytest.raises(ValueError, match="AtomicInt, expected a Kfifo"):
            Kfifo.attach(a.name)
    size = Kfifo.region_size(64)
    buf = bytearray(size)
    Kfifo(64, buffer=buf).close()
    header = struct.Struct("<QIIQQQQQ")
    fields = list(header.unpack_from(buf))
    for idx, value, msg in ((4, 128, "size"), (4, 48, "corrupt"),
                            (5, 9, "corrupt"), (1, 99, "version"),
                            (0, 0, "magic")):
        bad = bytearray(buf)
        f = list(fields)
        f[idx] = value
        header.pack_into(bad, 0, *f)
        with pytest.raises(ValueError, match=msg):
            Kfifo.attach(buffer=bad)
    with pytest.raises(ValueError):
        Kfifo.attach(buffer=bytearray(buf[:size - 1]))
    bad = bytearray(buf)   # state disagrees with the header's parameters
    struct.pack_into("<I", bad, HEADER + 128 + 4, 7)    # mask
    with pytest.raises(ValueError, match="corrupt"):
        Kfifo.attach(buffer=bad)


# -- roles ------------------------------------------------------------------

def test_second_producer_and_consumer_refused_in_process():
    q = Kfifo(64, "records", shared=True)
    other = Kfifo.attach(q.name)
    q.put_message(b"1")
    with pytest.raises(RoleError, match="producer"):
        other.put_message(b"2")
    assert other.get_message() == b"1"          # other is the consumer
    with pytest.raises(RoleError):
        q.get_message(block=False)
    assert q.producer_pid == os.getpid() == q.consumer_pid
    other.close()                                # releases the consumer
    q.put_message(b"3")
    assert q.get_message() == b"3"               # q may consume now
    q.close()


def _try_put(q, out):
    try:
        q.put_message(b"intruder")
        out.put("accepted")
    except RoleError as exc:
        out.put(f"refused: {exc}")


def test_second_producer_refused_across_processes(mp_context):
    q = Kfifo(64, "records", shared=True)
    q.put_message(b"mine")
    out = mp_context.Queue()
    p = mp_context.Process(target=_try_put, args=(q, out))
    p.start()
    verdict = out.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert verdict.startswith("refused"), verdict
    assert q.get_message() == b"mine" and q.empty()
    q.close()


def test_pickle_round_trip_keeps_mode():
    q = Kfifo(64, "records", shared=True)
    q2 = pickle.loads(pickle.dumps(q))
    assert (q2.mode, q2.capacity, q2.name) == ("records", 64, q.name)
    q2.close()
    q.close()
    with pytest.raises(TypeError):
        pickle.dumps(Kfifo(16))


# -- blocking, end of stream --------------------------------------------------

def test_timeouts():
    q = Kfifo(16, "records")
    with pytest.raises(ValueError, match=">= 0"):
        q.get_message(timeout=-1)
    t0 = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get_message(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.05)
    assert 0.04 < time.monotonic() - t0 < 5
    q.put_message(b"x" * 12)
    with pytest.raises(queue.Full):
        q.put_message(b"y", timeout=0.05)
    b = Kfifo(8)
    with pytest.raises(queue.Empty):
        b.get(4, block=True, timeout=0.05)
    b.put(b"12345678", block=False)
    with pytest.raises(queue.Full) as info:
        b.put(b"9", block=True, timeout=0.05)
    assert info.value.written == 0
    q.close()
    b.close()


def test_blocked_consumer_is_woken_promptly(monkeypatch):
    # Slices of 10 s: only a wake-up can end the wait within the bound.
    monkeypatch.setattr(lockfree._wait, "SLICE_NS", 10 * 10**9)
    q = Kfifo(64, "records")
    got = []
    t = threading.Thread(target=lambda: got.append(
        (q.get_message(), time.monotonic())))
    t.start()
    time.sleep(0.3)                       # the consumer is asleep in futex
    sent = time.monotonic()
    q.put_message(b"wake up")
    t.join(10)
    assert got and got[0][0] == b"wake up"
    assert got[0][1] - sent < 1.0         # generous: woken, not a slice end
    q.close()


def _echo(req_name, resp_name, n):
    req, resp = Kfifo.attach(req_name), Kfifo.attach(resp_name)
    for _ in range(n):
        resp.put_message(req.get_message(timeout=30))
    req.close()
    resp.close()


@pytest.mark.parametrize("where", ["thread", "process"])
def test_sleeping_peer_is_woken_not_left_to_its_slice(where):
    """Each request arrives while the other side sleeps in FUTEX_WAIT (2 ms
    of idling first, beyond the spin).  A lost wake-up would leave it asleep
    until its 100 ms slice ends, so the median round trip would be >= 100
    ms; woken, it is a few ms even on a loaded machine."""
    import multiprocessing as mp
    n = 40
    req = Kfifo(256, "records", shared=True)
    resp = Kfifo(256, "records", shared=True)
    args = (req.name, resp.name, n)
    worker = threading.Thread(target=_echo, args=args) if where == "thread" \
        else mp.get_context("fork").Process(target=_echo, args=args)
    worker.start()
    rtts = []
    try:
        for i in range(n):
            time.sleep(0.002)
            t0 = time.monotonic()
            req.put_message(b"%d" % i)
            assert resp.get_message(timeout=30) == b"%d" % i
            rtts.append(time.monotonic() - t0)
    finally:
        worker.join(30)
        resp.close()
        req.close()
    rtts.sort()
    assert rtts[n // 2] < 0.05, rtts


def test_blocked_producer_is_woken_and_blocking_put_writes_all():
    """A slow consumer: the producer fills the 16 bytes and sleeps in
    FUTEX_WAIT each time (~125 times); a lost wake-up would leave it asleep
    until its 100 ms slice ends, 12 s in all."""
    b = Kfifo(16)
    data = os.urandom(2_000)
    out = bytearray()

    def consume():
        for chunk in b:                   # iteration ends at close_producer
            out.extend(chunk)
            time.sleep(0.002)
    t = threading.Thread(target=consume)
    t0 = time.monotonic()
    t.start()
    assert b.put(data, block=True) == len(data)
    b.close_producer()
    t.join(10)
    assert bytes(out) == data and b.eof
    assert time.monotonic() - t0 < 5
    b.close()


def test_close_producer_then_drain_then_eof():
    q = Kfifo(64, "records")
    q.put_many([b"a", b"b"])
    q.close_producer()
    assert q.closed_for_writing and not q.eof
    with pytest.raises(ValueError, match="closed"):
        q.put_message(b"c")
    assert list(q) == [b"a", b"b"]
    assert q.eof
    with pytest.raises(EOFError):
        q.get_message()
    with pytest.raises(EOFError):
        q.get_many(block=False)
    q.close()


def test_reset_is_consumer_only_and_drops_content():
    q = Kfifo(64, "records", shared=True)
    q.put_many([b"x", b"y"])
    assert q.reset() == 10
    assert q.empty() and q.peek_len() is None
    q.put_message(b"z")
    assert q.get_message() == b"z"
    other = Kfifo.attach(q.name)
    with pytest.raises(RoleError):
        other.reset()
    other.close()
    q.close()


# -- cross-process stress: seq numbers and checksums -------------------------

def _message(seq, rng_bytes):
    size = 12 + seq * 2654435761 % 200
    body = struct.pack("<Q", seq) + rng_bytes[:size - 12]
    return body + struct.pack("<I", zlib.crc32(body))


def _produce(q, n, batch):
    rng = os.urandom(256)
    seq = 0
    while seq < n:
        if batch and seq % 3 == 0:
            k = min(batch, n - seq)
            q.put_many([_message(s, rng) for s in range(seq, seq + k)])
            seq += k
        else:
            q.put_message(_message(seq, rng))
            seq += 1
    q.close_producer()


def _check(msg, want):
    assert len(msg) >= 12, f"short message at {want}"
    body, crc = msg[:-4], struct.unpack("<I", msg[-4:])[0]
    assert zlib.crc32(body) == crc, f"torn message at {want}"
    seq = struct.unpack_from("<Q", body)[0]
    assert seq == want, f"expected seq {want}, got {seq}"
    assert len(msg) == 12 + seq * 2654435761 % 200


@pytest.mark.parametrize("batch", [0, 32])
def test_cross_process_stress(mp_context, batch):
    n = 10**7 if LONG else 20_000
    q = Kfifo(4096, "records", shared=True)
    p = mp_context.Process(target=_produce, args=(q, n, batch))
    p.start()
    want = 0
    try:
        while True:
            try:
                msgs = q.get_many(64, timeout=30) if want % 2 else \
                    [q.get_message(timeout=30)]
            except EOFError:
                break
            for m in msgs:
                _check(m, want)
                want += 1
    finally:
        p.join(60)
        q.close()
    assert want == n and p.exitcode == 0


# -- crash safety -------------------------------------------------------------

def _produce_forever(q, ready):
    rng = os.urandom(256)
    seq = 0
    ready.set()
    while True:
        q.put_message(_message(seq, rng))
        seq += 1


def test_killed_producer_committed_messages_intact_then_producer_died(
        mp_context):
    q = Kfifo(8192, "records", shared=True)
    ready = mp_context.Event()
    p = mp_context.Process(target=_produce_forever, args=(q, ready))
    p.start()
    ready.wait(30)
    want = 0
    for _ in range(3000):                     # consume while it produces
        _check(q.get_message(timeout=30), want)
        want += 1
    os.kill(p.pid, signal.SIGKILL)            # mid-stream, maybe mid-put
    time.sleep(0.05)
    # The child is now a zombie (not yet joined): that counts as dead too.
    assert q.producer_pid == p.pid
    with pytest.raises(ProducerDied):
        while True:
            _check(q.get_message(timeout=30), want)
            want += 1
    assert want > 3000
    p.join(10)
    q.close()


def _consume_some(q, progress, n):
    for _ in range(n):
        msg = q.get_message(timeout=30)
        progress.value = struct.unpack_from("<Q", msg)[0]
    time.sleep(60)                            # hold the role until killed


def _consume_until_killed(q, progress):
    while True:
        msg = q.get_message(timeout=30)
        progress.value = struct.unpack_from("<Q", msg)[0]


@pytest.mark.parametrize("where", ["idle", "busy"])
def test_killed_consumer_new_consumer_takes_over(mp_context, where):
    q = Kfifo(4096, "records", shared=True)
    rng = os.urandom(256)
    progress = mp_context.Value("q", -1, lock=False)
    target, args = ((_consume_some, (q, progress, 500)) if where == "idle"
                    else (_consume_until_killed, (q, progress)))
    p = mp_context.Process(target=target, args=args)
    p.start()
    seq = 0
    deadline = time.monotonic() + 30
    while progress.value < 400 and time.monotonic() < deadline:
        try:
            q.put_message(_message(seq, rng), timeout=0.01)
            seq += 1
        except queue.Full:
            pass
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    last = progress.value
    assert last >= 400
    with pytest.raises(ConsumerDied):       # the ring fills, nobody reads
        for _ in range(10_000):
            q.put_message(_message(seq, rng), timeout=5)
            seq += 1
    # A new consumer (this process) takes the dead one's role and finds the
    # stream consistent: it resumes right after the last committed get.
    first = struct.unpack_from("<Q", q.get_message(timeout=5))[0]
    assert first - 1 in (last, last + 1)
    want = first + 1
    while want < seq:
        _check(q.get_message(timeout=5), want)
        want += 1
    assert q.empty() and q.consumer_pid == os.getpid()
    q.close()


# -- random-moment SIGKILL of producers and consumers (issue #16) ------------

def _produce_from(q, start, progress):
    """Put messages start, start+1, ... forever; progress = committed."""
    rng = os.urandom(256)
    seq = start
    while True:
        q.put_message(_message(seq, rng))
        seq += 1
        progress.value = seq


def _consume_checked(q, first, last, bad):
    """Get forever; first/last seq seen; bad = 1 on a gap, duplicate or
    torn message (the process is killed, so it cannot raise)."""
    want = None
    while True:
        msg = q.get_message(timeout=30)
        try:
            seq = struct.unpack_from("<Q", msg)[0]
            _check(msg, seq if want is None else want)
        except AssertionError:
            bad.value = 1
            raise
        if want is None:
            first.value = seq
        last.value = seq
        want = seq + 1


def _await(cond, seconds=30):
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def test_random_sigkill_of_producers_and_consumers_loses_nothing():
    """Producers and consumers in other processes are SIGKILLed at random
    moments (mid-put and mid-get included).  After a producer's death the
    consumer receives every message it committed, in order, untorn, then
    ProducerDied, and a new producer takes the role over.  After a
    consumer's death the producer gets ConsumerDied once the ring is full,
    and the next consumer resumes right after the dead one's last get (one
    message may have been taken and not yet recorded by the dead one)."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    runs = 200 if LONG else 15
    rnd = random.Random(os.getpid())
    rng = os.urandom(256)
    q = Kfifo(4096, "records", shared=True)
    progress = ctx.Value("q", 0, lock=False)
    first, last = ctx.Value("q", -1, lock=False), ctx.Value("q", -1,
                                                            lock=False)
    bad = ctx.Value("i", 0, lock=False)
    # Roles are per object: this process consumes through cons, then
    # produces through prod; the children use their copies of q.
    cons, prod = Kfifo.attach(q.name), Kfifo.attach(q.name)
    want = 0            # producer kills: the next seq this process expects
    try:
        for _ in range(runs):                     # producers killed
            p = ctx.Process(target=_produce_from, args=(q, want, progress))
            p.start()
            # Until it has taken the dead one's role, a get would say
            # ProducerDied (rightly: the registered producer is dead).
            _await(lambda p=p: q.producer_pid == p.pid)
            end = time.monotonic() + rnd.uniform(0.002, 0.05)
            while time.monotonic() < end or want == progress.value == 0:
                _check(cons.get_message(timeout=30), want)
                want += 1
            os.kill(p.pid, signal.SIGKILL)
            with pytest.raises(ProducerDied):
                while True:
                    _check(cons.get_message(timeout=30), want)
                    want += 1
            p.join(10)
            assert want >= progress.value        # every committed one came
        cons.close()
        seq, prev = want, want - 1                # consumers killed
        prod.put_message(_message(seq, rng))      # take the producer role
        seq += 1
        for _ in range(runs):
            first.value = last.value = -1
            c = ctx.Process(target=_consume_checked,
                            args=(q, first, last, bad))
            c.start()
            _await(lambda c=c: q.consumer_pid == c.pid)
            end = time.monotonic() + rnd.uniform(0.002, 0.05)
            while time.monotonic() < end or last.value < 0:
                try:
                    prod.put_message(_message(seq, rng), timeout=0.01)
                    seq += 1
                except queue.Full:
                    pass
            os.kill(c.pid, signal.SIGKILL)
            c.join(10)
            with pytest.raises(ConsumerDied):     # the ring fills
                for _ in range(100_000):
                    prod.put_message(_message(seq, rng), timeout=10)
                    seq += 1
            assert bad.value == 0
            assert first.value - 1 in (prev, prev + 1), (first.value, prev)
            prev = last.value
        # This process takes the consumer role over and drains the rest.
        nxt = struct.unpack_from("<Q", q.get_message(timeout=5))[0]
        assert nxt - 1 in (prev, prev + 1)
        for want in range(nxt + 1, seq):
            _check(q.get_message(timeout=5), want)
        assert q.empty()
    finally:
        for k in (cons, prod, q):
            k.close()


def test_qsize_counts_messages_across_the_index_wrap():
    q = KfifoQueue(32)
    for start in (WRAP - 40, WRAP - 7, WRAP - 1, 0):
        q._set_indexes(start % WRAP)
        # 8 + 0 + 3 bytes + 3 prefixes: 23 of 32, with room for the
        # padding a record that does not fit before the end needs (< 12)
        sizes = [8, 0, 3]
        for k, n in enumerate(sizes, 1):
            q.put_nowait(b"m" * n)
            assert q.qsize() == k
        for k, n in enumerate(sizes, 1):
            assert q.get_nowait() == b"m" * n
            assert q.qsize() == len(sizes) - k
    q.close()
