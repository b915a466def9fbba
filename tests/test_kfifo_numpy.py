"""KfifoQueue's NumPy methods (issue #19): put_array/get_array and the
zero-copy reserve_array/receive_array; numpy is imported only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lockfree import KfifoQueue

np = pytest.importorskip("numpy")

WRAP = 1 << 32


@pytest.mark.parametrize("a", [
    np.arange(12.0).reshape(3, 4),
    np.arange(7, dtype=">i2"),                     # byte order travels
    np.array(3.5),                                 # 0-d
    np.zeros((0, 3), np.uint8),                    # empty
    np.array([True, False]),
    np.array([1 + 2j, 3j], np.complex128),
    np.array(["ab", "cde"]),                       # <U3
    np.array(["2026-12-02"], "datetime64[ns]"),
    np.arange(24, dtype=np.int64).reshape(2, 3, 4)[:, ::2, 1:],  # strided
    np.arange(10.0)[::-1],                         # negative stride
])
def test_put_get_array_round_trip(a):
    q = KfifoQueue(4096)
    for start in (0, WRAP - 100, WRAP - 3):       # padding before some
        q._set_indexes(start % WRAP)
        q.put_array(a)
        b = q.get_array()
        assert b.dtype == a.dtype and b.shape == a.shape
        assert np.array_equal(b, a) and b.flags.c_contiguous
        assert b.flags.writeable                   # a copy: the caller's
    q.close()


def test_zero_copy_arrays_are_aligned_views_of_the_ring():
    q = KfifoQueue(1 << 16)
    for start in range(0, 24):                     # every alignment of in
        q._set_indexes(start)
        with q.reserve_array((5, 3), np.float64) as a:
            assert a.shape == (5, 3) and a.flags.c_contiguous
            assert a.ctypes.data % 8 == 0
            a[...] = np.arange(15.0).reshape(5, 3) + start
        with q.receive_array() as r:
            assert not r.flags.writeable
            assert r.ctypes.data % 8 == 0
            assert np.array_equal(r, np.arange(15.0).reshape(5, 3) + start)
            with pytest.raises(ValueError):
                r[0, 0] = 1.0
        assert q.empty()
    q.close()


def test_reserve_array_exception_discards():
    q = KfifoQueue(1024)
    with pytest.raises(ZeroDivisionError), q.reserve_array(4, "i4") as a:
        a[:2] = 1
        1 / 0  # noqa: B018
    assert q.qsize() == 0
    q.put_array(np.ones(2, "u1"))
    assert q.get_array().tolist() == [1, 1]
    q.close()


def test_refused_dtypes_sizes_and_messages():
    q = KfifoQueue(256)
    with pytest.raises(TypeError, match="Python objects"):
        q.put_array(np.array([object()]))
    with pytest.raises(ValueError, match="structured"):
        q.put_array(np.zeros(2, [("x", "i4"), ("y", "f8")]))
    with pytest.raises(ValueError, match="max_message"):
        q.put_array(np.zeros(300, np.uint8))
    with pytest.raises(ValueError):
        q.reserve_array((-1,), "f8")
    with pytest.raises(TypeError):
        q.reserve_array("3", "f8")  # type: ignore[arg-type]
    assert q.qsize() == 0
    q.put_message(b"not an array")
    with pytest.raises(ValueError, match="not an array message"):
        q.get_array()
    with pytest.raises(ValueError, match="not an array"), q.receive_array():
        pass
    assert q.get_message() == b"not an array"     # the message stayed
    # A header that lies about the shape: refused, never read past the end.
    q.put_array(np.arange(4, dtype="u1"))
    with q.receive() as v:
        raw = bytearray(v)
    raw[8:16] = (1 << 40).to_bytes(8, "little")   # shape (2**40,)
    q.put_message(bytes(raw))
    with pytest.raises(ValueError, match="too short"):
        q.get_array()
    q.close()


def test_numpy_is_imported_only_when_used():
    code = ("import sys, lockfree; q = lockfree.KfifoQueue(64); "
            "q.put_message(b'x'); q.get_message(); "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "False"
