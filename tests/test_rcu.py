"""RCU: RcuDomain and RcuCell: grace periods, retire callbacks, errors.
RcuBuffer (versions, readers across processes): test_rcu_buffer.py."""

import threading
import time

import pytest

from lockfree import (
    RcuBuffer,
    RcuCell,
    RcuDeadlockError,
    RcuDomain,
    RcuError,
    RcuNotRegisteredError,
    RcuRegistryFullError,
)

from .conftest import LONG


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
        cell.update(lambda _, i=i: Obj(i), callback=invalidate)
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
            cell.update(lambda t, i=i: grow(t, (k, i)))
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
        with pytest.raises(RcuRegistryFullError,
                           match="2 reader slots"), cell.read():
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
    with pytest.raises(RcuNotRegisteredError), cell.read():
        pass
    d.register_thread()
    with cell.read() as v:
        assert v == 1
        with pytest.raises(RcuError):
            d.unregister_thread()
    d.unregister_thread()
    with pytest.raises(RcuNotRegisteredError), d.read():
        pass
    d.close()


def test_closed_domain():
    d = RcuDomain(4)
    cell = RcuCell(1, domain=d)
    with cell.read():
        pass
    d.close()
    d.close()
    with pytest.raises(ValueError), cell.read():
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
    with RcuBuffer(64, shared=True) as b, \
            pytest.raises(ValueError, match="RcuBuffer"):
        RcuDomain.attach(b.name)
    with RcuDomain(4, shared=True) as d, pytest.raises(ValueError):
        RcuBuffer.attach(d.name)
