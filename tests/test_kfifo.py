"""Kfifo: the two classes (KfifoBytes, KfifoQueue) and their semantics:
capacity rounding, put/get/peek/skip (partial in bytes mode, all or
nothing in records mode), message views, batches, buffer-protocol
inputs, each class's methods on the class with real signatures, closed
objects, the queue-module interface, attach, placement in a caller
buffer, pickling.  Elsewhere: index wrap (test_kfifo_wrap), bad input
(test_kfifo_input), roles (test_kfifo_roles), blocking
(test_kfifo_blocking), processes and SIGKILL (test_kfifo_processes)."""

import array
import inspect
import pickle
import queue

import pytest

from lockfree import Kfifo, KfifoBytes, KfifoQueue

from .kfifo_helpers import WRAP

# -- basics ------------------------------------------------------------------

def test_capacity_is_rounded_up_to_a_power_of_two():
    assert Kfifo(2).capacity == 2
    assert Kfifo(10).capacity == 16
    assert Kfifo(4096).capacity == 4096
    assert Kfifo(3, "records").capacity == 8      # records: at least 8
    assert Kfifo(100, "records").max_message == 124


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


# -- placement, attach, pickling --------------------------------------------

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


def test_pickle_round_trip_keeps_mode():
    q = Kfifo(64, "records", shared=True)
    q2 = pickle.loads(pickle.dumps(q))
    assert (q2.mode, q2.capacity, q2.name) == ("records", 64, q.name)
    q2.close()
    q.close()
    with pytest.raises(TypeError):
        pickle.dumps(Kfifo(16))
