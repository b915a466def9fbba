/*
 * x86-64 implementation of the atomics layer, in inline assembly.
 * Include arch/atomic.h, never this file directly.
 *
 * Memory model (x86-64 is TSO, "total store order"): the CPU may only reorder
 * a store with a LATER load from a different address (the store waits in the
 * store buffer while the load goes ahead).  Load->load, store->store and
 * load->store orders are kept by the hardware.  Therefore:
 *
 *   - lf_smp_rmb() and lf_smp_wmb() need no instruction: they are compiler
 *     barriers only, to stop GCC from reordering the accesses itself (the
 *     kernel's x86 smp_rmb/smp_wmb are barrier() for the same reason);
 *   - an acquire load is a plain mov, a release store is a plain mov;
 *   - only lf_smp_mb() needs an instruction, to drain the store buffer before
 *     later loads.  A locked add to the stack does this and is cheaper than
 *     mfence (the kernel's x86-64 smp_mb uses the same trick);
 *   - every lock-prefixed instruction and xchg (implicitly locked) is a full
 *     barrier, so xchg/cmpxchg/xadd/bts/btr here need no extra fence.
 */
#ifndef LF_ARCH_X86_64_H
#define LF_ARCH_X86_64_H

#include <emmintrin.h>  /* SSE2: baseline on every x86-64 */
#include <stdbool.h>
#include <stdint.h>

static inline void lf_barrier(void) { __asm__ __volatile__("" ::: "memory"); }

static inline void lf_cpu_relax(void)
{
	/* "rep; nop": tells the core this is a spin-wait loop, so it does not
	 * flood the pipeline with speculative loads of the lock word and, on an
	 * SMT core, yields execution resources to the sibling thread (which may
	 * be the lock holder). */
	__asm__ __volatile__("pause" ::: "memory");
}

static inline void lf_smp_mb(void)
{
	__asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc");
}

/* lfence: later instructions do not start until every earlier one is done,
 * so later loads are not issued while an earlier load still waits for its
 * line.  Not needed for ordering (TSO keeps load->load order); see
 * arch/atomic.h for what it is for. */
static inline void lf_barrier_nospec(void)
{
	__asm__ __volatile__("lfence" ::: "memory");
}

/*
 * A load that a preceding locked read-modify-write of another word is
 * ordered before (store->load): the handshake of two sides that each
 * announce themselves with an RMW, then look at the other side's word (the
 * RW lock's readers and writer; pairs with the other side's RMW).  Every
 * locked instruction is a full barrier on x86, so a plain load.
 */
static inline uint64_t lf_read64_after_rmw(const uint64_t *p)
{
	return *(const volatile uint64_t *)p;
}

/*
 * Is any of the 16 words at p nonzero, read after a locked RMW as above?
 * Eight 16-byte SSE2 loads: sixteen scalar loads after a locked cmpxchg
 * made the RW lock's uncontended write pair 4-10x slower (~26 against
 * ~3 ns).  A 16-byte load may be carried out as smaller accesses, but each
 * is ordered after the RMW and reads the latest value, and only "is any
 * word nonzero" is asked: a word made nonzero before such an access is
 * seen nonzero.
 */
static inline bool lf_any_nonzero64x16_after_rmw(const uint64_t *w)
{
	const __m128i *p = (const __m128i *)(const void *)w;
	__m128i a, b, c, d, e, f, g, h;
	lf_barrier();  /* the loads stay after the caller's RMW */
	a = _mm_loadu_si128(p + 0); b = _mm_loadu_si128(p + 1);
	c = _mm_loadu_si128(p + 2); d = _mm_loadu_si128(p + 3);
	e = _mm_loadu_si128(p + 4); f = _mm_loadu_si128(p + 5);
	g = _mm_loadu_si128(p + 6); h = _mm_loadu_si128(p + 7);
	lf_barrier();
	a = _mm_or_si128(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)),
			 _mm_or_si128(_mm_or_si128(e, f), _mm_or_si128(g, h)));
	return _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_setzero_si128())) !=
	       0xFFFF;
}

/* TSO keeps load->load and store->store order: compiler barriers only. */
static inline void lf_smp_rmb(void) { lf_barrier(); }
static inline void lf_smp_wmb(void) { lf_barrier(); }

/*
 * LF_ARCH_OPS(W, T, S): the per-width operations for a W-bit unsigned type T
 * whose instruction suffix is S ("b", "w", "l", "q").  The "q" register
 * constraint allows any register with an addressable low byte, which on
 * x86-64 is every general register, so one constraint serves every width.
 */
#define LF_ARCH_OPS(W, T, S)                                                  \
static inline T lf_read##W(const volatile T *p) { return *p; }                \
static inline void lf_write##W(volatile T *p, T v) { *p = v; }               \
static inline T lf_load_acquire##W(const volatile T *p)                       \
{                                                                             \
	T v = *p;                                                             \
	lf_barrier();                                                         \
	return v;                                                             \
}                                                                             \
static inline void lf_store_release##W(volatile T *p, T v)                    \
{                                                                             \
	lf_barrier();                                                         \
	*p = v;                                                               \
}                                                                             \
static inline T lf_xchg##W(volatile T *p, T v)                                \
{                                                                             \
	/* xchg with a memory operand is locked without the prefix. */        \
	__asm__ __volatile__("xchg" S " %0, %1"                               \
			     : "+q"(v), "+m"(*p) : : "memory");               \
	return v;                                                             \
}                                                                             \
static inline T lf_cmpxchg##W(volatile T *p, T old, T new_)                   \
{                                                                             \
	T prev;                                                               \
	__asm__ __volatile__("lock; cmpxchg" S " %2, %1"                      \
			     : "=a"(prev), "+m"(*p)                           \
			     : "q"(new_), "0"(old) : "memory", "cc");         \
	return prev;                                                          \
}                                                                             \
static inline T lf_xadd##W(volatile T *p, T v)                                \
{                                                                             \
	__asm__ __volatile__("lock; xadd" S " %0, %1"                         \
			     : "+q"(v), "+m"(*p) : : "memory", "cc");         \
	return v;                                                             \
}

LF_ARCH_OPS(8, uint8_t, "b")
LF_ARCH_OPS(16, uint16_t, "w")
LF_ARCH_OPS(32, uint32_t, "l")
LF_ARCH_OPS(64, uint64_t, "q")
#undef LF_ARCH_OPS

/* The kernel's bit group on one 64-bit word; nr must be < 64. */
static inline bool lf_test_and_set_bit64(volatile uint64_t *p, unsigned nr)
{
	bool old;
	__asm__ __volatile__("lock; btsq %2, %0"
			     : "+m"(*p), "=@ccc"(old) : "r"((uint64_t)nr)
			     : "memory");
	return old;
}

static inline bool lf_test_and_clear_bit64(volatile uint64_t *p, unsigned nr)
{
	bool old;
	__asm__ __volatile__("lock; btrq %2, %0"
			     : "+m"(*p), "=@ccc"(old) : "r"((uint64_t)nr)
			     : "memory");
	return old;
}

static inline void lf_set_bit64(volatile uint64_t *p, unsigned nr)
{
	__asm__ __volatile__("lock; btsq %1, %0"
			     : "+m"(*p) : "r"((uint64_t)nr) : "memory", "cc");
}

static inline void lf_clear_bit64(volatile uint64_t *p, unsigned nr)
{
	__asm__ __volatile__("lock; btrq %1, %0"
			     : "+m"(*p) : "r"((uint64_t)nr) : "memory", "cc");
}

/* cmpxchg16b compares rdx:rax with the 16 bytes at p; if equal, stores
 * rcx:rbx there (ZF=1), else loads them into rdx:rax (ZF=0). */
static inline bool lf_cmpxchg128(volatile lf_u128_t *p, lf_u128_t *old,
				 lf_u128_t new_)
{
	bool ok;
	__asm__ __volatile__("lock; cmpxchg16b %1"
			     : "=@ccz"(ok), "+m"(*p), "+a"(old->lo), "+d"(old->hi)
			     : "b"(new_.lo), "c"(new_.hi) : "memory");
	return ok;
}

#endif /* LF_ARCH_X86_64_H */
