/*
 * The atomics layer: the only place in lockfree with inline assembly.
 *
 * One API, two implementations chosen at build time (the liburcu habit):
 *
 *   arch/x86_64.h    inline asm: lock cmpxchg, xchg, lock xadd, lock bts/btr,
 *                    pause.  The default on x86-64.
 *   arch/portable.h  GCC __atomic builtins.  The default everywhere else, and
 *                    selected on x86-64 by building with
 *                    LOCKFREE_ATOMICS=portable (which defines
 *                    LF_ATOMICS_PORTABLE).  ThreadSanitizer cannot see inside
 *                    inline asm, so the sanitizer builds of the C stress tests
 *                    use this one to check the algorithms.
 *
 * Every primitive (atomic int, spinlocks, seqlock, RCU, kfifo) is written
 * against this API only.  For each width W in {8, 16, 32, 64} with type uW:
 *
 *   lf_readW(p)              READ_ONCE: one untorn load, no ordering.
 *   lf_writeW(p, v)          WRITE_ONCE: one untorn store, no ordering.
 *   lf_load_acquireW(p)      load; later accesses are not hoisted above it.
 *   lf_store_releaseW(p, v)  store; earlier accesses are not sunk below it.
 *   lf_xchgW(p, v)           atomic exchange, full barrier, returns old value.
 *   lf_cmpxchgW(p, o, n)     atomic compare-and-swap, full barrier; returns the
 *                            value seen, so it succeeded iff that equals o.
 *   lf_xaddW(p, v)           atomic fetch-and-add, full barrier, returns old.
 *
 * and for 64-bit words only:
 *
 *   lf_test_and_set_bit64(p, nr), lf_test_and_clear_bit64(p, nr)  (full
 *   barrier, return the old bit), lf_set_bit64, lf_clear_bit64 (full barrier).
 *
 * and for 128-bit pairs (lf_u128_t, 16-byte aligned):
 *
 *   lf_cmpxchg128(p, &old, new)  atomic 16-byte compare-and-swap, full
 *                            barrier; true on success, else stores the value
 *                            seen into old.  The tagged-pointer CAS that
 *                            defeats ABA (x86-64 "lock cmpxchg16b").
 *
 * Barriers:
 *
 *   lf_barrier()     compiler barrier only.
 *   lf_smp_mb()      full barrier: orders every earlier load/store before
 *                    every later one, including store->load.
 *   lf_smp_rmb()     orders earlier loads before later loads.
 *   lf_smp_wmb()     orders earlier stores before later stores.
 *   lf_cpu_relax()   spin-wait hint (x86 "pause").
 *   lf_barrier_nospec()  later instructions do not start until the earlier
 *                    ones are done (x86 "lfence"; the kernel's
 *                    barrier_nospec()).  Orders nothing TSO does not
 *                    already order: a performance tool, used where a
 *                    reader should not have several loads of a contended
 *                    line in flight at once (seqlock.c).  Elsewhere a
 *                    compiler barrier.
 *
 * Context: all of these may be called from any thread or process, from a
 * signal handler too; none of them blocks.
 */
#ifndef LF_ARCH_ATOMIC_H
#define LF_ARCH_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

/* A pair of words that lf_cmpxchg128 swaps as one (lo at the lower
 * address: the low half of an unsigned __int128 on little-endian targets). */
/* cffi:begin */
typedef struct lf_u128 {
	uint64_t lo, hi;
} __attribute__((aligned(16))) lf_u128_t;
/* cffi:end */

#if defined(LF_ATOMICS_PORTABLE) || !defined(__x86_64__)
# ifndef LF_ATOMICS_PORTABLE
#  define LF_ATOMICS_PORTABLE 1
# endif
# include "portable.h"
# define LF_ATOMICS_IMPL "portable"
#else
# include "x86_64.h"
# define LF_ATOMICS_IMPL "x86-64-asm"
#endif

#define LF_CACHELINE 64
#define LF_CACHELINE_ALIGNED __attribute__((aligned(LF_CACHELINE)))

#endif /* LF_ARCH_ATOMIC_H */
