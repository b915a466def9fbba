#include "ticketlock.h"

#include <string.h>

void lf_ticket_init(lf_ticketlock_t *l, uint32_t flags)
{
	memset(l, 0, sizeof *l);
	l->flags = flags;
}

/* Ticket t's slot: t mod 64, permuted so that consecutive tickets fall in
 * different cache lines (8 slots a line): a waiter watching the slot of
 * head then does not share a line with the arrival claiming the next
 * ticket (that false sharing made 2-thread handovers ~5x slower). */
static inline uint64_t *lf_ticket_slot(lf_ticketlock_t *l, uint32_t t)
{
	_Static_assert(LF_TICKET_SLOTS == 64, "the permutation assumes 64");
	return &l->slot[(t & 7) << 3 | (t >> 3 & 7)];
}

/* Skip abandoned tickets at head; the head that is left.  Anyone may do it:
 * an abandoned ticket's taker is gone from the queue, and the cmpxchg on
 * head makes one skipper move it once. */
static uint32_t lf_ticket_skip(lf_ticketlock_t *l)
{
	for (;;) {
		/* Pairs with the release store of head in unlock. */
		uint32_t h = lf_load_acquire32(&l->head);
		if (h == lf_read32(&l->tail))
			return h;
		uint64_t s = lf_read64(lf_ticket_slot(l, h));
		if (!(s & LF_TICKET_ABANDONED) || !lf_ticket_is(s, h))
			return h;
		lf_cmpxchg32(&l->head, h, h + 1);
	}
}

/* The id of the taker of the ticket at head (the holder, or a waiter whose
 * turn has come), or 0 if none. */
static uint64_t lf_ticket_blocker(lf_ticketlock_t *l, uint32_t *hp)
{
	uint32_t h = lf_ticket_skip(l);
	*hp = h;
	if (h == lf_read32(&l->tail))
		return 0;
	uint64_t s = lf_read64(lf_ticket_slot(l, h));
	if (!lf_ticket_is(s, h) || (s & LF_TICKET_ABANDONED))
		return 0;  /* being skipped */
	return lf_ticket_slot_id(s);
}

/* The blocker if it is dead and still blocks after the check (it may
 * have released and exited meanwhile: see lf_owner_dead_at), else 0. */
static uint64_t lf_ticket_dead_blocker(lf_ticketlock_t *l)
{
	uint32_t h, h2;
	uint64_t b = lf_ticket_blocker(l, &h);
	if (!b || b == lf_owner_self())
		return 0;
	LF_TEST_HOLDER_LOADED();
	if (lf_owner_alive(b))
		return 0;
	return lf_ticket_blocker(l, &h2) == b && h2 == h ? b : 0;
}

/* Claim the next ticket (see the header).  only_free: only if nobody holds
 * or waits (trylock).  The ticket, or -1: no place in line (or, with
 * only_free, busy). */
static int64_t lf_ticket_claim(lf_ticketlock_t *l, uint64_t me, bool only_free)
{
	for (;;) {
		/* head first: a stale head only makes the check below
		 * stricter (tail never trails head). */
		uint32_t h = only_free ? lf_ticket_skip(l)
				       : lf_load_acquire32(&l->head);
		uint32_t t = lf_read32(&l->tail);
		uint64_t *slot = lf_ticket_slot(l, t);
		uint64_t s = lf_read64(slot);
		if (lf_ticket_is(s, t)) {
			/* Claimed, tail not advanced yet: help the taker. */
			if (only_free)
				return -1;
			lf_cmpxchg32(&l->tail, t, t + 1);
			continue;
		}
		if (only_free ? h != t : (uint32_t)(t - h) >= LF_TICKET_SLOTS)
			return -1;  /* ticket t - SLOTS still out: full */
		/* Fewer than SLOTS tickets out: the slot's word (if any) is a
		 * served ticket's, stale.  Claim it.  Full barrier. */
		if (lf_read32(&l->tail) != t ||
		    lf_cmpxchg64(slot, s, lf_ticket_enc(t, me)) != s)
			continue;
		lf_cmpxchg32(&l->tail, t, t + 1);  /* or a helper did */
		if ((uint32_t)(lf_read32(&l->tail) - t) > LF_TICKET_SLOTS) {
			/* Impossible unless s came back after 2^19 tickets
			 * (see the header): undo, look again. */
			lf_cmpxchg64(slot, lf_ticket_enc(t, me), s);
			continue;
		}
		return t;
	}
}

int64_t lf_ticket_take(lf_ticketlock_t *l, uint64_t deadline)
{
	const uint64_t me = lf_owner_self();
	int64_t t = lf_ticket_claim(l, me, false);
	struct lf_wait w;
	int64_t ret;

	if (__builtin_expect(t < 0, 0)) {
		/* No place in line: wait for one (no ticket to give up). */
		lf_wait_init(&w, deadline);
		lf_wait_resume(&w, l);
		for (;;) {
			int r = lf_wait_step(&w);
			t = lf_ticket_claim(l, me, false);
			if (t >= 0)
				break;
			if (r != LF_WAIT_AGAIN &&
			    lf_wait_over(r, lf_ticket_dead_blocker(l), &ret))
				return ret;
		}
	}
	/* Pairs with the release store of head in unlock. */
	if (lf_load_acquire32(&l->head) == (uint32_t)t ||
	    lf_ticket_skip(l) == (uint32_t)t)
		return LF_ACQUIRED;
	return LF_TICKET_QUEUED + t;
}

int lf_ticket_abandon(lf_ticketlock_t *l, uint32_t t)
{
	uint64_t mine = lf_ticket_enc(t, lf_owner_self());
	/* Full barrier.  Only the taker marks its slot, so the cmpxchg fails
	 * only if t is not the caller's (a recoverer rewrites only a dead
	 * taker's slot). */
	if (lf_cmpxchg64(lf_ticket_slot(l, t), mine,
			 mine | LF_TICKET_ABANDONED) != mine)
		return LF_EPERM;
	lf_ticket_skip(l);  /* if its turn has come, pass the lock on */
	return 0;
}

int64_t lf_ticket_wait(lf_ticketlock_t *l, uint32_t t, uint64_t deadline,
		       int give_up)
{
	const uint32_t flags = lf_read32(&l->flags);
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, l);
	for (;;) {
		/* Pairs with the release store of head in unlock. */
		uint32_t h = lf_load_acquire32(&l->head);
		if (h == t) {
			ret = LF_ACQUIRED;
			break;
		}
		/* An abandoned ticket at head: skip it (two loads a round,
		 * head and its slot, while the queue moves normally). */
		if ((lf_read64(lf_ticket_slot(l, h)) & LF_TICKET_ABANDONED) &&
		    lf_ticket_skip(l) == t) {
			ret = LF_ACQUIRED;
			break;
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
		if (lf_wait_over(r, lf_ticket_dead_blocker(l), &ret))
			break;
	}
	if (ret != LF_ACQUIRED)
		lf_ticket_abandon(l, t);
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

int lf_ticket_unlock(lf_ticketlock_t *l)
{
	uint32_t h = lf_read32(&l->head);
	if (h == lf_read32(&l->tail) ||
	    lf_read64(lf_ticket_slot(l, h)) != lf_ticket_enc(h, lf_owner_self()))
		return LF_EPERM;
	/* Pairs with the acquire loads of head by waiters: the critical
	 * section is not sunk below this store.  Only the holder moves head
	 * off a live ticket (skippers move it off abandoned ones only). */
	lf_store_release32(&l->head, h + 1);
	return 0;
}

bool lf_ticket_try_acquire(lf_ticketlock_t *l)
{
	int64_t t = lf_ticket_claim(l, lf_owner_self(), true);
	/* head == t was seen before the claim, and head cannot pass an
	 * unclaimed ticket: served. */
	return t >= 0;
}

int lf_ticket_release_counted(lf_ticketlock_t *l)
{
	uint32_t h = lf_read32(&l->head);
	if (h == lf_read32(&l->tail) ||
	    lf_read64(lf_ticket_slot(l, h)) != lf_ticket_enc(h, lf_owner_self()))
		return LF_EPERM;
	lf_xadd64(&l->stats.acquisitions, 1);
	return lf_ticket_unlock(l);
}

bool lf_ticket_locked(lf_ticketlock_t *l)
{
	return lf_ticket_skip(l) != lf_read32(&l->tail);
}

uint64_t lf_ticket_owner(lf_ticketlock_t *l)
{
	uint32_t h;
	return lf_ticket_blocker(l, &h);
}

int lf_ticket_recover(lf_ticketlock_t *l)
{
	const uint64_t me = lf_owner_self();
	uint32_t h = lf_ticket_skip(l);
	if (h == lf_read32(&l->tail))
		return 0;
	uint64_t *slot = lf_ticket_slot(l, h);
	uint64_t s = lf_read64(slot);
	if (!lf_ticket_is(s, h) || (s & LF_TICKET_ABANDONED))
		return 0;
	uint64_t dead = lf_ticket_slot_id(s);
	if (dead == me || lf_owner_alive(dead))
		return 0;
	/* A dead taker never changes its slot: one CAS picks the recoverer,
	 * which takes its turn over (head already names it). */
	return lf_cmpxchg64(slot, s, lf_ticket_enc(h, me)) == s &&
	       lf_load_acquire32(&l->head) == h;
}
