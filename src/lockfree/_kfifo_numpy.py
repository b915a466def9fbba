"""NumPy arrays through a KfifoQueue (the optional ``lockfree[numpy]``).

``KfifoArrays`` is a base class of :class:`~lockfree.KfifoQueue`; numpy is
imported on the first call of one of its methods, not with lockfree.

An array message is a small header, then the array's bytes in C order::

    "\\x93LFA"  magic (4 bytes)
    ndim       uint8
    dlen       uint8      length of the dtype string
    offset     uint16     where the data starts in the message
    shape      ndim x int64
    dtype      dtype.str ("<f8", "|u1", "<M8[ns]"), dlen bytes
    padding    so that the data is aligned to dtype.alignment in memory
    data       prod(shape) * itemsize bytes, then at most alignment-1 zeros

All little-endian.  Object dtypes are refused with ``TypeError`` (their
items are pointers), structured dtypes (which ``dtype.str`` does not
describe) with ``ValueError``.  Non-contiguous arrays are copied: the
message holds the array in C order (``put_array`` gathers it in the one copy
into the ring), never split.
"""

from __future__ import annotations

import struct
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._kfifo_args import deadline, index
from ._kfifo_zc import KfifoZeroCopy, Receipt, Reservation

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import DTypeLike, NDArray

__all__ = ["KfifoArrays"]

MAGIC = b"\x93LFA"
_HEAD = struct.Struct("<4sBBH")
_DIM = struct.Struct("<q")


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a test dependency
        raise ImportError("KfifoQueue's array methods need NumPy: "
                          "pip install 'lockfree[numpy]'") from None
    return numpy


def _dtype(dtype: object) -> np.dtype[Any]:
    """The dtype, if an array message can carry it."""
    nm = _numpy()
    dt: np.dtype[Any] = nm.dtype(dtype)
    if dt.hasobject:
        raise TypeError(f"dtype {dt} holds Python objects (pointers): it "
                        "cannot go through shared memory")
    if nm.dtype(dt.str) != dt:
        raise ValueError(f"dtype {dt} is not described by its dtype.str "
                         f"{dt.str!r} (structured dtypes are not supported)")
    return dt


def _shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, int) or hasattr(shape, "__index__"):
        dims = (index(shape, "shape"),)
    else:
        try:
            dims = tuple(index(d, "shape") for d in shape)  # type: ignore
        except TypeError:
            raise TypeError("shape must be an int or a tuple of ints, not "
                            f"{type(shape).__name__}") from None
    if any(d < 0 for d in dims) or len(dims) > 255:
        raise ValueError(f"bad shape {dims}")
    return dims


class _ArrayReservation:
    """``q.reserve_array(shape, dtype)``: ``__enter__`` returns a writable
    C-contiguous array inside the ring; ``__exit__`` commits or discards."""

    __slots__ = ("_rsv", "_shape", "_dtype", "_head")

    def __init__(self, rsv: Reservation, shape: tuple[int, ...],
                 dt: np.dtype[Any], head: bytes) -> None:
        self._rsv, self._shape, self._dtype, self._head = rsv, shape, dt, head

    def __enter__(self) -> NDArray[Any]:
        nm = _numpy()
        buf = self._rsv.__enter__()
        try:
            dt, head = self._dtype, self._head
            al = max(dt.alignment, 1)
            off = len(head) + (-(self._rsv._address() + len(head)) % al)
            nbytes = len(buf) - (len(head) + al - 1)
            buf[:off] = head + bytes(off - len(head))
            struct.pack_into("<H", buf, 6, off)
            buf[off + nbytes:] = bytes(len(buf) - off - nbytes)
            arr = nm.frombuffer(buf, dt, nbytes // dt.itemsize if
                                dt.itemsize else 0, off)
            return arr.reshape(self._shape)  # type: ignore[no-any-return]
        except BaseException as exc:
            self._rsv.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        self._rsv.__exit__(et, ev, tb)


class _ArrayReceipt:
    """``q.receive_array()``: ``__enter__`` returns the next message as a
    read-only array inside the ring; ``__exit__`` consumes it."""

    __slots__ = ("_rcpt",)

    def __init__(self, rcpt: Receipt) -> None:
        self._rcpt = rcpt

    def __enter__(self) -> NDArray[Any]:
        view = self._rcpt.__enter__()
        try:
            arr = parse(view)
        except BaseException:
            self._rcpt._end(False)  # not an array message: it stays
            raise
        return arr

    def __exit__(self, et: type[BaseException] | None,
                 ev: BaseException | None, tb: TracebackType | None) -> None:
        self._rcpt._end(True)


def header(shape: tuple[int, ...], dt: np.dtype[Any]) -> bytes:
    """The header of an array message (offset field 0: set at reserve)."""
    ds: bytes = str(dt.str).encode("ascii")
    head: bytes = _HEAD.pack(MAGIC, len(shape), len(ds), 0)
    dims: bytes = b"".join(_DIM.pack(d) for d in shape)
    return head + dims + ds


def parse(view: memoryview) -> NDArray[Any]:
    """The array in an array message (a view of its memory); ValueError if
    the message is not one (every field is checked against its length)."""
    nm = _numpy()
    n = len(view)
    if n < _HEAD.size:
        raise ValueError(f"not an array message ({n} bytes)")
    magic, ndim, dlen, off = _HEAD.unpack_from(view)
    end = _HEAD.size + 8 * ndim + dlen
    if magic != MAGIC or end > n or off < end or off > n:
        raise ValueError("not an array message (bad header)")
    shape = tuple(_DIM.unpack_from(view, _HEAD.size + 8 * i)[0]
                  for i in range(ndim))
    try:
        dt = _dtype(bytes(view[end - dlen:end]).decode("ascii"))
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an array message (dtype: {exc})") from None
    count = 1
    for d in shape:
        if d < 0:
            raise ValueError(f"not an array message (shape {shape})")
        count *= d
    if count * dt.itemsize > n - off:
        raise ValueError(f"array message too short for shape {shape} "
                         f"of {dt}")
    arr = nm.frombuffer(view, dt, count, off)
    return arr.reshape(shape)  # type: ignore[no-any-return]


class KfifoArrays(KfifoZeroCopy):
    """The NumPy methods of :class:`~lockfree.KfifoQueue`."""

    def reserve_array(self, shape: int | tuple[int, ...], dtype: DTypeLike,
                      block: bool = True,
                      timeout: float | None = None) -> _ArrayReservation:
        """Zero-copy array put: ``with q.reserve_array((480, 640), "u1") as
        a:`` gives a writable C-contiguous array inside the ring (data
        aligned to the dtype); a normal exit commits it, an exception
        discards it.  Waits as ``reserve()``.  Do not keep ``a`` (or views
        of it) past the block: after the commit the consumer owns that
        memory."""
        dims, dt = _shape(shape), _dtype(dtype)
        head = header(dims, dt)
        count = 1
        for d in dims:
            count *= d
        n = len(head) + max(dt.alignment, 1) - 1 + count * dt.itemsize
        most = self.capacity - 4
        if n > most:
            raise ValueError(f"an array of {count * dt.itemsize} bytes "
                             f"needs a {n}-byte message; max_message is "
                             f"{most}")
        rsv = Reservation(self, n, bool(block), deadline(block, timeout),
                          checked=False, fixed=True)
        return _ArrayReservation(rsv, dims, dt, head)

    def receive_array(self, block: bool = True,
                      timeout: float | None = None) -> _ArrayReceipt:
        """Zero-copy array get: ``with q.receive_array() as a:`` gives the
        next message (an array message) as a read-only array inside the
        ring; leaving the block consumes it.  Not an array message:
        ``ValueError``, and the message stays.  Unlike ``receive()``'s
        view, an array cannot be invalidated: do not keep ``a`` (or views
        of it) past the block; ``a.copy()`` is yours."""
        return _ArrayReceipt(Receipt(self, bool(block),
                                     deadline(block, timeout),
                                     checked=False))

    def put_array(self, a: Any, block: bool = True,
                  timeout: float | None = None) -> None:
        """Put an array (any array-like; dtype and shape travel with it) with
        one copy, straight into the ring; a non-contiguous array is
        gathered in C order.  Full: ``queue.Full`` as ``put_message``."""
        nm = _numpy()
        arr = nm.asarray(a)
        with self.reserve_array(arr.shape, arr.dtype, block, timeout) as dst:
            nm.copyto(dst, arr, casting="no")

    def get_array(self, block: bool = True,
                  timeout: float | None = None) -> NDArray[Any]:
        """Remove the next message (an array message) and return it as a
        new array (one copy out of the ring).  Not an array message:
        ``ValueError``, and the message stays."""
        with self.receive_array(block, timeout) as a:
            out: NDArray[Any] = a.copy()
        return out



