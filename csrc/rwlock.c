#include "rwlock.h"

#include <string.h>

void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags)
{
	memset(l, 0, sizeof *l);
	l->flags = flags;
}

/* -- reader slots ----------------------------------------------------------- */

void lf_rwlock_track_slow(lf_rwlock_t *l, uint32_t pid)
{
	const uint32_t home = lf_rwlock_home(pid);
	for (;;) {
		uint64_t *free_w = NULL, free_v = 0;
		for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
			uint64_t *w = &l->slots[(home + i) % LF_RW_SLOTS].word;
			uint64_t v = lf_read64(w);
			if (v >> 32 == pid) {
				lf_xadd64(w, 1);  /* ours (see lf_rwlock_track) */
				return;
			}
			if (!free_w && v == 0) {
				free_w = w;
				free_v = v;
			}
		}
		if (!free_w) {
			/* No empty slot: reuse one whose process is dead and
			 * holds nothing (a system call each: rare). */
			for (uint32_t i = 0; i < LF_RW_SLOTS && !free_w; i++) {
				uint64_t *w = &l->slots[(home + i) % LF_RW_SLOTS].word;
				uint64_t v = lf_read64(w);
				if ((uint32_t)v == 0 && !lf_pid_alive(v >> 32)) {
					free_w = w;
					free_v = v;
				}
			}
		}
		if (!free_w) {
			/* Every slot belongs to a live process: counted, but not
			 * recorded (its death would go undetected). */
			lf_xadd64(&l->untracked, 1);
			return;
		}
		/* Claim it with our first hold.  Another process (or thread of
		 * ours) may have claimed it since: look again. */
		if (lf_cmpxchg64(free_w, free_v, (uint64_t)pid << 32 | 1) == free_v)
			return;
	}
}

int lf_rwlock_untrack_slow(lf_rwlock_t *l, uint32_t pid)
{
	const uint32_t home = lf_rwlock_home(pid);
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t *w = &l->slots[(home + i) % LF_RW_SLOTS].word;
		uint64_t v = lf_read64(w);
		while (v >> 32 == pid && (uint32_t)v != 0) {
			uint64_t seen = lf_cmpxchg64(w, v, v - 1);
			if (seen == v)
				return 0;
			v = seen;
		}
	}
	uint64_t u = lf_read64(&l->untracked);
	while (u != 0) {
		uint64_t seen = lf_cmpxchg64(&l->untracked, u, u - 1);
		if (seen == u)
			return 0;
		u = seen;
	}
	return -1;
}

uint64_t lf_rwlock_dead_reader(lf_rwlock_t *l)
{
	const uint32_t me = lf_owner_pid(lf_owner_self());
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t v = lf_read64(&l->slots[i].word);
		uint32_t pid = v >> 32;
		if ((uint32_t)v == 0 || pid == me)
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

/* Remove the holds of dead reader processes from cnts; how many. */
static uint64_t lf_rwlock_purge_readers(lf_rwlock_t *l)
{
	const uint32_t me = lf_owner_pid(lf_owner_self());
	uint64_t purged = 0;
	for (uint32_t i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t *w = &l->slots[i].word;
		uint64_t v = lf_read64(w);
		uint32_t pid = v >> 32, holds = (uint32_t)v;
		if (holds == 0 || pid == me || lf_pid_alive(pid))
			continue;
		/* The dead process cannot change its slot: whoever's CAS
		 * empties it owns the holds and returns them.  Full barrier. */
		if (lf_cmpxchg64(w, v, 0) != v)
			continue;
		lf_xadd64(&l->cnts, -(uint64_t)holds * LF_RW_READER);
		purged += holds;
	}
	return purged;
}

/* -- waiting ----------------------------------------------------------------- */

/* A dead writer: the holder (returned, for the caller to report), or a
 * waiting writer (its WAITING bit is cleared here, and 0 returned).  With
 * readers in (c), a writer also looks for a dead reader process. */
static uint64_t lf_rwlock_check_dead(lf_rwlock_t *l, uint64_t c, bool writer)
{
	uint64_t owner = lf_owner_dead_at(&l->owner);
	if (owner)
		return owner;
	if (writer && c >= LF_RW_READER) {
		uint64_t dead = lf_rwlock_dead_reader(l);
		if (dead)
			return dead;
	}
	if ((c & LF_RW_WMASK) == LF_RW_WAITING) {
		uint64_t ww = lf_read64(&l->wwaiter);
		if (ww && ww != lf_owner_self() && !lf_owner_alive(ww) &&
		    lf_cmpxchg64(&l->wwaiter, ww, 0) == ww)
			lf_clear_bit64(&l->cnts, 1);  /* LF_RW_WAITING */
	}
	return 0;
}

int64_t lf_rwlock_read_lock_slow(lf_rwlock_t *l, uint64_t deadline)
{
	const uint32_t flags = lf_read32(&l->flags);
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	for (;;) {
		/* Spin on a plain load until no writer holds or waits, then
		 * try to get in. */
		uint64_t c = lf_read64(&l->cnts);
		if (!(c & LF_RW_WMASK) && lf_rwlock_read_trylock(l)) {
			ret = LF_ACQUIRED;
			break;
		}
		int r = lf_wait_step(&w);
		if (r == LF_WAIT_AGAIN)
			continue;
		if (lf_wait_over(r, lf_rwlock_check_dead(
					 l, lf_read64(&l->cnts), false), &ret))
			break;
	}
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

int64_t lf_rwlock_write_lock_slow(lf_rwlock_t *l, uint64_t deadline)
{
	const uint32_t flags = lf_read32(&l->flags);
	const uint64_t me = lf_owner_self();
	struct lf_wait w;
	int64_t ret;

	lf_wait_init(&w, deadline);
	for (;;) {
		uint64_t c = lf_read64(&l->cnts);
		if ((c & ~LF_RW_WAITING) == 0) {
			/* No holder, no reader: take it (clearing WAITING;
			 * other waiting writers set it again). */
			if (lf_cmpxchg64(&l->cnts, c, LF_RW_LOCKED) == c) {
				lf_write64(&l->owner, me);
				ret = LF_ACQUIRED;
				break;
			}
		}
		if (!(c & LF_RW_WAITING)) {
			/* Stop new readers: the writer-starvation guard. */
			lf_write64(&l->wwaiter, me);
			lf_set_bit64(&l->cnts, 1);  /* LF_RW_WAITING */
		}
		int r = lf_wait_step(&w);
		if (r == LF_WAIT_AGAIN)
			continue;
		if (lf_wait_over(r, lf_rwlock_check_dead(
					 l, lf_read64(&l->cnts), true), &ret))
			break;
	}
	if (ret != LF_ACQUIRED) {
		/* Let readers in again; live waiting writers re-set the bit. */
		lf_cmpxchg64(&l->wwaiter, me, 0);
		lf_clear_bit64(&l->cnts, 1);
	}
	if (flags & LF_LOCK_STATS)
		lf_wait_account(&l->stats, &w, ret == LF_ACQUIRED);
	return ret;
}

int lf_rwlock_read_unlock(lf_rwlock_t *l)
{
	/* The slot first: it never records more than cnts counts. */
	if (lf_rwlock_untrack(l) != 0)
		return -1;  /* this process holds no read lock */
	uint64_t c = lf_read64(&l->cnts);
	for (;;) {
		if (c < LF_RW_READER)
			return -1;  /* unreachable unless the words were corrupted */
		/* Full barrier: the read section stays above; pairs with the
		 * writer's CAS that sees the count drop to 0. */
		uint64_t seen = lf_cmpxchg64(&l->cnts, c, c - LF_RW_READER);
		if (seen == c)
			return 0;
		c = seen;
	}
}

bool lf_rwlock_read_try_acquire(lf_rwlock_t *l)
{
	return lf_rwlock_read_trylock(l);
}

int64_t lf_rwlock_read_acquire_until(lf_rwlock_t *l, uint64_t deadline)
{
	return lf_rwlock_read_lock_until(l, deadline);
}

int lf_rwlock_read_release(lf_rwlock_t *l) { return lf_rwlock_read_unlock(l); }

int lf_rwlock_read_release_counted(lf_rwlock_t *l)
{
	int r = lf_rwlock_read_unlock(l);
	if (r == 0)
		lf_xadd64(&l->read_acquisitions, 1);
	return r;
}

bool lf_rwlock_write_try_acquire(lf_rwlock_t *l)
{
	return lf_rwlock_write_trylock(l);
}

int64_t lf_rwlock_write_acquire_until(lf_rwlock_t *l, uint64_t deadline)
{
	return lf_rwlock_write_lock_until(l, deadline);
}

int lf_rwlock_write_release(lf_rwlock_t *l)
{
	return lf_rwlock_write_unlock(l);
}

int lf_rwlock_write_release_counted(lf_rwlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return -1;
	lf_xadd64(&l->stats.acquisitions, 1);
	return lf_rwlock_write_unlock(l);
}

uint64_t lf_rwlock_readers(lf_rwlock_t *l)
{
	return lf_read64(&l->cnts) / LF_RW_READER;
}

bool lf_rwlock_write_locked(lf_rwlock_t *l)
{
	return lf_read64(&l->cnts) & LF_RW_LOCKED;
}

uint64_t lf_rwlock_owner(lf_rwlock_t *l) { return lf_read64(&l->owner); }

int lf_rwlock_recover(lf_rwlock_t *l)
{
	uint64_t purged = lf_rwlock_purge_readers(l);
	uint64_t dead = lf_read64(&l->owner);
	if (dead && !lf_owner_alive(dead))
		return lf_cmpxchg64(&l->owner, dead, lf_owner_self()) == dead;
	if (!purged)
		return 0;
	/* Dead readers only: take the write lock if nobody else holds it now
	 * (one attempt; WAITING may be set by this caller or another). */
	uint64_t c = lf_read64(&l->cnts);
	if ((c & ~LF_RW_WAITING) != 0 ||
	    lf_cmpxchg64(&l->cnts, c, LF_RW_LOCKED) != c)
		return 0;
	lf_write64(&l->owner, lf_owner_self());
	return 1;
}
