"""An older installed build of lockfree, imported beside the current one so
that old and new are timed in one run, interleaved (issue #16: "same run,
old and new wheel side by side").

``LOCKFREE_BENCH_OLD=<dir>``: the ``lockfree`` package directory of another
install, e.g. ``/work/venv-old/lib/python3.11/site-packages/lockfree``
(same Python version; the package imports itself relatively).  It is
loaded as ``lockfree_old`` with its own C extension, so the old rows time
the old Python layer over the old C build.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types


def old_lockfree() -> types.ModuleType | None:
    """The package named by ``LOCKFREE_BENCH_OLD``, or None if unset."""
    path = os.environ.get("LOCKFREE_BENCH_OLD")
    if not path:
        return None
    if "lockfree_old" in sys.modules:
        return sys.modules["lockfree_old"]
    import lockfree  # noqa: F401 - first, so its modules are the ones kept
    # cffi registers an extension as sys.modules["lockfree._lockfree"] (its
    # build-time name) whatever name it is imported under: put the current
    # build's entries back after the old one is loaded.
    saved = {k: v for k, v in sys.modules.items()
             if k == "lockfree" or k.startswith("lockfree.")}
    spec = importlib.util.spec_from_file_location(
        "lockfree_old", os.path.join(path, "__init__.py"),
        submodule_search_locations=[path])
    if spec is None or spec.loader is None:
        raise ImportError(f"LOCKFREE_BENCH_OLD={path!r}: no package there")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["lockfree_old"] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.update(saved)
    return mod
