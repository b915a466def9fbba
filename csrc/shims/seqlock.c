#include "seqlock.h"  /* csrc/shims/seqlock.h */

/* Claim h for the calling thread: 0, or LF_EBUSY if another thread of this
 * process owns it (a parent's handle after fork is taken over). */
static inline int claim(struct lf_seq_handle *h)
{
	const uint64_t me = lf_owner_self();
	const uint64_t owner = lf_read64(&h->owner);

	if (__builtin_expect(owner != me, 0)) {
		if ((owner && lf_owner_pid(owner) == lf_owner_pid(me)) ||
		    lf_cmpxchg64(&h->owner, owner, me) != owner)
			return LF_EBUSY;
	}
	return 0;
}

int64_t lf_seq_fetch(struct lf_seq_handle *h)
{
	if (__builtin_expect(claim(h) != 0, 0))
		return LF_EBUSY;
	int64_t r = lf_seq_try_read(h, h->buf, h->size);
	h->retries = r;
	return r;
}

int64_t lf_seq_fetch_until(struct lf_seq_handle *h, uint64_t deadline)
{
	if (claim(h))
		return LF_EBUSY;
	int64_t r = lf_seq_read_until(h, h->buf, h->size, deadline);
	h->retries = r;
	return r;
}

int64_t lf_seq_store(const struct lf_seq_handle *h, const void *src)
{
	lf_seqlock_t *sl = h->sl;

	if (__builtin_expect(!lf_spin_trylock(&sl->lock), 0))
		return LF_EAGAIN;  /* the caller waits, with its deadline */
	lf_seq_write_locked(h, src);
	lf_spin_unlock(&sl->lock);
	return LF_OK;
}
