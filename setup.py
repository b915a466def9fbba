import glob
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


class BuildPyWithSources(build_py):
    """Also copies csrc/ into the package as lockfree/_csrc/: `lockfree
    bench` compiles the harness with Concurrency Kit on demand from it
    (src/lockfree/bench/ck.py).  Editable installs read csrc/ in place."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        csrc = os.path.join(HERE, "csrc")
        dest = os.path.join(self.build_lib, "lockfree", "_csrc")
        for path in sorted(glob.glob(os.path.join(csrc, "**", "*.[ch]"),
                                     recursive=True)):
            target = os.path.join(dest, os.path.relpath(path, csrc))
            self.mkpath(os.path.dirname(target))
            self.copy_file(path, target)


setup(cffi_modules=["src/lockfree/_build.py:ffibuilder",
                    "src/lockfree/_build_tools.py:ffibuilder"],
      cmdclass={"build_py": BuildPyWithSources},
      options=options)
