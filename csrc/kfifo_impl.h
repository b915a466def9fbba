/*
 * kfifo's private header, shared by the core (kfifo.c: handles, roles,
 * state, close, reset; kfifo_bytes.c: byte mode, element slow paths;
 * kfifo_rec.c: records; kfifo_zc.c: zero-copy blocks; kfifo_wait.c: the
 * sleeper handshake, blocking waits) and its binding shims (shims/kfifo.c).
 * Not an API: cffi never reads it; the public declarations are kfifo.h's.
 *
 * It holds the index protocol, the copies and the in-use word claims as
 * static inline functions (compiled into each caller, as in one file; the
 * record parser is kfifo_rec.h's), and the claim-free bodies one file
 * defines and another calls
 * (kfifo_<op>: lf_kfifo_<op>'s body, run with the role's in-use word
 * claimed), hidden from the extension's exported symbols.
 *
 * Ordering (the kernel's kfifo.c barriers, as acquire/release on the index
 * words so ThreadSanitizer sees them too):
 *
 *   producer: copy data into the ring; store-release in      (publish)
 *   consumer: load-acquire in; copy data out; store-release out
 *   producer: load-acquire out before overwriting freed bytes
 *
 * Sleeping: see lf_kfifo_sleep_prepare() (kfifo_wait.c), the one place the
 * handshake between a sleeping side and the publishing side is defined.
 */
#ifndef LF_KFIFO_IMPL_H
#define LF_KFIFO_IMPL_H

#include "kfifo.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <stdint.h>
#include <string.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/* A function of one kfifo file that another calls: not exported. */
#define LF_KFIFO_PRIVATE	__attribute__((visibility("hidden")))

/* Records: the write offset from which the producer restarts at offset 0
 * when the consumer has taken everything (kfifo_rec.c, "Restart"). */
#ifndef LF_KFIFO_HOT
#define LF_KFIFO_HOT	(128u << 10)
#endif

/* Records: how many times a consumer call starts again because the
 * producer moved out under it (a restart; an honest producer moves it at
 * most once while the consumer is inside a call) before it answers
 * LF_ECORRUPT. */
#define LF_KFIFO_RETRIES	8

/* Offset 0 is never a restart's padding (it would be a whole lap). */
_Static_assert(LF_KFIFO_HOT >= 64, "LF_KFIFO_HOT: at least 64 bytes");

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* -- roles --------------------------------------------------------------- */

static inline uint64_t *role_slot(struct lf_kfifo *f, uint32_t role)
{
	return role == LF_KFIFO_ROLE_PRODUCER ? &f->prod_owner
					      : &f->cons_owner;
}

/* The hot-path role check: one load of a process-local word. */
static inline int need_role(struct lf_kfifo_handle *h, uint32_t role)
{
	if (likely(lf_kfifo_ready(h, role)))
		return 0;
	return lf_kfifo_register(h, role);
}

/* -- copies (the kernel's kfifo_copy_in / kfifo_copy_out) --------------- */

/* memcpy, inlined for the small sizes of items and length prefixes: two
 * overlapping fixed-size moves instead of a call into libc. */
static inline void copy_bytes(void *dst, const void *src, uint32_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (n > 16) {
		memcpy(d, s, n);
	} else if (n >= 8) {
		uint64_t a, b;

		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + n - 8, &b, 8);
	} else if (n >= 4) {
		uint32_t a, b;

		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + n - 4, &b, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/* -- the two sides' index protocol -------------------------------------- */

/*
 * Free bytes for the producer at write index in, re-reading out only when
 * the cached copy says fewer than need bytes are free.
 */
static inline int64_t prod_free(struct lf_kfifo_handle *h, uint32_t in,
				uint32_t need)
{
	struct lf_kfifo *f = h->f;
	uint32_t used = in - lf_read32(&f->out_cache);
	uint32_t out = 0;

	if (likely(used <= h->size && h->size - used >= need))
		return h->size - used;
	/* Pairs with the store-release of out in cons_publish(): the consumer
	 * has finished copying out every byte below out, so they may be
	 * overwritten. */
	out = lf_load_acquire32(&f->out);
	lf_write32(&f->out_cache, out);
	used = in - out;
	if (unlikely(used > h->size))
		return LF_ECORRUPT;
	return h->size - used;
}

static inline void prod_publish(struct lf_kfifo_handle *h, uint32_t in)
{
	struct lf_kfifo *f = h->f;

	/* Make sure the data is copied before the index is updated (the
	 * smp_wmb of kfifo_in); pairs with the load-acquire of in in
	 * cons_used(). */
	lf_store_release32(&f->in, in);
	/* No lf_smp_mb() here: the waiter's membarrier stands in for it (see
	 * lf_kfifo_sleep_prepare()). */
	lf_kfifo_notify(&f->cons_sleeping, &f->cons_seq);
}

/*
 * Bytes readable at read index *out, re-reading in only when the cached copy
 * shows fewer than want.  Empty: LF_EOF if the producer closed, else
 * LF_EAGAIN.
 *
 * Records mode: out is the consumer's, but a restarting producer may move
 * it forward over padding while the consumer takes nothing (kfifo_rec.c,
 * "Restart").  A caller that read *out before such a move sees in more
 * than size ahead of it once the producer has written on; then *out is
 * re-read (after in: it is at least the moved value) and updated, not
 * reported as corrupt.
 */
static inline int64_t cons_used(struct lf_kfifo_handle *h, uint32_t *out,
				uint32_t want)
{
	struct lf_kfifo *f = h->f;
	uint32_t used = lf_read32(&f->in_cache) - *out;
	uint32_t flags, in, now;

	if (likely(used >= want && used <= h->size))
		return used;
	/* The flags before in: pairs with the xchg in kfifo_close_producer()
	 * (kfifo.c), which follows the producer's last publish, so seeing
	 * CLOSED here means the in loaded next is final. */
	flags = lf_load_acquire32(&f->flags);
	/* Pairs with the store-release of in in prod_publish(): the bytes
	 * below in are in the data area. */
	in = lf_load_acquire32(&f->in);
	lf_write32(&f->in_cache, in);
	used = in - *out;
	if (unlikely(used > h->size)) {
		/* The producer's cmpxchg of out in rec_restart() comes before
		 * its store-release of any in past the padding, which the
		 * load-acquire of in above read: so this read sees it. */
		now = lf_load_acquire32(&f->out);
		if (h->mode != LF_KFIFO_RECORDS || now == *out ||
		    in - now > h->size)
			return LF_ECORRUPT;
		*out = now;
		used = in - now;
	}
	if (used == 0)
		return (flags & LF_KFIFO_F_CLOSED) ? LF_EOF
						   : LF_EAGAIN;
	return used;
}

/*
 * Records mode, after the consumer has read the bytes at out: did the
 * producer move out away from it meanwhile (a restart, kfifo_rec.c)?  Then
 * those bytes were the restart's padding, or already rewritten by records
 * of the next lap; the caller starts again from the new out.  The seqlock
 * reader's re-check: the loads of the bytes before the load of out (pairs
 * with the full barrier after the producer's cmpxchg, before it writes
 * there again).
 */
static inline int cons_moved(struct lf_kfifo_handle *h, uint32_t out)
{
	lf_smp_rmb();
	return unlikely(lf_read32(&h->f->out) != out);
}

static inline void cons_publish(struct lf_kfifo_handle *h, uint32_t out)
{
	struct lf_kfifo *f = h->f;

	/* Make sure the data is copied out before the index is updated (the
	 * smp_mb of kfifo_out); pairs with the load-acquire of out in
	 * prod_free(). */
	lf_store_release32(&f->out, out);
	/* No lf_smp_mb(): see lf_kfifo_sleep_prepare(). */
	lf_kfifo_notify(&f->prod_sleeping, &f->prod_seq);
}

static inline int prod_enter(struct lf_kfifo_handle *h, uint32_t mode)
{
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (unlikely(r))
		return r;
	if (unlikely(h->mode != mode))
		return LF_EINVAL;
	if (unlikely(lf_read32(&h->f->flags) & LF_KFIFO_F_CLOSED))
		return LF_ECLOSED;
	return 0;
}

static inline int cons_enter(struct lf_kfifo_handle *h, uint32_t mode)
{
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (unlikely(r))
		return r;
	return unlikely(h->mode != mode) ? LF_EINVAL : 0;
}

/* The readable bytes (at most n) as two pointers into the data area, the
 * second part after the wrap (the kernel's kfifo_out_linear, both parts).
 * They stay valid and unchanged until the consumer moves out. */
static inline void set_parts(struct lf_kfifo_handle *h, uint32_t off,
			     uint32_t len)
{
	uint32_t l;

	off &= h->mask;
	l = min_u32(len, h->size - off);
	h->part[0] = (char *)h->data + off;
	h->part_len[0] = l;
	h->part[1] = (char *)h->data;
	h->part_len[1] = len - l;
}

/* -- the public calls: one thread at a time per role of a handle --------- */

/*
 * Claim a role's in-use word for the calling thread: 1 (claimed: give it
 * back with unclaim()), 0 (this thread already holds it: lf_kfifo_hold()),
 * or LF_EMISUSE (another thread is inside a call on this role).  One
 * compare-and-swap on a line of this process's memory that only this role's
 * thread touches: ~20 cycles uncontended.
 */
static inline int claim(struct lf_kfifo_handle *h, int i)
{
	uint64_t me = lf_owner_self();
	uint64_t cur = lf_cmpxchg64(&h->user[i].word, 0, me);

	if (likely(cur == 0))
		return 1;
	if (cur == me)
		return 0;
	/* A copy of the handle in a fork child holds the word of a parent
	 * thread that does not exist here: take it over. */
	if (h->fork_gen != lf_read32(&lf_kfifo_fork_gen) &&
	    lf_cmpxchg64(&h->user[i].word, cur, me) == cur)
		return 1;
	return LF_EMISUSE;
}

static inline void unclaim(struct lf_kfifo_handle *h, int i)
{
	/* Everything the call did to the handle before the word is free;
	 * pairs with the next claimant's compare-and-swap. */
	lf_store_release64(&h->user[i].word, 0);
}

#define LF_KFIFO_CALL(ret, name, role, params, args)			\
ret lf_kfifo_##name params						\
{									\
	int c = claim(h, role);						\
	ret r;								\
									\
	if (unlikely(c < 0))						\
		return c;						\
	r = kfifo_##name args;						\
	if (likely(c))							\
		unclaim(h, role);					\
	return r;							\
}

/* -- bodies one file implements and another calls ----------------------- */

/* kfifo_bytes.c */
LF_KFIFO_PRIVATE int64_t kfifo_get(struct lf_kfifo_handle *h, char *p,
				   uint32_t n);

/* kfifo_rec.c */
LF_KFIFO_PRIVATE int kfifo_rec_put(struct lf_kfifo_handle *h, const char *p,
				   uint32_t n);
LF_KFIFO_PRIVATE int64_t kfifo_rec_parts(struct lf_kfifo_handle *h);
LF_KFIFO_PRIVATE int64_t kfifo_rec_skip(struct lf_kfifo_handle *h);
LF_KFIFO_PRIVATE int kfifo_rec_reserve(struct lf_kfifo_handle *h, uint32_t n,
				       int fixed);
LF_KFIFO_PRIVATE int kfifo_rec_commit(struct lf_kfifo_handle *h);
LF_KFIFO_PRIVATE int kfifo_rec_abort(struct lf_kfifo_handle *h);

/* kfifo_wait.c */
LF_KFIFO_PRIVATE int kfifo_membarrier_ready(struct lf_kfifo *f);
typedef int (*cond_fn)(struct lf_kfifo_handle *h, uint32_t idx, uint32_t need);
LF_KFIFO_PRIVATE int kfifo_wait_on(struct lf_kfifo_handle *h, cond_fn cond,
				   uint32_t idx, uint32_t need,
				   uint32_t *sleeping, uint32_t *seq,
				   uint32_t peer, uint64_t deadline);
LF_KFIFO_PRIVATE int kfifo_readable(struct lf_kfifo_handle *h, uint32_t out,
				    uint32_t need);
LF_KFIFO_PRIVATE int kfifo_writable(struct lf_kfifo_handle *h, uint32_t in,
				    uint32_t need);
LF_KFIFO_PRIVATE int kfifo_wait_readable(struct lf_kfifo_handle *h,
					 uint64_t deadline);
LF_KFIFO_PRIVATE int kfifo_wait_writable(struct lf_kfifo_handle *h,
					 uint32_t need, uint64_t deadline);

#endif /* LF_KFIFO_IMPL_H */
