/*
 * Spinlock (lf_spin_*) whose lock word IS the owner record: 0 when free,
 * else the holder's id (lockwait.h: pid << 32 | tid, never 0).
 *
 *   acquire   cmpxchg(owner, 0 -> my id)
 *   release   one release store of 0 (after checking the caller holds it)
 *
 * Ownership is recorded by the same atomic instruction that takes the
 * lock, and given up by the same store that frees it, so a holder killed at
 * any instruction leaves the lock either free or held by a recorded,
 * detectably dead owner: there is no kill window.  (The kernel's xchgb
 * spinlock with an owner field beside the lock byte has two: between the
 * xchg and the owner store, and between clearing the owner and the lock
 * byte.  A holder killed in one of them left the lock held by nobody known;
 * the kill suite in tests/test_spinlock.py found that 9 times in 200.)
 *
 * Two spinning flavours, chosen at init:
 *
 *   TAS   every attempt is a cmpxchg.  Each takes the cache line
 *         exclusive, so N waiters bounce it between cores even while the
 *         holder runs: cheap to enter, costly under contention.
 *   TTAS  (LF_LOCK_TTAS) waiters spin on a plain load, the line stays
 *         shared in their caches, and only try the cmpxchg once it reads
 *         free: less coherence traffic under contention.
 *
 * Both start with one optimistic cmpxchg, then wait by the one policy of
 * lockwait.h (spin with backoff, yield, sleep).  Neither is fair: whoever's
 * cmpxchg lands first wins.  Uncontended, lock and unlock are one locked
 * instruction and one plain store.
 *
 * Return codes of the acquire calls: see LF_ACQUIRED in lockwait.h (1,
 * 0 timed out, -id owner died).  Unlock returns 0, or LF_EPERM if the
 * caller does not hold the lock (nothing is changed then).
 */
#ifndef LF_SPINLOCK_H
#define LF_SPINLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "lockwait.h"

/* cffi:begin */
typedef struct lf_spinlock {
	uint32_t pad_;     /* (was the xchg'd byte of the owner-field lock) */
	uint32_t flags;    /* LF_LOCK_*, read-only after lf_spin_init() */
	uint64_t owner;    /* THE lock word: holder's id, 0 when free */
	lf_lockstats_t stats;
} lf_spinlock_t;

void lf_spin_init(lf_spinlock_t *l, uint32_t flags);
int64_t lf_spin_lock_slow(lf_spinlock_t *l, uint64_t deadline);
/* cffi:end */

/* One attempt: 1 if acquired, 0 if busy.  Never waits. */
static inline int lf_spin_trylock(lf_spinlock_t *l)
{
	/* cmpxchg is a full barrier: the critical section cannot start
	 * before it.  Pairs with the release store in lf_spin_unlock(). */
	return lf_cmpxchg64(&l->owner, 0, lf_owner_self()) == 0;
}

/* Acquire by the CLOCK_MONOTONIC deadline (ns; LF_FOREVER: none). */
static inline int64_t lf_spin_lock_until(lf_spinlock_t *l, uint64_t deadline)
{
	if (__builtin_expect(lf_spin_trylock(l), 1))
		return LF_ACQUIRED;
	return lf_spin_lock_slow(l, deadline);
}

/* Acquire, waiting as long as it takes; < 0 only if the owner died. */
static inline int64_t lf_spin_lock(lf_spinlock_t *l)
{
	return lf_spin_lock_until(l, LF_FOREVER);
}

static inline int lf_spin_unlock(lf_spinlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return LF_EPERM;  /* not held, or held by another thread */
	/* Pairs with the cmpxchg in lf_spin_trylock()/lf_spin_lock_slow():
	 * the critical section's accesses are not sunk below this store. */
	lf_store_release64(&l->owner, 0);
	return 0;
}

/* Out-of-line calls (the inline fast paths' out-of-line copies, for cffi
 * and other languages, are binding shims: csrc/shims/spinlock.h). */
/* cffi:begin */
int lf_spin_release_counted(lf_spinlock_t *l);  /* + stats.acquisitions */
bool lf_spin_locked(lf_spinlock_t *l);
uint64_t lf_spin_owner(lf_spinlock_t *l);
/* Take over a lock whose owner died: 1 if the caller now holds it, 0 if
 * there was nothing to recover (free, owner alive, or another recoverer
 * won the compare-and-swap on the dead owner's id). */
int lf_spin_recover(lf_spinlock_t *l);
/* cffi:end */

#endif /* LF_SPINLOCK_H */
