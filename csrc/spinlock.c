#include "spinlock.h"

#include <string.h>

void lf_spin_init(lf_spinlock_t *l, uint32_t flags)
{
	memset(l, 0, sizeof *l);
	l->flags = flags;
}

int64_t lf_spin_lock_slow(lf_spinlock_t *l, uint64_t deadline)
{
	const uint32_t flags = lf_read32(&l->flags);
	const bool ttas = flags & LF_LOCK_TTAS;
	const uint64_t me = lf_owner_self();
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, l);
	for (;;) {
		/* TTAS: only cmpxchg once a plain load says free, so waiters
		 * share the line instead of stealing it from each other.
		 * Full barrier; pairs with the release store in unlock. */
		if (!(ttas && lf_read64(&l->owner)) &&
		    lf_cmpxchg64(&l->owner, 0, me) == 0) {
			ret = LF_ACQUIRED;
			break;
		}
		int r = lf_wait_step(&w);
		if (r == LF_WAIT_AGAIN)
			continue;
		/* Spin budget spent or deadline passed: is the holder alive?
		 * The lock word names it. */
		if (lf_wait_over(r, lf_owner_dead_at(&l->owner), &ret))
			break;
	}
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

int lf_spin_release_counted(lf_spinlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return LF_EPERM;
	/* Counted while still held; xadd because stats are read concurrently. */
	lf_xadd64(&l->stats.acquisitions, 1);
	return lf_spin_unlock(l);
}

bool lf_spin_locked(lf_spinlock_t *l) { return lf_read64(&l->owner) != 0; }

uint64_t lf_spin_owner(lf_spinlock_t *l) { return lf_read64(&l->owner); }

int lf_spin_recover(lf_spinlock_t *l)
{
	uint64_t dead = lf_read64(&l->owner), me = lf_owner_self();
	if (!dead || dead == me || lf_owner_alive(dead))
		return 0;
	/* A dead owner never changes the word, so the lock is still held on
	 * its behalf; the CAS makes exactly one recoverer the new holder. */
	return lf_cmpxchg64(&l->owner, dead, me) == dead;
}
