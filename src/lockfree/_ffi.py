"""The one place that imports the compiled extension: re-exports ffi and lib.

cffi generates the extension without type information, so both are typed
``Any`` here: callers annotate around them (``int(...)``, or a module global
annotated ``Callable[...]`` holding ``lib.X``, as ``lockfree.atomic`` does).
"""

from __future__ import annotations

import importlib
from typing import Any

try:  # through importlib: the generated module has no type information
    _ext = importlib.import_module("._lockfree", __package__)
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "lockfree's C extension (lockfree._lockfree) is not built: install "
        "the package with 'pip install .' (or 'pip install -e .') so cffi "
        "compiles csrc/ (needs gcc and the Python headers)") from exc

ffi: Any = _ext.ffi
lib: Any = _ext.lib

__all__ = ["ffi", "lib"]
