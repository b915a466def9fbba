#include "ticketlock.h"

#include <string.h>

void lf_ticket_init(lf_ticketlock_t *l, uint32_t flags)
{
	memset(l, 0, sizeof *l);
	l->flags = flags;
}

static inline uint64_t *lf_ticket_slot(lf_ticketlock_t *l, uint32_t t)
{
	return &l->waiter[t % LF_TICKET_SLOTS];
}

/* Served: record ownership.  The owner word first, then the slot cleared,
 * so a liveness check always finds an id in one of them. */
static void lf_ticket_served(lf_ticketlock_t *l, uint32_t t, bool registered)
{
	lf_write64(&l->owner, lf_owner_self());
	if (registered)
		lf_write64(lf_ticket_slot(l, t), 0);
}

/* The id that must make progress for the queue to move, or 0: the holder,
 * else the registered waiter whose turn it is. */
static uint64_t lf_ticket_blocker(lf_ticketlock_t *l)
{
	uint64_t owner = lf_read64(&l->owner);
	if (owner)
		return owner;
	uint32_t h = lf_load_acquire32(&l->head);
	if (h == lf_read32(&l->tail))
		return 0;  /* free */
	uint64_t s = lf_read64(lf_ticket_slot(l, h));
	return (s & LF_TICKET_ABANDONED) ? 0 : s;
}

int lf_ticket_abandon(lf_ticketlock_t *l, uint32_t t)
{
	uint64_t *slot = lf_ticket_slot(l, t);
	uint64_t mark = lf_owner_self() | LF_TICKET_ABANDONED;

	/* Only a waiter within LF_TICKET_SLOTS of the head owns its slot (the
	 * slot of t - LF_TICKET_SLOTS is clear once head has passed it). */
	if ((uint32_t)(t - lf_load_acquire32(&l->head)) >= LF_TICKET_SLOTS)
		return -1;
	/* xchg: the mark is globally visible before the head load below.
	 * Pairs with the xchg of head + load of the slot in unlock. */
	lf_xchg64(slot, mark);
	if (lf_load_acquire32(&l->head) != t)
		return 0;  /* not our turn yet: unlock will skip t */
	/* Our turn came: whoever clears the mark acts on it. */
	if (lf_cmpxchg64(slot, mark, 0) != mark)
		return 0;  /* unlock won and skipped t */
	lf_ticket_served(l, t, false);
	return 1;
}

int64_t lf_ticket_wait(lf_ticketlock_t *l, uint32_t t, uint64_t deadline,
		       int give_up)
{
	const uint32_t flags = lf_read32(&l->flags);
	bool registered = false;
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	for (;;) {
		/* Pairs with the head store in lf_ticket_unlock(). */
		uint32_t h = lf_load_acquire32(&l->head);
		if (h == t) {
			lf_ticket_served(l, t, registered);
			ret = LF_ACQUIRED;
			break;
		}
		if (!registered && (uint32_t)(t - h) < LF_TICKET_SLOTS) {
			lf_write64(lf_ticket_slot(l, t), lf_owner_self());
			registered = true;
		}
		int r = lf_wait_step(&w);
		if (r == LF_WAIT_AGAIN)
			continue;
		if (r == LF_WAIT_TIMEOUT && !give_up) {
			/* Keep the ticket; the caller waits again. */
			if (flags & LF_LOCK_STATS)
				lf_wait_account(&l->stats, &w, false);
			return 0;
		}
		/* Giving up needs our slot (see the header): from further
		 * back, keep waiting. */
		if (!registered)
			continue;
		uint64_t blocker = lf_ticket_blocker(l);
		if (blocker && blocker != lf_owner_self())
			LF_TEST_HOLDER_LOADED();
		uint64_t dead = blocker == lf_owner_self() ? 0 :
				lf_owner_if_dead(blocker);
		/* Still the blocker after the check (see lf_owner_dead_at: it
		 * may have been served or released, then exited, meanwhile). */
		if (dead && lf_ticket_blocker(l) != dead)
			dead = 0;
		if (lf_wait_over(r, dead, &ret))
			break;
	}
	if (ret != LF_ACQUIRED && lf_ticket_abandon(l, t) == 1)
		ret = LF_ACQUIRED;  /* served while giving up: keep it */
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

int lf_ticket_unlock(lf_ticketlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return -1;
	lf_write64(&l->owner, 0);
	uint32_t next = lf_read32(&l->head) + 1;  /* only the holder writes */
	for (;;) {
		/* xchg, not a release store: it also orders the store before
		 * the slot load (store->load needs a full barrier).  Pairs with
		 * the acquire loads of head by waiters and the mark-then-load
		 * in lf_ticket_abandon(). */
		lf_xchg32(&l->head, next);
		uint64_t *slot = lf_ticket_slot(l, next);
		uint64_t s = lf_read64(slot);
		if (!(s & LF_TICKET_ABANDONED))
			break;  /* free, or a live waiter that will see head */
		if (lf_cmpxchg64(slot, s, 0) != s)
			break;  /* the abandoner took its turn after all */
		next++;     /* skip the abandoned ticket */
	}
	return 0;
}

bool lf_ticket_try_acquire(lf_ticketlock_t *l) { return lf_ticket_trylock(l); }

int64_t lf_ticket_take(lf_ticketlock_t *l) { return lf_ticket_enqueue(l); }

int64_t lf_ticket_acquire_until(lf_ticketlock_t *l, uint64_t deadline)
{
	return lf_ticket_lock_until(l, deadline);
}

int lf_ticket_release(lf_ticketlock_t *l) { return lf_ticket_unlock(l); }

int lf_ticket_release_counted(lf_ticketlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return -1;
	lf_xadd64(&l->stats.acquisitions, 1);
	return lf_ticket_unlock(l);
}

bool lf_ticket_locked(lf_ticketlock_t *l)
{
	return lf_read32(&l->head) != lf_read32(&l->tail);
}

uint64_t lf_ticket_owner(lf_ticketlock_t *l) { return lf_ticket_blocker(l); }

int lf_ticket_recover(lf_ticketlock_t *l)
{
	uint64_t me = lf_owner_self();
	uint64_t dead = lf_read64(&l->owner);
	if (dead) {
		if (dead == me || lf_owner_alive(dead))
			return 0;
		return lf_cmpxchg64(&l->owner, dead, me) == dead;
	}
	/* No holder: is the waiter whose turn it is dead?  It cannot move
	 * head, so head still names its ticket. */
	uint32_t h = lf_load_acquire32(&l->head);
	if (h == lf_read32(&l->tail))
		return 0;
	uint64_t *slot = lf_ticket_slot(l, h);
	dead = lf_read64(slot);
	if (!dead || (dead & LF_TICKET_ABANDONED) || dead == me ||
	    lf_owner_alive(dead))
		return 0;
	if (lf_cmpxchg64(slot, dead, 0) != dead)
		return 0;  /* another recoverer won */
	lf_write64(&l->owner, me);
	return 1;
}
