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

# The C declarations Python sees, one block per tool (csrc/tools/<name>.h).
CDEF = {
    "noop": """
        void lf_noop0(void);
        int64_t lf_noop1(void *p);
        int64_t lf_noop2(void *p, int64_t a);
        int64_t lf_noop3(void *p, int64_t a, int64_t b);
    """,
    "treiber": """
        #define LF_TREIBER_NIL 0xFFFFFFFFFFFFFFFF
        typedef struct lf_u128 { uint64_t lo, hi; ...; } lf_u128_t;
        struct lf_treiber { lf_u128_t head; ...; };
        struct lf_treiber_snap { uint64_t top, tag, next; };
        uint64_t lf_treiber_size(uint64_t capacity);
        void lf_treiber_init(struct lf_treiber *s, uint64_t capacity,
                             int tagged);
        void lf_treiber_push(struct lf_treiber *s, uint64_t node);
        uint64_t lf_treiber_pop(struct lf_treiber *s);
        int lf_treiber_pop_begin(struct lf_treiber *s,
                                 struct lf_treiber_snap *snap);
        int lf_treiber_pop_commit(struct lf_treiber *s,
                                  const struct lf_treiber_snap *snap);
        uint64_t lf_treiber_walk(struct lf_treiber *s, uint64_t *out,
                                 uint64_t max);
    """,
    "demo": """
        int lf_demo_lost_update(int threads, int64_t iters, int64_t *out);
        int lf_demo_cas_retry(int threads, int64_t iters, int64_t *hist,
                              int nbins, int64_t *out);
    """,
    "bench": """
        #define LF_BENCH_NONE 0
        #define LF_BENCH_LF_RW_MIXED 5
        #define LF_BENCH_NPRIMS 12
        #define LF_BENCH_MAX_THREADS 64
        #define LF_BENCH_MAX_LINES 64
        #define LF_BENCH_BUCKETS 976
        struct lf_bench_config {
            int32_t prim;
            int32_t threads;
            uint64_t duration_ns;
            uint64_t cs_ns;
            uint64_t ncs_ns;
            int32_t cs_lines;
            int32_t read_pct;
            uint32_t lat_every;
            int32_t cpu[64];
        };
        struct lf_bench_thread {
            uint64_t acquisitions;
            uint64_t reads;
            uint64_t utime_ns;
            uint64_t stime_ns;
            uint64_t vcsw;
            uint64_t ivcsw;
            int32_t cpu;
            int32_t pin_error;
        };
        struct lf_bench_result {
            uint64_t elapsed_ns;
            uint64_t acquisitions;
            uint64_t reads;
            uint64_t writes;
            uint64_t timed;
            uint64_t counter;
            uint64_t torn;
            int32_t ok;
            int32_t cs_iters;
            int32_t ncs_iters;
            double iters_per_ns;
            double ticks_per_ns;
            double timer_ns;
            double lat_p50_ns, lat_p99_ns, lat_p999_ns, lat_max_ns,
                   lat_mean_ns;
            uint64_t hist[976];
            struct lf_bench_thread thread[64];
            ...;
        };
        int lf_bench_run(const struct lf_bench_config *cfg,
                         struct lf_bench_result *r);
        int lf_bench_available(int prim);
        const char *lf_bench_name(int prim);
        const char *lf_bench_clock(void);
        double lf_bench_bucket_ns(int i, double ticks_per_ns);
    """,
}

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
                 tools: tuple[str, ...] = tuple(CDEF), ck: bool = False,
                 portable: bool | None = None) -> FFI:
    """An FFI builder of ``tools`` (keys of :data:`CDEF`) and the core.

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
    builder.cdef("\n".join(CDEF[t] for t in tools))
    builder.set_source(module,
                       "\n".join(f'#include "{t}.h"' for t in tools),
                       sources=srcs, **opts)
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
