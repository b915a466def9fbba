"""writer-rate: readers do not slow a seqlock's writer; they do slow a
lock's.

This process writes a 4-field record (``"qqqd"``) as fast as it can, for a
fixed time, alternately alone and while a reader process reads it in a
tight loop.  Protections compared: ``SeqRecord`` (readers never touch the
writer lock) and the obvious alternative, a ``multiprocessing.Lock``
around a shared ``ctypes`` structure (readers take the lock).  A third
kind, ``store``, is the floor any shared write from Python pays:
``AtomicInt.store()`` (one 8-byte store through one one-argument cffi
call) while the reader polls that word with ``load()``.  Rates are
writes per second of wall-clock time and per second of this thread's CPU
time minus the time this process waited for a CPU (on a busy machine,
other work takes the CPUs; that measure still counts time blocked on the
lock).  Ratios are paired: each hammered trial against the solo trials
just before and after it, median over the trials.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from multiprocessing import sharedctypes
from typing import TYPE_CHECKING, TypeAlias

from ..atomic import AtomicInt
from ..seqlock import SeqRecord

if TYPE_CHECKING:
    import argparse
    import multiprocessing.synchronize

    from . import MpContext

TITLE = "a writer's rate with and without a reader hammering"

FORMAT = "qqqd"
KINDS = ("seqlock", "mp.Lock", "store")


class Rec(ctypes.Structure):
    _fields_ = [("a", ctypes.c_int64), ("b", ctypes.c_int64),
                ("c", ctypes.c_int64), ("d", ctypes.c_double)]


#: What the reader process gets: the record, or the structure and its lock.
Shared: TypeAlias = ("SeqRecord | AtomicInt"
                     " | tuple[Rec, multiprocessing.synchronize.Lock]")
#: (writer, reader or None, what the reader process gets, cleanup)
Made: TypeAlias = tuple[Callable[..., object],
                        "Callable[[], object] | None", Shared,
                        Callable[[], None]]


def make(kind: str, ctx: MpContext) -> Made:
    """The shared record of ``kind``: (writer function, reader function,
    what to pass to the reader process, cleanup).  The writer takes the
    four values, except ``store``'s, which takes one."""
    if kind == "seqlock":
        rec = SeqRecord(FORMAT, shared=True)
        return rec.write, rec.read, rec, rec.close
    if kind == "store":
        word = AtomicInt(0, shared=True)
        return word.store, word.load, word, word.close
    if kind != "mp.Lock":
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    s, lock = sharedctypes.RawValue(Rec), ctx.Lock()

    def write(a: int, b: int, c: int, d: float) -> None:
        with lock:
            s.a = a
            s.b = b
            s.c = c
            s.d = d
    return write, None, (s, lock), lambda: None


def _lock_reader(s: Rec, lock: multiprocessing.synchronize.Lock
                 ) -> Callable[[], tuple[int, int, int, float]]:
    def read() -> tuple[int, int, int, float]:
        with lock:
            return (s.a, s.b, s.c, s.d)
    return read


def _hammer(obj: Shared, flag: AtomicInt, reads: AtomicInt) -> None:
    """Reader process: while flag is 1, read in a tight loop (counting the
    reads); 0: idle; -1: exit."""
    read: Callable[[], object]
    if isinstance(obj, SeqRecord):
        read = obj.read
    elif isinstance(obj, AtomicInt):
        read = obj.load
    else:
        read = _lock_reader(*obj)
    load, count = flag.load, reads.fetch_add
    while True:
        f = load()
        if f < 0:
            break
        if f == 0:
            time.sleep(0.001)
            continue
        for _ in range(1000):
            read()
        count(1000)
    if not isinstance(obj, tuple):
        obj.close()
    flag.close()
    reads.close()


def _runq_wait_ns() -> int:
    """Time this thread spent runnable but waiting for a CPU (schedstat),
    or 0 where the kernel does not say."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):  # pragma: no cover
        return 0


def _rate(write: Callable[..., object], seconds: float,
          one_arg: bool = False) -> tuple[float, float]:
    """Writes per wall second, and per second of wall time minus the time
    this thread waited for a CPU (on a shared machine, other work takes
    CPUs; time blocked on a lock still counts).  ``write(i, i, i, 0.5)``,
    or ``write(i)`` if ``one_arg``."""
    n = 0
    t0, q0 = time.perf_counter(), _runq_wait_ns()
    end = t0 + seconds
    while True:
        if one_arg:
            for i in range(n, n + 500):
                write(i)
        else:
            for i in range(n, n + 500):
                write(i, i, i, 0.5)
        n += 500
        t1 = time.perf_counter()
        if t1 >= end:
            break
    wall = t1 - t0
    busy = wall - (_runq_wait_ns() - q0) / 1e9
    return n / wall, n / max(busy, 1e-9)


def measure(kind: str = "seqlock", seconds: float = 0.05, trials: int = 21,
            ctx: MpContext | None = None) -> dict[str, float]:
    """Writer rates alone and with a reader process hammering, paired.

    Trials alternate solo, hammered, solo, ..., solo (``trials`` hammered
    ones, each ``seconds`` long).  Each hammered rate is divided by the mean
    of the solo rates just before and after it, and the ratio reported is
    the median of those: this VM's speed drifts by tens of percent over
    seconds, which comparing two medians taken at different times would
    fold into the ratio.

    Returns ``{"solo", "hammered", "ratio", "solo_run", "hammered_run",
    "ratio_run", "ratio_q1", "ratio_q3", "lost_ns", "reader_reads_per_s"}``:
    median writes/s per wall second and, ``_run``, per second not spent
    waiting for a CPU; ``ratio``/``ratio_run`` the paired medians,
    ``ratio_q1`` and ``ratio_q3`` the quartiles of the wall-clock ratios;
    ``lost_ns`` the paired median of what the reader added to each write
    (ns per hammered write minus ns per solo write); the reader's reads/s
    while hammering."""
    ctx = ctx or mp.get_context()
    write, _, obj, cleanup = make(kind, ctx)
    one_arg = kind == "store"
    flag, reads = AtomicInt(0, shared=True), AtomicInt(0, shared=True)
    reader = ctx.Process(target=_hammer, args=(obj, flag, reads))
    reader.start()
    solo: list[tuple[float, float]] = []
    ham: list[tuple[float, float]] = []
    hammer_s = 0.0

    def trial(state: int, out: list[tuple[float, float]]) -> None:
        flag.store(state)
        time.sleep(0.003)  # the reader notices within ~1 ms
        out.append(_rate(write, seconds, one_arg))

    try:
        time.sleep(0.05)
        _rate(write, 0.05, one_arg)  # warm up
        trial(0, solo)
        for _ in range(trials):
            t0 = time.perf_counter()
            trial(1, ham)
            hammer_s += time.perf_counter() - t0
            trial(0, solo)
    finally:
        flag.store(-1)
        reader.join(60)
        if reader.is_alive():  # pragma: no cover
            reader.kill()
        flag.close()
        n_reads = reads.load()
        reads.close()
        cleanup()
    med = {"reader_reads_per_s": n_reads / max(hammer_s, 1e-9)}
    for key, runs in (("solo", solo), ("hammered", ham)):
        med[key] = statistics.median(r[0] for r in runs)
        med[key + "_run"] = statistics.median(r[1] for r in runs)
    for suffix, col in (("", 0), ("_run", 1)):
        ratios = [h[col] * 2 / (solo[i][col] + solo[i + 1][col])
                  for i, h in enumerate(ham)]
        med["ratio" + suffix] = statistics.median(ratios)
        if not suffix:
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 \
                else ratios * 3
            med["ratio_q1"], med["ratio_q3"] = q[0], q[2]
    med["lost_ns"] = statistics.median(
        1e9 / h[0] - (1e9 / solo[i][0] + 1e9 / solo[i + 1][0]) / 2
        for i, h in enumerate(ham))
    return med


def run(args: argparse.Namespace) -> int:
    print("This process writes a 4-field record for 50 ms at a time, "
          "alternately alone\nand while a reader process reads it in a tight "
          "loop; each hammered trial is\ncompared with the solo trials "
          "around it (median of 21 such ratios).\n'store' is the floor: one "
          "AtomicInt.store(i) per call, the reader polling\nthat word.\n")
    print(f"  {'':10}{'alone':>12}{'hammered':>12}{'ratio':>8}"
          f"{'ns lost per write':>19}")
    for kind in KINDS:
        m = measure(kind)
        print(f"  {kind:10}{m['solo'] / 1e3:>10.0f}k/s"
              f"{m['hammered'] / 1e3:>10.0f}k/s{m['ratio']:>8.2f}"
              f"{m['lost_ns']:>19.0f}")
    print("\nSeqlock readers never take the writer's lock: they only read "
          "memory the writer\nwrites, so each write has to take one cache "
          "line back from the reader's core,\nas the single store does.  "
          "With a lock, every read holds the writer out for\nits duration.")
    return 0
