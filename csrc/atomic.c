#include "atomic.h"
#include "arch/atomic.h"
#include "errors.h"


/* Signed <-> unsigned conversions are value-preserving modulo 2^64 on every
 * target GCC supports, and unsigned arithmetic wraps, so int64 results wrap
 * like two's complement without signed-overflow undefined behaviour. */
#define S(u) ((int64_t)(u))
#define U(s) ((uint64_t)(s))

void lf_atomic_init(lf_atomic_t *a, int64_t v)
{
	lf_write64(&a->counter, U(v));
}

int64_t lf_atomic_load(lf_atomic_t *a)
{
	/* A plain load is sequentially consistent on x86-64 because every
	 * store below is a locked instruction (the C11 mapping). */
	return S(lf_load_acquire64(&a->counter));
}

void lf_atomic_store(lf_atomic_t *a, int64_t v)
{
	/* xchg, not mov: a later load by this thread must not pass the store
	 * (store->load is the one reordering TSO allows). */
	lf_xchg64(&a->counter, U(v));
}

int64_t lf_atomic_exchange(lf_atomic_t *a, int64_t v)
{
	return S(lf_xchg64(&a->counter, U(v)));
}

int64_t lf_atomic_cmpxchg(lf_atomic_t *a, int64_t old, int64_t new_)
{
	return S(lf_cmpxchg64(&a->counter, U(old), U(new_)));
}

bool lf_atomic_try_cmpxchg(lf_atomic_t *a, int64_t old, int64_t new_)
{
	return lf_cmpxchg64(&a->counter, U(old), U(new_)) == U(old);
}

int64_t lf_atomic_fetch_add(lf_atomic_t *a, int64_t v)
{
	return S(lf_xadd64(&a->counter, U(v)));
}

int64_t lf_atomic_fetch_sub(lf_atomic_t *a, int64_t v)
{
	return S(lf_xadd64(&a->counter, -U(v)));
}

int64_t lf_atomic_add_fetch(lf_atomic_t *a, int64_t v)
{
	return S(lf_xadd64(&a->counter, U(v)) + U(v));
}

int64_t lf_atomic_sub_fetch(lf_atomic_t *a, int64_t v)
{
	return S(lf_xadd64(&a->counter, -U(v)) - U(v));
}

/* The kernel's atomic64_fetch_inc() family: a delta of one needs no second
 * argument, and a one-argument cffi call costs about half a two-argument
 * one (no argument tuple).  AtomicInt.fetch_add(1) & co. call these. */
int64_t lf_atomic_fetch_inc(lf_atomic_t *a)
{
	return S(lf_xadd64(&a->counter, 1));
}

int64_t lf_atomic_fetch_dec(lf_atomic_t *a)
{
	return S(lf_xadd64(&a->counter, -(uint64_t)1));
}

int64_t lf_atomic_inc_return(lf_atomic_t *a)
{
	return S(lf_xadd64(&a->counter, 1) + 1);
}

int64_t lf_atomic_dec_return(lf_atomic_t *a)
{
	return S(lf_xadd64(&a->counter, -(uint64_t)1) - 1);
}

/* AtomicInt indexes (False, True) with these results: an error must not
 * pass for a valid negative index. */
_Static_assert(LF_EINVAL < -2, "LF_EINVAL indexes (False, True)");

int lf_atomic_test_and_set_bit(lf_atomic_t *a, unsigned nr)
{
	if (nr > 63)
		return LF_EINVAL;
	return lf_test_and_set_bit64(&a->counter, nr);
}

int lf_atomic_test_and_clear_bit(lf_atomic_t *a, unsigned nr)
{
	if (nr > 63)
		return LF_EINVAL;
	return lf_test_and_clear_bit64(&a->counter, nr);
}

int lf_atomic_set_bit(lf_atomic_t *a, unsigned nr)
{
	if (nr > 63)
		return LF_EINVAL;
	lf_set_bit64(&a->counter, nr);
	return 0;
}

int lf_atomic_clear_bit(lf_atomic_t *a, unsigned nr)
{
	if (nr > 63)
		return LF_EINVAL;
	lf_clear_bit64(&a->counter, nr);
	return 0;
}

int lf_atomic_test_bit(lf_atomic_t *a, unsigned nr)
{
	if (nr > 63)
		return LF_EINVAL;
	return (lf_load_acquire64(&a->counter) >> nr) & 1;
}
