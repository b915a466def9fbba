"""RCU across fork (issue #16 point 3): a process that inherits an RcuBuffer
or RcuDomain through fork gets its own reader slot; a writer never reclaims
a slot of a live process."""

import os
import select
import signal
import time

import pytest

from lockfree import RcuBuffer


def _fork(fn):
    """Run fn() in an os.fork() child; its exit status is fn's result."""
    pid = os.fork()
    if pid == 0:
        try:
            code = fn()
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 99
        os._exit(code or 0)
    return pid


def _exit_code(pid, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("forked child hung")


def test_fork_child_reads_parent_publishes():
    """Issue #16 point 3: after the parent read once, a forked child's read
    section made the parent's publish() raise RcuDeadlockError."""
    with RcuBuffer(64, b"v1", slots=2, shared=True) as buf:
        with buf.read() as v:  # the parent's thread registers
            assert bytes(v) == b"v1"
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()

        def child():
            with buf.read() as v:
                os.write(ready_w, b"x")
                _wait_go(go_r)
                return 0 if bytes(v) == b"v1" else 1

        pid = _fork(child)
        try:
            assert os.read(ready_r, 1) == b"x"
            # Not RcuDeadlockError: the child reads in its own slot, and
            # the parent waits for it.
            with pytest.raises(TimeoutError):
                buf.publish(b"v2", timeout=0.3)
            assert buf.stats["readers"] == 2
        finally:
            os.write(go_w, b"g")
        assert _exit_code(pid) == 0
        buf.publish(b"v2", timeout=10)
        assert buf.stats["dead_readers"] == 0
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)


def _wait_go(fd, timeout=30):
    """A forked child waits for the test's go (never forever)."""
    if select.select([fd], [], [], timeout)[0]:
        os.read(fd, 1)


def test_fork_parent_dies_child_keeps_its_slot():
    """Issue #16 point 3: if the parent died while its forked child read,
    the writer reclaimed the slot they shared and reused the version."""
    with RcuBuffer(64, b"v1" * 8, slots=2, shared=True) as buf:
        pid_r, pid_w = os.pipe()
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()

        def reader_child():  # forked by the parent below
            with buf.read() as v:
                os.write(ready_w, b"x")
                _wait_go(go_r)
                ok = bytes(v) == b"v1" * 8
            os.write(done_w, b"y" if ok else b"n")
            return 0

        def parent():
            with buf.read():
                pass
            os.write(pid_w, str(_fork(reader_child)).encode().rjust(12))
            return 0  # dies now, while its child reads

        assert _exit_code(_fork(parent)) == 0
        int(os.read(pid_r, 12))
        try:
            assert os.read(ready_r, 1) == b"x"
            for i in range(3):  # each would reuse the child's version
                with pytest.raises(TimeoutError):
                    buf.publish(b"v%d" % (i + 2), timeout=0.2)
            assert buf.stats["dead_readers"] == 0
        finally:
            os.write(go_w, b"g")
        # Not our child (its parent died): its verdict comes by pipe.
        assert select.select([done_r], [], [], 30)[0]
        assert os.read(done_r, 1) == b"y"  # its view never changed
        buf.publish(b"v2", timeout=10)
        for fd in (pid_r, pid_w, ready_r, ready_w, go_r, go_w, done_r,
                   done_w):
            os.close(fd)


def test_slots_of_exited_processes_are_reused():
    """Children that os._exit() without unregistering leave their slots
    owned by a dead pid: a full registry takes those over."""
    with RcuBuffer(8, b"a", capacity=2, shared=True) as buf:
        with buf.read():
            pass

        def child():
            with buf.read() as v:
                return 0 if bytes(v) == b"a" else 1

        for _ in range(4):
            assert _exit_code(_fork(child)) == 0
        assert buf.stats["readers"] == 2
        assert buf.stats["dead_readers"] >= 2


def _hold_section(buf, inside, leave, ok):
    with buf.read() as v:
        inside.set()
        leave.wait(30)
        ok.value = bytes(v) == b"v1"


def test_fork_start_method_child_reads_parent_publishes():
    """The same through multiprocessing's "fork" start method: the child
    inherits the parent's registered RcuBuffer object."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    with RcuBuffer(64, b"v1", slots=2, shared=True) as buf:
        with buf.read():
            pass
        inside, leave, ok = ctx.Event(), ctx.Event(), ctx.Value("b", 0)
        p = ctx.Process(target=_hold_section, args=(buf, inside, leave, ok))
        p.start()
        try:
            assert inside.wait(30)
            with pytest.raises(TimeoutError):
                buf.publish(b"v2", timeout=0.3)
            with pytest.raises(TimeoutError):
                buf.synchronize(timeout=0.1)
        finally:
            leave.set()
            p.join(30)
        assert p.exitcode == 0 and ok.value == 1
        buf.publish(b"v2", timeout=10)
