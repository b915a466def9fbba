/*
 * Portable implementation of the atomics layer on GCC/Clang __atomic
 * builtins.  Include arch/atomic.h, never this file directly.
 *
 * Selected automatically off x86-64, and on x86-64 by building with
 * LOCKFREE_ATOMICS=portable.  Its purpose on x86-64 is ThreadSanitizer:
 * TSAN instruments __atomic builtins but cannot see inside inline asm, so the
 * sanitizer builds of tests/c/ use this file to check the algorithms.
 *
 * The orderings are the C11 ones that the x86-64 file gives for free on TSO:
 * read/write are relaxed, acquire/release are acquire/release, and every
 * read-modify-write is sequentially consistent (a full barrier, like a
 * lock-prefixed instruction).
 */
#ifndef LF_ARCH_PORTABLE_H
#define LF_ARCH_PORTABLE_H

static inline void lf_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

static inline void lf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	lf_barrier();
#endif
}

static inline void lf_barrier_nospec(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_lfence();
#else
	lf_barrier();  /* a performance hint only: nothing to do elsewhere */
#endif
}

static inline void lf_smp_mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void lf_smp_rmb(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void lf_smp_wmb(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }

#define LF_ARCH_OPS(W, T)                                                     \
static inline T lf_read##W(const volatile T *p)                               \
{ return __atomic_load_n(p, __ATOMIC_RELAXED); }                              \
static inline void lf_write##W(volatile T *p, T v)                            \
{ __atomic_store_n(p, v, __ATOMIC_RELAXED); }                                 \
static inline T lf_load_acquire##W(const volatile T *p)                       \
{ return __atomic_load_n(p, __ATOMIC_ACQUIRE); }                              \
static inline void lf_store_release##W(volatile T *p, T v)                    \
{ __atomic_store_n(p, v, __ATOMIC_RELEASE); }                                 \
static inline T lf_xchg##W(volatile T *p, T v)                                \
{ return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }                       \
static inline T lf_cmpxchg##W(volatile T *p, T old, T new_)                   \
{                                                                             \
	__atomic_compare_exchange_n(p, &old, new_, false,                     \
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);      \
	return old;  /* on failure the builtin stored the value it saw */     \
}                                                                             \
static inline T lf_xadd##W(volatile T *p, T v)                                \
{ return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }

LF_ARCH_OPS(8, uint8_t)
LF_ARCH_OPS(16, uint16_t)
LF_ARCH_OPS(32, uint32_t)
LF_ARCH_OPS(64, uint64_t)
#undef LF_ARCH_OPS

static inline bool lf_test_and_set_bit64(volatile uint64_t *p, unsigned nr)
{
	uint64_t mask = (uint64_t)1 << nr;
	return (__atomic_fetch_or(p, mask, __ATOMIC_SEQ_CST) & mask) != 0;
}

static inline bool lf_test_and_clear_bit64(volatile uint64_t *p, unsigned nr)
{
	uint64_t mask = (uint64_t)1 << nr;
	return (__atomic_fetch_and(p, ~mask, __ATOMIC_SEQ_CST) & mask) != 0;
}

static inline void lf_set_bit64(volatile uint64_t *p, unsigned nr)
{
	__atomic_fetch_or(p, (uint64_t)1 << nr, __ATOMIC_SEQ_CST);
}

static inline void lf_clear_bit64(volatile uint64_t *p, unsigned nr)
{
	__atomic_fetch_and(p, ~((uint64_t)1 << nr), __ATOMIC_SEQ_CST);
}

/* 16-byte __atomic operations go through libatomic on GCC (the build links
 * -latomic), which uses cmpxchg16b where the CPU has it. */
static inline bool lf_cmpxchg128(volatile lf_u128_t *p, lf_u128_t *old,
				 lf_u128_t new_)
{
	unsigned __int128 o = (unsigned __int128)old->hi << 64 | old->lo;
	unsigned __int128 n = (unsigned __int128)new_.hi << 64 | new_.lo;
	bool ok = __atomic_compare_exchange_n((volatile unsigned __int128 *)p,
					      &o, n, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST);
	old->lo = (uint64_t)o;
	old->hi = (uint64_t)(o >> 64);
	return ok;
}

/* A load ordered after a preceding seq_cst RMW of another word (see
 * arch/x86_64.h): a sequentially consistent load. */
static inline uint64_t lf_read64_after_rmw(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* Is any of the 16 words at p nonzero (each read as above)? */
static inline bool lf_any_nonzero64x16_after_rmw(const uint64_t *p)
{
	uint64_t any = 0;
	for (int i = 0; i < 16; i++)
		any |= lf_read64_after_rmw(&p[i]);
	return any != 0;
}

#endif /* LF_ARCH_PORTABLE_H */
