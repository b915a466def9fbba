"""seqlock demo: copying shared memory while it is written tears it; a seqlock
does not.

A writer process replaces a 4 KiB record (512 words, all equal) with one C
call per write (``SeqBytes.write``: a memcpy under the seqlock).  A reader
process copies it in two ways: ``SeqBytes.read()`` (the seqlock protocol),
and, as the control, the very same bytes of the shared segment through a
memoryview (one memcpy, no protocol).  A copy whose words differ is torn.
"""

from __future__ import annotations

import multiprocessing as mp
import struct
import time
from typing import TYPE_CHECKING

from .._ffi import ffi
from ..seqlock import SeqBytes

if TYPE_CHECKING:
    import argparse
    import multiprocessing.queues
    import multiprocessing.synchronize

    from . import MpContext

TITLE = "a reader copies a record while a writer process writes it"

SIZE = 4096
_PATTERNS = [struct.pack("Q", 0x0101010101010101 * k) * (SIZE // 8)
             for k in range(1, 9)]


def _torn(data: bytes) -> bool:
    return data.count(data[:8]) != SIZE // 8


def _writer(rec: SeqBytes,
            stop: multiprocessing.synchronize.Event) -> None:
    write, patterns = rec.write, _PATTERNS
    n = len(patterns)
    i = 0
    while not stop.is_set():
        for _ in range(1000):
            write(patterns[i % n])
            i += 1
    rec.close()


def _reader(rec: SeqBytes, reads: int, patience: float,
            out: multiprocessing.queues.Queue[dict[str, int]]) -> None:
    """Runs in the reader process: count torn copies, both ways.  Goes on
    past ``reads`` copies (for at most ``patience`` seconds) until the
    control has torn at least once: on a busy 2-core machine the writer
    may not run alongside the reader for a while."""
    # The copy the writer writes, where this process's handle (its
    # geometry checked at attach) says it is: never an offset read from
    # the shared state.
    copy = rec._h.copy0
    raw = memoryview(ffi.buffer(copy, SIZE))
    read = rec.read
    n = torn = torn_raw = retries = 0
    seq0, end = rec.sequence, time.monotonic() + patience
    while n < reads or (torn_raw == 0 and time.monotonic() < end):
        for _ in range(100):
            torn += _torn(read())
            retries += rec.last_retries
            torn_raw += _torn(bytes(raw))  # the control: no protocol
        n += 100
    writes = rec.sequence - seq0
    raw.release()
    rec.close()
    out.put({"reads": n, "torn": torn, "retries": retries,
             "torn_unprotected": torn_raw, "writes_seen": writes})


def measure(reads: int = 20_000, ctx: MpContext | None = None,
            latch: bool = False, patience: float = 20.0) -> dict[str, int]:
    """Writer process + reader process on one shared SeqBytes; returns
    ``{"reads", "torn", "retries", "torn_unprotected", "writes_seen"}``
    (``writes_seen``: sequence-counter steps during the reads)."""
    ctx = ctx or mp.get_context()
    with SeqBytes(SIZE, _PATTERNS[0], latch=latch, shared=True) as rec:
        stop, out = ctx.Event(), ctx.Queue()
        writer = ctx.Process(target=_writer, args=(rec, stop))
        reader = ctx.Process(target=_reader,
                             args=(rec, reads, patience, out))
        writer.start()
        try:
            reader.start()
            result: dict[str, int] = out.get(timeout=300)
            reader.join()
        finally:
            stop.set()
            writer.join(60)
            if writer.is_alive():  # pragma: no cover
                writer.kill()
            if reader.is_alive():  # pragma: no cover
                reader.kill()
    return result


def run(args: argparse.Namespace) -> int:
    reads = args.iterations or 20_000
    print(f"A writer process rewrites a {SIZE}-byte record (all words "
          "equal) in a loop;\na reader process copies it "
          f"at least {reads:,} times each way:\n")
    r = measure(reads)
    print(f"  {'':26}{'copies':>10}{'torn':>10}")
    print(f"  {'SeqBytes.read()':26}{r['reads']:>10,}{r['torn']:>10,}"
          f"   ({r['retries']:,} retries)")
    print(f"  {'memoryview copy (no lock)':26}{r['reads']:>10,}"
          f"{r['torn_unprotected']:>10,}")
    print(f"  (the writer wrote {r['writes_seen']:,} records meanwhile)")
    print("\nThe plain copy often catches the writer half-way: part old "
          "record, part new.\nThe seqlock reader notices (the sequence "
          "counter moved during its copy)\nand copies again, so every "
          "snapshot it returns is whole.")
    return 0 if r["torn"] == 0 else 1
