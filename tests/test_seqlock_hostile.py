"""SeqRecord / SeqBytes against bad input and hostile peers: timeouts,
buffers, a live-looking writer, scribbled counters and geometry, a
scribbler over the whole region, mutated regions at attach."""

import contextlib
import mmap
import multiprocessing as mp
import os
import random
import struct
import threading
import time

import pytest

from lockfree import OwnerDiedError, SeqBytes, SeqRecord
from lockfree.errors import CorruptStateError

from .conftest import LONG
from .seqlock_cases import MAKERS, LiveWriter, run_python, value

# -- input checks -------------------------------------------------------------

@pytest.mark.parametrize("bad, exc", [("1", TypeError),
                                      (float("nan"), ValueError),
                                      (-1, ValueError), (True, TypeError)])
@pytest.mark.parametrize("kind", ["record", "bytes"])
def test_timeouts_are_checked_when_waiting(kind, bad, exc):
    """A timeout is looked at when the call has to wait (the uncontended
    path is one C call that never waits: it does not even look at it), and
    then a bad one is a TypeError / ValueError, never a hang."""
    with MAKERS[kind]() as obj:
        v = value(obj, 1)
        args = v if isinstance(obj, SeqRecord) else (v,)
        obj.write(*args, timeout=bad)  # not contended: never waits
        assert obj.read(timeout=bad) == v
        w = LiveWriter(obj)  # now both have to wait
        try:
            with pytest.raises(exc, match="timeout"):
                obj.read(timeout=bad)
            with pytest.raises(exc, match="timeout"):
                obj.write(*args, timeout=bad)
        finally:
            w.end()
        assert obj.read(timeout=0) == obj.read(timeout=None) == v


def test_buffers_taken_as_their_bytes_or_refused():
    """C-contiguous buffers of any item format are their bytes
    (memoryview(x).cast("B")); non-contiguous ones are a TypeError, as the
    docs say (cffi's BufferError is not what callers expect)."""
    np = pytest.importorskip("numpy")
    with SeqBytes(24) as b:
        a = np.arange(6, dtype="<u4").reshape(2, 3)  # 24 bytes, 2-D
        b.write(a)
        assert b.read() == a.tobytes()
        out = np.zeros((3, 2), dtype="<u4")
        assert b.read_into(out, timeout=1) == 24
        assert (out.reshape(2, 3) == a).all()
        strided = np.arange(12, dtype="<u4")[::2]  # 24 bytes, strided
        for call in (b.write, b.recover):
            with pytest.raises(TypeError, match="C-contiguous"):
                call(strided)
        with pytest.raises(TypeError, match="C-contiguous"):
            b.read_into(np.zeros(12, dtype="<u4")[::2])
        with pytest.raises(TypeError, match="C-contiguous"):
            SeqBytes(24, strided)
        with pytest.raises(ValueError, match="exactly 24 bytes, got 16"):
            b.write(np.zeros(4, dtype="<u4"))
        assert b.read() == a.tobytes()


def test_attach_arguments_checked():
    with SeqBytes(16, shared=True) as b:
        for bad in ("16", 16.0, True):
            with pytest.raises(TypeError, match="size must be an int"):
                SeqBytes.attach(b.name, bad)
        with pytest.raises(ValueError, match="1.."):
            SeqBytes.attach(b.name, 0)
        with pytest.raises(TypeError, match="str"):
            SeqRecord.attach(b.name, 42)
    with pytest.raises(TypeError, match="size must be an int"):
        SeqBytes(True)


# -- hostile peers: a live-looking writer, scribbled counters -----------------


def test_live_writer_mid_write_readers_time_out():
    """A counter held odd by a live writer: readers with a timeout raise
    TimeoutError after it (not before, not never); writers too; a blocking
    reader returns once the write ends."""
    with SeqRecord("qq", (1, 2)) as r:
        w = LiveWriter(r)
        for call in (lambda: r.read(timeout=0.2),
                     lambda: r.write(3, 4, timeout=0.2)):
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                call()
            assert 0.19 < time.monotonic() - t0 < 2
        with pytest.raises(TimeoutError):
            r.read(timeout=0)
        got = []
        reader = threading.Thread(target=lambda: got.append(r.read()))
        reader.start()
        time.sleep(0.1)
        assert not got  # still waiting for the write
        w.end()
        reader.join(10)
        assert got == [(1, 2)]


def test_blocking_read_honours_ctrl_c():
    """A blocking read() waiting for a live writer that never finishes is
    interrupted by SIGINT within a wait slice (run in a subprocess)."""
    rc, out = run_python("""
        import os, signal, threading, time
        from lockfree import SeqRecord
        from tests.seqlock_cases import LiveWriter
        r = SeqRecord("qq")
        LiveWriter(r)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            r.read()
        except KeyboardInterrupt:
            print("interrupted after %.2f s" % (time.monotonic() - t0))
    """)
    assert rc == 0 and "interrupted after 0." in out, out


@pytest.mark.parametrize("fmt", ["qq", "8q"])  # inline in line 0, or not
def test_odd_counter_with_free_lock_is_corrupt_and_repaired(fmt):
    """A peer scribbles the counter odd while no writer holds the lock: a
    reader raises CorruptStateError (field "seq") instead of waiting for a
    write that is not happening; the next write repairs the counter."""
    n = struct.calcsize(fmt) // 8
    with SeqRecord(fmt, (7,) * n) as r:
        r._state.seq |= 1
        t0 = time.monotonic()
        with pytest.raises(CorruptStateError) as e:
            r.read(timeout=5)
        assert e.value.field == "seq" and time.monotonic() - t0 < 2
        with pytest.raises(CorruptStateError):
            r.read()  # a blocking read does not wait for ever either
        r._state.wseq |= 1  # an odd writer count cannot make a write odd
        r.write(*(8,) * n)
        assert r.sequence % 2 == 0 and r.read() == (8,) * n


# -- hostile peers: the issue's reproducers (in a subprocess: a crash fails
# -- the test instead of killing pytest) --------------------------------------


@pytest.mark.parametrize("offset", [8, 12], ids=["size", "data_off"])
def test_issue16_reader_geometry_scribbled_after_attach(offset):
    """Issue #16, point 1: state.size (or data_off) scribbled after attach
    made read() SIGSEGV; the handle's copies are used instead."""
    rc, out = run_python(f"""
        import struct; from lockfree import SeqBytes
        buf = bytearray(SeqBytes.region_size(64))
        s = SeqBytes(64, b"x"*64, buffer=buf)
        struct.pack_into("<I", buf, 64+{offset}, 0x10000000)
        assert s.read() == b"x"*64
        s.write(b"y"*64)
        assert s.read() == b"y"*64
        print("ok")
    """)
    assert rc == 0 and "ok" in out, f"exit {rc}: {out}"


@pytest.mark.parametrize("bad", [0xFFFFFFC0, 0x10000000, "end"])
def test_issue16_writer_offset_scribbled_after_attach(bad):
    """Issue #16, point 1: the writer-side data offset (64+124) scribbled
    made write() store up to 4 GiB away; now the write lands in the copy
    and the memory after the region (a guard) stays untouched."""
    rc, out = run_python(f"""
        import struct; from lockfree import SeqRecord
        need = SeqRecord.region_size("8q")
        buf = bytearray(need + 4096)        # the region, then a guard
        r = SeqRecord("8q", buffer=buf)
        bad = {bad!r}
        struct.pack_into("<I", buf, 64+124, need if bad == "end" else bad)
        r.write(*range(8))
        assert r.read() == tuple(range(8))
        assert buf[need:] == bytes(4096), "wrote past the region"
        print("ok")
    """)
    assert rc == 0 and "ok" in out, f"exit {rc}: {out}"


# -- hostile peers: a scribbler over the whole region -------------------------

SCRIBBLE_S = 1.0 if LONG else 0.6  # seconds a run lasts
SCRIBBLE_RUNS = 25 if LONG else 1  # runs per kind


def _victim(kind, name, seconds, ready):
    """Keep reading and writing (and re-attaching) while a scribbler
    writes random values over the region.  Errors the state may cause are
    expected; any other exception, a signal or a hang fails the test."""
    cls = SeqRecord if kind.startswith("record") else SeqBytes
    obj = cls.attach(name)
    ready.set()
    buf = bytearray(obj.size)
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        for _ in range(20):
            k += 1
            v = value(obj, k)
            args = v if isinstance(obj, SeqRecord) else (v,)
            try:
                got = obj.read(timeout=0.02) if k % 2 else obj.read()
                assert len(got) == len(v)
                obj.write(*args, timeout=0.02)
                if isinstance(obj, SeqBytes):
                    obj.read_into(buf, timeout=0.02)
            except OwnerDiedError:
                obj.recover(*args)
            except (CorruptStateError, TimeoutError):
                pass
        # refused: a scribbled header or state
        with contextlib.suppress(ValueError):
            cls.attach(name).close()
    obj.close()


def _scribbler(name, seconds, seed):
    """Write random 1/2/4/8-byte values at random offsets over the whole
    region (half of them in its header and control lines)."""
    rng = random.Random(seed)
    fd = os.open(os.path.join("/dev/shm", name), os.O_RDWR)
    size = os.fstat(fd).st_size
    m = mmap.mmap(fd, size)
    os.close(fd)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(100):
            w = rng.choice((1, 2, 4, 8))
            top = min(size, 256) if rng.random() < 0.5 else size
            off = rng.randrange(top - w + 1)
            m[off:off + w] = rng.getrandbits(8 * w).to_bytes(w, "little")
        time.sleep(0.0005)
    m.close()


@pytest.mark.parametrize("kind", list(MAKERS))
def test_scribbler_never_kills_the_victim(kind):
    """Issue #16, tests: a second process scribbles random values over a
    live seqlock's whole region while a victim process keeps using it; the
    victim never dies by a signal, never raises anything but the errors a
    corrupt state may cause, never hangs."""
    ctx = mp.get_context("fork")
    failures = []
    for run in range(SCRIBBLE_RUNS):
        obj = MAKERS[kind](shared=True)
        try:
            ready = ctx.Event()
            victim = ctx.Process(target=_victim, args=(
                kind, obj.name, SCRIBBLE_S, ready))
            victim.start()
            assert ready.wait(60)
            peer = ctx.Process(target=_scribbler, args=(
                obj.name, SCRIBBLE_S, run))
            peer.start()
            peer.join(60)
            victim.join(SCRIBBLE_S + 30)
            if victim.is_alive():
                victim.kill()
                victim.join()
                failures.append((run, "hung"))
            elif victim.exitcode:
                failures.append((run, victim.exitcode))  # < 0: a signal
        finally:
            obj.close()
    print(f"{kind}: {SCRIBBLE_RUNS} runs, failures {failures}")
    assert not failures


def test_attach_to_mutated_regions_never_crashes():
    """Attach to valid regions with random bytes changed: a ValueError
    (CorruptStateError for a bad state) or an object that works (reads,
    writes, recovers or raises the errors a corrupt state may cause)."""
    n = 50_000 if LONG else 2_000
    rc, out = run_python(f"""
        import random, struct
        from lockfree import SeqBytes, SeqRecord, OwnerDiedError
        from lockfree.errors import CorruptStateError
        rng = random.Random(16)
        kinds = [(SeqRecord, ("qqqd",)), (SeqRecord, ("8q",)),
                 (SeqBytes, (32,)), (SeqBytes, (100,))]
        refused = used = 0
        for i in range({n}):
            cls, args = rng.choice(kinds)
            latch = rng.random() < 0.5
            buf = bytearray(cls.region_size(*args, latch=latch))
            cls(*args, latch=latch, buffer=buf).close()
            for _ in range(rng.randint(1, 4)):
                w = rng.choice((1, 2, 4, 8))
                top = min(len(buf), 320) if rng.random() < 0.8 else len(buf)
                off = rng.randrange(top - w + 1)
                buf[off:off + w] = rng.getrandbits(8 * w).to_bytes(w, "little")
            try:
                obj = cls.attach(buffer=buf)
            except ValueError:
                refused += 1
                continue
            used += 1
            with obj:
                # values that fit whatever format the region now holds
                v = (struct.unpack(obj.format, bytes(obj.size))
                     if cls is SeqRecord else (b"v" * obj.size,))
                # Blocking reads; writes with a timeout: a lock word
                # scribbled "held" by nobody known (today's spinlock keeps
                # the owner apart from the lock byte) blocks writers until
                # their timeout, which is the spinlock's to fix.
                for timeout in (0, 0.001, None):
                    try:
                        obj.read(timeout=timeout)
                        obj.write(*v, timeout=timeout or 0.002)
                    except OwnerDiedError:
                        obj.recover(*v)
                    except (CorruptStateError, TimeoutError):
                        pass
        print("refused", refused, "used", used)
    """, timeout=3600 if LONG else 120)
    assert rc == 0 and "refused" in out, f"exit {rc}: {out[-3000:]}"
    print(out)
