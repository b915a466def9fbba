/*
 * RCU writers: grace periods (lf_rcu_synchronize*, the polled
 * lf_rcu_start_poll/lf_rcu_poll_state), the wait for pre-existing readers
 * with the reclaim of dead readers' slots, and the owner-word lock that
 * serialises grace periods (gp_lock) and publishers (wlock).  The domain,
 * reader registration and read-side sections are in rcu.c; the layout and
 * the protocol are described in rcu.h.
 */
#define _GNU_SOURCE
#include "rcu.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Reclaim reader slot s from its dead owner o.  Take the slot first: the
 * owner may have unregistered and exited after the writer loaded o, and a
 * live reader have claimed the slot since and be inside a section; the CAS
 * fails then, the slot is left alone and false returned (the caller looks at
 * the slot again next round).  Once it succeeds nobody else writes the slot
 * (register skips a nonzero owner, and reclaims run under gp_lock), so its
 * counter can be cleared before the slot is freed.
 */
static bool reclaim_slot(const struct lf_rcu_dh *h, struct lf_rcu_reader *s,
			 uint64_t o)
{
	if (lf_cmpxchg64(&s->owner, o, LF_RCU_RECLAIMING) != o)
		return false;
	lf_write64(&s->ctr, 0);
	/* Pairs with lf_rcu_register's cmpxchg, as in unregister. */
	lf_store_release64(&s->owner, 0);
	if (o != LF_RCU_RECLAIMING)	/* not a reclaim left half done */
		lf_xadd64(&h->d->nr_readers, -1);
	lf_xadd64(&h->d->nr_dead, 1);
	return true;
}

/*
 * Wait until no reader is inside a section begun in the phase before the
 * current one.  Readers of the current phase, and readers outside, do not
 * hold anything the caller unpublished before the flip.  The scan stops at
 * the shared hwm, bounded by the handle's capacity.
 */
static int wait_for_readers(const struct lf_rcu_dh *h, struct lf_wait *w,
			    uint64_t me)
{
	bool check = false;

	for (;;) {
		uint64_t gp = lf_read64(&h->d->gp_ctr);
		uint64_t i, hwm = lf_read64(&h->d->hwm);
		bool blocked = false;
		int step;

		if (hwm > h->capacity)
			hwm = h->capacity;
		for (i = 0; i < hwm; i++) {
			struct lf_rcu_reader *s = &h->readers[i];
			/* Pairs with the release store in read_unlock. */
			uint64_t c = lf_load_acquire64(&s->ctr), o;

			if (!(c & LF_RCU_NEST_MASK) ||
			    !((c ^ gp) & LF_RCU_GP_PHASE))
				continue;
			o = lf_read64(&s->owner);
			if (!o)
				continue;	/* free: a stale counter */
			if (o == me)
				return LF_EDEADLK;
			if (check) {
				LF_TEST_HOLDER_LOADED();
				if (lf_rcu_owner_dead(o) && reclaim_slot(h, s, o))
					continue;
			}
			blocked = true;
		}
		if (!blocked)
			return 0;
		step = lf_wait_step(w);
		if (step == LF_WAIT_TIMEOUT)
			return LF_EAGAIN;
		check = step == LF_WAIT_CHECK;
	}
}

uint64_t lf_rcu_start_poll(const struct lf_rcu_dh *h)
{
	/* The caller's unpublishing stores come before the load of gp_seq:
	 * pairs with the lf_smp_mb() after gp_seq goes odd in synchronize.
	 * If gp_seq is even, the next grace period covers the caller; if odd,
	 * the one in progress may have flipped already, so it takes the one
	 * after. */
	lf_smp_mb();
	return (lf_load_acquire64(&h->d->gp_seq) + 3) & ~1ULL;
}

int lf_rcu_poll_state(const struct lf_rcu_dh *h, uint64_t cookie)
{
	/* Pairs with the release store of gp_seq ending a grace period. */
	return (int64_t)(lf_load_acquire64(&h->d->gp_seq) - cookie) >= 0;
}

/* lf_rcu_owner_lock (rcu.h): take an owner word; LF_EAGAIN at the deadline,
 * LF_EDEADLK if it names the caller; stolen from a dead owner process.
 * poll (may be NULL): a grace period completed meanwhile covers the
 * caller: then 1 and the word is not taken. */
int lf_rcu_owner_lock(uint64_t *word, uint64_t me, struct lf_wait *w,
		      const struct lf_rcu_dh *poll)
{
	uint64_t cookie = 0;

	for (;;) {
		uint64_t o = lf_read64(word);
		int step;

		/* The cmpxchg is a full barrier: the caller's stores come
		 * before everything it does holding the word. */
		if (!o && lf_cmpxchg64(word, 0, me) == 0)
			return 0;
		if (poll) {
			if (!cookie)
				cookie = lf_rcu_start_poll(poll);
			else if (lf_rcu_poll_state(poll, cookie))
				return 1;
		}
		if (o == me)
			return LF_EDEADLK;
		step = lf_wait_step(w);
		if (step == LF_WAIT_TIMEOUT)
			return LF_EAGAIN;
		if (step == LF_WAIT_CHECK && o && lf_rcu_owner_dead(o))
			lf_cmpxchg64(word, o, 0);	/* died holding it */
	}
}

int lf_rcu_synchronize_until(const struct lf_rcu_dh *h, uint64_t deadline)
{
	struct lf_rcu_domain *d = h->d;
	uint64_t me = lf_owner_self(), seq;
	struct lf_wait w;
	int rc, flip;

	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, h);
	/* Serialise writers.  A grace period that another writer starts and
	 * completes meanwhile covers us too (liburcu batches waiters). */
	rc = lf_rcu_owner_lock(&d->gp_lock, me, &w, h);
	if (rc)
		return rc > 0 ? 0 : rc;

	seq = lf_read64(&d->gp_seq) + 1;
	if (!lf_read64(&d->nr_readers)) {
		/* No reader registered (liburcu's empty-registry exit): one
		 * that registers now starts after the cmpxchg above and sees
		 * what the caller published (pairs with the xadd in
		 * lf_rcu_register). */
		lf_store_release64(&d->gp_seq, seq + 1);
		goto done;
	}
	/* Odd while in progress (start_poll then asks for the next one). */
	lf_store_release64(&d->gp_seq, seq);
	/* gp_seq before the flips: pairs with lf_smp_mb() in start_poll. */
	lf_smp_mb();
	for (flip = 0; flip < 2; flip++) {
		/*
		 * Two flips: a reader may have loaded gp_ctr before the first
		 * flip and stored its snapshot only after our scan; it looks
		 * like a current-phase reader and may hold the old pointer.
		 * After the second flip its snapshot is of the old phase and
		 * we wait for it.
		 */
		lf_write64(&d->gp_ctr, lf_read64(&d->gp_ctr) ^ LF_RCU_GP_PHASE);
		/* Flip before scanning: pairs with lf_smp_mb() in read_lock. */
		lf_smp_mb();
		rc = wait_for_readers(h, &w, me);
		if (rc) {
			/* Not a grace period: back to even, unchanged count.
			 * Cookies taken meanwhile wait for one more. */
			lf_store_release64(&d->gp_seq, seq - 1);
			goto out;
		}
	}
	/* The readers' sections ended before the caller reclaims: the acquire
	 * loads of their ctr in wait_for_readers pair with the release store
	 * in read_unlock.  Pairs with the acquire in lf_rcu_poll_state. */
	lf_store_release64(&d->gp_seq, seq + 1);
done:
	lf_write64(&d->nr_gp, lf_read64(&d->nr_gp) + 1);
out:
	/* Pairs with the cmpxchg taking it. */
	lf_store_release64(&d->gp_lock, 0);
	return rc;
}

int lf_rcu_synchronize(const struct lf_rcu_dh *h)
{
	return lf_rcu_synchronize_until(h, LF_FOREVER);
}
