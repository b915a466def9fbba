from setuptools import setup

# Everything else lives in pyproject.toml; setup.py exists for cffi_modules,
# which builds csrc/ into the lockfree._lockfree extension.
setup(cffi_modules=["src/lockfree/_build.py:ffibuilder"])
