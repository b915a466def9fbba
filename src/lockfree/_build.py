"""cffi build script (out-of-line API mode) for ``lockfree._lockfree``.

setup.py names it in ``cffi_modules``; it compiles every C source in ``csrc/``
into one extension module.  Environment variables read at build time:

``LOCKFREE_ATOMICS``
    ``asm`` (default on x86-64) uses the inline-assembly atomics layer,
    ``portable`` the GCC ``__atomic`` one (the default elsewhere), which is
    what ThreadSanitizer can check.
``LOCKFREE_CFLAGS``
    extra compiler flags, appended (e.g. ``-fsanitize=address``).
"""

import glob
import os
import platform
import shlex

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.normpath(os.path.join(HERE, "..", "..", "csrc"))

# The C declarations Python sees, one block per concept, in csrc/ order.
CDEF = {
    "build_info": """
        const char *lf_build_atomics(void);
        const char *lf_build_arch(void);
        const char *lf_build_compiler(void);
        void lf_noop0(void);
        int64_t lf_noop1(void *p);
        int64_t lf_noop2(void *p, int64_t a);
        int64_t lf_noop3(void *p, int64_t a, int64_t b);
    """,
    "region": """
        #define LF_REGION_HEADER 64
        #define LF_LAYOUT_VERSION 1
        #define LF_KIND_ATOMIC 1
        #define LF_KIND_SPINLOCK 2
        #define LF_KIND_TICKETLOCK 3
        #define LF_KIND_RWLOCK 4
        #define LF_KIND_SEQLOCK 5
        #define LF_KIND_RCU 6
        #define LF_KIND_KFIFO 7
        #define LF_REGION_OK 0
        #define LF_REGION_EMAGIC -1
        #define LF_REGION_EVERSION -2
        #define LF_REGION_EKIND -3
        #define LF_REGION_ESIZE -4
        struct lf_region {
            uint64_t magic;
            uint32_t version;
            uint32_t kind;
            uint64_t size;
            uint64_t param[4];
            uint64_t reserved;
        };
        void lf_region_init(struct lf_region *r, uint32_t kind, uint64_t size);
        void lf_region_publish(struct lf_region *r);
        int lf_region_check(const struct lf_region *r, uint64_t avail,
                            uint32_t kind);
    """,
    "atomic": """
        typedef struct lf_atomic { uint64_t counter; } lf_atomic_t;
        void lf_atomic_init(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_load(lf_atomic_t *a);
        void lf_atomic_store(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_exchange(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_cmpxchg(lf_atomic_t *a, int64_t old, int64_t new_);
        int64_t lf_atomic_fetch_add(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_fetch_sub(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_add_fetch(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_sub_fetch(lf_atomic_t *a, int64_t v);
        bool lf_atomic_test_and_set_bit(lf_atomic_t *a, unsigned nr);
        bool lf_atomic_test_and_clear_bit(lf_atomic_t *a, unsigned nr);
        void lf_atomic_set_bit(lf_atomic_t *a, unsigned nr);
        void lf_atomic_clear_bit(lf_atomic_t *a, unsigned nr);
        bool lf_atomic_test_bit(lf_atomic_t *a, unsigned nr);
    """,
    "kfifo": """
        #define LF_KFIFO_BYTES 0
        #define LF_KFIFO_RECORDS 1
        #define LF_KFIFO_MIN_SIZE 2
        #define LF_KFIFO_MAX_SIZE 2147483648
        #define LF_KFIFO_REC_HDR 4
        #define LF_KFIFO_FMT_ITEM 11
        #define LF_KFIFO_EAGAIN -1
        #define LF_KFIFO_EOF -2
        #define LF_KFIFO_EDEAD -3
        #define LF_KFIFO_EBUSY -4
        #define LF_KFIFO_EMSGSIZE -5
        #define LF_KFIFO_ECLOSED -6
        #define LF_KFIFO_ECORRUPT -7
        #define LF_KFIFO_EBIG -8
        #define LF_KFIFO_EINVAL -9
        #define LF_KFIFO_ROLE_PRODUCER 1
        #define LF_KFIFO_ROLE_CONSUMER 2
        struct lf_kfifo { ...; };
        struct lf_kfifo_handle {
            struct lf_kfifo *f;
            uint32_t size;
            uint32_t mode;
            uint32_t roles;
            char *scratch;
            uint32_t scratch_size;
            uint32_t fmt_items;
            char *fmt;
            uint32_t msg_len;
            uint32_t part_len[2];
            char *part[2];
            ...;
        };
        void lf_kfifo_init(struct lf_kfifo *f, uint32_t size, uint32_t mode);
        uint64_t lf_kfifo_state_size(uint32_t size);
        int lf_kfifo_handle_init(struct lf_kfifo_handle *h, struct lf_kfifo *f,
                                 uint32_t size, uint32_t mode);
        void lf_kfifo_handle_scratch(struct lf_kfifo_handle *h, char *scratch,
                                     uint32_t scratch_size, char *fmt,
                                     uint32_t fmt_items);
        int lf_kfifo_register(struct lf_kfifo_handle *h, uint32_t role);
        void lf_kfifo_release(struct lf_kfifo_handle *h);
        int lf_kfifo_owner_pid(struct lf_kfifo_handle *h, uint32_t role);
        int lf_kfifo_pid_alive(int pid);
        int64_t lf_kfifo_len(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_avail(struct lf_kfifo_handle *h);
        int lf_kfifo_is_closed(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_put(struct lf_kfifo_handle *h, const char *p,
                             uint32_t n);
        int64_t lf_kfifo_get(struct lf_kfifo_handle *h, char *p, uint32_t n);
        int64_t lf_kfifo_get_scratch(struct lf_kfifo_handle *h, uint32_t n);
        int64_t lf_kfifo_peek(struct lf_kfifo_handle *h, char *p, uint32_t n);
        int64_t lf_kfifo_skip(struct lf_kfifo_handle *h, uint32_t n);
        int64_t lf_kfifo_parts(struct lf_kfifo_handle *h, uint32_t n);
        int lf_kfifo_rec_put(struct lf_kfifo_handle *h, const char *p,
                             uint32_t n);
        int64_t lf_kfifo_rec_put_many(struct lf_kfifo_handle *h,
                                      const char *buf, uint64_t buf_len,
                                      const uint32_t *lens, uint32_t count);
        int64_t lf_kfifo_rec_get(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_get_into(struct lf_kfifo_handle *h, char *p,
                                      uint32_t n);
        int64_t lf_kfifo_rec_get_many(struct lf_kfifo_handle *h,
                                      uint32_t max_items);
        int64_t lf_kfifo_rec_peek_len(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_parts(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_skip(struct lf_kfifo_handle *h);
        int lf_kfifo_rec_put_wait(struct lf_kfifo_handle *h, const char *p,
                                  uint32_t n);
        int64_t lf_kfifo_rec_get_wait(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_get_many_wait(struct lf_kfifo_handle *h,
                                           uint32_t max_items);
        int lf_kfifo_wait_readable(struct lf_kfifo_handle *h,
                                   int64_t timeout_ns);
        int lf_kfifo_wait_writable(struct lf_kfifo_handle *h, uint32_t need,
                                   int64_t timeout_ns);
        int lf_kfifo_close_producer(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_reset(struct lf_kfifo_handle *h);
        int lf_kfifo_debug_set_index(struct lf_kfifo_handle *h, uint32_t idx);
    """,
}


def atomics_impl():
    """The atomics implementation this build selects: 'asm' or 'portable'."""
    choice = os.environ.get("LOCKFREE_ATOMICS", "").strip().lower()
    if choice not in ("", "asm", "portable"):
        raise SystemExit(
            f"LOCKFREE_ATOMICS must be 'asm' or 'portable', not {choice!r}")
    if choice == "portable" or platform.machine().lower() not in (
            "x86_64", "amd64"):
        return "portable"
    return "asm"


def _make_builder():
    builder = FFI()
    builder.cdef("\n".join(CDEF.values()))
    macros = [("LF_ATOMICS_PORTABLE", "1")] if atomics_impl() == "portable" \
        else []
    sources = sorted(glob.glob(os.path.join(CSRC, "*.c")))
    # setuptools wants paths relative to setup.py when building from there.
    root = os.path.dirname(CSRC)
    if os.path.abspath(os.getcwd()) == root:
        sources = [os.path.relpath(s, root) for s in sources]
    builder.set_source(
        "lockfree._lockfree",
        "\n".join(f'#include "{name}.h"' for name in CDEF),
        sources=sources,
        include_dirs=[CSRC],
        define_macros=macros,
        # -O2, never -march=native: wheels must run on any x86-64.
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra",
                            "-Wno-unused-parameter"]
        + shlex.split(os.environ.get("LOCKFREE_CFLAGS", "")),
        extra_link_args=shlex.split(os.environ.get("LOCKFREE_LDFLAGS", "")),
    )
    return builder


ffibuilder = _make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
