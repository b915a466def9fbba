"""Concurrency Kit anchors of ``lockfree bench``, built on demand.

The wheel's harness (``lockfree._tools``) is always built without
Concurrency Kit, so that a wheel does not depend on the optional headers of
the machine that built it.  When a run asks for ``ck-fas``, ``ck-ticket`` or
``ck-mcs`` and the C compiler finds ``<ck_spinlock.h>`` (Debian:
``apt-get install libck-dev``; CK's spinlocks are header-only), this
compiles the same harness with CK, once, with cffi, into
``$XDG_CACHE_HOME/lockfree/`` (default ``~/.cache/lockfree/``).  The module
name carries a hash of everything the binary depends on: the C sources and
the build scripts, the preprocessed CK header, the compiler, the atomics
layer, the Python ABI and the cffi version; a change of any rebuilds it.

The C sources come from the installed package (``lockfree/_csrc``, copied
there by setup.py) or, in a source checkout, from ``csrc/``.  Building needs
what ``pip install`` from source needs: a C compiler, the Python headers and
(Python 3.12+) setuptools.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import types
from collections.abc import Callable, Sequence

NAMES = ("ck-fas", "ck-ticket", "ck-mcs")
HINT = "install libck-dev to compare against Concurrency Kit"
PROBE = "#include <ck_spinlock.h>\n"


class Unavailable(RuntimeError):
    """No CK harness; ``str()`` is the one line to show the user."""


def csrc_dir() -> pathlib.Path | None:
    """The C source tree: the installed copy, else the checkout's csrc/."""
    pkg = pathlib.Path(__file__).resolve().parent.parent
    for d in (pkg / "_csrc", pkg.parent.parent / "csrc"):
        if (d / "tools" / "bench.c").is_file():
            return d
    return None


def cache_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "lockfree"


def compiler() -> list[str]:
    """The C compiler cffi will use (``$CC``, else Python's)."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC")
                       or "cc")


def probe(cc: list[str]) -> str | None:
    """``<ck_spinlock.h>`` preprocessed by ``cc``, or None if not found."""
    try:
        cp = subprocess.run([*cc, "-E", "-x", "c", "-"], input=PROBE,
                            capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return cp.stdout if cp.returncode == 0 else None


def _key(csrc: pathlib.Path, cc: list[str], header: str,
         portable: bool) -> str:
    import cffi
    h = hashlib.sha256()
    here = pathlib.Path(__file__).resolve().parent.parent
    # the C sources and the build scripts (what is compiled, with what flags)
    inputs = [(str(p.relative_to(csrc)), p)
              for p in sorted(csrc.rglob("*.[ch]"))]
    inputs += [(n, here / n) for n in ("_build.py", "_build_tools.py")]
    for label, p in inputs:
        h.update(label.encode() + b"\0" + p.read_bytes())
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True,
                                 text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    for part in (header, " ".join(cc), version, str(portable),
                 sysconfig.get_config_var("EXT_SUFFIX") or "",
                 sys.implementation.cache_tag or "", cffi.__version__):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def _build(csrc: pathlib.Path, name: str, cache: pathlib.Path,
           portable: bool, note: Callable[[str], None]) -> pathlib.Path:
    from .. import _build_tools
    note(f"building the Concurrency Kit harness once (cffi) into {cache}")
    builder = _build_tools.make_builder(module=name, csrc=str(csrc),
                                        tools=("bench",), ck=True,
                                        portable=portable)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=cache)
    saved = os.dup(1)
    try:
        # Standard output is the report (or the JSON of --json -): the
        # compiler's chatter goes to standard error.
        sys.stdout.flush()
        os.dup2(2, 1)
        out = str(builder.compile(tmpdir=tmp, verbose=False))
        final = cache / os.path.basename(out)
        os.replace(out, final)  # atomic: a concurrent run sees all or none
        return final
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        shutil.rmtree(tmp, ignore_errors=True)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def load(names: Sequence[str] = NAMES,
         note: Callable[[str], None] = _stderr) -> types.ModuleType:
    """The CK-enabled harness module (``.ffi``, ``.lib``), built if needed.

    ``names``: the CK primitives asked for (they head the message).  Raises
    :class:`Unavailable` with one line saying why not.
    """
    what = ", ".join(names)
    cc = compiler()
    header = probe(cc)
    if header is None:
        raise Unavailable(f"{what}: {HINT}")
    csrc = csrc_dir()
    if csrc is None:
        raise Unavailable(f"{what}: the C sources (lockfree/_csrc) are not "
                          "installed, so the Concurrency Kit harness cannot "
                          "be built")
    from .. import build_info
    portable = build_info()["atomics"] == "portable"
    name = f"_lockfree_ck_{_key(csrc, cc, header, portable)}"
    cache = cache_dir()
    path = next(iter(sorted(cache.glob(f"{name}.*"))), None) \
        if cache.is_dir() else None
    if path is None:
        try:
            path = _build(csrc, name, cache, portable, note)
        except Exception as exc:  # compiler, headers, setuptools missing...
            text = (str(exc).strip().splitlines() or [type(exc).__name__])
            fix = ("; pip install setuptools" if "setuptools" in text[-1]
                   else "")
            raise Unavailable(f"{what}: building the Concurrency Kit harness "
                              f"failed ({text[-1][:200]}){fix}") from exc
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no extension module at {path}")
        mod = importlib.util.module_from_spec(spec)  # dlopen()s it
        spec.loader.exec_module(mod)
    except ImportError as exc:
        path.unlink(missing_ok=True)  # the next run builds it again
        raise Unavailable(f"{what}: the Concurrency Kit harness does not "
                          f"load ({exc})") from exc
    return mod
