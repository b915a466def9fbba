"""RCU, issue #16: the shared state is input (validated once at attach into
a private handle, bounds-checked on use) and bad arguments are refused at
the call.  Crash reproducers run in a fresh interpreter, so a crash fails
the test, not pytest."""

import subprocess
import sys
import textwrap

import pytest

from lockfree import RcuBuffer, RcuCell, RcuDomain

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
