# Stub for the cffi-generated extension lockfree._lockfree, which has no type
# information: ffi and lib are untyped, as in lockfree/_ffi.py.
from typing import Any

ffi: Any
lib: Any
