"""KfifoQueue zero-copy views (issue #19): a reserve()/receive() block's
view is released at exit, and a view made from it (slice, memoryview(view),
np.frombuffer(view)) must not outlive the block: BufferError, the message
discarded (reserve) or not consumed (receive).  One leak fails only its own
block: later blocks work while the leaked view is still alive
(csrc/kfifo.h "Zero-copy records"; src/lockfree/_kfifo_zc.py)."""

from __future__ import annotations

import gc
import sys

import pytest

from lockfree import KfifoQueue


def test_views_are_released_at_exit():
    q = KfifoQueue(64)
    with q.reserve(3) as buf:
        buf[:] = b"abc"
    with pytest.raises(ValueError):
        buf[0] = 1
    with pytest.raises(ValueError):
        bytes(buf)
    with q.receive() as view:
        pass
    with pytest.raises(ValueError):
        view[0]
    with pytest.raises(ValueError):
        bytes(view)
    q.close()


def test_a_view_made_from_the_message_must_not_outlive_the_block():
    q = KfifoQueue(64)
    q.put_message(b"keep me")
    with pytest.raises(BufferError, match="NOT consumed"), q.receive() as view:
        part = view[:4]                        # a slice shares memory
    assert bytes(part) == b"keep"
    del part
    assert q.get_message() == b"keep me"           # it came again
    with pytest.raises(BufferError, match="discarded"), q.reserve(4) as buf:
        alias = memoryview(buf)
        alias[:] = b"late"
    del alias
    assert q.qsize() == 0                          # not delivered
    np = pytest.importorskip("numpy")
    q.put_message(b"12345678")
    with pytest.raises(BufferError), q.receive() as view:
        arr = np.frombuffer(view, np.uint8)
    del arr
    with q.receive() as view:                      # copies are fine
        kept = bytes(view[2:4])
        arr = np.frombuffer(view, np.uint8).copy()
    assert kept == b"34" and arr.sum() == sum(b"12345678")
    q.close()


def test_a_leaked_view_fails_only_its_own_block():
    """The views are slices of a buffer object per role whose reference
    count tells whether a view outlived its block: after a leak that object
    is replaced, so the next blocks are checked against a fresh count while
    the leaked view is still alive."""
    q = KfifoQueue(256)
    q.put_many([b"first", b"second"])
    with pytest.raises(BufferError), q.receive() as view:
        leaked_r = view[:2]
    with pytest.raises(BufferError), q.reserve(3) as buf:
        leaked_w = buf[:1]
    for _ in range(3):                  # leaks alive; blocks are fine
        with q.reserve(4) as buf:
            buf[:] = b"next"
    got = []
    for _ in range(5):
        with q.receive() as view:
            got.append(bytes(view))
    assert got == [b"first", b"second", b"next", b"next", b"next"]
    assert bytes(leaked_r) == b"fi"     # the user's bug: memory of the ring
    del leaked_r, leaked_w
    q.close()


def test_array_kept_after_reserve_array_does_not_fail_later_blocks():
    np = pytest.importorskip("numpy")
    q = KfifoQueue(1 << 12)
    with q.reserve_array(4, np.int32) as a:
        a[:] = [1, 2, 3, 4]
    with q.receive_array() as r:           # r outlives its block (numpy)
        total = int(r.sum())
    with q.reserve(2) as buf:              # a and r still alive: no error
        buf[:] = b"ok"
    with q.receive() as view:
        assert bytes(view) == b"ok"
    assert total == 10
    del a, r
    q.close()


def test_close_inside_a_block_is_refused():
    q = KfifoQueue(256)
    with q.reserve(1) as buf:
        with pytest.raises(ValueError, match="inside a reserve"):
            q.close()
        buf[:] = b"x"
    with q.receive() as view:
        with pytest.raises(ValueError, match="inside a reserve"):
            q.close()
        assert bytes(view) == b"x"
    q.close()
    assert q.closed


def _mapping_alive(q: KfifoQueue):
    """A callable: is q's region still mapped (its finalizer not run)?"""
    fin = q._region._finalizer
    return lambda: fin.alive


def test_a_leaked_view_keeps_the_ring_mapped_after_close():
    """A view kept past its block (the BufferError case) is the user's bug,
    but it must read mapped memory, not crash: it keeps the region alive
    after close() (and after the queue's collection) until it dies."""
    q = KfifoQueue(1 << 12, shared=True)
    mapped = _mapping_alive(q)
    q.put_message(b"kept bytes")
    with pytest.raises(BufferError), q.receive() as view:
        leaked = view[:4]
    q.close()
    del q
    gc.collect()
    if not mapped():  # (reading leaked now would be a SIGSEGV)
        pytest.fail("the ring was unmapped under a live leaked view")
    assert bytes(leaked) == b"kept"
    del leaked
    gc.collect()
    assert not mapped()                   # unmapped once the view is gone


def test_an_array_kept_past_receive_array_keeps_the_ring_mapped():
    np = pytest.importorskip("numpy")

    def first_array(q: KfifoQueue):
        with q.receive_array() as a:
            return a                      # kept past the block (documented
                                          # as wrong, must not crash)
    q = KfifoQueue(1 << 12, shared=True)
    mapped = _mapping_alive(q)
    q.put_array(np.arange(10, dtype=np.int64))
    a = first_array(q)
    del q
    gc.collect()
    if not mapped():
        pytest.fail("the ring was unmapped under a live array")
    assert int(a.sum()) == 45
    del a
    gc.collect()
    assert not mapped()


def test_close_still_unmaps_at_once_without_a_leak():
    q = KfifoQueue(1 << 12, shared=True)
    mapped = _mapping_alive(q)
    with q.reserve(2) as buf:
        buf[:] = b"ok"
    with q.receive() as view:
        assert bytes(view) == b"ok"
    q.close()
    assert not mapped()                   # q itself is still referenced


def test_a_tracer_reading_frame_locals_does_not_fake_a_leak():
    """Debuggers and snoopers read frame.f_locals on their events (CPython
    <= 3.12 copies the locals into a dict that lives with the frame): a ring
    buffer held in a variable at the exit's count looked like a leak, so
    every reserve() was discarded and every receive() came again."""
    def tracer(frame, event, arg):
        frame.f_locals  # noqa: B018 - what pdb, IDE debuggers do
        return tracer

    q = KfifoQueue(256)
    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        with q.reserve(3) as buf:
            buf[:] = b"abc"
        with q.receive() as view:
            got = bytes(view)
    finally:
        sys.settrace(old)
    assert got == b"abc" and q.qsize() == 0
    q.close()


def test_a_failing_handler_holding_a_slice_does_not_loop_for_ever():
    """The function that raised took a slice of the view: its frame, in the
    exception's traceback, keeps the slice alive at exit.  The message is
    consumed all the same (receive()'s rule for a block that raises) and
    the handler's own exception propagates; before, BufferError and the
    same bad message again, for ever."""
    def handle(payload: memoryview) -> None:
        raise ValueError(f"bad message {bytes(payload[:1])!r}")

    q = KfifoQueue(256)
    q.put_many([b"bad", b"good"])
    with pytest.raises(ValueError, match="bad message"), \
            q.receive() as view:
        handle(view[1:])
    with q.receive() as view:
        assert bytes(view) == b"good"
    q.close()
