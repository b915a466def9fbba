"""Types and lint: the package ships its annotations (py.typed), ``mypy
--strict`` passes on it and on every example of the README and docs,
pyright reports nothing on those examples, and ruff (the [tool.ruff]
selection) is clean.  The tools are in the test extra; a missing one skips
only outside CI."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = sorted(ROOT.glob("docs/*.md")) + [ROOT / "README.md"]


def _tool(name: str) -> str:
    """The tool installed beside this interpreter (the venv), or skip."""
    exe = pathlib.Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI installs the test extra: {name} is missing")
        pytest.skip(f"{name} is not installed (pip install '.[test]')")
    return found


def _run(cmd: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Every ```python block, one script per page (as test_docs runs
    them)."""
    out = tmp_path_factory.mktemp("examples")
    for page in PAGES:
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        if blocks:
            name = page.stem.replace("-", "_").lower() + "_examples.py"
            (out / name).write_text("\n\n".join(blocks))
    assert len(list(out.glob("*.py"))) >= 8
    return out


def test_package_ships_py_typed() -> None:
    import lockfree

    assert (pathlib.Path(lockfree.__file__).parent / "py.typed").exists()


def test_ruff_is_clean() -> None:
    proc = _run([_tool("ruff"), "check", "src", "tests", "benchmarks"], ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_the_package() -> None:
    proc = _run([_tool("mypy")], ROOT)  # [tool.mypy]: strict, src/lockfree
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_on_every_doc_example(examples: pathlib.Path) -> None:
    proc = _run([_tool("mypy"), "--strict", "--no-incremental", "."],
                examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pyright_on_every_doc_example(examples: pathlib.Path) -> None:
    proc = _run([_tool("pyright"), "--pythonpath", sys.executable, "."],
                examples)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_rejects_misuse(tmp_path: pathlib.Path) -> None:
    """The annotations mean something: wrong argument types are errors."""
    (tmp_path / "misuse.py").write_text(
        "from lockfree import AtomicInt, RcuCell, SpinLock\n"
        "a = AtomicInt()\n"
        "a.fetch_add('one')\n"
        "SpinLock().acquire(timeout='soon')\n"
        "cell: RcuCell[list[str]] = RcuCell(['x'])\n"
        "cell.publish(3)\n")
    proc = _run([_tool("mypy"), "--strict", "--no-incremental",
                 "misuse.py"], tmp_path)
    assert proc.returncode == 1, proc.stdout
    for line in (3, 4, 6):
        assert f"misuse.py:{line}: error" in proc.stdout, proc.stdout
