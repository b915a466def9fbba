"""cffi build script (out-of-line API mode) for ``lockfree._lockfree``.

setup.py names it in ``cffi_modules``; it compiles the library, the C
sources directly in ``csrc/``, into one extension module (the tools in
``csrc/tools/`` go into ``lockfree._tools``: ``_build_tools.py``).
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
"""

import glob
import os
import platform
import shlex
from typing import Any

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.normpath(os.path.join(HERE, "..", "..", "csrc"))

# The C declarations Python sees, one block per concept, in csrc/ order.
CDEF = {
    "build_info": """
        const char *lf_build_atomics(void);
        const char *lf_build_arch(void);
        const char *lf_build_compiler(void);
    """,
    "region": """
        #define LF_REGION_HEADER 64
        #define LF_LAYOUT_VERSION ...
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
        bool lf_atomic_try_cmpxchg(lf_atomic_t *a, int64_t old, int64_t new_);
        int64_t lf_atomic_fetch_add(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_fetch_sub(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_add_fetch(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_sub_fetch(lf_atomic_t *a, int64_t v);
        int64_t lf_atomic_fetch_inc(lf_atomic_t *a);
        int64_t lf_atomic_fetch_dec(lf_atomic_t *a);
        int64_t lf_atomic_inc_return(lf_atomic_t *a);
        int64_t lf_atomic_dec_return(lf_atomic_t *a);
        bool lf_atomic_test_and_set_bit(lf_atomic_t *a, unsigned nr);
        bool lf_atomic_test_and_clear_bit(lf_atomic_t *a, unsigned nr);
        void lf_atomic_set_bit(lf_atomic_t *a, unsigned nr);
        void lf_atomic_clear_bit(lf_atomic_t *a, unsigned nr);
        bool lf_atomic_test_bit(lf_atomic_t *a, unsigned nr);
    """,
    "errors": """
        #define LF_OK ...
        #define LF_EAGAIN ...
        #define LF_EOF ...
        #define LF_EDEAD ...
        #define LF_EBUSY ...
        #define LF_EMSGSIZE ...
        #define LF_ECLOSED ...
        #define LF_ECORRUPT ...
        #define LF_EBIG ...
        #define LF_EINVAL ...
        #define LF_EPERM ...
        #define LF_EDEADLK ...
        #define LF_ENOSPC ...
        #define LF_ENOMEM ...
        #define LF_EMISUSE ...
    """,
    "lockwait": """
        #define LF_LOCK_STATS 1
        #define LF_LOCK_TTAS 2
        #define LF_ACQUIRED 1
        #define LF_SLICE_NS 50000000
        typedef struct lf_lockstats {
            uint64_t acquisitions;
            uint64_t contended;
            uint64_t spins;
            uint64_t yields;
        } lf_lockstats_t;
        #define LF_FOREVER ...
        #define LF_NOWAIT ...
        uint64_t lf_owner_self_id(void);
        int lf_owner_alive(uint64_t id);
        int lf_pid_alive(uint32_t pid);
        uint64_t lf_now_ns(void);
    """,
    "spinlock": """
        typedef struct lf_spinlock {
            uint32_t flags;
            uint64_t owner;
            lf_lockstats_t stats;
            ...;
        } lf_spinlock_t;
        void lf_spin_init(lf_spinlock_t *l, uint32_t flags);
        bool lf_spin_try_acquire(lf_spinlock_t *l);
        int64_t lf_spin_acquire_until(lf_spinlock_t *l, uint64_t deadline);
        int64_t lf_spin_lock_slow(lf_spinlock_t *l, uint64_t deadline);
        int lf_spin_release(lf_spinlock_t *l);
        int lf_spin_release_counted(lf_spinlock_t *l);
        bool lf_spin_locked(lf_spinlock_t *l);
        uint64_t lf_spin_owner(lf_spinlock_t *l);
        int lf_spin_recover(lf_spinlock_t *l);
    """,
    "ticketlock": """
        #define LF_TICKET_SLOTS 64
        #define LF_TICKET_QUEUED 2
        typedef struct lf_ticketlock {
            uint32_t head;
            uint32_t tail;
            uint32_t flags;
            lf_lockstats_t stats;
            uint64_t slot[64];
            ...;
        } lf_ticketlock_t;
        void lf_ticket_init(lf_ticketlock_t *l, uint32_t flags);
        bool lf_ticket_try_acquire(lf_ticketlock_t *l);
        int64_t lf_ticket_take(lf_ticketlock_t *l, uint64_t deadline);
        int64_t lf_ticket_wait(lf_ticketlock_t *l, uint32_t t,
                               uint64_t deadline, int give_up);
        int lf_ticket_abandon(lf_ticketlock_t *l, uint32_t t);
        int64_t lf_ticket_acquire_until(lf_ticketlock_t *l,
                                        uint64_t deadline);
        int lf_ticket_release(lf_ticketlock_t *l);
        int lf_ticket_release_counted(lf_ticketlock_t *l);
        bool lf_ticket_locked(lf_ticketlock_t *l);
        uint64_t lf_ticket_owner(lf_ticketlock_t *l);
        int lf_ticket_recover(lf_ticketlock_t *l);
    """,
    "rwlock": """
        #define LF_RW_SLOTS ...
        struct lf_rw_slot { uint64_t word; ...; };
        typedef struct lf_rwlock {
            uint32_t flags;
            uint64_t owner;
            lf_lockstats_t stats;
            uint64_t read_acquisitions;
            struct lf_rw_slot slots[...];
            ...;
        } lf_rwlock_t;
        void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags);
        bool lf_rwlock_read_try_acquire(lf_rwlock_t *l);
        int64_t lf_rwlock_read_lock_slow(lf_rwlock_t *l, uint64_t deadline);
        int64_t lf_rwlock_write_lock_slow(lf_rwlock_t *l, uint64_t deadline);
        int64_t lf_rwlock_read_acquire_until(lf_rwlock_t *l,
                                             uint64_t deadline);
        int lf_rwlock_read_release(lf_rwlock_t *l);
        int lf_rwlock_read_release_counted(lf_rwlock_t *l);
        bool lf_rwlock_write_try_acquire(lf_rwlock_t *l);
        int64_t lf_rwlock_write_acquire_until(lf_rwlock_t *l,
                                              uint64_t deadline);
        int lf_rwlock_write_release(lf_rwlock_t *l);
        int lf_rwlock_write_release_counted(lf_rwlock_t *l);
        uint64_t lf_rwlock_readers(lf_rwlock_t *l);
        bool lf_rwlock_write_locked(lf_rwlock_t *l);
        uint64_t lf_rwlock_owner(lf_rwlock_t *l);
        int lf_rwlock_recover(lf_rwlock_t *l);
        uint64_t lf_rwlock_dead_reader(lf_rwlock_t *l);
    """,
    "rcu": """
        #define LF_RCU_MAX_READERS 4096
        #define LF_RCU_BUF_MAX_SLOTS 255
        struct lf_rcu_domain {
            uint64_t nr_dead; uint64_t nr_gp; uint64_t nr_readers; ...;
        };
        struct lf_rcu_buf { uint64_t nr_recycled; ...; };
        struct lf_rcu_dh {
            struct lf_rcu_domain *d; uint32_t capacity; ...;
        };
        struct lf_rcu_bh {
            struct lf_rcu_dh dom; struct lf_rcu_buf *b; char *data;
            uint64_t slot_size; uint32_t nslots; ...;
        };
        struct lf_rcu_rh { int64_t idx; ...; };
        uint64_t lf_rcu_domain_size(uint32_t capacity);
        int lf_rcu_init(struct lf_rcu_domain *d, uint32_t capacity);
        int lf_rcu_handle_init(struct lf_rcu_dh *h, struct lf_rcu_domain *d,
                               uint64_t avail, uint32_t capacity,
                               const char **field);
        void lf_rcu_rh_init(struct lf_rcu_rh *r, const struct lf_rcu_dh *h,
                            const struct lf_rcu_bh *bh);
        int lf_rcu_register(struct lf_rcu_rh *r);
        int lf_rcu_unregister(struct lf_rcu_rh *r);
        int lf_rcu_read_lock(struct lf_rcu_rh *r);
        int lf_rcu_read_unlock(struct lf_rcu_rh *r);
        int64_t lf_rcu_read_depth(struct lf_rcu_rh *r);
        int lf_rcu_synchronize_until(const struct lf_rcu_dh *h,
                                     uint64_t deadline);
        uint64_t lf_rcu_start_poll(const struct lf_rcu_dh *h);
        int lf_rcu_poll_state(const struct lf_rcu_dh *h, uint64_t cookie);
        uint64_t lf_rcu_buf_size(uint32_t capacity, uint32_t nslots,
                                 uint64_t slot_size);
        int lf_rcu_buf_init(struct lf_rcu_buf *b, uint32_t capacity,
                            uint32_t nslots, uint64_t slot_size);
        int lf_rcu_buf_handle_init(struct lf_rcu_bh *h, struct lf_rcu_buf *b,
                                   uint64_t avail, uint32_t capacity,
                                   uint32_t nslots, uint64_t size,
                                   const char **field);
        int64_t lf_rcu_buf_read_lock(struct lf_rcu_rh *r);
        int lf_rcu_buf_publish(const struct lf_rcu_bh *h, const char *data,
                               uint64_t len, uint64_t deadline);
        uint64_t lf_rcu_buf_version(const struct lf_rcu_bh *h);
    """,
    "seqlock": """
        #define LF_SEQ_LATCH 1
        #define LF_SEQ_META_OFF 128
        #define LF_SEQ_MAX_SIZE ...
        #define LF_SEQ_INLINE_MAX 40
        typedef struct lf_seqlock {
            uint32_t seq;
            uint32_t flags;
            uint32_t size;
            uint32_t data_off;
            uint32_t stride;
            uint32_t meta_len;
            lf_spinlock_t lock;
            uint32_t wseq;
            ...;
        } lf_seqlock_t;
        struct lf_seq_handle {
            lf_seqlock_t *sl;
            char *copy0;
            uint32_t size;
            uint32_t stride;
            uint32_t flags;
            uint32_t meta_len;
            void *buf;
            uint64_t owner;
            int64_t retries;
        };
        uint64_t lf_seq_state_size(uint64_t size, uint32_t flags,
                                   uint64_t meta_len);
        /* const char * where seqlock.h says const void *: cffi passes a
           bytes object to a char * without copying it (tests/test_cdef.py
           allows exactly this difference). */
        void lf_seq_init(lf_seqlock_t *sl, uint64_t size, uint32_t flags,
                         const char *meta, uint64_t meta_len);
        int lf_seq_handle_init(struct lf_seq_handle *h, lf_seqlock_t *sl,
                               uint64_t bytes, uint64_t size, uint32_t flags,
                               uint64_t meta_len, const char **field);
        const char *lf_seq_meta(const struct lf_seq_handle *h);
        int64_t lf_seq_read_until(const struct lf_seq_handle *h, void *dst,
                                  uint64_t len, uint64_t deadline);
        int64_t lf_seq_read(const struct lf_seq_handle *h, void *dst,
                            uint64_t len);
        int64_t lf_seq_write_until(const struct lf_seq_handle *h,
                                   const char *src, uint64_t len,
                                   uint64_t deadline);
        int64_t lf_seq_write(const struct lf_seq_handle *h, const char *src,
                             uint64_t len);
        int64_t lf_seq_recover(const struct lf_seq_handle *h,
                               const char *src, uint64_t len);
        uint32_t lf_seq_sequence(const struct lf_seq_handle *h);
        uint64_t lf_seq_writer(const struct lf_seq_handle *h);
        int64_t lf_seq_fetch(struct lf_seq_handle *h);
        int64_t lf_seq_fetch_until(struct lf_seq_handle *h,
                                   uint64_t deadline);
        int64_t lf_seq_store(const struct lf_seq_handle *h, const char *src);
    """,
    "kfifo": """
        #define LF_KFIFO_BYTES 0
        #define LF_KFIFO_RECORDS 1
        #define LF_KFIFO_MIN_SIZE 2
        #define LF_KFIFO_MAX_SIZE 2147483648
        #define LF_KFIFO_REC_HDR 4
        #define LF_KFIFO_FMT_ITEM 11
        #define LF_KFIFO_REC_PAD 4294967295
        #define LF_KFIFO_ROLE_PRODUCER 1
        #define LF_KFIFO_ROLE_CONSUMER 2
        struct lf_kfifo {
            uint32_t in; uint32_t out; uint32_t size; uint32_t mask;
            uint32_t in_cache; uint32_t out_cache;
            unsigned char data[]; ...;
        };
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
        int lf_kfifo_hold(struct lf_kfifo_handle *h, uint32_t role);
        void lf_kfifo_unhold(struct lf_kfifo_handle *h, uint32_t role);
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
        int64_t lf_kfifo_rec_count(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_parts(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_skip(struct lf_kfifo_handle *h);
        int lf_kfifo_rec_reserve(struct lf_kfifo_handle *h, uint32_t n);
        int lf_kfifo_rec_commit(struct lf_kfifo_handle *h);
        int lf_kfifo_rec_abort(struct lf_kfifo_handle *h);
        int lf_kfifo_rec_put_wait(struct lf_kfifo_handle *h, const char *p,
                                  uint32_t n);
        int64_t lf_kfifo_rec_get_wait(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_rec_get_many_wait(struct lf_kfifo_handle *h,
                                           uint32_t max_items);
        int lf_kfifo_wait_readable(struct lf_kfifo_handle *h,
                                   uint64_t deadline);
        int lf_kfifo_wait_writable(struct lf_kfifo_handle *h, uint32_t need,
                                   uint64_t deadline);
        int lf_kfifo_close_producer(struct lf_kfifo_handle *h);
        int64_t lf_kfifo_reset(struct lf_kfifo_handle *h);
    """,
}


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
    """The C sources directly in ``directory`` (csrc/ holds the library;
    csrc/arch/ only headers, csrc/tools/ the tools of ``_build_tools.py``),
    relative to setup.py's directory when building from there, as
    setuptools wants."""
    found = sorted(glob.glob(os.path.join(directory, "*.c")))
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


def _make_builder() -> FFI:
    builder = FFI()
    builder.cdef("\n".join(CDEF.values()))
    builder.set_source(
        "lockfree._lockfree",
        "\n".join(f'#include "{name}.h"' for name in CDEF),
        sources=sources(CSRC), **build_options())
    return builder


ffibuilder = _make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
