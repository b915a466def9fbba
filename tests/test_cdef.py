"""The cffi declarations agree with the C headers, and so does Python.

The cdefs are generated from the headers' ``/* cffi:begin */`` ...
``/* cffi:end */`` sections (``_build.cdef_of``), constants and array
lengths as ``...`` so the compiler fills them in.  What is checked here:

* every marked header is part of a cdef, and each section is plain C that
  cffi parses (no inline function, conditional, function-like macro);
* each declared function's prototype, as cffi parses it, is the one in
  ``csrc/`` (cffi's API mode compiles calls with the *cdef's* types, so a
  generator that mangled a type would still build and silently convert).
  The one allowed difference: ``const char *`` for ``const void *``
  (cffi passes bytes to a ``char *`` without a copy);
* every ``lib.X`` Python reads exists, and every constant among them has
  the value the headers give it (``#define`` or enum), as has every Python
  copy of a header constant (:data:`COPIES`).
"""

import ast
import importlib
import os
import pathlib
import re
import sys

import pytest
from cffi import FFI

import lockfree._lockfree
import lockfree._tools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
PKG = os.path.join(ROOT, "src", "lockfree")
LIBS = (lockfree._lockfree.lib, lockfree._tools.lib)

if not os.path.isdir(CSRC):  # pragma: no cover
    pytest.skip("needs the source tree (csrc/)", allow_module_level=True)


def _builders():
    sys.path.insert(0, PKG)
    try:
        import _build
        import _build_tools
    finally:
        sys.path.remove(PKG)
    return _build, _build_tools


def _cdef_text():
    """The cdefs of both extensions: the library and the tools."""
    _build, _build_tools = _builders()
    return "\n".join([*_build.cdefs(CSRC).values(),
                      *_build_tools.cdefs(CSRC).values()])


def _header_files():
    for base, dirs, files in os.walk(CSRC):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".h"):
                yield os.path.join(base, f)


def _headers():
    text = []
    for path in _header_files():
        with open(path) as fh:
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


def test_every_marked_header_is_in_a_cdef():
    _build, _build_tools = _builders()
    used = {h for name in _build.PRIMITIVES
            for h in _build.headers(name, CSRC)}
    used |= {h for hs in _build_tools.TOOLS.values() for h in hs}
    marked = {os.path.relpath(p, CSRC) for p in _header_files()
              if "cffi:begin" in pathlib.Path(p).read_text()}
    assert marked == used, (f"marked but unused: {sorted(marked - used)}, "
                            f"used but unmarked: {sorted(used - marked)}")


def test_a_section_that_is_not_plain_is_refused(tmp_path):
    _build, _ = _builders()
    for body in ("static inline int f(void) { return 0; }",
                 "#ifdef X\nint f(void);\n#endif",
                 "#define F(x) ((x) + 1)"):
        h = tmp_path / "bad.h"
        h.write_text(f"/* cffi:begin */\n{body}\n/* cffi:end */\n")
        with pytest.raises(ValueError, match="not a plain declaration"):
            _build.cdef_of(str(h))
    h.write_text("int f(void);\n")
    with pytest.raises(ValueError, match="no /. cffi:begin"):
        _build.cdef_of(str(h))


def test_generated_sections_are_partial():
    """Constants, array lengths and enum values are left to the compiler."""
    _build, _ = _builders()
    text = _cdef_text()
    assert not re.findall(r"(?m)^#define \w+ (?!\.\.\.$).*", text)
    assert "slot[...]" in text and "enum lf_kind {LF_KIND_ATOMIC, " in text
    assert not re.search(r"=\s*-?\d", text)  # no enum value written out


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


# -- constants ---------------------------------------------------------------

_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU]?[lL]{0,2}|[lL]{1,2}"
                     r"[uU])\b")
_CAST = re.compile(r"\((?:u?int\d+_t|unsigned|int|long)\)")
_LIMITS = {"UINT64_MAX": (1 << 64) - 1, "INT32_MAX": (1 << 31) - 1,
           "UINT32_MAX": (1 << 32) - 1}


def _header_constants() -> dict[str, list[str]]:
    """{name: [C expression, ...]} of every object-like #define and every
    enumerator in csrc/**/*.h (enumerators numbered as C numbers them)."""
    text = _headers()
    found: dict[str, list[str]] = {}
    for name, body in re.findall(
            r"(?m)^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(\S.*?)[ \t]*$", text):
        found.setdefault(name, []).append(body)
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
        nxt = "0"
        for item in filter(None, (e.strip() for e in body.split(","))):
            name, _, value = (p.strip() for p in item.partition("="))
            expr = value or nxt
            found.setdefault(name, []).append(expr)
            nxt = f"({expr}) + 1"
    return found


def _evaluate(name, consts, depth=0):
    """The value of header constant ``name`` (every definition of it must
    agree), evaluated as Python evaluates the same integer expression."""
    values = set()
    for expr in consts[name]:
        unsigned = bool(re.search(r"\d[lL]*[uU]|UINT", expr))
        e = _CAST.sub("", _SUFFIX.sub(r"\1", expr))
        for ident in set(re.findall(r"\b[A-Za-z_]\w*\b", e)):
            if ident in _LIMITS:
                val = _LIMITS[ident]
            else:
                assert depth < 10 and ident in consts, (name, expr)
                val = _evaluate(ident, consts, depth + 1)
            e = re.sub(rf"\b{ident}\b", str(val), e)
        v = eval(e, {"__builtins__": {}})  # digits and operators only
        values.add(v % (1 << 64) if unsigned and v < 0 else v)
    assert len(values) == 1, f"{name} defined differently: {consts[name]}"
    return values.pop()


def _python_files():
    for base in (PKG, os.path.join(ROOT, "benchmarks")):
        for d, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith(".py") and not f.startswith("_build"):
                    yield os.path.join(d, f)


def _lib_names_used() -> dict[str, set[str]]:
    """{name: {file, ...}} of every ``<...>lib.NAME`` the Python sources
    read (``lib.X``, ``hlib.X``, ``self._lib.X`` ...)."""
    used: dict[str, set[str]] = {}
    for path in _python_files():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(
                    node.value, (ast.Name, ast.Attribute)):
                owner = (node.value.id if isinstance(node.value, ast.Name)
                         else node.value.attr)
                if owner.endswith("lib") and re.match(r"(lf|LF)_",
                                                      node.attr):
                    used.setdefault(node.attr, set()).add(
                        os.path.relpath(path, ROOT))
    return used


def _lib_value(name):
    for lib in LIBS:
        if hasattr(lib, name):
            return getattr(lib, name)
    raise AttributeError(name)


def test_every_lib_name_python_uses_exists():
    used = _lib_names_used()
    assert len(used) > 150 and "LF_EAGAIN" in used  # the scan found them
    missing = sorted(f"{n} ({', '.join(sorted(used[n]))})" for n in used
                     if not any(hasattr(lib, n) for lib in LIBS))
    assert not missing, f"Python reads names no extension has: {missing}"


def check_constants(names, value_of) -> list[str]:
    """Disagreements between the headers and ``value_of(name)``."""
    consts = _header_constants()
    wrong = []
    for name in sorted(names):
        if name not in consts:
            wrong.append(f"{name}: in no csrc/**/*.h")
            continue
        want, got = _evaluate(name, consts), value_of(name)
        if want != got:
            wrong.append(f"{name}: header {want}, Python {got}")
    return wrong


def test_every_constant_python_uses_matches_its_header():
    names = [n for n in _lib_names_used() if n.startswith("LF_")]
    assert len(names) > 40
    wrong = check_constants(names, _lib_value)
    assert not wrong, "\n".join(wrong)


#: Python constants that stand for a header constant: (module, attribute,
#: header constant).
COPIES = [
    ("lockfree._seq_core", "MAX_SIZE", "LF_SEQ_MAX_SIZE"),
    ("lockfree._kfifo_args", "MAX_CAPACITY", "LF_KFIFO_MAX_SIZE"),
    ("lockfree.region", "HEADER", "LF_REGION_HEADER"),
]


def test_python_copies_of_header_constants_agree():
    copies = {const: getattr(importlib.import_module(mod), attr)
              for mod, attr, const in COPIES}
    wrong = check_constants(copies, copies.__getitem__)
    assert not wrong, "\n".join(wrong)
    # errors.is_dead_owner() is errors.h's LF_IS_DEAD_OWNER().
    from lockfree import errors
    m = re.search(r"#define LF_IS_DEAD_OWNER\(r\)\s*\(\(int64_t\)\(r\) <= "
                  r"-\(\(int64_t\)1 << (\d+)\)\)", _headers())
    assert m, "LF_IS_DEAD_OWNER changed: update errors.is_dead_owner"
    bound = -(1 << int(m.group(1)))
    assert errors.is_dead_owner(bound) and not errors.is_dead_owner(bound + 1)


def test_the_evaluator_reads_c_constants():
    """_evaluate reads what the headers write (not vacuous: each differs
    from what a naive reading would give)."""
    consts = {"A": ["(1u << 30)"], "B": ["0x80000000u"], "C": ["(-14)"],
              "D": ["UINT64_MAX"], "E": ["(A + 1)"], "F": ["(~0ULL)"],
              "G": ["2", "3"]}
    assert [_evaluate(n, consts) for n in "ABCDEF"] == [
        1 << 30, 1 << 31, -14, (1 << 64) - 1, (1 << 30) + 1, (1 << 64) - 1]
    with pytest.raises(AssertionError, match="defined differently"):
        _evaluate("G", consts)
    wrong = check_constants(["LF_EBUSY", "LF_NO_SUCH"], lambda n: -5)
    assert wrong == ["LF_EBUSY: header -4, Python -5",
                     "LF_NO_SUCH: in no csrc/**/*.h"]
