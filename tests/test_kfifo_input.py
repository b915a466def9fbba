"""Kfifo bad input (issue #16, point 7): wrong types are TypeError and
bad values ValueError, never a crash or a hang (NaN counts and
timeouts), buffers count as their bytes or are refused; a segment that
is not a valid kfifo is refused at attach, and a corrupt one is
reported, not read."""

import array
import math
import struct
import threading

import pytest

from lockfree import AtomicInt, Kfifo, KfifoQueue
from lockfree.errors import CorruptStateError
from lockfree.region import HEADER

# -- constructor arguments, wrong types ---------------------------------------

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


# -- NaN, float counts, buffers (issue #16, point 7) -------------------------

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
    mv = memoryview
    for items in ([grid, np.zeros((4, 0), dtype="u1"), b"xy"],
                  [array.array("I", [1, 2]), grid, b"", bytearray(b"z")],
                  # all memoryviews (lengths taken in one map()): nbytes
                  [mv(grid), mv(np.zeros((4, 0), dtype="u1")), mv(b"xy"),
                   mv(array.array("I", [7]))],
                  [bytearray(b"ab"), b"cde", bytearray()]):
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


# -- a segment that is not a valid kfifo --------------------------------------

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
    # The same for a queue, whose close() (run on the way out) looks for
    # open zero-copy blocks: it raised AttributeError (no handle yet), found
    # by the long scribble suite.
    buf = bytearray(Kfifo.region_size(64, "records"))
    KfifoQueue(64, buffer=buf).close()
    struct.pack_into("<I", buf, HEADER + 128 + 4, 7)    # mask
    for cls in (Kfifo, KfifoQueue):
        with pytest.raises(ValueError, match="corrupt"):
            cls.attach(buffer=buf)
