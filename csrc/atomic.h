/*
 * Atomic signed 64-bit integer (lf_atomic_*), the kernel's atomic64_t.
 *
 * Every operation is sequentially consistent: loads are plain loads, stores
 * and read-modify-writes are locked instructions (full barriers).  Arithmetic
 * wraps like two's complement int64 (INT64_MAX + 1 == INT64_MIN): it is done
 * on the unsigned word, where wrap-around is defined.
 *
 * Every function is lock-free and wait-free on x86-64 (a single instruction),
 * may be called from any thread or process sharing the memory, and never
 * blocks.  The hot ones take at most two arguments so the cffi binding stays
 * cheap; compare-and-swap returns the value it saw (success iff == expected)
 * rather than writing through an out-pointer.
 */
#ifndef LF_ATOMIC_H
#define LF_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

/* cffi:begin */
typedef struct lf_atomic {
	uint64_t counter;
} lf_atomic_t;

void lf_atomic_init(lf_atomic_t *a, int64_t v);
int64_t lf_atomic_load(lf_atomic_t *a);
void lf_atomic_store(lf_atomic_t *a, int64_t v);
int64_t lf_atomic_exchange(lf_atomic_t *a, int64_t v);
int64_t lf_atomic_cmpxchg(lf_atomic_t *a, int64_t old, int64_t new_);
/* The same CAS reporting only success: the kernel's atomic64_try_cmpxchg
 * without the write-back of the value seen.  A cffi bool result is cheaper
 * than an int64 and needs no comparison in Python (AtomicInt's
 * compare_exchange). */
bool lf_atomic_try_cmpxchg(lf_atomic_t *a, int64_t old, int64_t new_);
int64_t lf_atomic_fetch_add(lf_atomic_t *a, int64_t v);
int64_t lf_atomic_fetch_sub(lf_atomic_t *a, int64_t v);
int64_t lf_atomic_add_fetch(lf_atomic_t *a, int64_t v);
int64_t lf_atomic_sub_fetch(lf_atomic_t *a, int64_t v);
/* The same with a delta of one, one argument each (the kernel's
 * atomic64_fetch_inc, _fetch_dec, _inc_return, _dec_return): a cffi call with
 * one argument needs no argument tuple (AtomicInt's fetch_add(1) & co.). */
int64_t lf_atomic_fetch_inc(lf_atomic_t *a);
int64_t lf_atomic_fetch_dec(lf_atomic_t *a);
int64_t lf_atomic_inc_return(lf_atomic_t *a);
int64_t lf_atomic_dec_return(lf_atomic_t *a);

/* Bit operations on bit nr (0..63): the bit's previous state (0 or 1), or
 * 0 for set/clear; LF_EINVAL, nothing changed, when nr > 63.  Checked here,
 * not masked as the kernel's are: AtomicInt turns LF_EINVAL into its
 * ValueError with no check of its own on the fast path. */
int lf_atomic_test_and_set_bit(lf_atomic_t *a, unsigned nr);
int lf_atomic_test_and_clear_bit(lf_atomic_t *a, unsigned nr);
int lf_atomic_set_bit(lf_atomic_t *a, unsigned nr);
int lf_atomic_clear_bit(lf_atomic_t *a, unsigned nr);
int lf_atomic_test_bit(lf_atomic_t *a, unsigned nr);
/* cffi:end */

#endif /* LF_ATOMIC_H */
