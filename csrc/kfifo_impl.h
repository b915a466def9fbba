/*
 * kfifo's private header, shared by the core (kfifo.c: handles, roles,
 * state, close, reset; kfifo_bytes.c: byte mode, element slow paths;
 * kfifo_rec.c: records; kfifo_zc.c: zero-copy blocks; kfifo_wait.c: the
 * sleeper handshake, blocking waits) and its binding shims (shims/kfifo.c).
 * Not an API: cffi never reads it; the public declarations are kfifo.h's.
 *
 * It holds the index protocol, the copies, the record parser and the in-use
 * word claims as static inline functions (compiled into each caller, as in
 * one file), and the claim-free bodies one file defines and another calls
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

/* -- records: the consumer's parser -------------------------------------- */

/* Records never wrap: the padding rule is stated in kfifo_rec.c, where the
 * producer writes it. */

/*
 * A record header, as the consumer parser reads it.  The one read of the
 * data area that may race with the producer by design: a consumer call
 * that read out just before a restart moved it (kfifo_rec.c) parses the
 * restart's padding, which the producer may be writing the next lap over
 * by then; cons_moved() finds out and the call starts again, as a seqlock
 * reader retries (the kernel would mark this read data_race()).  So it is
 * hidden from ThreadSanitizer, which would report the race it is.
 */
#if defined(__has_attribute)
# if __has_attribute(no_sanitize)
#  define LF_DATA_RACE __attribute__((no_sanitize("thread")))
# endif
#endif
#ifndef LF_DATA_RACE
# define LF_DATA_RACE
#endif

static inline LF_DATA_RACE uint32_t rec_hdr(const unsigned char *p)
{
	uint32_t v;

	__builtin_memcpy(&v, p, LF_KFIFO_REC_HDR);
	return v;
}

static inline unsigned char *rec_at(const struct lf_kfifo_handle *h,
				    uint32_t idx)
{
	return h->data + (idx & h->mask);
}

/*
 * Consumer: the record at index out, with used (> 0) bytes readable.
 * Returns its payload length and sets *pad to the padding bytes before it
 * (0 or the rest of the data area); LF_EAGAIN with *pad set if the readable
 * bytes are only padding.  Every value read here is from the peer: a length
 * or padding that runs past the readable bytes or the end of the data area
 * is LF_ECORRUPT, so the caller's copies stay inside the data area.
 */
static inline int64_t rec_parse(const struct lf_kfifo_handle *h,
				uint32_t out, uint32_t used, uint32_t *pad)
{
	uint32_t off = out & h->mask, tail = h->size - off, len;

	*pad = 0;
	if (likely(tail >= LF_KFIFO_REC_HDR)) {
		if (unlikely(used < LF_KFIFO_REC_HDR))
			return LF_ECORRUPT;
		len = rec_hdr(h->data + off);
		if (likely(len != LF_KFIFO_REC_PAD)) {
			if (unlikely(len > tail - LF_KFIFO_REC_HDR ||
				     len > used - LF_KFIFO_REC_HDR))
				return LF_ECORRUPT;
			return len;
		}
		if (unlikely(off == 0))		/* padding is never a lap */
			return LF_ECORRUPT;
	}
	/* Padding to the end of the data area, then a record at offset 0. */
	if (unlikely(used < tail))
		return LF_ECORRUPT;
	*pad = tail;
	used -= tail;
	if (used == 0)
		return LF_EAGAIN;
	if (unlikely(used < LF_KFIFO_REC_HDR))
		return LF_ECORRUPT;
	len = rec_hdr(h->data);
	/* (A second padding marker is larger than used: corrupt too.) */
	if (unlikely(len > used - LF_KFIFO_REC_HDR))
		return LF_ECORRUPT;
	return len;
}

/*
 * The next message's length at *out (moved past padding), or a status;
 * *rest: the bytes readable after the record.  Padding alone is consumed
 * here, so that a producer waiting for the room behind it gets it, and the
 * look is repeated at offset 0.
 */
static inline int64_t rec_next(struct lf_kfifo_handle *h, uint32_t *out,
			       uint32_t *rest)
{
	int64_t used, len;
	uint32_t pad;
	int tries = 0;
	int r = cons_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
again:
	/* Acquire: pairs with the producer's cmpxchg of out (rec_restart),
	 * after its store-release of in past the padding it skips. */
	*out = lf_load_acquire32(&h->f->out);
	/* A record is published whole, so any readable byte means a whole
	 * record (or padding) is there. */
	used = cons_used(h, out, 1);
	if (unlikely(used < 0))
		return used;
	len = rec_parse(h, *out, (uint32_t)used, &pad);
	if (cons_moved(h, *out)) {
		if (++tries < LF_KFIFO_RETRIES)
			goto again;
		return LF_ECORRUPT;	/* (an honest producer moves it once) */
	}
	if (unlikely(pad)) {
		*out += pad;
		used -= pad;
		if (len == LF_EAGAIN) {
			/* (The producer may move out to the same index.) */
			cons_publish(h, *out);
			used = cons_used(h, out, 1);
			if (used < 0)
				return used;
			/* At offset 0 now, where rec_parse finds no padding,
			 * and where the producer moves out to, never from. */
			len = rec_parse(h, *out, (uint32_t)used, &pad);
		}
	}
	if (likely(len >= 0))
		*rest = (uint32_t)used - LF_KFIFO_REC_HDR - (uint32_t)len;
	return len;
}

/*
 * The consumer's new out after a record that ends at end, with rest bytes
 * readable after it: past the padding that follows it, if that padding is
 * readable, so that taking the last message before the end leaves no
 * padding behind (a producer waiting for the room at offset 0 gets it).
 */
static inline uint32_t rec_end(const struct lf_kfifo_handle *h, uint32_t end,
			       uint32_t rest)
{
	uint32_t off, tail, mark;

	if (likely(rest == 0))
		return end;
	off = end & h->mask;
	tail = h->size - off;
	if (rest < tail)	/* a record fits here, or corrupt: parse it */
		return end;
	if (tail >= LF_KFIFO_REC_HDR) {
		copy_bytes(&mark, h->data + off, LF_KFIFO_REC_HDR);
		if (mark != LF_KFIFO_REC_PAD || off == 0)
			return end;
	}
	return end + tail;
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
