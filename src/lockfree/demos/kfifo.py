"""kfifo: free-running indexes, size-1 masking and the two-part copy."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._ffi import ffi
from ..kfifo import KfifoBytes

Say = Callable[[str], object]

TITLE = "kfifo: in, out, size-1 masking and the two-part copy, step by step"


def state(kf: KfifoBytes) -> tuple[int, int, int, int, bytes]:
    """(in, out, size, mask, ring bytes) of a private byte-mode Kfifo."""
    st = kf._state
    return (int(getattr(st, "in")), int(st.out), int(st.size),
            int(st.mask), bytes(ffi.buffer(st.data, st.size)))


def picture(kf: KfifoBytes, say: Say = print) -> None:
    i, o, size, mask, data = state(kf)
    slots = {(o + k) & mask for k in range((i - o) & 0xFFFFFFFF)}
    cells = " ".join(chr(data[k]) if k in slots else "." for k in range(size))
    marks = [" "] * (2 * size)
    marks[2 * (o & mask)] = "o"
    marks[2 * (i & mask)] = "i" if (i & mask) != (o & mask) or i == o \
        else "*"
    used = (i - o) & 0xFFFFFFFF
    say(f"    ring [{cells}]   in={i} out={o} len=in-out={used}"
        f" free={size - ((i - o) & 0xFFFFFFFF)}")
    say(f"          {''.join(marks).rstrip()}      (i = in & {mask}, "
        f"o = out & {mask})")


def _split(idx: int, n: int, size: int) -> tuple[int, int, int]:
    off = idx & (size - 1)
    first = min(n, size - off)
    return off, first, n - first


def step_put(kf: KfifoBytes, data: bytes, say: Say = print) -> int:
    i, o, size, _, _ = state(kf)
    n = min(len(data), size - ((i - o) & 0xFFFFFFFF))
    off, first, second = _split(i, n, size)
    how = (f"one copy at [{off}..{off + first - 1}]" if not second else
           f"two copies: [{off}..{size - 1}] then wrap to [0..{second - 1}]")
    say(f"  put({data!r}): {n} bytes fit; {how}; then in += {n}")
    written = kf.put(data, block=False)
    picture(kf, say)
    return written


def step_get(kf: KfifoBytes, n: int, say: Say = print) -> bytes:
    i, o, size, _, _ = state(kf)
    k = min(n, (i - o) & 0xFFFFFFFF)
    off, first, second = _split(o, k, size)
    how = (f"one copy from [{off}..{off + first - 1}]" if not second else
           f"two copies: [{off}..{size - 1}] then [0..{second - 1}]")
    got = kf.get(n, block=False)
    say(f"  get({n}) -> {got!r}: {how}; then out += {len(got)}")
    picture(kf, say)
    return got


def script(say: Say = print) -> list[bytes]:
    """The whole walk-through; returns what each get returned."""
    got: list[bytes] = []
    with KfifoBytes(8) as kf:
        say("An 8-byte ring. in and out only ever grow; the slot is "
            "index & (size-1).")
        picture(kf, say)
        step_put(kf, b"ABCDE", say)
        got.append(step_get(kf, 3, say))
        step_put(kf, b"FGHIJ", say)
        got.append(step_get(kf, 7, say))
        say("\nNear 2**32 the unsigned indexes wrap too, and in - out is "
            "still the length:")
        kf._set_indexes(2**32 - 3)
        picture(kf, say)
        step_put(kf, b"WXYZ", say)
        got.append(step_get(kf, 4, say))
    return got


def run(args: argparse.Namespace) -> int:
    print("The kernel's kfifo keeps two free-running unsigned indexes: the "
          "producer\nonly writes `in`, the consumer only writes `out`. "
          "Because the size is a power\nof two, `index & (size - 1)` is "
          "the slot, `in - out` the length (even after\nthe indexes wrap "
          "around 2**32), and a copy that crosses the end of the buffer\n"
          "is done in two parts.\n")
    got = script()
    print("\nThe producer copies the data first, then publishes `in` with "
          "a release store\n(the kernel's smp_wmb); the consumer reads `in` "
          "with an acquire load\n(smp_rmb) before copying out. Neither side "
          "ever writes the other's index,\nso one producer and one "
          "consumer need no lock at all.")
    return 0 if got == [b"ABC", b"DEFGHIJ", b"WXYZ"] else 1
