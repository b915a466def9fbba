/*
 * kfifo zero-copy blocks (lf_kfifo_zc_*, kfifo.h "Zero-copy records"): one
 * call opens a block on a role and one ends it; the message is written or
 * read in place by the caller in between.  The records themselves are
 * kfifo_rec.c's (kfifo_rec_reserve/commit/abort, kfifo_rec_parts,
 * kfifo_rec_skip).
 */
#include "kfifo_impl.h"

/*
 * Zero-copy: the role's in-use word holds the opener's id with
 * LF_KFIFO_ZC_HELD set (owner ids never have bit 63: lf_owner_valid), which
 * claim() refuses even to the same thread, and which only the calls below
 * accept.  So a put_message (or get_message) nested in a reserve() (or
 * receive()) block fails instead of writing over the reservation (or
 * consuming the message under the view).
 */
#define LF_KFIFO_ZC_HELD (1ull << 63)

/* Open a zero-copy block on role i: 0, or LF_EMISUSE (another thread is
 * inside a call on it, or a block is open already: claim() refuses the
 * held mark to everyone). */
static int zc_open(struct lf_kfifo_handle *h, int i)
{
	int c = claim(h, i);  /* 0: this thread's own plain claim (a kept
				 result, a hold): it becomes the block's */

	if (c < 0)
		return c;
	lf_write64(&h->user[i].word, lf_owner_self() | LF_KFIFO_ZC_HELD);
	return 0;
}

/* Is a block on role i open, by this process? */
static inline int zc_mine(struct lf_kfifo_handle *h, int i)
{
	uint64_t w = lf_read64(&h->user[i].word);

	/* This process's, not only this thread's: a block may end on another
	 * thread (a generator suspended inside receive() and finalised
	 * there); Python ends a block only through the object that opened
	 * it.  A fork child's copy holds its parent's id: not its own. */
	return (w & LF_KFIFO_ZC_HELD) &&
	       lf_owner_pid(w & ~LF_KFIFO_ZC_HELD) ==
	       lf_owner_pid(lf_owner_self());
}

int64_t lf_kfifo_zc_reserve(struct lf_kfifo_handle *h, uint32_t n)
{
	int r = zc_open(h, 0);

	if (unlikely(r))
		return r;
	r = kfifo_rec_reserve(h, n & ~LF_KFIFO_RSV_FIXED,
			      !!(n & LF_KFIFO_RSV_FIXED));
	if (unlikely(r)) {
		unclaim(h, 0);
		return r;
	}
	return (char *)h->part[0] - (char *)h->data;
}

int lf_kfifo_zc_commit(struct lf_kfifo_handle *h)
{
	int r;

	if (unlikely(!zc_mine(h, 0)))
		return LF_EMISUSE;
	r = kfifo_rec_commit(h);
	unclaim(h, 0);
	return r;
}

int lf_kfifo_zc_abort(struct lf_kfifo_handle *h)
{
	if (unlikely(!zc_mine(h, 0)))
		return LF_EMISUSE;
	kfifo_rec_abort(h);
	unclaim(h, 0);
	return 0;
}

int64_t lf_kfifo_zc_receive(struct lf_kfifo_handle *h)
{
	int64_t len;
	int r = zc_open(h, 1);

	if (unlikely(r))
		return r;
	len = kfifo_rec_parts(h);
	if (len < 0) {
		unclaim(h, 1);
		return len;
	}
	/* The offset is below LF_KFIFO_MAX_SIZE (2^31), the length too. */
	return (int64_t)((uint64_t)((char *)h->part[0] - (char *)h->data)
			 << 32 | (uint64_t)len);
}

int64_t lf_kfifo_zc_consume(struct lf_kfifo_handle *h)
{
	int64_t r;

	if (unlikely(!zc_mine(h, 1)))
		return LF_EMISUSE;
	r = kfifo_rec_skip(h);
	unclaim(h, 1);
	return r;
}

int lf_kfifo_zc_leave(struct lf_kfifo_handle *h)
{
	if (unlikely(!zc_mine(h, 1)))
		return LF_EMISUSE;
	unclaim(h, 1);
	return 0;
}

int lf_kfifo_zc_held(struct lf_kfifo_handle *h)
{
	return zc_mine(h, 0) || zc_mine(h, 1);
}
