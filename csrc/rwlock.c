#include "rwlock.h"

#include <string.h>

void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags)
{
	memset(l, 0, sizeof *l);
	l->flags = flags;
}

/* -- reader slots ----------------------------------------------------------- */

/* Take one read hold into a slot of this process (any, probing from its
 * home), or claim an empty one: 1 done, 0 every slot is another process's. */
static int lf_rwlock_track(lf_rwlock_t *l, uint32_t pid)
{
	const uint32_t home = lf_rwlock_home(pid);
	for (;;) {
		uint64_t *free_w = NULL;
		for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
			uint64_t *w = &l->slots[(home + i) % LF_RW_SLOTS].word;
			uint64_t v = lf_read64(w);
			if (v >> 32 == pid && (v & LF_RW_HOLDS) != LF_RW_HOLDS &&
			    v != 0) {
				/* Ours: only we (or a recoverer, once we are
				 * dead) change it, but other threads of ours
				 * do too, hence the CAS.  Full barrier. */
				if (lf_cmpxchg64(w, v, v + 1) == v)
					return 1;
				free_w = NULL;
				break;  /* changed under us: look again */
			}
			if (!free_w && v == 0)
				free_w = w;
			if (i == LF_RW_SLOTS - 1 && !free_w)
				return 0;
		}
		/* Claim an empty slot with our first hold.  Full barrier. */
		if (free_w && lf_cmpxchg64(free_w, 0, (uint64_t)pid << 32 | 1) == 0)
			return 1;
	}
}

int lf_rwlock_read_try_slow(lf_rwlock_t *l)
{
	if (!lf_rwlock_track(l, lf_owner_pid(lf_owner_self())))
		return 0;
	/* Pairs with the writer's cmpxchg on owner, then slot loads. */
	if (lf_read64_after_rmw(&l->owner) == 0)
		return 1;
	lf_rwlock_untrack(l);  /* a writer holds or waits: back out */
	return 0;
}

int lf_rwlock_untrack(lf_rwlock_t *l)
{
	const uint32_t pid = lf_owner_pid(lf_owner_self());
	const uint32_t home = lf_rwlock_home(pid);
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t *w = &l->slots[(home + i) % LF_RW_SLOTS].word;
		uint64_t v = lf_read64(w);
		while (v >> 32 == pid && (v & LF_RW_HOLDS) != 0) {
			/* The last hold empties the slot (0: free for any
			 * process).  Full barrier: the read section stays
			 * above; pairs with the writer's slot loads. */
			uint64_t n = (v & LF_RW_HOLDS) == 1 ? 0 : v - 1;
			uint64_t seen = lf_cmpxchg64(w, v, n);
			if (seen == v)
				return 0;
			v = seen;
		}
	}
	return LF_EPERM;
}

uint64_t lf_rwlock_dead_reader(lf_rwlock_t *l)
{
	const uint32_t me = lf_owner_pid(lf_owner_self());
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t v = lf_read64(&l->slots[i].word);
		uint32_t pid = v >> 32;
		if ((v & LF_RW_HOLDS) == 0 || pid == me)
			continue;
		LF_TEST_HOLDER_LOADED();
		/* Read again after the check: a reader that returned its
		 * holds and then exited meanwhile has changed its slot; a
		 * dead one cannot (as in lf_owner_dead_at). */
		if (!lf_pid_alive(pid) && lf_read64(&l->slots[i].word) == v)
			return (uint64_t)pid << 32;
	}
	return 0;
}

/* Give the holds of dead reader processes back: how many. */
static uint64_t lf_rwlock_purge_readers(lf_rwlock_t *l)
{
	const uint32_t me = lf_owner_pid(lf_owner_self());
	uint64_t purged = 0;
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t *w = &l->slots[i].word;
		uint64_t v = lf_read64(w);
		uint32_t pid = v >> 32;
		if ((v & LF_RW_HOLDS) == 0 || pid == me || lf_pid_alive(pid))
			continue;
		/* The dead process cannot change its slot: whoever's CAS
		 * empties it gives the holds back.  Full barrier. */
		if (lf_cmpxchg64(w, v, 0) == v)
			purged += v & LF_RW_HOLDS;
	}
	return purged;
}

/* -- waiting ----------------------------------------------------------------- */

int64_t lf_rwlock_read_lock_slow(lf_rwlock_t *l, uint64_t deadline)
{
	const uint32_t flags = lf_read32(&l->flags);
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, l);
	for (;;) {
		/* Spin on a plain load until no writer holds or waits, then
		 * try to get in. */
		if (lf_read64(&l->owner) == 0 && lf_rwlock_read_try_slow(l)) {
			ret = LF_ACQUIRED;
			break;
		}
		int r = lf_wait_step(&w);
		if (r == LF_WAIT_AGAIN)
			continue;
		uint64_t dead = lf_owner_dead_at(&l->owner);
		if (!dead && lf_read64(&l->owner) == 0)
			dead = lf_rwlock_dead_reader(l);  /* slots full? */
		if (lf_wait_over(r, dead, &ret))
			break;
	}
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

/* Holding owner: wait for the readers inside to leave.  1 drained; else
 * as lf_wait_over() (0 deadline, -(pid << 32) a dead reader process). */
static int64_t lf_rwlock_drain(lf_rwlock_t *l, struct lf_wait *w)
{
	int64_t ret;
	for (;;) {
		if (!lf_rwlock_has_readers(l))
			return LF_ACQUIRED;
		int r = lf_wait_step(w);
		if (r == LF_WAIT_AGAIN)
			continue;
		if (lf_wait_over(r, lf_rwlock_dead_reader(l), &ret))
			return ret;
	}
}

int64_t lf_rwlock_write_lock_slow(lf_rwlock_t *l, uint64_t deadline)
{
	const uint32_t flags = lf_read32(&l->flags);
	const uint64_t me = lf_owner_self();
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, l);
	for (;;) {
		/* Full barrier; pairs with the release store in unlock. */
		if (lf_read64(&l->owner) == 0 &&
		    lf_cmpxchg64(&l->owner, 0, me) == 0) {
			/* New readers back out now: wait for those inside. */
			ret = lf_rwlock_drain(l, &w);
			if (ret != LF_ACQUIRED)
				lf_store_release64(&l->owner, 0);
			break;
		}
		int r = lf_wait_step(&w);
		if (r == LF_WAIT_AGAIN)
			continue;
		if (lf_wait_over(r, lf_owner_dead_at(&l->owner), &ret))
			break;
	}
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

int lf_rwlock_read_release_counted(lf_rwlock_t *l)
{
	int r = lf_rwlock_untrack(l);
	if (r == 0)
		lf_xadd64(&l->read_acquisitions, 1);
	return r;
}

int lf_rwlock_write_release_counted(lf_rwlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return LF_EPERM;
	lf_xadd64(&l->stats.acquisitions, 1);
	return lf_rwlock_write_unlock(l);
}

uint64_t lf_rwlock_readers(lf_rwlock_t *l)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++)
		n += lf_read64(&l->slots[i].word) & LF_RW_HOLDS;
	return n;
}

bool lf_rwlock_write_locked(lf_rwlock_t *l)
{
	return lf_read64(&l->owner) != 0;
}

uint64_t lf_rwlock_owner(lf_rwlock_t *l) { return lf_read64(&l->owner); }

/* Only this process's own read holds left? */
static bool lf_rwlock_only_mine(lf_rwlock_t *l)
{
	const uint32_t me = lf_owner_pid(lf_owner_self());
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t v = lf_read64(&l->slots[i].word);
		if ((v & LF_RW_HOLDS) && v >> 32 != me)
			return false;
	}
	return true;
}

int lf_rwlock_recover(lf_rwlock_t *l)
{
	const uint64_t me = lf_owner_self();
	uint64_t purged = lf_rwlock_purge_readers(l);
	uint64_t dead = lf_read64(&l->owner);
	if (dead && dead != me && !lf_owner_alive(dead)) {
		/* A dead owner never changes the word: one CAS picks the
		 * recoverer, which then holds it as a writer would. */
		if (lf_cmpxchg64(&l->owner, dead, me) != dead)
			return 0;
		/* Wait for the live readers to leave (they hold briefly);
		 * dead ones are given back on the way.  Bounded: if readers
		 * still hold after LF_RW_RECOVER_NS (or only the caller's own
		 * process does, which could never drain), leave the lock
		 * free and return 0: the caller acquires it as usual, with
		 * its own timeout. */
		struct lf_wait w;
		lf_wait_init(&w, lf_deadline_in(LF_RW_RECOVER_NS));
		while (lf_rwlock_has_readers(l)) {
			int r = lf_wait_step(&w);
			if (r == LF_WAIT_AGAIN)
				continue;
			lf_rwlock_purge_readers(l);
			if (r == LF_WAIT_TIMEOUT || (lf_rwlock_has_readers(l) &&
						     lf_rwlock_only_mine(l))) {
				lf_store_release64(&l->owner, 0);
				return 0;
			}
		}
		return 1;
	}
	if (!purged)
		return 0;
	/* Dead readers only: take the write lock if nobody else holds it
	 * now (one attempt). */
	return lf_rwlock_write_trylock(l);
}
