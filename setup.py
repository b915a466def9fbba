import sysconfig

from setuptools import setup

# Everything else lives in pyproject.toml; setup.py exists for cffi_modules,
# which builds csrc/ into the lockfree._lockfree extension.
#
# One wheel for CPython 3.10 and later: the extension uses only the stable
# ABI (cffi generates limited-API code; abi3audit checks it), so the wheel is
# tagged cp310-abi3.  A free-threaded build (3.13t, 3.14t) has no stable ABI
# and gets an ordinary version-specific tag.
free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
options = {} if free_threaded else {
    "bdist_wheel": {"py_limited_api": "cp310"}}

setup(cffi_modules=["src/lockfree/_build.py:ffibuilder"], options=options)
