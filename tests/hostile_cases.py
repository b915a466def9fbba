"""The hostile-peer suite's cases: every primitive and mode.

Used by the test process and the victims (``tests/hostile.py``): every case
names the roles it runs (one victim process each), how the test process
creates the object (``make``), how a victim opens it (``open``), one random
operation on it (``step``, see ``tests/hostile_steps.py``), a cheap look
through a second, freshly attached handle (``peek``) and how the victim
lets it go (``close``).
"""

from __future__ import annotations

import pickle

from lockfree import (
    AtomicInt,
    Kfifo,
    Once,
    RcuBuffer,
    RcuDomain,
    RWSpinLock,
    SeqBytes,
    SeqRecord,
    SpinLock,
    TicketLock,
)

from .hostile_steps import (
    ATTACH,
    FAILED,
    FMT,
    SEQ,
    C,
    _bool,
    _int64,
    _is,
    _lock_steps,
    _rec,
    atomic_step,
    kfifo_step,
    once_step,
    rcu_close,
    rcu_open,
    rcu_step,
    rcubuf_step,
    seq_open,
    seq_step,
)


class Case:
    """One primitive in one mode.  ``make(rng)`` runs in the test process
    (a shared object); the rest runs in a victim."""

    def __init__(self, name, make, step, roles=("main",), open=None,
                 peek=None, close=None):
        self.name, self.make, self.roles = name, make, roles
        self._step, self._open, self._close = step, open, close
        self._peek = peek

    def open(self, obj, role, rng):
        return self._open(obj, role, rng) if self._open else obj

    def step(self, st, role, c):
        if self.roles == ("main",):
            self._step(st, c)
        else:
            self._step(st, c, role)

    def peek(self, blob, c, leaked):
        """Attach a second handle (live scribbled memory), look, close."""
        obj = c.call("attach", pickle.loads, ATTACH, blob)
        if obj is FAILED:
            return
        if self._peek is not None:
            self._peek(obj, c)
        self.close(obj, c, leaked)

    def close(self, st, c, leaked):
        obj = st[0] if isinstance(st, tuple) else st
        if isinstance(obj, (RcuDomain, RcuBuffer)):
            rcu_close(obj, c, leaked)
        else:
            c.call("close", obj.close, C)


def _seqbytes(r):
    n = r.choice((8, 64, 4096))
    return SeqBytes(n, r.randbytes(n), latch=r.random() < 0.5, shared=True)


def _peek_lock(lock, c):
    c.call("locked", lock.locked, C, check=_bool)


def _peek_rcubuf(b, c):
    c.call("version", lambda: b.version, C)
    rcubuf_step(b, c) if c.rng.random() < 0.5 else None


CASES = {c.name: c for c in [
    Case("AtomicInt", lambda r: AtomicInt(r.randrange(-2**63, 2**63),
                                          shared=True), atomic_step,
         peek=lambda a, c: c.call("load", a.load, C, check=_int64)),
    Case("SpinLock-tas", lambda r: SpinLock("tas", r.random() < 0.5,
                                            shared=True),
         _lock_steps(), peek=_peek_lock),
    Case("SpinLock-ttas", lambda r: SpinLock("ttas", r.random() < 0.5,
                                             shared=True),
         _lock_steps(), peek=_peek_lock),
    Case("TicketLock", lambda r: TicketLock(r.random() < 0.5, shared=True),
         _lock_steps(), peek=_peek_lock),
    Case("RWSpinLock-read", lambda r: RWSpinLock(r.random() < 0.5,
                                                 shared=True),
         _lock_steps(read=True), peek=_peek_lock),
    Case("RWSpinLock-write", lambda r: RWSpinLock(r.random() < 0.5,
                                                  shared=True),
         _lock_steps(), peek=_peek_lock),
    Case("Once", lambda r: Once(shared=True), once_step,
         peek=lambda o, c: c.call("done", lambda: o.done, C)),
    Case("SeqRecord", lambda r: SeqRecord(FMT, _rec(r), latch=r.random() <
                                          0.5, shared=True), seq_step,
         open=seq_open,
         peek=lambda s, c: c.call("read", s.read, SEQ, check=_is(4))),
    Case("SeqBytes", _seqbytes, seq_step, open=seq_open,
         peek=lambda s, c: c.call("read", s.read, SEQ,
                                  check=lambda v: None if len(v) <= 4096
                                  else "longer than any SeqBytes made")),
    Case("RcuDomain", lambda r: RcuDomain(r.choice((1, 4, 64)),
                                          shared=True),
         rcu_step, open=rcu_open,
         peek=lambda d, c: c.call("stats", lambda: d.stats, C)),
    Case("RcuBuffer", lambda r: RcuBuffer(
        r.choice((16, 256, 4096)), b"v0", slots=r.choice((2, 3, 8)),
        capacity=r.choice((1, 8, 64)), shared=True), rcubuf_step,
        peek=_peek_rcubuf),
    Case("Kfifo-bytes", lambda r: Kfifo(r.choice((64, 256, 4096)), "bytes",
                                        shared=True),
         kfifo_step, roles=("producer", "consumer"),
         peek=lambda q, c: c.call("len", len, C, q)),
    Case("Kfifo-records", lambda r: Kfifo(r.choice((64, 256, 4096)),
                                          "records", shared=True),
         kfifo_step, roles=("producer", "consumer"),
         peek=lambda q, c: c.call("len", len, C, q)),
    # Rings past the producer's restart offset (128 KiB, csrc/kfifo_rec.c):
    # the producer moves out over its padding while both are scribbled.
    Case("Kfifo-restart", lambda r: Kfifo(r.choice((1 << 18, 1 << 20)),
                                          "records", shared=True),
         kfifo_step, roles=("producer", "consumer"),
         peek=lambda q, c: c.call("len", len, C, q)),
]}


# -- the harness's own failures (test_hostile_harness_detects_failures) -------

def _misbehave(how):
    def step(a, c):
        if c.phase == "run":
            if how == "crash":
                import ctypes
                ctypes.string_at(0)
            elif how == "hang":
                import time
                time.sleep(3600)
            else:
                c.call("boom", dict.__getitem__, C, {}, "x")
        atomic_step(a, c)
    return step


SELFTEST = {f"selftest-{how}": Case(
    f"selftest-{how}", lambda r: AtomicInt(shared=True), _misbehave(how))
    for how in ("crash", "hang", "unexpected")}
