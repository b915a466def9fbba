"""RCU: grace periods, retire callbacks, errors, RcuBuffer across processes."""

import hashlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from lockfree import (RcuBuffer, RcuCell, RcuDeadlockError, RcuDomain,
                      RcuError, RcuNotRegisteredError, RcuRegistryFullError)

from .conftest import LONG


@pytest.fixture
def domain():
    d = RcuDomain(16)
    yield d
    d.close()


def _in_thread(fn):
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


class _HeldReader:
    """A thread inside ``cell.read()`` until ``release()``."""

    def __init__(self, cell):
        self.inside = threading.Event()
        self.leave = threading.Event()
        self.seen = None
        self.thread = _in_thread(lambda: self._run(cell))
        assert self.inside.wait(10)

    def _run(self, cell):
        with cell.read() as value:
            self.seen = value
            self.inside.set()
            self.leave.wait(30)

    def release(self):
        self.leave.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


# -- semantics ---------------------------------------------------------------

def test_read_publish_get(domain):
    cell = RcuCell([1], domain=domain)
    with cell.read() as v:
        assert v == [1]
    assert cell.publish([2]) == [1]
    with cell.read() as v:
        assert v == [2] and cell.get() is v
    assert cell.domain is domain


def test_nested_read_sections(domain):
    a, b = RcuCell("a", domain=domain), RcuCell("b", domain=domain)
    with a.read() as x, b.read() as y, a.read() as z:
        assert (x, y, z) == ("a", "b", "a")
        assert domain._thread_reader().depth() == 3
    assert domain._thread_reader().depth() == 0
    domain.synchronize()  # balanced: not inside a section any more


def test_grace_period_waits_for_preexisting_reader(domain):
    """The deterministic test: a reader holds the old version; synchronize
    stays blocked while it is inside, returns once it leaves; the retire
    callback never runs while it is inside."""
    cell = RcuCell("old", domain=domain)
    reader = _HeldReader(cell)
    assert reader.seen == "old"
    old = cell.publish("new")
    retired = threading.Event()
    cell.retire(old, lambda obj: retired.set())

    synced = threading.Event()
    syncer = _in_thread(lambda: (cell.synchronize(), synced.set()))
    time.sleep(0.3)
    assert not synced.is_set(), "synchronize returned with a reader inside"
    assert not retired.is_set(), "retire callback ran with a reader inside"
    with cell.read() as v:  # new readers are not blocked and see "new"
        assert v == "new"
    t0 = time.monotonic()
    reader.release()
    assert synced.wait(5) and retired.wait(5)
    syncer.join(5)
    assert time.monotonic() - t0 < 5


def test_new_readers_do_not_delay_grace_period(domain):
    cell = RcuCell(0, domain=domain)
    stop = threading.Event()

    def churn():
        # overlapping sections: the domain is never free of readers, so a
        # synchronize that waited for readers that began after it never
        # returns
        while not stop.is_set():
            with cell.read():
                time.sleep(0.002)
    threads = [_in_thread(churn) for _ in range(4)]
    try:
        time.sleep(0.05)
        for _ in range(50):
            cell.synchronize(timeout=2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def test_retire_callbacks_never_see_readers(domain):
    """Python-level poisoning: a retired object is invalidated by its
    callback; readers check validity inside their section."""
    class Obj:
        def __init__(self, n):
            self.n, self.valid = n, True

    cell = RcuCell(Obj(0), domain=domain)
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            with cell.read() as o:
                if not o.valid:
                    bad.append(o.n)
                time.sleep(0)  # let the updater run inside the section
                if not o.valid:
                    bad.append(o.n)

    def invalidate(o):
        o.valid = False

    threads = [_in_thread(reader) for _ in range(3)]
    n = 3000 if LONG else 300
    for i in range(1, n):
        cell.update(lambda _: Obj(i), callback=invalidate)
    domain.barrier(timeout=30)
    stop.set()
    for t in threads:
        t.join(10)
    assert bad == []
    assert domain.stats["grace_periods"] > 0


def test_update_loses_nothing(domain):
    cell = RcuCell((), domain=domain)

    def grow(t, item):
        time.sleep(0)  # another updater runs between the read and the write
        return t + (item,)

    def work(k):
        for i in range(200):
            cell.update(lambda t: grow(t, (k, i)))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cell.get()) == 800


def test_poll_state(domain):
    cookie = domain.start_poll()
    assert not domain.poll_state(cookie)
    domain.synchronize()
    assert domain.poll_state(cookie)


def test_callback_exception_does_not_stop_reclaimer(domain, capsys):
    ran = []
    domain.call_rcu(lambda o: 1 / 0, None)
    domain.call_rcu(ran.append, 7)
    domain.barrier(timeout=10)
    assert ran == [7]
    assert "ZeroDivisionError" in capsys.readouterr().err


# -- errors ------------------------------------------------------------------

def test_synchronize_inside_read_section_raises(domain):
    cell = RcuCell(1, domain=domain)
    with cell.read():
        with pytest.raises(RcuDeadlockError):
            cell.synchronize()
        with pytest.raises(RcuDeadlockError):
            domain.barrier()
    cell.synchronize()


def test_synchronize_timeout(domain):
    cell = RcuCell(1, domain=domain)
    reader = _HeldReader(cell)
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            cell.synchronize(timeout=0.2)
        assert time.monotonic() - t0 < 5
    finally:
        reader.release()
    cell.synchronize(timeout=5)
    with pytest.raises(ValueError):
        cell.synchronize(timeout=-1)


def test_registry_full():
    d = RcuDomain(2)
    cell = RcuCell(1, domain=d)
    held = [_HeldReader(cell) for _ in range(2)]
    try:
        assert d.stats["readers"] == 2
        with pytest.raises(RcuRegistryFullError, match="2 reader slots"):
            with cell.read():
                pass
    finally:
        for h in held:
            h.release()
    del held, h
    with cell.read() as v:  # exited threads gave their slots back
        assert v == 1
    d.close()


def test_thread_exit_releases_slot():
    d = RcuDomain(1)
    cell = RcuCell(1, domain=d)
    for _ in range(5):  # one slot, five threads in turn
        t = _in_thread(lambda: cell.read().__enter__() and None or
                       cell.read().__exit__(None, None, None))
        t.join(10)
        assert d.stats["readers"] == 0
    d.close()


def test_unregistered_use():
    d = RcuDomain(4, auto_register=False)
    cell = RcuCell(1, domain=d)
    with pytest.raises(RcuNotRegisteredError):
        with cell.read():
            pass
    d.register_thread()
    with cell.read() as v:
        assert v == 1
        with pytest.raises(RcuError):
            d.unregister_thread()
    d.unregister_thread()
    with pytest.raises(RcuNotRegisteredError):
        with d.read():
            pass
    d.close()


def test_closed_domain():
    d = RcuDomain(4)
    cell = RcuCell(1, domain=d)
    with cell.read():
        pass
    d.close()
    d.close()
    with pytest.raises(ValueError):
        with cell.read():
            pass
    with pytest.raises(ValueError):
        d.synchronize()
    with pytest.raises(ValueError):
        cell.retire(1, print)


def test_bad_arguments():
    with pytest.raises(ValueError):
        RcuDomain(0)
    with pytest.raises(TypeError):
        RcuDomain("8")
    with pytest.raises(TypeError):
        RcuCell(1, domain=object())
    with pytest.raises(ValueError):
        RcuBuffer(0)
    with pytest.raises(ValueError):
        RcuBuffer(16, slots=1)
    with RcuBuffer(8) as b:
        with pytest.raises(ValueError, match="do not fit"):
            b.publish(b"123456789")
        with pytest.raises(TypeError):
            b.publish("text")


def test_attach_checks_kind():
    with RcuBuffer(64, shared=True) as b:
        with pytest.raises(ValueError, match="RcuBuffer"):
            RcuDomain.attach(b.name)
    with RcuDomain(4, shared=True) as d:
        with pytest.raises(ValueError):
            RcuBuffer.attach(d.name)


# -- RcuBuffer ---------------------------------------------------------------

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


# -- issue #16: shared state is input (validated once into a handle) --------

def _run_py(code, timeout=60):
    """Run ``code`` in a fresh interpreter: a crash fails the test, not
    pytest.  Its stdout, or a failure naming the signal."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode < 0:
        pytest.fail(f"died by signal {-r.returncode}\n{r.stderr[-2000:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


# Offsets in an RcuBuffer region (64-byte region header first): the
# buffer header, its domain at +64, the domain's writers' line at +128.
_BUF_FIELDS = {
    "data_off": ("<Q", 64 + 32, 1 << 40),
    "current (slot number)": ("<Q", 64 + 0, 200),
    "meta_off": ("<Q", 64 + 24, 1 << 33),
    "domain.capacity": ("<I", 128 + 8, 4000),
    "nslots": ("<I", 64 + 40, 200),
    "slot_size": ("<Q", 64 + 16, 1 << 30),
    "domain.hwm": ("<Q", 192 + 32, 1 << 20),
}


@pytest.mark.parametrize("field", list(_BUF_FIELDS))
def test_buffer_attach_validates(field):
    fmt, off, value = _BUF_FIELDS[field]
    out = _run_py(f"""
        import struct
        from lockfree import RcuBuffer
        from lockfree.errors import CorruptStateError
        buf = bytearray(1 << 16)
        RcuBuffer(256, b"v1", buffer=buf).close()
        struct.pack_into({fmt!r}, buf, {off}, {value})
        try:
            RcuBuffer.attach(buffer=buf).publish(b"v2")
        except CorruptStateError as e:
            print("field=" + str(e.field))
    """)
    assert out.strip() == f"field={field}"


def test_issue_reproducer_data_off():
    """Issue #16 point 2, verbatim: attach was accepted, then SIGSEGV."""
    out = _run_py("""
        import struct; from lockfree import RcuBuffer
        buf = bytearray(1<<16); RcuBuffer(256, b"v1", buffer=buf).close()
        struct.pack_into("<Q", buf, 64+32, 1<<40)       # data_off
        try:
            RcuBuffer.attach(buffer=buf).publish(b"v2")
        except ValueError as e:
            print(type(e).__name__, e.field)
    """)
    assert out.split() == ["CorruptStateError", "data_off"]


def test_scribbles_after_attach_stay_inside():
    """Geometry is the handle's copy: scribbling it after attach changes
    nothing; a scribbled current slot is a clear error for readers and is
    healed by the next publish; a reader slot's index is never used."""
    out = _run_py("""
        import struct, threading
        from lockfree import RcuBuffer, RcuDomain, RcuCell
        from lockfree.errors import CorruptStateError
        buf = bytearray(1 << 16)
        b = RcuBuffer(256, b"v1", buffer=buf)
        with b.read() as v:
            assert bytes(v) == b"v1"
        for off, fmt, val in ((64+32, "<Q", 1 << 40), (64+24, "<Q", 1 << 40),
                              (64+16, "<Q", 1 << 40), (64+40, "<I", 255),
                              (128+8, "<I", 4000), (192+32, "<Q", 1 << 40),
                              (256+16, "<I", 0xffffffff)):
            struct.pack_into(fmt, buf, off, val)
        b.publish(b"v2")
        def section(obj):
            with obj.read():
                pass
        t = threading.Thread(target=section, args=(b,))
        t.start(); t.join()                      # registers: within capacity
        with b.read() as v:
            assert bytes(v) == b"v2"
        struct.pack_into("<Q", buf, 64, 200)     # current slot
        try:
            with b.read() as v:
                pass
        except CorruptStateError as e:
            print("read", e.field)
        b.publish(b"v3", timeout=5)
        with b.read() as v:
            print(bytes(v).decode())
        mem = bytearray(RcuDomain.region_size(4))
        d = RcuDomain(4, buffer=mem)
        c = RcuCell(1, domain=d)
        struct.pack_into("<I", mem, 64 + 8, 4000)     # capacity
        struct.pack_into("<Q", mem, 128 + 32, 1 << 40)  # hwm
        ts = [threading.Thread(target=section, args=(c,)) for _ in range(3)]
        [t.start() for t in ts]; [t.join() for t in ts]
        with c.read() as x:
            print("cell", x)
        d.synchronize(timeout=5)
    """)
    assert out.split("\n")[:3] == [
        "read current (slot number) or meta.length", "v3", "cell 1"]


def test_domain_attach_validates():
    out = _run_py("""
        import struct
        from lockfree import RcuDomain
        from lockfree.errors import CorruptStateError
        for off, val in ((64 + 8, 0), (64 + 8, 5), (64 + 8, 1 << 20),
                         (128 + 32, 9), (128 + 40, 1 << 40)):
            mem = bytearray(RcuDomain.region_size(4))
            RcuDomain(4, buffer=mem).close()
            struct.pack_into("<I" if off == 72 else "<Q", mem, off, val)
            try:
                RcuDomain.attach(buffer=mem)
            except CorruptStateError as e:
                print(e.field)
    """)
    assert out.split("\n")[:5] == ["domain.capacity"] * 3 + [
        "domain.hwm", "domain.nr_readers"]


def test_region_size_arguments():
    assert RcuDomain.region_size(64) > RcuDomain.region_size(1) > 64
    assert RcuDomain.region_size() == RcuDomain.region_size(64)
    n = RcuBuffer.region_size(100)
    assert n == RcuBuffer.region_size(100, 3, 64)
    b = RcuBuffer(100, b"x" * 100, buffer=bytearray(n))
    with b.read() as v:
        assert bytes(v) == b"x" * 100
    d = RcuDomain(8, buffer=bytearray(RcuDomain.region_size(8)))
    d.synchronize()
    for bad in (0, 5000, -1):
        with pytest.raises(ValueError, match="capacity"):
            RcuDomain.region_size(bad)
    with pytest.raises(TypeError):
        RcuDomain.region_size("64")
    with pytest.raises(ValueError, match="size"):
        RcuBuffer.region_size(0)
    with pytest.raises(ValueError, match="slots"):
        RcuBuffer.region_size(100, 1)
    with pytest.raises(TypeError):
        RcuBuffer.region_size(100.0)


def test_callbacks_checked_at_call(domain):
    cell = RcuCell([1], domain=domain)
    with pytest.raises(TypeError, match="callable"):
        domain.call_rcu(42, "x")
    with pytest.raises(TypeError, match="callable"):
        cell.retire([1], "nope")
    with pytest.raises(TypeError, match="callable"):
        cell.update(lambda v: v, callback=3)
    domain.barrier(timeout=5)  # nothing bad was queued


def test_buffer_input_types():
    with RcuBuffer(16) as b:
        with pytest.raises(TypeError, match="contiguous"):
            b.publish(memoryview(b"abcdefgh")[::2])
        with pytest.raises(TypeError, match="bytes-like"):
            b.publish("text")
        with pytest.raises(TypeError, match="contiguous"):
            RcuBuffer(16, memoryview(b"abcdefgh")[::2])
        b.publish(memoryview(bytearray(range(12))).cast("B", (3, 4)))
        with b.read() as v:
            assert bytes(v) == bytes(range(12))
        with pytest.raises(TypeError):
            RcuBuffer(16, buffer=memoryview(bytearray(4096))[::2])


@pytest.mark.parametrize("bad", [float("nan"), -1, -0.5])
def test_bad_timeouts(domain, bad):
    with pytest.raises(ValueError):
        domain.synchronize(timeout=bad)
    with pytest.raises(ValueError):
        domain.barrier(timeout=bad)
    with RcuBuffer(8, b"a", slots=2) as b:
        with pytest.raises(ValueError):
            b.publish(b"b", timeout=bad)
        with pytest.raises(ValueError):
            b.synchronize(timeout=bad)
    with pytest.raises(TypeError):
        domain.synchronize(timeout="1")


# -- fork: a child gets its own reader slot ---------------------------------

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
