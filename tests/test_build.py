"""The installed extension really is built on the x86-64 inline-asm atomics,
and holds only the library.

Disassembles ``lockfree._lockfree`` with ``objdump -d`` and looks for the
instructions the atomics layer promises: ``lock cmpxchg``, ``xchg`` with a
memory operand, ``lock xadd``, ``lock bts``/``lock btr``, and ``pause`` in
the spin loops.  A silent fallback to the portable layer (or a compiler that
turned the asm into something else) would show up here.  ``nm -D`` of it
shows no tool (bench harness, demos, Treiber stack, FFI floor): those live
in ``lockfree._tools``.
"""

import platform
import re
import shutil
import subprocess

import pytest

import lockfree
import lockfree._lockfree
import lockfree._tools

OBJDUMP = shutil.which("objdump")
NM = shutil.which("nm")


def _why_not_asm():
    """Why the disassembly tests cannot run here (None: they can).  The nm
    test below runs on every build: the split holds everywhere."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "inline-asm atomics exist only on x86-64"
    if OBJDUMP is None:
        return "objdump not installed"
    if lockfree.build_info()["atomics"] != "x86-64-asm":
        return ("extension built with the portable atomics layer "
                "(LOCKFREE_ATOMICS=portable)")
    return None


NOT_ASM = _why_not_asm()


_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:\s*$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\t(.*)$")

# Mnemonics are matched at the start of the instruction text, in AT&T
# ("lock cmpxchg %rdx,(%rdi)") or Intel ("lock cmpxchg QWORD PTR [rdi],rdx")
# syntax, with or without a size suffix.
LOCK_CMPXCHG = re.compile(r"^lock\s+cmpxchg[bwlq]?\s")
LOCK_XADD = re.compile(r"^lock\s+xadd[bwlq]?\s")
LOCK_BTS = re.compile(r"^lock\s+bts[wlq]?\s")
LOCK_BTR = re.compile(r"^lock\s+btr[wlq]?\s")
PAUSE = re.compile(r"^pause\b")
LFENCE = re.compile(r"^lfence\b")


def is_xchg_mem(insn: str) -> bool:
    """xchg with a memory operand (implicitly locked).  Register-only forms
    such as "xchg %ax,%ax" are the 2-byte nop compilers use for padding and
    must not count."""
    m = re.match(r"^(?:lock\s+)?xchg[bwlq]?\s+(.*)$", insn)
    return bool(m) and ("(" in m.group(1) or "[" in m.group(1))


def _parse(text: str) -> dict[str, list[str]]:
    """{function name: [instruction text, ...]} from objdump -d output.

    Instruction text is the last tab-separated field (the raw bytes column,
    if present, comes before it), whitespace-collapsed; a prefix that objdump
    printed on a line of its own ("lock") is joined to the next instruction.
    """
    funcs: dict[str, list[str]] = {}
    cur: list[str] = funcs.setdefault("", [])
    pending = ""
    for line in text.splitlines():
        m = _FUNC.match(line)
        if m:
            # A stripped library is labelled by its dynamic symbols, with
            # their version: "lf_atomic_load@@Base".  Labels with an offset
            # ("...@@Base-0xc0") are not function starts and stay as they are.
            name = re.sub(r"^([\w.$]+)@@[\w.]+$", r"\1", m.group(1))
            cur = funcs.setdefault(name, [])
            pending = ""
            continue
        m = _INSN.match(line)
        if not m:
            continue
        insn = " ".join(m.group(1).split("\t")[-1].split())
        if not insn:
            continue
        if insn in ("lock", "lock;"):
            pending = "lock "
            continue
        cur.append(pending + insn)
        pending = ""
    return funcs


@pytest.fixture(scope="module")
def disasm() -> dict[str, list[str]]:
    if NOT_ASM:
        pytest.skip(NOT_ASM)
    path = lockfree._lockfree.__file__
    cp = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", path],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    funcs = _parse(cp.stdout)
    assert sum(map(len, funcs.values())) > 100, cp.stdout[:2000]
    return funcs


def _insns(funcs, name):
    """Instructions of one function, or of the whole text if the library is
    stripped of its symbol names."""
    if name in funcs:
        return funcs[name]
    if any(f.startswith("lf_") for f in funcs):
        pytest.fail(f"{name} not found in the disassembly")
    return [i for body in funcs.values() for i in body]


def _has(insns, pred):
    if isinstance(pred, re.Pattern):
        return any(pred.search(i) for i in insns)
    return any(pred(i) for i in insns)


def test_parser_handles_objdump_forms():
    text = (
        "0000000000001000 <f>:\n"
        "    1000:\tf0 48 0f b1 17       \tlock cmpxchg %rdx,(%rdi)\n"
        "    1005:\tlock\n"
        "    1006:\txadd   %rax,(%rdi)\n"
        "    100a:\t66 90                \txchg   %ax,%ax\n"
        "    100c:\tpause  \n"
        "    100e:\tlock cmpxchg QWORD PTR [rdi],rdx\n"
    )
    f = _parse(text)["f"]
    assert LOCK_CMPXCHG.search(f[0]) and LOCK_CMPXCHG.search(f[4])
    assert LOCK_XADD.search(f[1])
    assert not is_xchg_mem(f[2])
    assert PAUSE.search(f[3])
    g = _parse("0000000000001110 <lf_atomic_load@@Base>:\n"
               "    1110:\tmov    (%rdi),%rax\n")
    assert g["lf_atomic_load"] == ["mov (%rdi),%rax"]
    assert is_xchg_mem("xchg %rax,(%rdi)")
    assert is_xchg_mem("xchg QWORD PTR [rdi],rax")


EXPECTED = [
    ("lf_atomic_cmpxchg", LOCK_CMPXCHG, "lock cmpxchg"),
    ("lf_atomic_exchange", is_xchg_mem, "xchg with a memory operand"),
    ("lf_atomic_store", is_xchg_mem, "xchg with a memory operand"),
    ("lf_atomic_fetch_add", LOCK_XADD, "lock xadd"),
    ("lf_atomic_fetch_sub", LOCK_XADD, "lock xadd"),
    ("lf_atomic_add_fetch", LOCK_XADD, "lock xadd"),
    ("lf_atomic_test_and_set_bit", LOCK_BTS, "lock bts"),
    ("lf_atomic_test_and_clear_bit", LOCK_BTR, "lock btr"),
    # The seqlock's copy-out readers (Python's read()) wait for the
    # counter's load before copying: see "Readers and the writer's cache
    # line" in csrc/seqlock.h.
    ("lf_seq_try_read", LFENCE, "lfence"),
    ("lf_seq_read_until", LFENCE, "lfence"),
]


@pytest.mark.parametrize("func, pred, what",
                         [pytest.param(*e, id=e[0]) for e in EXPECTED])
def test_atomic_function_uses(disasm, func, pred, what):
    insns = _insns(disasm, func)
    assert _has(insns, pred), f"{func} has no {what}:\n" + "\n".join(insns)


def test_whole_text_has_every_instruction(disasm):
    everything = [i for body in disasm.values() for i in body]
    missing = [what for what, pred in [("lock cmpxchg", LOCK_CMPXCHG),
                                       ("xchg (memory)", is_xchg_mem),
                                       ("lock xadd", LOCK_XADD)]
               if not _has(everything, pred)]
    assert not missing, f"missing from the extension: {missing}"


def test_spin_loops_use_pause(disasm):
    """pause (lf_cpu_relax) belongs to the spin-wait loops of the lock
    primitives; until one is built into the extension there is nothing to
    find."""
    spinners = [f for f in disasm
                if re.match(r"lf_(spin|ticket|rwlock|seqlock|rcu)", f)]
    if not spinners:
        pytest.skip("no spin-loop primitive (spinlock, ticket lock, rwlock, "
                    "seqlock, RCU) in the extension yet")
    everything = [i for body in disasm.values() for i in body]
    assert _has(everything, PAUSE), (
        f"no pause anywhere, though these spin: {spinners}")


# -- the runtime extension holds only the library ---------------------------

TOOL_SYMBOL = re.compile(r"^lf_(bench|demo|treiber|noop)")


def _dynamic_symbols(path) -> set[str]:
    cp = subprocess.run([NM, "-D", "--defined-only", path],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    return {line.split()[-1].split("@")[0] for line in cp.stdout.splitlines()
            if line.strip()}


@pytest.mark.skipif(NM is None, reason="nm (binutils) not installed")
def test_runtime_extension_exports_no_tool():
    """lockfree._lockfree exports the library and no tool symbol: the bench
    harness, demos, Treiber stack and lf_noop floors are lockfree._tools',
    and test hooks (lf_*debug*, lf_test_*) exist only in the C stress
    programs' builds (LF_TEST_HOOKS)."""
    syms = _dynamic_symbols(lockfree._lockfree.__file__)
    assert {"PyInit__lockfree", "lf_atomic_load", "lf_spin_release",
            "lf_kfifo_put"} <= syms, sorted(syms)[:20]
    tools = sorted(s for s in syms if TOOL_SYMBOL.match(s))
    assert not tools, f"tool symbols in the runtime extension: {tools}"
    hooks = sorted(s for s in syms if "debug" in s or s.startswith("lf_test"))
    assert not hooks, f"test hooks in the runtime extension: {hooks}"
    # ... and the tools are where they belong (built with hidden
    # visibility: the module exports its init function, no lf_ name).
    tsyms = _dynamic_symbols(lockfree._tools.__file__)
    assert "PyInit__tools" in tsyms
    assert not [s for s in tsyms if s.startswith("lf_")], sorted(tsyms)
    for name in ("lf_bench_run", "lf_demo_cas_retry", "lf_treiber_pop",
                 "lf_noop1"):
        assert hasattr(lockfree._tools.lib, name)


@pytest.mark.skipif(NM is None, reason="nm (binutils) not installed")
def test_runtime_extension_exports_only_lf_names():
    """Every symbol lockfree._lockfree exports is its init function or an
    lf_ name: what the C files of one primitive share between them (the
    kfifo's kfifo_<op> bodies, csrc/kfifo_impl.h's LF_KFIFO_PRIVATE) stays
    hidden.  Names with a leading underscore (toolchain, sanitizers) are
    not ours."""
    syms = _dynamic_symbols(lockfree._lockfree.__file__)
    stray = sorted(s for s in syms if s != "PyInit__lockfree"
                   and not s.startswith(("lf_", "_")))
    assert not stray, f"exported, not an lf_ name: {stray}"
