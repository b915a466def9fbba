"""The one place that imports the compiled extension: re-exports ffi and lib."""

try:
    from ._lockfree import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "lockfree's C extension (lockfree._lockfree) is not built: install "
        "the package with 'pip install .' (or 'pip install -e .') so cffi "
        "compiles csrc/ (needs gcc and the Python headers)") from exc

__all__ = ["ffi", "lib"]
