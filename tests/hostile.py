"""Hostile peers: victims, the scribbler, and attach to mutated regions.

Run by ``tests/test_hostile.py``; also a command line for reproducing one
failure (run from the repository root)::

    python -m tests.hostile run SeqBytes 1234        # one scribble run
    python -m tests.hostile attach RcuBuffer 1234    # one mutated attach

* A **victim** (``python -m tests.hostile victim``) is a process that reads
  commands (JSON lines) on stdin: attach to the object pickled in the
  command, operate on it for a moment, say ``ready``, keep operating for
  ``duration`` seconds while the test process scribbles over the segment,
  close it, and report what it did (``done``).  Several runs share one
  victim process (a crash ends it; the next run starts a new one).
* The **scribbler** (:func:`scribble`, in the test process) writes random
  1/2/4/8-byte values at random offsets over the whole of every segment of
  the object, header included, for ``duration`` seconds.
* An **attach worker** (``python -m tests.hostile attach-worker``, see
  ``tests/hostile_attach.py``) makes valid regions of one kind, mutates
  random bytes and words (header and state), attaches and, if that works,
  operates.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import resource
import select
import signal
import struct
import subprocess
import sys
import time
import zlib

from . import hostile_cases as hcases
from . import hostile_steps as hc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG = 10.0          # seconds past its expected end before a victim hangs
START = 60.0         # seconds a victim may take to start (import, load)
WARM = 0.02          # seconds of operations before scribbling starts
TAIL = 0.1           # seconds a victim goes on after the scribbling
_PACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def derive(*parts) -> int:
    """A 32-bit seed from a base seed and names/numbers."""
    return zlib.crc32(repr(parts).encode())


def value(rng, width):
    """A value worth writing: random bits, small numbers (sizes, offsets,
    indexes), powers of two and their neighbours, all ones."""
    bits = 8 * width
    k = rng.randrange(8)
    if k <= 2:
        v = rng.getrandbits(bits)
    elif k == 3:
        v = rng.randrange(65)
    elif k == 4:
        v = rng.randrange(1 << min(bits, 16))
    elif k == 5:
        v = (1 << rng.randrange(bits)) + rng.choice((-1, 0, 0, 1))
    elif k == 6:
        v = -rng.randrange(1, 65)
    else:
        v = rng.choice((0, -1))
    return v & ((1 << bits) - 1)


def poke(rng, mem, size, hot):
    """One random write into ``mem[:size]``; offsets favour the first
    ``hot`` bytes (header and state), aligned three times in four."""
    width = rng.choice((1, 2, 4, 8))
    span = min(size, hot) if rng.random() < 0.6 else size
    off = rng.randrange(span - width + 1)
    if rng.random() < 0.75:
        off -= off % width
    struct.pack_into(_PACK[width], mem, off, value(rng, width))


def scribble(names, seed, duration) -> int:
    """Scribble over the named segments for ``duration`` s; return the
    number of writes.  Density varies with the seed: from one write every
    10 ms to a storm of writes with no pause."""
    import mmap
    rng = random.Random(seed)
    maps = []
    for name in names:
        fd = os.open(f"/dev/shm/{name}", os.O_RDWR)
        try:
            maps.append(mmap.mmap(fd, os.fstat(fd).st_size))
        finally:
            os.close(fd)
    burst = rng.choice((1, 2, 8, 64, 512))
    gap = rng.choice((0, 1e-5, 1e-4, 1e-3, 1e-2))
    hot = rng.choice((128, 512, 4096))
    writes = 0
    end = time.monotonic() + duration
    try:
        while time.monotonic() < end:
            for _ in range(burst):
                m = rng.choice(maps)
                poke(rng, m, len(m), hot)
            writes += burst
            if gap:
                time.sleep(gap)
    finally:
        for m in maps:
            m.close()
    return writes


# -- victim side --------------------------------------------------------------

def _say(**msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def _thread_errors(ctx_ref):
    """Exceptions in other threads (the RCU reclaimer) are checked too."""
    import threading

    def hook(args):
        c = ctx_ref[0]
        if c is not None:
            c.call(f"thread {args.thread.name}", _reraise, hc.RCU_WAIT,
                   args.exc_value)
    threading.excepthook = hook


def _reraise(exc):
    raise exc


def victim_run(cmd, leaked, ctx_ref):
    case = hcases.CASES.get(cmd["case"]) or hcases.SELFTEST[cmd["case"]]
    role = cmd["role"]
    rng = random.Random(derive(cmd["seed"], role))
    c = hc.Ctx(rng)
    ctx_ref[0] = c
    blob = bytes.fromhex(cmd["blob"])
    obj = pickle.loads(blob)          # attach: valid state, must work
    st = case.open(obj, role, rng)
    end = time.monotonic() + WARM
    while time.monotonic() < end or c.ok < 10 and \
            time.monotonic() < end + 2:
        case.step(st, role, c)
    warm_ok, warm_bad = c.ok, c.n_unexpected
    c.phase = "run"
    _say(ready=True, warm_ok=warm_ok)
    ops = 0
    end = time.monotonic() + cmd["duration"]
    while time.monotonic() < end:
        if rng.random() < 1 / 64:
            case.peek(blob, c, leaked)
        case.step(st, role, c)
        ops += 1
    case.close(st, c, leaked)
    ctx_ref[0] = None
    return dict(done=True, warm_ok=warm_ok, warm_bad=warm_bad, ops=ops,
                ok=c.ok, errors=c.errors, unexpected=c.unexpected,
                n_unexpected=c.n_unexpected, leaked=len(leaked))


def victim_main():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    leaked, ctx_ref = [], [None]
    _thread_errors(ctx_ref)
    _say(hello=os.getpid())
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        _say(**victim_run(cmd, leaked, ctx_ref))
    sys.stdout.flush()
    os._exit(0)  # leaked RCU domains may have callbacks that never run


# -- test-process side: victims and runs -------------------------------------

class Victim:
    """A victim process and its line protocol (reads with a deadline)."""

    def __init__(self, errfile):
        # the victim's stderr, read while it runs: closed in close()
        self.err = open(errfile, "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "tests.hostile",
             "victim"], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.err)
        self.buf = b""
        self.history = []
        hello = self.expect("hello", START)
        if not isinstance(hello, dict):
            raise RuntimeError(f"victim did not start: {hello}")

    def send(self, **cmd):
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def expect(self, key, timeout):
        """The next message (a dict with ``key``), or ``"died"`` / ``"hang"``
        (then the process is gone)."""
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                self.kill()
                return "hang"
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    return "died"
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if key not in msg:
            raise RuntimeError(f"victim said {msg}, expected {key}")
        return msg

    def stderr(self, limit=3000) -> str:
        self.err.flush()
        self.err.seek(0)
        return self.err.read()[-limit:]

    def kill(self):
        """Hung: SIGABRT first, so faulthandler prints where it was."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.send(op="exit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.err.close()
        os.unlink(self.err.name)


def _segments(obj):
    from lockfree.region import Primitive
    objs = [obj] if isinstance(obj, Primitive) else \
        [v for v in vars(obj).values() if isinstance(v, Primitive)]
    names = [o.name for o in objs]
    assert names and None not in names, f"no segments in {obj!r}"
    return names


def one_run(case, seed, victims, errdir, hang=HANG):
    """One scribble run; ``victims`` maps role -> Victim (or None: start
    one).  Returns a dict: outcome per role, writes, ops.  A victim silent
    for ``hang`` seconds past its expected end is a hang."""
    rng = random.Random(seed)
    duration = rng.uniform(0.05, 0.2)
    obj = case.make(rng)
    out = {"seed": seed, "roles": {}, "writes": 0}
    try:
        blob = pickle.dumps(obj)
        names = _segments(obj)
        for role in case.roles:
            if victims.get(role) is None:
                victims[role] = Victim(os.path.join(
                    errdir, f"{case.name}-{role}-{seed}.err"))
            v = victims[role]
            v.history.append(seed)
            v.send(op="run", case=case.name, role=role, seed=seed,
                   blob=blob.hex(), duration=duration + TAIL)
        ready = {r: victims[r].expect("ready", hang) for r in case.roles}
        if any(isinstance(m, dict) for m in ready.values()):
            out["writes"] = scribble(names, seed, duration)
        for role in case.roles:
            v = victims[role]
            m = ready[role]
            if isinstance(m, dict):
                m = v.expect("done", duration + TAIL + hang)
            if isinstance(m, str):  # died or hang: keep the evidence
                m = {"outcome": m, "rc": v.proc.returncode,
                     "stderr": v.stderr(), "seeds": v.history[-5:]}
                v.close()
                victims[role] = None
            else:
                m["outcome"] = "bad" if m["n_unexpected"] or \
                    m["warm_bad"] else "ok"
                if m["leaked"]:  # RCU domains whose callbacks never ran:
                    v.close()    # their threads would pile up
                    victims[role] = None
            out["roles"][role] = m
    finally:
        obj.close()
    return out


def close_victims(victims):
    for v in victims.values():
        if v is not None:
            v.close()


def _cli(argv):
    if argv[0] == "victim":
        victim_main()
    elif argv[0] == "attach-worker":
        from .hostile_attach import attach_worker
        attach_worker(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif argv[0] == "run":  # reproduce one scribble run
        victims = {}
        try:
            r = one_run(hcases.CASES[argv[1]], int(argv[2]), victims, "/tmp")
        finally:
            close_victims(victims)
        print(json.dumps(r, indent=1))
    elif argv[0] == "attach":  # reproduce one mutated attach
        from .hostile_attach import attach_trial
        c = attach_trial(argv[1], int(argv[2]), [])
        print(json.dumps({"errors": c.errors, "unexpected": c.unexpected},
                         indent=1))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    _cli(sys.argv[1:])
