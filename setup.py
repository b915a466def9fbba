import importlib.util
import os
import sysconfig

from setuptools import setup
from setuptools.command.build_py import build_py

# Everything else lives in pyproject.toml; setup.py exists for cffi_modules,
# which builds csrc/ into the lockfree._lockfree extension (the library) and
# csrc/tools/ (with the core again) into lockfree._tools (bench harness,
# demos, FFI floor): see src/lockfree/_build.py and _build_tools.py.
#
# One wheel for CPython 3.10 and later: the extension uses only the stable
# ABI (cffi generates limited-API code; abi3audit checks it), so the wheel is
# tagged cp310-abi3.  A free-threaded build (3.13t, 3.14t) has no stable ABI
# and gets an ordinary version-specific tag.
free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
options = {} if free_threaded else {
    "bdist_wheel": {"py_limited_api": "cp310"}}

HERE = os.path.dirname(os.path.abspath(__file__))


def _ck_files(csrc):
    spec = importlib.util.spec_from_file_location(
        "_lockfree_build_tools",
        os.path.join(HERE, "src", "lockfree", "_build_tools.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ck_files(csrc)


class BuildPyWithSources(build_py):
    """Also copies the C sources of the bench harness and the core it calls
    (with their headers) into the package as lockfree/_csrc/: `lockfree
    bench` compiles the harness with Concurrency Kit on demand from them
    (src/lockfree/bench/ck.py).  Editable installs read csrc/ in place."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        csrc = os.path.join(HERE, "csrc")
        dest = os.path.join(self.build_lib, "lockfree", "_csrc")
        for rel in _ck_files(csrc):
            target = os.path.join(dest, rel)
            self.mkpath(os.path.dirname(target))
            self.copy_file(os.path.join(csrc, rel), target)


setup(cffi_modules=["src/lockfree/_build.py:ffibuilder",
                    "src/lockfree/_build_tools.py:ffibuilder"],
      cmdclass={"build_py": BuildPyWithSources},
      options=options)
