/*
 * The kfifo's binding shims (what each is and why: csrc/shims/kfifo.h).
 * Built on the core's private header: the claims, the index protocol and
 * the record parser, inlined here as in the core files.
 */
#include "kfifo.h"  /* csrc/shims/kfifo.h */
#include "../kfifo_rec.h"

/*
 * The calls whose result the caller reads from the handle afterwards (a
 * message in h->scratch, a batch format in h->fmt, h->part[]): on success
 * (r >= 0) they return with the consumer's in-use word still claimed, so
 * another thread's call cannot overwrite the result before the caller has
 * copied it; the caller gives the word back when done (lf_kfifo_unhold(),
 * or from Python a plain store of 0 into h->user[1].word: see
 * KfifoQueue.get_message).  One claim per message, where a second lock
 * around the call and the copy cost ~130 ns in Python.  A failed call
 * releases the word as every call does.  A thread that keeps calling just
 * re-enters its own claim (claim() returns 0).
 */
#define LF_KFIFO_CALL_KEEP(name, params, args)				\
int64_t lf_kfifo_##name params						\
{									\
	int c = claim(h, 1);						\
	int64_t r;							\
									\
	if (unlikely(c < 0))						\
		return c;						\
	r = kfifo_##name args;						\
	if (unlikely(c && r < 0))					\
		unclaim(h, 1);						\
	return r;							\
}

/* -- the scratch buffer and the batch format ----------------------------- */

void lf_kfifo_handle_scratch(struct lf_kfifo_handle *h, char *scratch,
			     uint32_t scratch_size, char *fmt,
			     uint32_t fmt_items)
{
	h->scratch = scratch;
	h->scratch_size = scratch_size;
	h->fmt = fmt;
	h->fmt_items = fmt_items;
	if (fmt)
		fmt[0] = 0;
}

static int64_t kfifo_get_scratch(struct lf_kfifo_handle *h, uint32_t n)
{
	return kfifo_get(h, h->scratch, min_u32(n, h->scratch_size));
}

static int64_t kfifo_rec_get(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;
	int64_t len = rec_next(h, &out, &rest);

	if (unlikely(len < 0))
		return len;
	if (unlikely(len > h->scratch_size)) {
		h->msg_len = (uint32_t)len;
		return LF_EBIG;
	}
	copy_bytes(h->scratch, rec_at(h, out + LF_KFIFO_REC_HDR),
		   (uint32_t)len);
	cons_publish(h, rec_end(h, out + LF_KFIFO_REC_HDR + (uint32_t)len,
				rest));
	return len;
}

/* Append "<len>s" to the struct format at p; return the new end. */
static char *fmt_item(char *p, uint32_t len)
{
	char digits[10];
	int n = 0;

	do {
		digits[n++] = (char)('0' + len % 10);
		len /= 10;
	} while (len);
	while (n)
		*p++ = digits[--n];
	*p++ = 's';
	return p;
}

/*
 * Copy up to max_items whole messages, back to back, into the scratch
 * buffer, and describe them as a Python struct format ("64s12s0s") in
 * h->fmt, so that struct.Struct(fmt).unpack(data) splits them in one C loop.
 * Returns the bytes copied (>= 0, and 0 for empty messages only), or a
 * status; LF_EBIG if the first message alone exceeds the scratch.
 */
static int64_t kfifo_rec_get_many(struct lf_kfifo_handle *h,
				  uint32_t max_items)
{
	int64_t used, len;
	uint32_t out, start, pad, pos, k;
	char *fmt;
	int tries = 0, looked = 0;
	int r = cons_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	if (unlikely(h->fmt == NULL))
		return LF_EINVAL;
	max_items = min_u32(max_items, h->fmt_items);
again:
	/* Acquire: as in rec_next() (kfifo_rec.h). */
	out = lf_load_acquire32(&h->f->out);
	used = cons_used(h, &out, UINT32_MAX);	/* always refresh in */
	if (used < 0)
		return used;
	start = out;
	pos = k = 0;
	fmt = h->fmt;
	while (k < max_items && used > 0) {
		len = rec_parse(h, out, (uint32_t)used, &pad);
		/* The producer moved out past padding at start (a restart):
		 * what was read there is not a message; start again from the
		 * new out.  Only the first parse can be at a stale out. */
		if (k == 0 && cons_moved(h, start)) {
			if (++tries < LF_KFIFO_RETRIES)
				goto again;
			return LF_ECORRUPT;	/* (an honest producer moves
						   it once) */
		}
		if (len == LF_EAGAIN) {		/* padding only */
			out += pad;
			break;
		}
		if (unlikely(len < 0))
			return len;
		if (len > h->scratch_size - pos) {
			if (k == 0) {
				h->msg_len = (uint32_t)len;
				return LF_EBIG;
			}
			break;
		}
		out += pad;
		copy_bytes(h->scratch + pos, rec_at(h, out + LF_KFIFO_REC_HDR),
			   (uint32_t)len);
		fmt = fmt_item(fmt, (uint32_t)len);
		pos += (uint32_t)len;
		k++;
		out += LF_KFIFO_REC_HDR + (uint32_t)len;
		used -= pad + LF_KFIFO_REC_HDR + (uint32_t)len;
	}
	*fmt = 0;
	if (out != start)
		cons_publish(h, out);
	if (k == 0 && max_items && out != start && !looked) {
		/* Only padding was there: look again at offset 0 (once; there
		 * padding is corrupt). */
		looked = 1;
		goto again;
	}
	return pos;
}

LF_KFIFO_CALL(int64_t, get_scratch, 1, (struct lf_kfifo_handle *h, uint32_t n),
	      (h, n))
LF_KFIFO_CALL_KEEP(rec_get, (struct lf_kfifo_handle *h),
		   (h))
LF_KFIFO_CALL_KEEP(rec_get_many,
		   (struct lf_kfifo_handle *h, uint32_t max_items),
		   (h, max_items))
LF_KFIFO_CALL_KEEP(rec_parts, (struct lf_kfifo_handle *h),
		   (h))

/* -- one slice of blocking (Python loops between slices) ----------------- */

static int kfifo_rec_put_wait(struct lf_kfifo_handle *h, const char *p,
			      uint32_t n)
{
	int r = kfifo_rec_put(h, p, n);

	if (r != LF_EAGAIN)
		return r;
	r = kfifo_wait_writable(h, n + LF_KFIFO_REC_HDR,
				lf_deadline_in(LF_SLICE_NS));
	return r ? r : kfifo_rec_put(h, p, n);
}

static int64_t kfifo_rec_get_wait(struct lf_kfifo_handle *h)
{
	int64_t n = kfifo_rec_get(h);
	int r;

	if (n != LF_EAGAIN)
		return n;
	r = kfifo_wait_readable(h, lf_deadline_in(LF_SLICE_NS));
	return r ? r : kfifo_rec_get(h);
}

static int64_t kfifo_rec_get_many_wait(struct lf_kfifo_handle *h,
				       uint32_t max_items)
{
	int64_t n = kfifo_rec_get_many(h, max_items);
	int r;

	if (n != LF_EAGAIN)
		return n;
	r = kfifo_wait_readable(h, lf_deadline_in(LF_SLICE_NS));
	return r ? r : kfifo_rec_get_many(h, max_items);
}

LF_KFIFO_CALL(int, rec_put_wait, 0,
	      (struct lf_kfifo_handle *h, const char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL_KEEP(rec_get_wait, (struct lf_kfifo_handle *h),
		   (h))
LF_KFIFO_CALL_KEEP(rec_get_many_wait,
		   (struct lf_kfifo_handle *h, uint32_t max_items),
		   (h, max_items))

/* -- the asyncio waiter (src/lockfree/kfifo_async.py) ------------------- */

/*
 * lf_kfifo_wait_readable/writable that another thread can end: they also
 * return 1 as soon as *stop is non-zero.  lf_kfifo_wait_stop() sets *stop
 * and wakes the sleeper.  The stop word is the caller's (process-private
 * memory, never the shared state).  kfifo_wait_on()'s conditions take
 * (h, idx, need) only, so the condition reads the word through a
 * thread-local pointer set for the duration of the call.
 */
static __thread const uint32_t *wait_stop_word;

static int readable_or_stop(struct lf_kfifo_handle *h, uint32_t out,
			    uint32_t need)
{
	/* Pairs with the store-release in lf_kfifo_wait_stop(). */
	if (lf_load_acquire32(wait_stop_word))
		return 1;
	return kfifo_readable(h, out, need);
}

static int writable_or_stop(struct lf_kfifo_handle *h, uint32_t in,
			    uint32_t need)
{
	/* Pairs with the store-release in lf_kfifo_wait_stop(). */
	if (lf_load_acquire32(wait_stop_word))
		return 1;
	return kfifo_writable(h, in, need);
}

static int kfifo_wait_readable_or(struct lf_kfifo_handle *h,
				  uint64_t deadline, const uint32_t *stop)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	wait_stop_word = stop;
	r = kfifo_wait_on(h, readable_or_stop, lf_load_acquire32(&f->out), 1,
			  &f->cons_sleeping, &f->cons_seq,
			  LF_KFIFO_ROLE_PRODUCER, deadline);
	wait_stop_word = NULL;
	return r;
}

static int kfifo_wait_writable_or(struct lf_kfifo_handle *h, uint32_t need,
				  uint64_t deadline, const uint32_t *stop)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	if (need > h->size)
		return LF_EMSGSIZE;
	wait_stop_word = stop;
	r = kfifo_wait_on(h, writable_or_stop, lf_read32(&f->in), need,
			  &f->prod_sleeping, &f->prod_seq,
			  LF_KFIFO_ROLE_CONSUMER, deadline);
	wait_stop_word = NULL;
	return r;
}

LF_KFIFO_CALL(int, wait_readable_or, 1,
	      (struct lf_kfifo_handle *h, uint64_t deadline,
	       const uint32_t *stop),
	      (h, deadline, stop))
LF_KFIFO_CALL(int, wait_writable_or, 0,
	      (struct lf_kfifo_handle *h, uint32_t need, uint64_t deadline,
	       const uint32_t *stop),
	      (h, need, deadline, stop))

/* No claim: another thread calls it while the waiter holds the role's
 * in-use word.  It reads only h->f (set once at handle init) and wakes this
 * role's sleeper; a wake-up nobody needed costs that sleeper one re-check. */
int lf_kfifo_wait_stop(struct lf_kfifo_handle *h, uint32_t role,
		       uint32_t *stop)
{
	struct lf_kfifo *f = h->f;

	if (role != LF_KFIFO_ROLE_PRODUCER && role != LF_KFIFO_ROLE_CONSUMER)
		return LF_EINVAL;
	/* Pairs with the load-acquire in readable_or_stop() and
	 * writable_or_stop(); lf_kfifo_wake()'s xadd of seq (a full barrier)
	 * then orders it before the new seq, which the waiter reads
	 * (lf_kfifo_sleep_prepare) before its re-check of the word. */
	lf_store_release32(stop, 1);
	lf_kfifo_wake(role == LF_KFIFO_ROLE_CONSUMER ? &f->cons_seq
						     : &f->prod_seq);
	return 0;
}

/* -- holding a role across calls ----------------------------------------- */

static int role_index(uint32_t role)
{
	return role == LF_KFIFO_ROLE_PRODUCER ? 0
	       : role == LF_KFIFO_ROLE_CONSUMER ? 1 : -1;
}

int lf_kfifo_hold(struct lf_kfifo_handle *h, uint32_t role)
{
	int i = role_index(role), c;

	if (i < 0)
		return LF_EINVAL;
	c = claim(h, i);
	return c < 0 ? c : 0;
}

void lf_kfifo_unhold(struct lf_kfifo_handle *h, uint32_t role)
{
	int i = role_index(role);

	if (i >= 0 && lf_read64(&h->user[i].word) == lf_owner_self())
		unclaim(h, i);
}
