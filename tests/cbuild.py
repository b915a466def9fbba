"""Build and run the standalone C stress programs in ``tests/c/``.

Every ``tests/c/<name>_stress.c`` follows one contract: a standalone ``main``
linked with all of ``csrc/*.c`` (the library's core), ``csrc/shims/*.c``
(its binding shims, so that the calls Python makes run under the sanitizers
too) and ``csrc/tools/*.c`` (the tools, e.g. the Treiber stack; csrc/ and
csrc/tools/ are on the include path);
stdout is ``key=value`` lines and a last line ``<name>: OK`` (or ``<name>:
FAIL <why>``); exit status 0 iff every invariant held; ``LOCKFREE_LONG=1``
selects long mode.

Each program is built in three variants, into
``tests/c/build/<name>-<variant>`` (git-ignored):

``asm``
    the default x86-64 inline-assembly atomics, optimised, warnings are errors;
``tsan``
    ThreadSanitizer on the portable ``__atomic`` atomics layer (TSAN cannot
    see inside inline asm, so on the asm layer it would only see races);
``asan``
    AddressSanitizer + UndefinedBehaviorSanitizer on the asm layer;
``aarch64``
    a second architecture: the portable ``__atomic`` layer cross-compiled
    for 64-bit ARM (Debian's ``gcc-aarch64-linux-gnu``, statically linked)
    and run under ``qemu-aarch64`` user emulation, with
    ``LOCKFREE_EMULATED=1`` so the programs shorten their runs and leave
    out timing bounds (fairness, wake-up latency) that an emulator on a
    loaded machine cannot meet.  What it proves: the code builds and its
    invariants hold with ARM's instructions (LDXR/STXR or LSE atomics,
    DMB barriers).  What it does not: qemu runs the guest threads on the
    host's strongly ordered x86-64 memory, so ARM's weak reorderings never
    happen here; ThreadSanitizer (the ``tsan`` variant) and the barrier
    comments cover those.

Builds are cached: a binary is rebuilt only when the hash of its sources
(the program, every ``csrc/`` file), the compiler or the flags change.
A variant whose toolchain is missing (no gcc, no libtsan/libasan/libubsan) is
detected once by building and running a trivial threaded program, and the
tests using it are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
SHIMS = CSRC / "shims"
TOOLS = CSRC / "tools"
CDIR = ROOT / "tests" / "c"
BUILD = CDIR / "build"

# LF_TEST_HOOKS: csrc/lockwait.h's test hook (absent from the library).
# LF_BENCH_NO_CK: the bench harness without Concurrency Kit, as in the wheel
# (the programs must not depend on optional headers).
# LF_KFIFO_HOT=512: the kfifo records producer's restart (csrc/kfifo_rec.c)
# from offset 512 instead of 128 KiB, so that kfifo_rec_stress's small
# record rings restart too, under every variant.
_COMMON = ["-pthread", "-std=gnu11", "-Wall", "-Wextra", "-DLF_TEST_HOOKS",
           "-DLF_BENCH_NO_CK", "-DLF_KFIFO_HOT=512u"]

VARIANTS: dict[str, list[str]] = {
    # (see the module doc; compiler and runner in CROSS)
    "asm": ["-O2", "-g", *_COMMON, "-Werror"],
    # No -Werror: gcc's -Wtsan warns about __atomic_thread_fence, which the
    # portable layer uses for lf_smp_mb() and TSAN does not model.
    "tsan": ["-DLF_ATOMICS_PORTABLE=1", "-fsanitize=thread", "-O1", "-g",
             *_COMMON],
    "asan": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=all", "-O1", "-g", *_COMMON],
    "aarch64": ["-DLF_ATOMICS_PORTABLE=1", "-static", "-O2", *_COMMON,
                "-Werror"],
}

# Cross variants: (compiler, emulator, Debian packages that bring them).
CROSS: dict[str, tuple[str, str, str]] = {
    "aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64",
                "gcc-aarch64-linux-gnu qemu-user"),
}

# Options first, so a user's own *SAN_OPTIONS (appended after) win.
SANITIZER_ENV = {
    "TSAN_OPTIONS": "halt_on_error=1 second_deadlock_stack=1",
    "ASAN_OPTIONS": "halt_on_error=1 detect_leaks=1 abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1 print_stacktrace=1",
}

# What a sanitizer prints when it found something.
SANITIZER_MARKERS = (
    "WARNING: ThreadSanitizer",
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
)

# TSAN's shadow-memory layout assumes a maximum of 28-30 bits of mmap ASLR;
# newer kernels may randomise more, and the runtime dies at start with this.
# Running with ASLR off (setarch -R) is the documented workaround.
_ASLR_FAILURE = "unexpected memory mapping"

QUICK_TIMEOUT = 120.0
LONG_TIMEOUT = 3600.0


def long_mode() -> bool:
    """Whether LOCKFREE_LONG=1 asks for long runs (the C side and
    conftest.py use the same rule)."""
    return os.environ.get("LOCKFREE_LONG") == "1"


def default_timeout() -> float:
    return LONG_TIMEOUT if long_mode() else QUICK_TIMEOUT


def stress_programs() -> list[str]:
    """Names of every tests/c/*_stress.c, sorted."""
    return sorted(p.stem for p in CDIR.glob("*_stress.c"))


def compiler(variant: str = "asm") -> str | None:
    if variant in CROSS:
        return shutil.which(CROSS[variant][0])
    return shutil.which(os.environ.get("CC", "gcc"))


@functools.cache
def _compiler_id(cc: str) -> str:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True)
    return f"{cc}\n{out.stdout.splitlines()[0] if out.stdout else ''}"


def _env(variant: str = "asm") -> dict[str, str]:
    env = dict(os.environ)
    for key, ours in SANITIZER_ENV.items():
        theirs = env.get(key, "")
        env[key] = f"{ours} {theirs}".strip()
    if variant in CROSS:
        env["LOCKFREE_EMULATED"] = "1"
    return env


def _setarch_prefix() -> list[str] | None:
    setarch = shutil.which("setarch")
    if setarch is None:
        return None
    return [setarch, platform.machine(), "-R"]


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """Whether a variant can be built and run here, and how to run it."""
    ok: bool
    reason: str = ""
    prefix: tuple[str, ...] = ()  # e.g. setarch ... -R for TSAN


_PROBE_C = r"""
#include <pthread.h>
#include <stdio.h>
static int x;
static void *f(void *a)
{
	(void)a;
	__atomic_fetch_add(&x, 1, __ATOMIC_SEQ_CST);
	return 0;
}
int main(void)
{
	pthread_t t;
	if (pthread_create(&t, 0, f, 0)) return 1;
	f(0);
	pthread_join(t, 0);
	printf("probe=%d\n", x);
	return x != 2;
}
"""


@functools.cache
def toolchain(variant: str) -> Toolchain:
    """Probe once per session: compile and run a trivial threaded program."""
    cc = compiler(variant)
    if cc is None:
        name = CROSS[variant][0] if variant in CROSS else \
            os.environ.get("CC", "gcc")
        how = f" (apt-get install {CROSS[variant][2]})" \
            if variant in CROSS else ""
        return Toolchain(False, f"C compiler {name!r} not found{how}")
    prefix: list[str] = []
    if variant in CROSS:
        emu = shutil.which(CROSS[variant][1])
        if emu is None:
            return Toolchain(False, f"emulator {CROSS[variant][1]!r} not "
                             f"found (apt-get install {CROSS[variant][2]})")
        prefix = [emu]
    BUILD.mkdir(parents=True, exist_ok=True)
    src = BUILD / "probe.c"
    if not src.exists() or src.read_text() != _PROBE_C:
        tmp = src.with_suffix(f".c.{os.getpid()}")
        tmp.write_text(_PROBE_C)
        os.replace(tmp, src)
    exe = BUILD / f"probe-{variant}.{os.getpid()}"
    try:
        cp = subprocess.run([cc, *VARIANTS[variant], "-o", str(exe), str(src)],
                            capture_output=True, text=True, timeout=120)
        if cp.returncode == 0 and prefix:
            run = subprocess.run([*prefix, str(exe)], capture_output=True,
                                 text=True, timeout=60, env=_env(variant))
            if run.returncode == 0:
                return Toolchain(True, prefix=tuple(prefix))
            return Toolchain(False, f"{variant}: trivial program fails under "
                             f"{prefix[0]} (exit {run.returncode}): "
                             f"{run.stderr.strip()[-500:]}")
        if cp.returncode != 0:
            return Toolchain(False, f"{variant}: cannot build with "
                             f"{' '.join(VARIANTS[variant])} "
                             f"(sanitizer runtime missing?): "
                             f"{cp.stderr.strip()[-500:]}")
        run = subprocess.run([str(exe)], capture_output=True, text=True,
                             timeout=60, env=_env())
        if run.returncode == 0:
            return Toolchain(True)
        if _ASLR_FAILURE in run.stderr:
            prefix = _setarch_prefix()
            if prefix is not None:
                run2 = subprocess.run([*prefix, str(exe)], capture_output=True,
                                      text=True, timeout=60, env=_env())
                if run2.returncode == 0:
                    return Toolchain(True, prefix=tuple(prefix))
                return Toolchain(False, f"{variant}: runtime fails even under "
                                 f"{' '.join(prefix)}: "
                                 f"{run2.stderr.strip()[-500:]}")
        return Toolchain(False, f"{variant}: trivial program fails "
                         f"(exit {run.returncode}): "
                         f"{run.stderr.strip()[-500:]}")
    finally:
        exe.unlink(missing_ok=True)


def require(variant: str) -> Toolchain:
    """The variant's toolchain, or pytest.skip with the reason."""
    tc = toolchain(variant)
    if not tc.ok:
        if os.environ.get("CI") == "true":
            # CI installs gcc with its sanitizer runtimes (.ci/run): a
            # missing one there is a broken setup, not an optional extra.
            pytest.fail(f"CI must run every C build variant: {tc.reason}",
                        pytrace=False)
        pytest.skip(tc.reason)
    return tc


def _sources(name: str) -> list[Path]:
    return [CDIR / f"{name}.c", *sorted(CSRC.glob("*.c")),
            *sorted(SHIMS.glob("*.c")), *sorted(TOOLS.glob("*.c"))]


def _build_key(cc: str, name: str, variant: str) -> str:
    h = hashlib.sha256()
    h.update(_compiler_id(cc).encode())
    h.update("\0".join(VARIANTS[variant]).encode())
    # Headers too: every .c/.h under csrc/ (arch/ included), the program
    # and the headers the programs share (tests/c/*.h).
    inputs = [CDIR / f"{name}.c", *sorted(CDIR.glob("*.h")),
              *sorted(CSRC.rglob("*.[ch]"))]
    for p in inputs:
        h.update(str(p.relative_to(ROOT)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def build(name: str, variant: str) -> Path:
    """Compile tests/c/<name>.c + csrc/*.c + csrc/shims/*.c +
    csrc/tools/*.c for variant;
    cached by content.

    Skips when the toolchain for variant is missing; fails the test (with the
    compiler's output) when the sources do not compile.
    """
    require(variant)
    cc = compiler(variant)
    assert cc is not None
    BUILD.mkdir(parents=True, exist_ok=True)
    exe = BUILD / f"{name}-{variant}"
    stamp = BUILD / f"{name}-{variant}.key"
    key = _build_key(cc, name, variant)
    if exe.exists() and stamp.exists() and stamp.read_text() == key:
        return exe
    # Build to a private name and rename, so concurrent sessions (xdist)
    # never run a half-written binary.
    tmp = BUILD / f".{name}-{variant}.{os.getpid()}"
    # -latomic: the portable layer's 16-byte CAS lives in libatomic.
    cmd = [cc, *VARIANTS[variant], f"-I{CSRC}", f"-I{TOOLS}", "-o", str(tmp),
           *map(str, _sources(name)), "-latomic"]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if cp.returncode != 0:
        tmp.unlink(missing_ok=True)
        pytest.fail(f"building {name}-{variant} failed:\n$ {' '.join(cmd)}\n"
                    f"{cp.stdout}{cp.stderr}", pytrace=False)
    os.replace(tmp, exe)
    stamp_tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}")
    stamp_tmp.write_text(key)
    os.replace(stamp_tmp, stamp)
    return exe


@dataclasses.dataclass
class Result:
    name: str
    variant: str
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def figures(self) -> dict[str, str]:
        """First key=value of each stdout line: {'cas_total': '8', ...}."""
        out = {}
        for line in self.stdout.splitlines():
            head = line.split(None, 1)[0] if line.strip() else ""
            if "=" in head:
                k, v = head.split("=", 1)
                out[k] = v
        return out

    def extras(self, key: str) -> dict[str, str]:
        """The other key=value pairs on key's line: {'expected': '8', ...}."""
        for line in self.stdout.splitlines():
            parts = line.split()
            if parts and parts[0].startswith(key + "="):
                return dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        raise KeyError(key)

    @property
    def ok_line(self) -> bool:
        lines = self.stdout.strip().splitlines()
        return bool(lines) and lines[-1].strip() == f"{self.name}: OK"

    @property
    def sanitizer_reports(self) -> list[str]:
        text = self.stdout + self.stderr
        return [m for m in SANITIZER_MARKERS if m in text]

    def describe(self) -> str:
        return (f"$ {' '.join(self.cmd)}\n"
                f"exit status {self.returncode} after {self.seconds:.2f}s\n"
                f"--- stdout ---\n{self.stdout}"
                f"--- stderr ---\n{self.stderr}")


def run(name: str, variant: str, args: tuple[str, ...] = (),
        timeout: float | None = None) -> Result:
    """Build (if needed) and run one program; the sanitizer options are set
    and LOCKFREE_LONG is passed through from the environment."""
    exe = build(name, variant)
    tc = require(variant)
    if timeout is None:
        timeout = default_timeout()
    cmd = [*tc.prefix, str(exe), *args]
    t0 = time.monotonic()
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=timeout, env=_env(variant))
    except subprocess.TimeoutExpired as e:
        def _s(b):
            if isinstance(b, bytes):
                return b.decode(errors="replace")
            return b or ""
        res = Result(name, variant, cmd, -1, _s(e.stdout), _s(e.stderr),
                     time.monotonic() - t0)
        pytest.fail(f"{name}-{variant} timed out after {timeout:.0f}s\n"
                    f"{res.describe()}", pytrace=False)
    # The probe passed without setarch but the kernel's layout can still
    # trip TSAN on a given run; retry once with ASLR off.
    if (cp.returncode != 0 and not tc.prefix and _ASLR_FAILURE in cp.stderr
            and _setarch_prefix()):
        cmd = [*_setarch_prefix(), str(exe), *args]
        t0 = time.monotonic()
        cp = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=timeout, env=_env())
    return Result(name, variant, cmd, cp.returncode, cp.stdout, cp.stderr,
                  time.monotonic() - t0)


if __name__ == "__main__":
    # Manual use: python tests/cbuild.py [name ...] builds and runs them all.
    names = sys.argv[1:] or stress_programs()
    status = 0
    for n in names:
        for v in VARIANTS:
            tc = toolchain(v)
            if not tc.ok:
                print(f"{n}-{v}: SKIP {tc.reason}")
                continue
            r = run(n, v)
            good = r.returncode == 0 and r.ok_line and not r.sanitizer_reports
            status |= not good
            print(f"{n}-{v}: {'OK' if good else 'FAIL'} ({r.seconds:.2f}s)")
            if not good:
                print(r.describe())
    sys.exit(status)
