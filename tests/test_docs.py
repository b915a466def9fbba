"""The documentation: every ```python block in docs/*.md runs (each page
as one script), and the site builds with mkdocs in strict mode (a broken
link, a missing page or a docstring mkdocstrings cannot render fails)."""

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.glob("*.md")
               if re.search(r"```python\n", p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_doc_examples_run(page, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    script = tmp_path / (page.stem.replace("-", "_") + "_examples.py")
    script.write_text("\n\n".join(blocks))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="install the test extra for mkdocs")
    root = DOCS.parent
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         str(tmp_path / "site")], cwd=root, capture_output=True, text=True,
        timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "compare_exchange" in api  # docstrings really rendered


def test_every_page_is_in_the_nav():
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    missing = [p.name for p in DOCS.glob("*.md") if p.name not in nav]
    assert not missing, f"pages not in mkdocs.yml nav: {missing}"


def _cli_examples():
    """Every ``python -m lockfree ...`` line of the docs' ```sh blocks."""
    for page in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#")[0].strip()
                if line.startswith("python -m lockfree"):
                    yield page.name, line


CLI_EXAMPLES = list(_cli_examples())


@pytest.mark.parametrize("page,line", CLI_EXAMPLES,
                         ids=[f"{p}:{i}" for i, (p, _) in
                              enumerate(CLI_EXAMPLES)])
def test_cli_examples_parse(page, line):
    """The full runs take minutes, so they are checked against the real
    parser (options, choices, types); --quick ones run below."""
    from lockfree.__main__ import build_parser

    args = shlex.split(line)[3:]
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{page}: `{line}` is rejected by the CLI ({exc})")


def test_quick_cli_examples_run(tmp_path):
    quick = [line for _, line in CLI_EXAMPLES if "--quick" in line]
    assert quick, "the docs should show a --quick example"
    for line in quick:
        proc = subprocess.run([sys.executable, *shlex.split(line)[1:]],
                              cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
