"""RCU against hostile and dying peers (issue #16): a scribbler writing
random values over a live segment, attach to mutated regions, reader
processes SIGKILLed inside read sections.

The victims run in their own interpreters (``subprocess``), so a crash is a
test failure with its signal, not a dead pytest.  Quick mode takes a few
seconds; ``LOCKFREE_LONG=1`` runs many more rounds.
"""

import mmap
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from lockfree import RcuBuffer

from .conftest import LONG
from .test_rcu_buffer import _check, _record

# The victim: creates the object in a named segment, prints its name and
# size, then keeps operating until its time is up; every error a scribble
# may cause is caught and counted, a signal kills it (and fails the test).
_VICTIM = """
import os, sys, threading, time
from lockfree import RcuBuffer, RcuCell, RcuDomain
kind, seconds = sys.argv[1], float(sys.argv[2])
if kind == "buffer":
    obj = RcuBuffer(200, b"v0", slots=3, capacity=4, shared=True)
else:
    obj = RcuDomain(4, shared=True)
    cell = RcuCell(0, domain=obj)
print(obj.name, obj._region.size, flush=True)
sys.stdin.readline()                 # the scribbler has mapped the segment
errors = {}
def count(e):
    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
def reader():                        # a second registered thread
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with obj.read() if kind == "buffer" else cell.read() as v:
                bytes(v) if kind == "buffer" else v
        except Exception as e:
            count(e)
        time.sleep(0.0005)
t = threading.Thread(target=reader, daemon=True)
t.start()
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    n += 1
    try:
        if kind == "buffer":
            with obj.read() as v:
                bytes(v)
            obj.publish(b"%d" % n * 3, timeout=0.05)
        else:
            with cell.read() as v:
                pass
            cell.retire(cell.publish(n), lambda old: None)
            if n % 16 == 0:
                obj.synchronize(timeout=0.05)
                obj.barrier(timeout=0.05)
        if n % 64 == 0:              # attach to the scribbled region
            type(obj).attach(obj.name).close()
    except Exception as e:
        count(e)
print("ops", n, sorted(errors.items()), flush=True)
os._exit(0)
"""


def _victim(kind, seconds):
    return subprocess.Popen(
        [sys.executable, "-c", _VICTIM, kind, str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _scribble_run(kind, seconds, rnd):
    """One victim, scribbled for ``seconds``; its exit code and output."""
    p = _victim(kind, seconds)
    name, size = p.stdout.readline().split()
    size = int(size)
    fd = os.open(f"/dev/shm/{name}", os.O_RDWR)
    try:
        mm = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    p.stdin.write("go\n")
    p.stdin.flush()
    end = time.monotonic() + seconds
    writes = 0
    while time.monotonic() < end and p.poll() is None:
        # 1/2/4/8 bytes of random bits (or a small value) anywhere.
        width = rnd.choice((1, 2, 4, 8))
        off = rnd.randrange(0, size - width + 1)
        value = rnd.choice((rnd.getrandbits(8 * width), 0, 1, 255,
                            (1 << 8 * width) - 1))
        mm[off:off + width] = value.to_bytes(width, "little")
        writes += 1
        time.sleep(rnd.choice((0, 0.0001, 0.001)))
    try:
        out, err = p.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"{kind} victim hung after {writes} scribbles\n{err}")
    mm.close()
    return p.returncode, out, err, writes


@pytest.mark.parametrize("kind", ["buffer", "domain"])
def test_scribbler_never_crashes_victim(kind):
    """A second process writes random values over the whole region while a
    victim reads and publishes: the victim may see wrong data, errors or
    timeouts, but never dies by a signal and never hangs."""
    runs = 40 if LONG else 3
    seconds = 2.0 if LONG else 0.8
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    crashed = []
    for _ in range(runs):
        rc, out, err, writes = _scribble_run(kind, seconds, rnd)
        if rc != 0:
            crashed.append((rc, writes, err[-600:]))
        else:
            assert out.startswith("ops "), out
    assert not crashed, f"{len(crashed)}/{runs} victims died: {crashed[:3]}"


_MUTATE = """
import random, sys
from lockfree import RcuBuffer, RcuDomain
seed, n = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(seed)
mem = {}
good = bytearray(RcuBuffer.region_size(128, 3, 4))
b = RcuBuffer(128, b"v1", slots=3, capacity=4, buffer=good)
b.publish(b"v2"); b.close()
mem[RcuBuffer] = bytes(good)
good = bytearray(RcuDomain.region_size(4))
RcuDomain(4, buffer=good).close()
mem[RcuDomain] = bytes(good)
attached = refused = 0
for i in range(n):
    cls = rnd.choice((RcuBuffer, RcuDomain))
    buf = bytearray(mem[cls])
    for _ in range(rnd.choice((1, 1, 2, 4))):
        width = rnd.choice((1, 2, 4, 8))
        off = rnd.randrange(0, len(buf) - width + 1)
        buf[off:off + width] = rnd.getrandbits(8 * width).to_bytes(
            width, "little")
    try:
        obj = cls.attach(buffer=buf)
    except ValueError:
        refused += 1
        continue
    attached += 1
    try:
        with obj.read() as v:
            bytes(v) if cls is RcuBuffer else None
        if cls is RcuBuffer:
            obj.publish(b"v3", timeout=0.01)
        else:
            obj.synchronize(timeout=0.01)
    except (ValueError, TimeoutError, RuntimeError):
        pass
    obj.close()
print(attached, refused)
"""


def test_attach_to_mutated_regions_never_crashes():
    n = 10000 if LONG else 400
    seed = int.from_bytes(os.urandom(4), "little")
    r = subprocess.run([sys.executable, "-c", _MUTATE, str(seed), str(n)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (f"seed {seed}: exit {r.returncode}\n"
                               f"{r.stderr[-2000:]}")
    attached, refused = map(int, r.stdout.split())
    assert attached + refused == n and refused > 0 and attached > 0


# -- SIGKILLed readers ------------------------------------------------------

def _reader_loop(buf, seconds):
    """A forked reader: sections that check their version twice with a
    pause between (where it is killed most of the time); exit 1 if a
    version ever changed inside a section."""
    end = time.monotonic() + seconds
    bad = 0
    while time.monotonic() < end:
        with buf.read() as view:
            first = _check(view)
            time.sleep(0.0005)
            again = _check(view)
        if first is None or again != first:
            bad += 1
    os._exit(1 if bad else 0)


def test_killed_readers_do_not_stall_or_break_writer():
    """Reader processes (forked: each takes its own slot) SIGKILLed at
    random moments inside read sections: the writer's grace periods
    complete (dead slots reclaimed), and no live reader ever sees its
    version change under it (a retired slot is reused only after its last
    live reader left)."""
    runs = 1000 if LONG else 60
    size = 1024
    rnd = random.Random()
    killed = exited = 0
    with RcuBuffer(size, _record(1, size), slots=2, capacity=8,
                   shared=True) as buf:
        version = 1
        procs = set()
        for _ in range(runs):
            while len(procs) < 3:
                life = rnd.uniform(0.005, 0.1)
                pid = os.fork()
                if pid == 0:
                    try:
                        _reader_loop(buf, life)
                    finally:
                        os._exit(98)
                procs.add(pid)
            time.sleep(rnd.uniform(0, 0.01))
            victim = rnd.choice(sorted(procs))
            os.kill(victim, signal.SIGKILL)
            for _ in range(2):
                version += 1
                # Slot reuse needs a grace period each time: completes
                # once dead readers are reclaimed.
                buf.publish(_record(version, size), timeout=20)
            for pid in list(procs):
                got, status = os.waitpid(pid, os.WNOHANG)
                if not got:
                    continue
                procs.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                if code == -signal.SIGKILL:
                    killed += 1
                else:
                    assert code == 0, (
                        f"a live reader failed with exit {code} (1: its "
                        "version changed inside a section; 98: an error, "
                        "see stderr)")
                    exited += 1
        for pid in procs:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with buf.read() as view:
            assert _check(view) == version
        assert killed > 0
        assert buf.stats["dead_readers"] > 0
