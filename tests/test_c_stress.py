"""Run every C stress program (tests/c/*_stress.c) in every build variant.

Each program checks its own invariants and says ``<name>: OK``; here we check
that it did, that it exited 0, and that no sanitizer reported anything.
See tests/cbuild.py for the variants and the program contract.
"""

import functools
import platform

import pytest

try:  # tests/ is a package (tests/__init__.py) ...
    from . import cbuild
except ImportError:  # ... or plain rootdir-relative modules
    import cbuild

PROGRAMS = cbuild.stress_programs()

# The atomics layer each variant must have compiled in, checked when the
# program prints an "atomics=" line.
_X86 = platform.machine().lower() in ("x86_64", "amd64")
EXPECTED_ATOMICS = {
    "asm": "x86-64-asm" if _X86 else "portable",
    "tsan": "portable",
    "asan": "x86-64-asm" if _X86 else "portable",
    "aarch64": "portable",
}


@functools.cache
def _run(name: str, variant: str) -> "cbuild.Result":
    """One run per program and variant per session, shared by the tests."""
    return cbuild.run(name, variant)


def _check(res: "cbuild.Result") -> None:
    """Fail with the program's whole output unless it ran clean."""
    why = []
    if res.sanitizer_reports:
        why.append(f"sanitizer reported {res.sanitizer_reports}")
    if res.returncode != 0:
        why.append(f"exit status {res.returncode}")
    if not res.ok_line:
        why.append(f"last line is not '{res.name}: OK'")
    if why:
        pytest.fail(f"{res.name}-{res.variant}: {'; '.join(why)}\n"
                    f"{res.describe()}", pytrace=False)


def test_programs_found():
    assert "atomic_stress" in PROGRAMS


@pytest.mark.parametrize("variant", list(cbuild.VARIANTS))
@pytest.mark.parametrize("name", PROGRAMS)
def test_stress(name, variant):
    res = _run(name, variant)
    _check(res)
    atomics = res.figures.get("atomics")
    if atomics is not None and atomics != EXPECTED_ATOMICS[variant]:
        pytest.fail(f"built with atomics={atomics}, expected "
                    f"{EXPECTED_ATOMICS[variant]}\n{res.describe()}",
                    pytrace=False)


def test_atomic_stress_racy_demo_present():
    """The plain-increment demo runs in the asm build and reports its figures.

    Lost updates are usual (4 threads, 2 cores) but not guaranteed on every
    run, so only the presence and consistency of the line are checked."""
    res = _run("atomic_stress", "asm")
    _check(res)
    fig = res.figures
    assert "racy_total" in fig, res.describe()
    extra = res.extras("racy_total")
    got, expected, lost = int(fig["racy_total"]), int(extra["expected"]), \
        int(extra["lost"])
    assert got + lost == expected, res.describe()
    assert 0 < got <= expected, res.describe()


def test_atomic_stress_tsan_has_no_racy_demo():
    """Under TSAN the deliberate race must be compiled out, or it would be
    (rightly) reported and halt the program."""
    res = _run("atomic_stress", "tsan")
    _check(res)
    assert res.figures.get("racy_total") == "disabled", res.describe()


def test_aarch64_variant_is_an_arm_binary_run_under_emulation():
    """The cross variant really is 64-bit ARM code (ELF e_machine 183,
    EM_AARCH64), run through qemu, not the host's build by mistake."""
    res = _run("atomic_stress", "aarch64")
    _check(res)
    exe = cbuild.BUILD / "atomic_stress-aarch64"
    header = exe.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == 183, header
    assert "qemu" in res.cmd[0], res.cmd
