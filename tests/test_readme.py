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
    assert "self-check passed" in proc.stdout
    assert proc.stdout.count(" ok ") == 4
    bad = subprocess.run([sys.executable, "-m", "lockfree", "frobnicate"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage:" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad_n = subprocess.run([sys.executable, "-m", "lockfree", "check", "-n",
                            "x"], capture_output=True, text=True, timeout=60)
    assert bad_n.returncode == 2 and "invalid int value" in bad_n.stderr
