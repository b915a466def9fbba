"""Attach to randomly mutated valid regions, every kind.

A worker process (``python -m tests.hostile attach-worker KIND BASE START
STOP``) makes a valid object of one kind in memory that ends where an
inaccessible page begins (so any read or write past the region's end
crashes at once), gives it some history, closes it, flips or overwrites
random bytes and words of its header and state, attaches, and if that
works runs a few operations with the victims' checks
(``tests/hostile_steps.py``).  The test process runs workers, reads their
progress line by line (a trial silent for ``HANG`` seconds is a hang) and
restarts one after a crash, so every crash is counted and named by its
seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import resource
import select
import struct
import subprocess
import sys
import time

from . import hostile_cases as hcases
from . import hostile_steps as hc
from .hostile import HANG, ROOT, START, Victim, _thread_errors, derive, value


def _guarded(size):
    """(mmap, offset): ``size`` bytes that end where an inaccessible page
    begins, so a read or write past the region's end crashes at once."""
    import ctypes
    import mmap
    page = mmap.PAGESIZE
    n = -(-size // page) * page
    mm = mmap.mmap(-1, n + page)
    libc = ctypes.CDLL(None, use_errno=True)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mm)) + n
    if libc.mprotect(ctypes.c_void_p(addr), page, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
    return mm, (n - size) & ~7


def _make_in(kind, rng):
    """A valid object of ``kind`` with some history, closed, in guarded
    memory; returns (mmap, offset, region size, class)."""
    from lockfree import (
        AtomicInt,
        Kfifo,
        RcuBuffer,
        RcuDomain,
        RWSpinLock,
        SeqBytes,
        SeqRecord,
        SpinLock,
        TicketLock,
    )
    kw = {}
    if kind == "AtomicInt":
        cls, args = AtomicInt, (rng.randrange(-2**63, 2**63),)
    elif kind == "SpinLock":
        cls, args = SpinLock, (rng.choice(("tas", "ttas")),
                               rng.random() < 0.5)
    elif kind in ("TicketLock", "RWSpinLock"):
        cls = TicketLock if kind == "TicketLock" else RWSpinLock
        args = (rng.random() < 0.5,)
    elif kind in ("SeqRecord", "SeqBytes"):
        n = rng.choice((8, 64, 1024))
        cls, args = (SeqRecord, (hc.FMT, hc._rec(rng))) \
            if kind == "SeqRecord" else (SeqBytes, (n, rng.randbytes(n)))
        kw["latch"] = rng.random() < 0.5
    elif kind == "RcuDomain":
        cls, args = RcuDomain, (rng.choice((1, 4, 64)),)
    elif kind == "RcuBuffer":
        cls, args = RcuBuffer, (rng.choice((16, 256)), b"v1")
        kw = dict(slots=rng.choice((2, 3)), capacity=rng.choice((1, 8)))
    else:
        cls, args = Kfifo, (rng.choice((16, 256)), kind.split("-")[1])
    scratch = bytearray(1 << 18)
    cls(*args, buffer=scratch, **kw).close()
    size = struct.unpack_from("<Q", scratch, 16)[0]
    mm, off = _guarded(size)
    obj = cls(*args, buffer=mm, offset=off, **kw)
    _history(kind, obj, rng)
    obj.close()
    return mm, off, size, cls


def _history(kind, obj, rng):
    """A few operations, so the state is not the freshly made one."""
    c = hc.Ctx(rng)
    for _ in range(rng.randrange(6)):
        if kind == "Kfifo-bytes":
            obj.put(rng.randbytes(rng.randrange(1, 20)), block=False)
            obj.get(rng.randrange(1, 10), block=False)
        elif kind == "Kfifo-records":
            # (free counts padding: the contiguous room may be less)
            with contextlib.suppress(queue.Full):
                obj.put_message(rng.randbytes(rng.randrange(8)), False)
            if rng.random() < 0.5 and len(obj):
                with contextlib.suppress(queue.Empty):  # padding only
                    obj.get_message(False)
        elif kind in ("SeqRecord", "SeqBytes"):
            hc.seq_step((obj, obj.size), c)
        elif kind == "RcuBuffer":
            hc.rcubuf_step(obj, c)
        elif kind == "AtomicInt":
            hc.atomic_step(obj, c)
    if (kind in ("SpinLock", "TicketLock", "RWSpinLock")
            and rng.random() < 0.5):  # closed while held: a holder that left
        obj.acquire()
    assert not c.n_unexpected, c.unexpected


ATTACH_KINDS = ("AtomicInt", "SpinLock", "TicketLock", "RWSpinLock",
                "SeqRecord", "SeqBytes", "RcuDomain", "RcuBuffer",
                "Kfifo-bytes", "Kfifo-records")
_OPS = {"AtomicInt": ("AtomicInt", ("main",)),
        "SpinLock": ("SpinLock-ttas", ("main",)),
        "TicketLock": ("TicketLock", ("main",)),
        "RWSpinLock": ("RWSpinLock-write", ("main",)),
        "SeqRecord": ("SeqRecord", ("main",)),
        "SeqBytes": ("SeqBytes", ("main",)),
        "RcuDomain": ("RcuDomain", ("main",)),
        "RcuBuffer": ("RcuBuffer", ("main",)),
        "Kfifo-bytes": ("Kfifo-bytes", ("producer", "consumer")),
        "Kfifo-records": ("Kfifo-records", ("producer", "consumer"))}


def mutate(rng, mem, size):
    """Flip or overwrite 1..16 random bytes/words of ``mem[:size]``: in the
    header one time in three, in the first 512 bytes of state one time in
    two, anywhere otherwise."""
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8, 16))):
        width = rng.choice((1, 2, 4, 8))
        where = rng.random()
        lo, hi = (0, 64) if where < 0.33 else \
            (64, min(size, 576)) if where < 0.85 else (0, size)
        off = rng.randrange(lo, hi - width + 1)
        if rng.random() < 0.75:
            off -= off % width
        old = int.from_bytes(mem[off:off + width], "little")
        new = old ^ (1 << rng.randrange(8 * width)) if rng.random() < 0.4 \
            else value(rng, width)
        mem[off:off + width] = new.to_bytes(width, "little")


def attach_trial(kind, seed, leaked):
    """Make, mutate, attach, operate; returns a Ctx (its counts)."""
    if kind.startswith("selftest-"):  # the harness's own check
        if seed % 3 == 0:
            import ctypes
            ctypes.string_at(0)
        kind = "AtomicInt"
    rng = random.Random(seed)
    mm, off, size, cls = _make_in(kind, rng)
    view = memoryview(mm)[off:off + size]
    mutate(rng, view, size)
    view.release()
    leaked.append(mm)  # unmapped with the process: views may outlive us
    c = hc.Ctx(rng)
    case_name, roles = _OPS[kind]
    case = hcases.CASES[case_name]
    objs = {}
    # A SeqRecord user attaches with the format they will write (a peer
    # may have rewritten it into another format of the same size).
    akw = {"fmt": hc.FMT} if kind == "SeqRecord" else {}
    for role in roles:
        obj = c.call("attach", cls.attach, hc.ATTACH, buffer=mm, offset=off,
                     **akw)
        if obj is hc.FAILED:
            break
        objs[role] = case.open(obj, role, rng)
    else:
        c.errors["attached"] = 1
        for i in range(12):
            role = roles[i % len(roles)]
            case.step(objs[role], role, c)
    for st in objs.values():
        case.close(st, c, leaked)
    return c


def attach_worker(kind, base, start, stop):
    """Trials start..stop-1 of ``kind``: says ``T i seed`` before each (the
    last one said is the culprit if the process dies) and ``R {...}`` with
    its counts after."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    leaked, ctx_ref = [], [None]
    _thread_errors(ctx_ref)
    for i in range(start, stop):
        seed = derive(base, kind, i)
        sys.stdout.write(f"T {i} {seed}\n")
        sys.stdout.flush()
        c = attach_trial(kind, seed, leaked)
        sys.stdout.write("R " + json.dumps(
            {"attached": c.errors.pop("attached", 0), "errors": c.errors,
             "unexpected": [f"trial {i} seed {seed}: {t}"
                            for t in c.unexpected]}) + "\n")
    sys.stdout.flush()
    os._exit(0)


def run_attach(kind, base, trials):
    """Run ``trials`` mutated attaches of ``kind`` in worker processes,
    restarting after a crash; a trial that takes more than HANG seconds is
    a hang (and ends the test).  Returns counts and failures."""
    res = {"trials": 0, "attached": 0, "bad": 0, "crashes": [], "hangs": [],
           "exits": [], "unexpected": [], "errors": {}}
    start = 0
    while start < trials and len(res["crashes"]) < 20:
        w = _Worker(kind, base, start, trials)
        trial = None
        while True:
            msg = w.line()
            if msg is None:
                break
            if msg.startswith("T "):
                _, i, seed = msg.split()
                trial = (int(i), seed)
                continue
            r = json.loads(msg[2:])
            trial = None
            res["trials"] += 1
            res["attached"] += r["attached"]
            res["bad"] += bool(r["unexpected"])
            if len(res["unexpected"]) < hc.MAX_REPORTED:
                res["unexpected"] += r["unexpected"]
            for k, n in r["errors"].items():
                res["errors"][k] = res["errors"].get(k, 0) + n
        rc = w.rc()
        if trial is None and rc == 0:
            break
        what = {"trial": trial and trial[0], "seed": trial and trial[1],
                "rc": rc, "stderr": w.stderr()}
        if trial is not None:
            res["trials"] += 1
        if w.hung:
            res["hangs"].append(what)
            break
        res["crashes" if rc < 0 else "exits"].append(what)
        if rc >= 0 or trial is None:
            break  # the harness failed: no point going on
        start = trial[0] + 1
    return res


class _Worker(Victim):
    """An attach worker: lines with a deadline per line (HANG s)."""

    def __init__(self, kind, base, start, stop):
        import tempfile
        # the worker's stderr, read while it runs: closed in stderr()
        self.err = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "tests.hostile",
             "attach-worker", kind, str(base), str(start), str(stop)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.err)
        self.buf = b""
        self.hung = False
        self.first = True

    def line(self):
        """The next line, or None at the end (process gone)."""
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + (START if self.first else HANG)
        self.first = False
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                self.hung = True
                self.kill()
                return None
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def rc(self):
        return self.proc.wait()

    def stderr(self, limit=3000):
        out = super().stderr(limit)
        self.err.close()
        return out
