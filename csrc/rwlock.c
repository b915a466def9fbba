#include "rwlock.h"

#include <string.h>

void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags)
{
	memset(l, 0, sizeof *l);
	l->flags = flags;
}

/* A dead writer: the holder (returned, for the caller to report), or a
 * waiting writer (its WAITING bit is cleared here, and 0 returned). */
static uint64_t lf_rwlock_check_writer(lf_rwlock_t *l, uint64_t c)
{
	uint64_t owner = lf_read64(&l->owner);
	if (owner && !lf_owner_alive(owner))
		return owner;
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
		if (lf_wait_over(r, lf_rwlock_check_writer(
					 l, lf_read64(&l->cnts)), &ret))
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
		if (lf_wait_over(r, lf_rwlock_check_writer(
					 l, lf_read64(&l->cnts)), &ret))
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
	uint64_t c = lf_read64(&l->cnts);
	for (;;) {
		if (c < LF_RW_READER)
			return -1;  /* no reader holds it */
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
	uint64_t dead = lf_read64(&l->owner);
	if (!dead || lf_owner_alive(dead))
		return 0;
	return lf_cmpxchg64(&l->owner, dead, lf_owner_self()) == dead;
}
