"""A reserve()/receive() block holds its side exclusively, against the
opening thread too: a nested put or get would write over the reservation
or consume the message under the view (csrc/kfifo_zc.c, zc_open)."""
from __future__ import annotations

import os
import queue
import signal
import threading
import time
from types import FrameType

import pytest

from lockfree import ConcurrentUseError, KfifoQueue, _kfifo_zc
from lockfree._ffi import lib


def test_nested_producer_calls_inside_reserve_are_refused():
    q = KfifoQueue(256)
    with q.reserve(5) as buf:
        buf[:] = b"hello"
        for call in (lambda: q.put_message(b"x", block=False),
                     lambda: q.put_many([b"a", b"b"], block=False),
                     lambda: q.reserve(3).__enter__()):
            with pytest.raises(ConcurrentUseError):
                call()
    assert q.get_many() == [b"hello"]  # nothing else got in
    q.put_message(b"after")             # the side is free again
    assert q.get_message() == b"after"
    q.close()


def test_nested_consumer_calls_inside_receive_are_refused():
    q = KfifoQueue(256)
    q.put_many([b"one", b"two"])
    with q.receive() as view:
        for call in (lambda: q.get_message(block=False),
                     lambda: q.get_many(block=False),
                     q.skip_message, q.reset):
            with pytest.raises(ConcurrentUseError):
                call()
        assert bytes(view) == b"one"
    assert q.get_message() == b"two"
    q.close()


def test_wait_for_room_is_outside_the_hold():
    """reserve() waiting for room does not hold the producer side, and
    returns the side free after a timeout."""
    q = KfifoQueue(64)
    with pytest.raises(queue.Full):
        while True:
            q.put_message(b"12345678", block=False)
    with pytest.raises(queue.Full), q.reserve(40, timeout=0.05):
        pass
    q.get_many()
    q.put_message(b"ok")
    assert q.get_message() == b"ok"
    q.close()


# Blocks and their owners across threads and fork (csrc/kfifo_zc.c zc_mine:
# a block is this process's, not only its opening thread's; csrc/kfifo.c
# lf_kfifo_register: a fork child's copy forgets the parent's reservation).


def test_a_block_ended_by_another_thread_does_not_wedge_the_side():
    """A generator suspended inside a receive() block and finalised by
    another thread runs the block's exit there: it must end the block, not
    leave the side held for ever (every later get ConcurrentUseError, even
    from the opening thread, and close() refused)."""
    q = KfifoQueue(256)
    q.put_many([b"one", b"two"])

    def messages():
        with q.receive() as view:
            yield bytes(view)

    g = messages()
    assert next(g) == b"one"
    errors: list[BaseException] = []

    def finish() -> None:
        try:
            g.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=finish)
    t.start()
    t.join()
    assert errors == []
    assert q.get_message(block=False) == b"two"
    q.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_child_can_close_an_object_whose_parent_was_in_a_block():
    """A child forked inside a block has a copy of the handle whose in-use
    word names a parent thread: not a block of the child's, so close() in
    the child must work (it was refused until some call took the word
    over)."""
    q = KfifoQueue(256, shared=True)
    q.put_message(b"m")
    r, w = os.pipe()
    with q.receive() as view:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                q.close()
                os.write(w, b"ok")
            except BaseException as exc:  # noqa: BLE001
                os.write(w, type(exc).__name__.encode())
            os._exit(0)
        assert bytes(view) == b"m"
    os.waitpid(pid, 0)
    os.close(w)
    said = os.read(r, 100)
    os.close(r)
    q.close()
    assert said == b"ok"


def test_exit_without_enter_or_twice_is_a_runtime_error():
    """Not an AssertionError (python -O: AttributeError), and the side is
    untouched."""
    q = KfifoQueue(256)
    q.put_message(b"m")
    for ctx in (q.reserve(1), q.receive()):
        with pytest.raises(RuntimeError, match="ends once"):
            ctx.__exit__(None, None, None)
    rsv = q.reserve(1)
    with rsv as buf:
        buf[:] = b"x"
    with pytest.raises(RuntimeError, match="ends once"):
        rsv.__exit__(None, None, None)
    assert q.get_many() == [b"m", b"x"]
    q.close()


def _wait_gone(pid: int) -> None:
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_child_can_produce_after_its_parent_died_in_a_block():
    """P opens a reserve() block, forks C and dies inside it.  C's copy of
    the handle has P's open reservation (rsv_open): C can never end it (not
    its block), so it must not refuse C's own puts once C took the dead
    producer's role over (it did: ConcurrentUseError for ever)."""
    q = KfifoQueue(256, shared=True)
    r, w = os.pipe()
    p = os.fork()
    if p == 0:  # pragma: no cover - P, then C
        parent = os.getpid()
        try:
            with q.reserve(3) as buf:
                buf[:] = b"abc"
                if os.fork() != 0:
                    os._exit(0)                    # P dies in its block
                _wait_gone(parent)                 # (the test reaps P)
        except BaseException:  # noqa: BLE001 - C: not its block
            pass
        try:
            q.put_message(b"C", block=False)
            said = b"ok"
        except BaseException as exc:  # noqa: BLE001
            said = type(exc).__name__.encode()
        os.write(w, said)
        os._exit(0)
    os.waitpid(p, 0)
    os.close(w)
    said = os.read(r, 100)
    os.close(r)
    try:
        assert said == b"ok"
        assert q.get_message(timeout=1) == b"C"
    finally:
        q.close()


class _Interrupt(BaseException):
    """What a signal handler raises (as KeyboardInterrupt does)."""


def _landed(exc: BaseException) -> tuple[str, bool]:
    """Where a signal handler's exception was raised: the function, and
    whether on its entry (the check of its first instruction)."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    at = frames[-2] if len(frames) > 1 else frames[-1]  # (-1: the handler)
    code = at.tb_frame.f_code
    return code.co_name, at.tb_lineno == code.co_firstlineno


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_an_interrupt_inside_the_block_machinery_does_not_leave_it_held():
    """A signal handler's exception (Ctrl-C's KeyboardInterrupt, an alarm
    timeout) is raised at the interpreter loop's next check, most often
    right after a C call returns (cffi drops the GIL around it): e.g. just
    after the call that opened the block, before ``with`` has an
    ``__exit__`` to run, or in ``__exit__`` before the call that ends it.
    The side must not stay held (every later call ConcurrentUseError,
    close() refused).  Before: held at the first interrupt, every run.
    Left: an interrupt on entry to ``__exit__``/``_end`` (CPython checks
    there, before any of their code: bpo-29988); such a run goes on with a
    new queue."""
    q = KfifoQueue(1 << 12)
    armed = [False]
    # Only there: elsewhere (a finalizer, pytest's hooks) the exception
    # would be unraisable, which tells nothing about the blocks.
    where = {_kfifo_zc.__file__, __file__}

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed[0] and frame is not None and \
                frame.f_code.co_filename in where:
            raise _Interrupt

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    interrupts = 0
    wedged = []
    end = time.monotonic() + 1.0
    try:
        while interrupts < 200 and time.monotonic() < end and not wedged:
            try:
                armed[0] = True
                while True:
                    with q.reserve(8) as buf:
                        buf[:] = b"12345678"
                    with q.receive() as view:
                        view[0]  # noqa: B018
            except _Interrupt as exc:
                armed[0] = False  # (a store: no check of the loop here)
                interrupts += 1
                if lib.lf_kfifo_zc_held(q._h):
                    name, on_entry = _landed(exc)
                    if not (on_entry and name in ("__exit__", "_end")):
                        wedged.append(name)
                    q = KfifoQueue(1 << 12)
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert wedged == []
    assert interrupts > 10
    while q.qsize():        # whatever was committed comes out whole
        assert q.get_message() == b"12345678"
    q.close()
