"""aba: the ABA problem on a Treiber stack, scripted, and the tagged fix."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .._tools import ffi, lib

TITLE = ("Treiber stack: a plain CAS suffers ABA, a tagged 16-byte CAS "
         "does not")
NAMES = "ABCDE"
NIL = lib.LF_TREIBER_NIL


class Stack:
    """A C Treiber stack over nodes A..E (demo only)."""

    def __init__(self, tagged: bool) -> None:
        size = lib.lf_treiber_size(len(NAMES))
        self._mem = ffi.new("char[]", size + 16)  # 16-aligned for cmpxchg16b
        pad = -int(ffi.cast("uintptr_t", self._mem)) % 16
        self.s = ffi.cast("struct lf_treiber *", self._mem + pad)
        lib.lf_treiber_init(self.s, len(NAMES), int(tagged))

    def push(self, name: str) -> None:
        lib.lf_treiber_push(self.s, NAMES.index(name))

    def pop(self) -> str | None:
        node = lib.lf_treiber_pop(self.s)
        return None if node == NIL else NAMES[node]

    def take(self) -> str:
        """pop() where the script knows a node is there."""
        name = self.pop()
        if name is None:
            raise RuntimeError("the demo stack is unexpectedly empty")
        return name

    def pop_begin(self) -> Any:
        """A ``struct lf_treiber_snap *`` (cdata), or None if empty."""
        snap = ffi.new("struct lf_treiber_snap *")
        if not lib.lf_treiber_pop_begin(self.s, snap):
            return None
        return snap

    def pop_commit(self, snap: Any) -> bool:
        return bool(lib.lf_treiber_pop_commit(self.s, snap))

    @property
    def tag(self) -> int:
        return int(self.s.head.hi)

    def contents(self) -> list[str]:
        out = ffi.new("uint64_t[]", 2 * len(NAMES))
        n = lib.lf_treiber_walk(self.s, out, 2 * len(NAMES))
        return [NAMES[out[i]] for i in range(n)]


def script(tagged: bool, say: Callable[[str], object] = print
           ) -> dict[str, Any]:
    """Play the interleaving; return what happened (for tests too)."""
    st = Stack(tagged)
    for name in "CBA":
        st.push(name)
    kind = "tagged {index, tag} CAS (cmpxchg16b)" if tagged else \
        "plain index-only CAS"
    say(f"--- {kind} ---")
    say(f"stack (top first): {' '.join(st.contents())}    tag={st.tag}")
    snap = st.pop_begin()
    say(f"T1: pop() reads head = {NAMES[snap.top]}, next = "
        f"{NAMES[snap.next]} ... and is preempted before its CAS")
    t2_holds: list[str] = []
    for _ in range(2):
        t2_holds.append(st.take())
        say(f"T2: pop() -> {t2_holds[-1]}")
    st.push(t2_holds.pop(0))
    say(f"T2: push(A); T2 still holds B.   stack: {' '.join(st.contents())}"
        f"    tag={st.tag}")
    ok = st.pop_commit(snap)
    say(f"T1: CAS(head: A -> {NAMES[snap.next]}) "
        f"{'SUCCEEDS' if ok else 'fails (the tag moved on)'}")
    if ok:
        t1_got = NAMES[snap.top]
    else:
        t1_got = st.take()
        say(f"T1: retries: pop() -> {t1_got}")
    stack = st.contents()
    say(f"stack now: {' '.join(stack)}    T1 holds {t1_got}, T2 holds "
        f"{' '.join(t2_holds)}")
    owners = stack + [t1_got] + t2_holds
    corrupt = sorted(owners) != sorted("ABC")
    if corrupt:
        dup = sorted({n for n in owners if owners.count(n) > 1})
        lost = sorted(set("ABC") - set(owners))
        say(f"CORRUPTED: {' '.join(dup)} is both on the stack and held by "
            f"T2; {' '.join(lost) or 'nothing'} lost")
    else:
        say("consistent: every node is in exactly one place")
    return {"stack": stack, "t1": t1_got, "t2": t2_holds,
            "corrupt": corrupt}


def run(args: argparse.Namespace) -> int:
    print("A lock-free (Treiber) stack pops with\n"
          "    do { old = head; next = old->next; } "
          "while (!CAS(&head, old, next));\n"
          "If, between the read and the CAS, other threads pop A, pop B "
          "and push A back,\nhead is A again (A-B-A): a CAS that compares "
          "only the pointer succeeds and\ninstalls B, a node that is no "
          "longer on the stack. The interleaving is\nscripted, so this "
          "happens every time.\n")
    plain = script(tagged=False)
    print()
    tagged = script(tagged=True)
    print("\nThe fix: CAS the pointer together with a counter bumped on "
          "every change\n(x86-64 `lock cmpxchg16b`; the portable build "
          "uses a 16-byte __atomic CAS).\nThe kernel avoids ABA differently"
          " (RCU delays reuse of freed nodes).")
    return 0 if plain["corrupt"] and not tagged["corrupt"] else 1
