/*
 * Test-and-set spinlock (lf_spin_*), the kernel's xchgb spinlock with an
 * owner record, in two spinning flavours chosen at init:
 *
 *   TAS   every attempt is an xchg.  Each xchg takes the cache line
 *         exclusive, so N waiters bounce it between cores even while the
 *         holder runs: cheap to enter, costly under contention.
 *   TTAS  (LF_LOCK_TTAS) waiters spin on a plain load, the line stays shared
 *         in their caches, and only try the xchg once it reads free: less
 *         coherence traffic under contention, one extra load per retry.
 *
 * Both start with one optimistic xchg, back off exponentially while waiting
 * and yield after a spin budget (lockwait.h).  Neither is fair: whoever's
 * xchg lands first wins.  Lock and unlock are one locked instruction plus
 * two plain stores when uncontended; nothing here allocates or blocks in the
 * kernel except sched_yield() on the slow path.
 *
 * Owner record: after winning the xchg the holder stores its id
 * (lockwait.h) in `owner`; unlock clears `owner` first, then the lock byte.
 * So a nonzero owner always names the holder.  The window: a holder killed
 * between its xchg and its owner store (or between clearing the owner and
 * the lock byte) leaves the lock held by nobody known (owner 0); waiters
 * then cannot detect its death and time out normally.  Each window is one
 * instruction wide.
 *
 * Return codes of the acquire calls: see LF_ACQUIRED in lockwait.h (1,
 * 0 timed out, -id owner died).  Unlock returns 0, or -1 if the caller does
 * not hold the lock (nothing is changed then).
 */
#ifndef LF_SPINLOCK_H
#define LF_SPINLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "lockwait.h"

typedef struct lf_spinlock {
	uint8_t locked;    /* 0 free, 1 held: the xchg'd byte */
	uint8_t pad_[3];
	uint32_t flags;    /* LF_LOCK_*, read-only after lf_spin_init() */
	uint64_t owner;    /* holder's id, 0 when free (and in the windows) */
	lf_lockstats_t stats;
} lf_spinlock_t;

void lf_spin_init(lf_spinlock_t *l, uint32_t flags);
int64_t lf_spin_lock_slow(lf_spinlock_t *l, uint64_t deadline);

/* One attempt: 1 if acquired, 0 if busy.  Never waits. */
static inline int lf_spin_trylock(lf_spinlock_t *l)
{
	/* xchg is a full barrier: the critical section cannot start before
	 * it.  Pairs with the release store in lf_spin_unlock(). */
	if (lf_xchg8(&l->locked, 1))
		return 0;
	lf_write64(&l->owner, lf_owner_self());
	return 1;
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
		return -1;  /* not held, or held by another thread */
	lf_write64(&l->owner, 0);  /* before the lock byte: see the window */
	/* Pairs with the xchg in lf_spin_trylock()/lf_spin_lock_slow(): the
	 * critical section's accesses are not sunk below this store. */
	lf_store_release8(&l->locked, 0);
	return 0;
}

/* Out-of-line entry points (for cffi and other languages). */
bool lf_spin_try_acquire(lf_spinlock_t *l);
int64_t lf_spin_acquire_until(lf_spinlock_t *l, uint64_t deadline);
int lf_spin_release(lf_spinlock_t *l);
int lf_spin_release_counted(lf_spinlock_t *l);  /* + stats.acquisitions */
bool lf_spin_locked(lf_spinlock_t *l);
uint64_t lf_spin_owner(lf_spinlock_t *l);
/* Take over a lock whose owner died: 1 if the caller now holds it, 0 if
 * there was nothing to recover (free, owner alive or unknown, or another
 * recoverer won the compare-and-swap on the dead owner's id). */
int lf_spin_recover(lf_spinlock_t *l);

#endif /* LF_SPINLOCK_H */
