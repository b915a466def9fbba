"""cffi build script (out-of-line API mode) for ``lockfree._tools``.

The tools are not the library: the lock benchmark's C harness
(``csrc/tools/bench.c``), the demos' C workloads (``demo.c``), the Treiber
stack of the ABA demo (``treiber.c``) and the FFI floor ``lf_noop0..3``
(``noop.c``).  setup.py builds them into their own extension, next to
``lockfree._lockfree`` (``_build.py``, whose options and environment
variables this shares), so the runtime extension holds only the library.
They call the core, so the core's sources (``csrc/*.c``) are compiled in
again, with hidden visibility and unused sections dropped: the module
exports only its init function.

Always built without Concurrency Kit (``LF_BENCH_NO_CK``): the wheel must
not depend on the optional headers of the machine that built it.  ``python
-m lockfree bench`` builds a CK-enabled harness on demand instead
(``lockfree/bench/ck.py``, which calls :func:`make_builder` with
``ck=True``).
"""

import importlib.util
import os
import re
import types

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_build() -> types.ModuleType:
    # cffi runs build scripts with exec(), not import: load the sibling
    # _build.py by its path (in the source tree and in an installed wheel).
    spec = importlib.util.spec_from_file_location(
        "_lockfree_build", os.path.join(HERE, "_build.py"))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HERE}/_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_build = _load_build()

#: The tools and their headers (relative to csrc/), whose marked sections
#: (``/* cffi:begin */`` ... ``/* cffi:end */``) make their cdefs
#: (:func:`_build.cdef_of`); the Treiber stack's head is an lf_u128_t.
TOOLS = {
    "noop": ("tools/noop.h",),
    "treiber": ("arch/atomic.h", "tools/treiber.h"),
    "demo": ("tools/demo.h",),
    "bench": ("tools/bench.h",),
}


def cdefs(csrc: str | None = None,
          tools: tuple[str, ...] = tuple(TOOLS)) -> dict[str, str]:
    """{tool: its cdef} for ``tools``, from the headers in ``csrc``."""
    base = str(_build.CSRC) if csrc is None else csrc
    return {t: "\n".join(_build.cdef_of(os.path.join(base, h))
                         for h in TOOLS[t]) for t in tools}


# Compile options of the tools on top of the library's: only what the
# module's C code reaches is kept, and only PyInit_* is exported.
SHRINK_CFLAGS = ["-fvisibility=hidden", "-ffunction-sections",
                 "-fdata-sections"]
SHRINK_LDFLAGS = ["-Wl,--gc-sections"]


#: What the on-demand CK harness compiles (bench/ck.py), relative to csrc/:
#: the bench harness and the core it calls.  setup.py installs these and the
#: headers they include (:func:`ck_files`) as lockfree/_csrc; a missing one
#: makes the CK build fail to load, which tests/test_bench.py would show.
CK_SOURCES = ("tools/bench.c", "lockwait.c", "rwlock.c", "spinlock.c",
              "ticketlock.c")


def ck_files(csrc: str) -> list[str]:
    """CK_SOURCES and every header they include (``#include "..."``,
    transitively; both branches of a conditional include), relative to
    ``csrc``."""
    todo, seen = list(CK_SOURCES), set[str]()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        with open(os.path.join(csrc, rel)) as f:
            text = f.read()
        for inc in re.findall(r'(?m)^\s*#\s*include\s+"([^"]+)"', text):
            for base in (os.path.dirname(rel), "", "tools"):
                cand = os.path.normpath(os.path.join(base, inc))
                if os.path.isfile(os.path.join(csrc, cand)):
                    todo.append(cand)
                    break
            else:
                raise FileNotFoundError(f"{rel} includes {inc}: not found")
    return sorted(seen)


def make_builder(module: str = "lockfree._tools", csrc: str | None = None,
                 tools: tuple[str, ...] = tuple(TOOLS), ck: bool = False,
                 portable: bool | None = None) -> FFI:
    """An FFI builder of ``tools`` (keys of :data:`TOOLS`) and the core.

    ``csrc``: the C source tree (default: the repository's ``csrc/``; an
    installed wheel carries what the CK build needs as ``lockfree/_csrc``).
    ``ck``: the bench harness with Concurrency Kit's locks (needs
    ``<ck_spinlock.h>``), from :data:`CK_SOURCES` only; otherwise
    ``LF_BENCH_NO_CK`` leaves them out.
    ``portable``: the atomics layer (default: the build's choice).
    """
    if csrc is None:
        csrc = str(_build.CSRC)
    tools_dir = os.path.join(csrc, "tools")
    opts = _build.build_options(portable)
    opts["include_dirs"] = [csrc, tools_dir]
    opts["extra_compile_args"] = SHRINK_CFLAGS + opts["extra_compile_args"]
    opts["extra_link_args"] = SHRINK_LDFLAGS + opts["extra_link_args"]
    if not ck:
        opts["define_macros"] = opts["define_macros"] + [
            ("LF_BENCH_NO_CK", "1")]
    if ck:
        srcs = [os.path.join(csrc, *s.split("/")) for s in CK_SOURCES]
    else:
        srcs = _build.sources(csrc) + [
            s for s in _build.sources(tools_dir)
            if os.path.basename(s)[:-2] in tools]
    builder = FFI()
    builder.cdef("\n".join(cdefs(csrc, tools).values()))
    builder.set_source(module,
                       "\n".join(f'#include "{t}.h"' for t in tools),
                       sources=srcs, **opts)
    return builder


def ffibuilder() -> FFI:
    """The builder of ``lockfree._tools`` (cffi calls it: a function, so
    that importing this module, as bench/ck.py does in an installed wheel
    without csrc/, reads no header)."""
    return make_builder()


if __name__ == "__main__":
    ffibuilder().compile(verbose=True)
