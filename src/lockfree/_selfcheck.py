"""The self-check ``python -m lockfree`` runs: every primitive under real
contention, between threads and between processes, each check with an
invariant that a broken primitive would violate (exact totals, no torn
snapshot, no early reclaim, messages exact and in order).

One line per check: ``ok``/``FAIL``, what ran, and its figure.  The whole
run takes a few seconds on 2 cores; the exit status is non-zero if any check
fails.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import multiprocessing.synchronize
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing import shared_memory
from multiprocessing.process import BaseProcess
from typing import TypeAlias

from .atomic import AtomicInt
from .errors import OwnerDiedError
from .kfifo import KfifoQueue
from .once import Once
from .rcu import RcuBuffer, RcuCell, RcuDomain
from .seqlock import SeqBytes, SeqRecord
from .spinlock import RWSpinLock, SpinLock, TicketLock

# forkserver: each worker is a fork of one server that imported lockfree
# once, so a worker starts in milliseconds, and nothing of this process
# (threads, locks held) is inherited as a plain fork would.
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["lockfree"])
_SECONDS = 0.4  # how long the timed (writer/reader) checks run

#: What a check runs its workers with (threading.Thread or _CTX.Process),
#: the barrier that starts them together, the locks checked, and a check.
_Make: TypeAlias = Callable[..., "threading.Thread | BaseProcess"]
_Barrier: TypeAlias = "threading.Barrier | multiprocessing.synchronize.Barrier"
_Lock: TypeAlias = "SpinLock | TicketLock | RWSpinLock"
_NewLock: TypeAlias = Callable[[], "SpinLock | TicketLock | RWSpinLock"]
_Check: TypeAlias = Callable[[], "tuple[bool, str]"]


# -- workers (module level: spawn pickles them by name) ----------------------

def _adder(counter: AtomicInt, start: _Barrier, n: int) -> None:
    start.wait()
    add = counter.fetch_add
    for _ in range(n):
        add(1)


def _updater(counter: AtomicInt, retries: AtomicInt, start: _Barrier,
             n: int) -> None:
    start.wait()
    total = 0
    for _ in range(n):
        total += counter.update(lambda x: x + 1)[1]
    retries.fetch_add(total)


def _locked_adds(lock: _Lock, shm_name: str, start: _Barrier, n: int,
                 write: bool = True) -> None:
    """Read-modify-write of a plain shared counter under the lock: without
    mutual exclusion two workers lose updates."""
    if sys.version_info >= (3, 13):
        shm = shared_memory.SharedMemory(shm_name, track=False)
    else:
        shm = shared_memory.SharedMemory(shm_name)
    try:
        buf = shm.buf
        assert buf is not None  # None only once closed
        acquire, release = lock.acquire, lock.release  # RW: write side
        start.wait()
        for _ in range(n):
            acquire()
            (v,) = struct.unpack_from("q", buf, 0)
            struct.pack_into("q", buf, 0, v + 1)
            release()
        del buf
    finally:
        shm.close()


def _die_holding(lock: _Lock) -> None:
    lock.acquire()
    os._exit(0)  # exits without releasing


def _once_caller(once: Once, runs: AtomicInt, start: _Barrier) -> None:
    start.wait()
    once.call_once(runs.fetch_add, 1)


def _seq_writer(rec: SeqRecord, stop: AtomicInt) -> None:
    i = 0
    stop.store(-1)  # started
    while stop.load() != 1:
        i += 1
        rec.write(i, -i, 3 * i, i ^ 0x5A5A)


def _bytes_writer(sb: SeqBytes, stop: AtomicInt) -> None:
    i = 0
    size = sb.size
    stop.store(-1)  # started
    while stop.load() != 1:
        i += 1
        sb.write(bytes([i & 0xFF]) * size)


def _kfifo_producer(q: KfifoQueue, n: int) -> None:
    for i in range(n):
        q.put_message(i.to_bytes(8, "little") * 8)
    q.close_producer()


def _rcu_publisher(buf: RcuBuffer, stop: AtomicInt,
                   published: AtomicInt) -> None:
    i = 0
    stop.store(-1)  # started
    while stop.load() != 1:
        i += 1
        buf.publish(bytes([i & 0xFF]) * 256)
    published.store(i)


# -- checks ------------------------------------------------------------------

def _started(p: BaseProcess, flag: AtomicInt,
             timeout: float = 30.0) -> None:
    """Start worker p and wait until it has stored -1 in flag."""
    p.start()
    end = time.monotonic() + timeout
    while flag.load() != -1 and time.monotonic() < end and p.is_alive():
        time.sleep(0.001)


def _join(workers: Sequence[threading.Thread | BaseProcess],
          timeout: float = 30) -> bool:
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout)
    return all(getattr(w, "exitcode", 0) == 0 for w in workers)


def _atomic(kind: str, make: _Make, barrier: _Barrier,
            n: int) -> tuple[bool, str]:
    with AtomicInt(shared=kind == "processes") as c:
        ok = _join([make(target=_adder, args=(c, barrier, n))
                    for _ in range(2)])
        got = c.load()
    return ok and got == 2 * n, f"{got:,} of {2 * n:,} increments"


def _cas(kind: str, make: _Make, barrier: _Barrier,
         n: int) -> tuple[bool, str]:
    with AtomicInt(shared=True) as c, AtomicInt(shared=True) as r:
        ok = _join([make(target=_updater, args=(c, r, barrier, n))
                    for _ in range(2)])
        got = c.load()
        retries = r.load()
    return ok and got == 2 * n, f"{got:,} of {2 * n:,}, {retries:,} retries"


def _lock(new_lock: _NewLock, kind: str, make: _Make, barrier: _Barrier,
          n: int) -> tuple[bool, str]:
    shm = shared_memory.SharedMemory(create=True, size=8)
    lock = new_lock()  # (with lock: would acquire it)
    try:
        ok = _join([make(target=_locked_adds,
                         args=(lock, shm.name, barrier, n))
                    for _ in range(2)])
        assert shm.buf is not None  # None only once closed
        (got,) = struct.unpack_from("q", shm.buf, 0)
    finally:
        lock.close()
        shm.close()
        shm.unlink()
    return ok and got == 2 * n, f"{got:,} of {2 * n:,} locked updates"


def _dead_owner(new_lock: _NewLock) -> tuple[bool, str]:
    lock = new_lock()
    try:
        p = _CTX.Process(target=_die_holding, args=(lock,))
        p.start()
        p.join(30)
        t0 = time.perf_counter()
        try:
            lock.acquire(timeout=5)
        except OwnerDiedError:
            dt = time.perf_counter() - t0
            recovered = lock.recover()
            lock.release()
            return recovered, (f"OwnerDiedError after {dt * 1e3:.0f} ms, "
                               "recover() took it over")
        return False, "the dead owner was not reported"
    finally:
        lock.close()


def _once(kind: str, make: _Make, barrier: _Barrier) -> tuple[bool, str]:
    with Once(shared=True) as once, AtomicInt(shared=True) as runs:
        ok = _join([make(target=_once_caller, args=(once, runs, barrier))
                    for _ in range(2)])
        again = once.call_once(runs.fetch_add, 1)
        n = runs.load()
    return ok and n == 1 and not again, f"initialiser ran {n} time(s)"


def _seqrecord() -> tuple[bool, str]:
    with SeqRecord("qqqq", (0, 0, 0, 0 ^ 0x5A5A), shared=True) as rec, \
            AtomicInt(shared=True) as stop:
        p = _CTX.Process(target=_seq_writer, args=(rec, stop))
        _started(p, stop)
        reads = torn = 0
        last = 0
        end = time.monotonic() + _SECONDS
        while time.monotonic() < end:
            i, a, b, c = rec.read()
            reads += 1
            torn += (a != -i or b != 3 * i or c != i ^ 0x5A5A or i < last)
            last = i
        stop.store(1)
        p.join(30)
    return (p.exitcode == 0 and torn == 0 and last > 0,
            f"{reads:,} reads, {last:,} writes seen, {torn} torn")


def _seqbytes() -> tuple[bool, str]:
    with SeqBytes(4096, shared=True) as sb, AtomicInt(shared=True) as stop:
        p = _CTX.Process(target=_bytes_writer, args=(sb, stop))
        _started(p, stop)
        reads = torn = 0
        end = time.monotonic() + _SECONDS
        while time.monotonic() < end:
            data = sb.read()
            reads += 1
            torn += data.count(data[:1]) != len(data)
        stop.store(1)
        p.join(30)
    return (p.exitcode == 0 and torn == 0,
            f"{reads:,} 4 KiB snapshots, {torn} torn")


def _rcu_threads() -> tuple[bool, str]:
    """A reader inside its section keeps the old value alive: the retire
    callback runs only after the reader leaves."""
    dom = RcuDomain()
    try:
        cell = RcuCell(["v1"], domain=dom)
        inside, leave = threading.Event(), threading.Event()
        left_at: list[tuple[float, list[str]]] = []

        def reader() -> None:
            with cell.read() as v:
                inside.set()
                leave.wait(10)
                seen = list(v)
            left_at.append((time.monotonic(), seen))
            dom.unregister_thread()

        t = threading.Thread(target=reader)
        t.start()
        inside.wait(10)
        reclaimed: list[float] = []
        old = cell.publish(["v2"])
        cell.retire(old, lambda o: reclaimed.append(time.monotonic()))
        time.sleep(0.05)
        early = bool(reclaimed)
        leave.set()
        t.join(10)
        dom.barrier(timeout=10)
        ok = (not early and len(reclaimed) == 1 and bool(left_at)
              and left_at[0][1] == ["v1"] and reclaimed[0] >= left_at[0][0])
        return ok, ("retired value reclaimed after its last reader"
                    if ok else "reclaimed early or never")
    finally:
        dom.close()


def _rcu_processes() -> tuple[bool, str]:
    """A writer process publishes constantly; every view a reader holds
    stays one version (all bytes equal) for its whole section."""
    with RcuBuffer(256, b"\0" * 256, shared=True) as buf, \
            AtomicInt(shared=True) as stop, \
            AtomicInt(shared=True) as published:
        p = _CTX.Process(target=_rcu_publisher, args=(buf, stop, published))
        _started(p, stop)
        sections = changed = 0
        end = time.monotonic() + _SECONDS
        while time.monotonic() < end:
            with buf.read() as view:
                first = bytes(view)
                time.sleep(0)  # let the writer publish meanwhile
                changed += bytes(view) != first or \
                    first.count(first[:1]) != len(first)
            sections += 1
        stop.store(1)
        p.join(30)
        n = published.load()
    return (p.exitcode == 0 and changed == 0 and n > 0,
            f"{sections:,} read sections over {n:,} publishes, "
            f"{changed} changed under a reader")


def _kfifo(n: int) -> tuple[bool, str]:
    with KfifoQueue(1 << 16, shared=True) as q:
        p = _CTX.Process(target=_kfifo_producer, args=(q, n))
        t0 = time.perf_counter()
        p.start()
        bad = got = 0
        while True:
            try:
                m = q.get_message(timeout=30)
            except EOFError:
                break
            bad += m != got.to_bytes(8, "little") * 8
            got += 1
        dt = time.perf_counter() - t0
        p.join(30)
    return (p.exitcode == 0 and got == n and bad == 0,
            f"{got:,} of {n:,} messages exact and in order, "
            f"{got / dt / 1e3:,.0f} k msg/s")


def _checks(n: int) -> list[tuple[str, _Check]]:
    tb, pb = threading.Barrier(2), _CTX.Barrier(2)
    kinds: list[tuple[str, _Make, _Barrier]] = [
        ("threads", threading.Thread, tb), ("processes", _CTX.Process, pb)]
    out: list[tuple[str, _Check]] = []
    for kind, make, barrier in kinds:
        out.append((f"AtomicInt fetch_add, 2 {kind}",
                    functools.partial(_atomic, kind, make, barrier, n)))
        out.append((f"AtomicInt CAS update(), 2 {kind}",
                    functools.partial(_cas, kind, make, barrier, n // 4)))
    locks: list[tuple[str, _NewLock]] = [
        ("SpinLock", functools.partial(SpinLock, shared=True)),
        ("SpinLock tas", functools.partial(SpinLock, shared=True,
                                           spin="tas")),
        ("TicketLock", functools.partial(TicketLock, shared=True)),
        ("RWSpinLock write", functools.partial(RWSpinLock, shared=True))]
    for name, new_lock in locks:
        for kind, make, barrier in kinds:
            out.append((f"{name}, 2 {kind}",
                        functools.partial(_lock, new_lock, kind, make,
                                          barrier, n // 20)))
    for name, new_lock in locks:
        out.append((f"{name}, owner killed holding it",
                    functools.partial(_dead_owner, new_lock)))
    for kind, make, barrier in kinds:
        out.append((f"Once, 2 {kind}",
                    functools.partial(_once, kind, make, barrier)))
    out += [("SeqRecord, writer process", _seqrecord),
            ("SeqBytes 4 KiB, writer process", _seqbytes),
            ("RcuCell retire, reader thread", _rcu_threads),
            ("RcuBuffer, publisher process", _rcu_processes),
            ("KfifoQueue, producer process",
             functools.partial(_kfifo, n // 2))]
    return out


def self_check(n: int) -> bool:
    """Run every check; print one line each; True if all passed."""
    print("self-check (real contention, threads and processes):")
    t_all = time.perf_counter()
    failed = 0
    checks = _checks(n)
    width = max(len(name) for name, _ in checks)
    for name, check in checks:
        t0 = time.perf_counter()
        try:
            ok, figure = check()
        except Exception as exc:  # a check that raises has failed
            ok, figure = False, f"{type(exc).__name__}: {exc}"
        dt = time.perf_counter() - t0
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<{width}}  {figure} "
              f"({dt:.2f} s)", flush=True)
    total = time.perf_counter() - t_all
    print(f"self-check {'passed' if not failed else 'FAILED'}: "
          f"{len(checks) - failed} of {len(checks)} checks in {total:.1f} s")
    return not failed
