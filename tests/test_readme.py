"""The README's commands are the ones CI runs, and its examples work."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shell_blocks():
    return re.findall(r"```sh\n(.*?)```", README, re.S)


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    blocks = [b.strip() for b in shell_blocks()]
    assert len(blocks) == 2
    run, test = blocks
    assert run.endswith("python -m lockfree")
    assert "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci, ".ci/run must run the README's test command verbatim"


def test_readme_python_examples_run(tmp_path):
    examples = re.findall(r"```python\n(.*?)```", README, re.S)
    assert examples
    for i, code in enumerate(examples):
        script = tmp_path / f"example{i}.py"  # a file: spawn re-imports it
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr


def test_cli_self_check_and_usage_errors():
    proc = subprocess.run([sys.executable, "-m", "lockfree", "check", "-n",
                           "20000"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "atomics   : " in proc.stdout
    assert "self-check passed" in proc.stdout and "FAIL" not in proc.stdout
    # one line per check, every primitive between threads and processes
    from lockfree import _selfcheck
    n_checks = len(_selfcheck._checks(20000))
    assert proc.stdout.count("  ok   ") == n_checks >= 20
    for what in ("AtomicInt", "SpinLock", "TicketLock", "RWSpinLock",
                 "owner killed", "Once", "SeqRecord", "SeqBytes", "RcuCell",
                 "RcuBuffer", "Kfifo"):
        assert what in proc.stdout, what
    bad = subprocess.run([sys.executable, "-m", "lockfree", "frobnicate"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage:" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad_n = subprocess.run([sys.executable, "-m", "lockfree", "check", "-n",
                            "x"], capture_output=True, text=True, timeout=60)
    assert bad_n.returncode == 2 and "invalid int value" in bad_n.stderr


def test_self_check_reports_a_failing_check(monkeypatch, capsys):
    """A check whose invariant fails (or that raises) makes the self-check,
    and so the exit status of ``python -m lockfree``, fail."""
    from lockfree import __main__ as cli
    from lockfree import _selfcheck

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(_selfcheck, "_checks", lambda n: [
        ("passes", lambda: (True, "fine")),
        ("wrong total", lambda: (False, "1 of 2")),
        ("raises", broken)])
    monkeypatch.setattr(cli, "self_check", _selfcheck.self_check)
    assert cli.main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong total" in out and "FAIL raises" in out
    assert "RuntimeError: boom" in out and "1 of 3 checks" in out


def test_version_flag():
    import lockfree
    script = pathlib.Path(sys.executable).with_name("lockfree")
    assert script.exists(), "pip install did not create the console script"
    for cmd in ([sys.executable, "-m", "lockfree", "--version"],
                [str(script), "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0
        assert proc.stdout.strip() == f"lockfree {lockfree.__version__}"
