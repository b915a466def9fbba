"""cffi build script (out-of-line API mode) for ``lockfree._lockfree``.

setup.py names it in ``cffi_modules``; it compiles the library (the core,
the C sources directly in ``csrc/``, and the binding shims of
``csrc/shims/``) into one extension module (the tools in ``csrc/tools/``
go into ``lockfree._tools``: ``_build_tools.py``).
Environment variables read at build time (by both):

``LOCKFREE_ATOMICS``
    ``asm`` (default on x86-64) uses the inline-assembly atomics layer,
    ``portable`` the GCC ``__atomic`` one (the default elsewhere), which is
    what ThreadSanitizer can check.
``LOCKFREE_CFLAGS``
    extra compiler flags, appended (e.g. ``-fsanitize=address``).
``LOCKFREE_LDFLAGS``
    extra linker flags, appended.
``LOCKFREE_DEBUG``
    ``1`` keeps the debug information; release builds (the default) strip
    it at link time (``--strip-debug``: the symbol table stays, so
    ``objdump -d`` and ``nm -D`` still name every function).

The cdef is not a copy: :func:`cdef_of` generates it from the headers'
sections between ``/* cffi:begin */`` and ``/* cffi:end */``.
"""

import glob
import os
import platform
import re
import shlex
from typing import Any

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.normpath(os.path.join(HERE, "..", "..", "csrc"))

#: The library's primitives, in dependency order.  Each one's declarations
#: are the marked sections of csrc/<name>.h, then of csrc/shims/<name>.h
#: (its binding shims), whichever exist.
PRIMITIVES = ("build_info", "region", "atomic", "errors", "lockwait",
              "spinlock", "ticketlock", "rwlock", "rcu", "seqlock", "kfifo")

_SECTION = re.compile(r"/\*\s*cffi:begin\s*\*/(.*?)/\*\s*cffi:end\s*\*/", re.S)
_BODY = re.compile(r"\b(struct|union|enum)(\s+\w+)?\s*\{")


def _tail_bodies(text: str) -> str:
    """Every top-level struct/union body gets ``...;`` (the compiler lays
    it out) and its array lengths become ``[...]``; every enum loses its
    values and gets ``...`` (the compiler numbers it).  Nested bodies stay
    as written."""
    out, pos = [], 0
    for m in _BODY.finditer(text):
        if m.start() < pos:
            continue  # nested in a body already done
        depth, end = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        body = text[m.end():end - 1]
        if m.group(1) == "enum":
            names = [e.split("=")[0].strip() for e in body.split(",")]
            body = ", ".join([n for n in names if n] + ["..."])
        else:
            top = re.sub(r"\{[^{}]*\}", lambda n: n.group().replace(
                "[", "\0"), body)  # (one level of nesting is enough)
            body = re.sub(r"\[[^\]\0]+\]", "[...]", top).replace(
                "\0", "[").rstrip() + "\n\t...;\n"
        out += [text[pos:m.end()], body, "}"]
        pos = end
    return "".join(out + [text[pos:]])


def cdef_of(path: str) -> str:
    """The cffi declarations of the header at ``path``: its sections
    between ``/* cffi:begin */`` and ``/* cffi:end */`` (plain C
    declarations), comments and ``__attribute__``s dropped, ``#define NAME
    value`` as ``#define NAME ...`` and struct and enum bodies made partial
    (:func:`_tail_bodies`), so every value comes from the compiler; ``const
    void *`` reads ``const char *`` (cffi passes a bytes object to a
    ``char *`` without copying it)."""
    with open(path) as f:
        sections = _SECTION.findall(f.read())
    if not sections:
        raise ValueError(f"{path}: no /* cffi:begin */ section")
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", "\n".join(sections), flags=re.S)
    text = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", "", text)
    text = re.sub(r"(?m)^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+\S.*$",
                  r"#define \1 ...", text)
    bad = re.search(r"(?m)^[ \t]*#(?!define \w+ \.\.\.$).*|\binline\b", text)
    if bad:
        raise ValueError(f"{path}: not a plain declaration: {bad.group()}")
    return _tail_bodies(text.replace("const void *", "const char *"))


def headers(name: str, csrc: str = CSRC) -> list[str]:
    """The headers of one primitive (relative to ``csrc``)."""
    return [h for h in (f"{name}.h", f"shims/{name}.h")
            if os.path.isfile(os.path.join(csrc, h))]


def cdefs(csrc: str = CSRC) -> dict[str, str]:
    """{primitive: its cdef}, in :data:`PRIMITIVES` order."""
    return {name: "\n".join(cdef_of(os.path.join(csrc, h))
                            for h in headers(name, csrc))
            for name in PRIMITIVES}


def atomics_impl() -> str:
    """The atomics implementation this build selects: 'asm' or 'portable'."""
    choice = os.environ.get("LOCKFREE_ATOMICS", "").strip().lower()
    if choice not in ("", "asm", "portable"):
        raise SystemExit(
            f"LOCKFREE_ATOMICS must be 'asm' or 'portable', not {choice!r}")
    if choice == "portable" or platform.machine().lower() not in (
            "x86_64", "amd64"):
        return "portable"
    return "asm"


def sources(directory: str) -> list[str]:
    """The C sources directly in ``directory`` (csrc/ holds the core,
    csrc/shims/ the binding shims, csrc/arch/ only headers, csrc/tools/ the
    tools of ``_build_tools.py``),
    relative to setup.py's directory when building from there, as
    setuptools wants."""
    found = sorted(glob.glob(os.path.join(directory, "*.c")))
    root = os.path.dirname(CSRC)
    if os.path.abspath(os.getcwd()) == root:
        found = [os.path.relpath(s, root) for s in found]
    return found


def headers_under(directory: str) -> list[str]:
    """Every header under ``directory`` (arch/, shims/, tools/ included),
    as :func:`sources` gives paths: an extension's ``depends``, so that a
    build whose only change is a header rebuilds (setuptools compares the
    sources and depends with the built module)."""
    found = sorted(glob.glob(os.path.join(directory, "**", "*.h"),
                             recursive=True))
    root = os.path.dirname(CSRC)
    if os.path.abspath(os.getcwd()) == root:
        found = [os.path.relpath(s, root) for s in found]
    return found


def build_options(portable: bool | None = None) -> dict[str, list[Any]]:
    """set_source() options every extension built from csrc/ shares.
    ``portable``: the atomics layer (default: :func:`atomics_impl`)."""
    if portable is None:
        portable = atomics_impl() == "portable"
    return dict(
        include_dirs=[CSRC],
        depends=headers_under(CSRC),
        define_macros=[("LF_ATOMICS_PORTABLE", "1")] if portable else [],
        # -O2, never -march=native: wheels must run on any x86-64.
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra",
                            "-Wno-unused-parameter"]
        + shlex.split(os.environ.get("LOCKFREE_CFLAGS", "")),
        # 16-byte __atomic operations live in libatomic (portable layer).
        libraries=["atomic"] if portable else [],
        extra_link_args=([] if os.environ.get("LOCKFREE_DEBUG") == "1"
                         else ["-Wl,--strip-debug"])
        + shlex.split(os.environ.get("LOCKFREE_LDFLAGS", "")),
    )


def ffibuilder() -> FFI:
    """The builder of ``lockfree._lockfree`` (cffi calls it: a function,
    so that importing this module reads no header)."""
    builder = FFI()
    decls = cdefs()
    builder.cdef("\n".join(decls.values()))
    builder.set_source(
        "lockfree._lockfree",
        "\n".join(f'#include "{h}"' for name in decls for h in headers(name)),
        sources=sources(CSRC) + sources(os.path.join(CSRC, "shims")),
        **build_options())
    return builder


if __name__ == "__main__":
    ffibuilder().compile(verbose=True)
