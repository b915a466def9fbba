"""The cffi declarations in ``_build.py`` agree with the C headers.

cffi's API mode compiles a call with the *cdef's* types, so a prototype
that drifted from its header (``int64_t`` declared where the header has
``uint64_t``, say) still builds and silently converts.  This finds each
declared function's prototype in ``csrc/`` and compares the two, as cffi
parses them.  The one allowed difference: ``const char *`` in the cdef for
``const void *`` in the header (cffi passes bytes to a ``char *`` without a
copy).
"""

import os
import re
import sys

import pytest
from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
BUILD = os.path.join(ROOT, "src", "lockfree")

if not os.path.isdir(CSRC):  # pragma: no cover
    pytest.skip("needs the source tree (csrc/)", allow_module_level=True)


def _cdef_text():
    """The cdefs of both extensions: the library (_build.py) and the tools
    (_build_tools.py, checked against csrc/tools/*.h)."""
    sys.path.insert(0, BUILD)
    try:
        import _build
        import _build_tools
    finally:
        sys.path.remove(BUILD)
    return "\n".join([*_build.CDEF.values(), *_build_tools.CDEF.values()])


def _headers():
    text = []
    for base, _, files in os.walk(CSRC):
        for f in sorted(files):
            if f.endswith(".h"):
                with open(os.path.join(base, f)) as fh:
                    t = fh.read()
                t = re.sub(r"/\*.*?\*/", " ", t, flags=re.S)
                text.append(re.sub(r"//[^\n]*", " ", t))
    return "\n".join(text)


def _functions(ffi):
    return {k.split(" ", 1)[1]: v[0]
            for k, v in ffi._parser._declarations.items()
            if k.startswith("function ")}


def _normal(c_name):
    return c_name.replace("void const *", "char const *")


def test_every_cdef_function_matches_its_header():
    cdef = _cdef_text()
    ref = FFI()
    ref.cdef(cdef)
    declared = _functions(ref)
    assert len(declared) > 100  # the parse found the declarations
    headers = _headers()
    check = FFI()
    check.cdef(cdef)  # the same typedefs and structs
    missing, differ = [], []
    for name, ftype in sorted(declared.items()):
        m = re.search(r"(?m)^[ \t]*((?:static\s+inline\s+)?[A-Za-z_][\w ]*?"
                      r"[\s*]+)" + name + r"\s*\(([^;{]*?)\)\s*[;{]", headers)
        if m is None:
            missing.append(name)
            continue
        ret = re.sub(r"\b(static|inline)\b", "", m.group(1))
        check.cdef(f"{ret} _hdr_{name}({m.group(2)});")
        header = _functions(check)["_hdr_" + name]
        if _normal(header.get_c_name()) != _normal(ftype.get_c_name()):
            differ.append(f"{name}: header {header.get_c_name()}, "
                          f"cdef {ftype.get_c_name()}")
    assert not missing, f"declared in a cdef, not in csrc/**/*.h: {missing}"
    assert not differ, "cdef and header disagree:\n" + "\n".join(differ)


def test_a_drifted_prototype_is_caught():
    """The comparison is not vacuous: a changed parameter type differs."""
    ffi = FFI()
    ffi.cdef("int64_t f(void *p, int64_t a);")
    ffi.cdef("int64_t _hdr_f(void *p, uint64_t a);")
    f = _functions(ffi)
    assert _normal(f["f"].get_c_name()) != _normal(f["_hdr_f"].get_c_name())
