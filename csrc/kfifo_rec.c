/*
 * kfifo records mode: length-prefixed messages that never wrap (kfifo.h).
 * The producer's room and padding, put and put_many, the count, the gets
 * that copy or skip (the consumer's parser, rec_parse/rec_next/rec_end, is
 * in kfifo_rec.h: the shims' gets use it too), and the reserve/commit
 * halves of the zero-copy put (kfifo_zc.c opens and ends the blocks).
 */
#include "kfifo_rec.h"

#include <stdint.h>

/*
 * Records never wrap (kfifo.h): a record of need bytes (header + payload)
 * that does not fit before the end of the data area is preceded by padding
 * up to that end.  Its header is LF_KFIFO_REC_PAD when at least a header's
 * bytes are left; a shorter tail is padding without a marker (both sides
 * compute it from the index).  The producer publishes padding with the
 * record, or alone when the record does not fit yet (then the wait is for
 * the record at offset 0, which the consumer reaches by passing the
 * padding).  A message of up to size - LF_KFIFO_REC_HDR bytes still fits,
 * but one larger than what is left before the end waits for the consumer to
 * pass the end: the largest ones need the ring empty.
 */

/* Padding bytes before a record of need bytes at index idx. */
static inline uint32_t rec_pad(const struct lf_kfifo_handle *h, uint32_t idx,
			       uint32_t need)
{
	uint32_t tail = h->size - (idx & h->mask);

	return likely(tail >= need) ? 0 : tail;
}

/* Write pad bytes of padding at idx: the marker if a header fits. */
static inline void rec_write_pad(struct lf_kfifo_handle *h, uint32_t idx,
				 uint32_t pad)
{
	uint32_t mark = LF_KFIFO_REC_PAD;

	if (pad >= LF_KFIFO_REC_HDR)
		copy_bytes(rec_at(h, idx), &mark, LF_KFIFO_REC_HDR);
}

/*
 * Restart.  A producer whose consumer keeps up would walk the whole data
 * area, writing lines its cache gave up a lap ago (8 MiB ago in an 8 MiB
 * ring).  Once its write offset is LF_KFIFO_HOT or more it starts the next
 * record at offset 0 instead, when the consumer has taken everything
 * before it: padding to the end of the data area, published alone, then
 * out moved from the padding's start to its end with one cmpxchg, so that
 * the padding holds no room (the consumer took nothing, and a later burst
 * has the whole ring, as without the restart).  The cmpxchg fails,
 * harmlessly, when the consumer has passed the padding itself meanwhile.
 * This is the only write of out by anyone but the consumer; a consumer
 * call that read out before it notices and reads again (cons_used() and
 * cons_moved() in kfifo_impl.h).
 *
 * put and put_many restart when the ring is empty as they start.  A
 * reserve() block places its record at offset 0 whenever that room is
 * free (unless LF_KFIFO_RSV_FIXED), and decides at commit: restart if the
 * consumer has taken everything by then (the usual case when it keeps up:
 * it had the time the block took), else move the record to where it
 * belongs (one copy more).  Finding out costs a read of out, a line the
 * consumer writes: a producer that could not restart tries again HOT / 4
 * bytes later.
 */
static inline int rec_hot(const struct lf_kfifo_handle *h, uint32_t idx)
{
	return unlikely((idx & h->mask) >= LF_KFIFO_HOT) &&
	       h->hot_next - idx - 1 >= LF_KFIFO_HOT / 4;
}

static inline void rec_cool(struct lf_kfifo_handle *h, uint32_t idx)
{
	h->hot_next = idx + LF_KFIFO_HOT / 4;
}

/* Restart at idx, where the consumer is (out == idx == in, or in is ahead
 * only by unpublished records): returns the next lap's start. */
static uint32_t rec_restart(struct lf_kfifo_handle *h, uint32_t idx)
{
	struct lf_kfifo *f = h->f;
	uint32_t next = idx + (h->size - (idx & h->mask));

	rec_write_pad(h, idx, next - idx);
	/* The padding before the index, as prod_publish(); no wake-up, there
	 * is nothing to take.  So out never passes in, moved or not. */
	lf_store_release32(&f->in, next);
	/* Pairs with the load-acquire of out in rec_next() and cons_used(). */
	lf_cmpxchg32(&f->out, idx, next);
	/* Orders the cmpxchg before every later write of the producer, the
	 * next lap's records over the padding included: pairs with the read
	 * barrier in cons_moved(). */
	lf_smp_mb();
	/* out is next now, whoever moved it: nothing lies beyond in. */
	lf_write32(&f->out_cache, next);
	return next;
}

/*
 * Producer: room for a record of need bytes at *in (unpublished records
 * before it included).  0: it fits, and *in is where it starts (padding
 * written before it, published with it).  LF_EAGAIN: not yet; if the
 * padding alone fits it is written and published now (records before it
 * too), and *in moves to the next lap's offset 0, so that the wait is for
 * the record alone.  Or a status.
 */
static inline int rec_room(struct lf_kfifo_handle *h, uint32_t *in,
			   uint32_t need, int cool)
{
	uint32_t pad = rec_pad(h, *in, need);
	int64_t free;

	if (!pad && rec_hot(h, *in)) {
		/* Pairs with the store-release of out in cons_publish(). */
		if (lf_load_acquire32(&h->f->out) == *in)
			*in = rec_restart(h, *in);
		else if (cool)	/* (reserve tries its own way next) */
			rec_cool(h, *in);
	}
	free = prod_free(h, *in, pad + need);

	if (likely(free >= (int64_t)pad + need)) {
		if (unlikely(pad)) {
			rec_write_pad(h, *in, pad);
			*in += pad;
		}
		return 0;
	}
	if (free < 0)
		return (int)free;
	if (pad && free >= pad) {
		rec_write_pad(h, *in, pad);
		*in += pad;
		prod_publish(h, *in);
	}
	return LF_EAGAIN;
}

static inline void rec_write(struct lf_kfifo_handle *h, uint32_t in,
			     const char *p, uint32_t n)
{
	unsigned char *dst = rec_at(h, in);

	copy_bytes(dst, &n, LF_KFIFO_REC_HDR);
	copy_bytes(dst + LF_KFIFO_REC_HDR, p, n);
}

/*
 * Records mode: how many messages are queued (a snapshot, like
 * queue.qsize()).  Walks the records from out to in; needs no role.  A
 * record or padding that does not fit (the consumer freed it and the
 * producer reused its bytes while we walked) ends the count: the result
 * may be stale, never a read outside the data area.  The acquire loads
 * pair with prod_publish's and cons_publish's release stores.
 */
static int64_t rec_count(struct lf_kfifo_handle *h, int64_t most)
{
	uint32_t start, out, in, used, pad;
	int64_t len, n;
	int tries = 0;

	if (h->mode != LF_KFIFO_RECORDS)
		return LF_EINVAL;
again:
	start = out = lf_load_acquire32(&h->f->out);
	in = lf_load_acquire32(&h->f->in);
	used = in - out;
	n = 0;
	if (used > h->size) {
		if (cons_moved(h, start) && ++tries < LF_KFIFO_RETRIES)
			goto again;	/* a restart moved out (cons_used()) */
		return LF_ECORRUPT;
	}
	while (used > 0 && n < most) {
		len = rec_parse(h, out, used, &pad);
		if (len < 0)
			break;
		out += pad + LF_KFIFO_REC_HDR + (uint32_t)len;
		used -= pad + LF_KFIFO_REC_HDR + (uint32_t)len;
		n++;
	}
	/* What was read at start was the padding a restart skipped, or
	 * records of the next lap already written over it. */
	if (cons_moved(h, start)) {
		if (++tries < LF_KFIFO_RETRIES)
			goto again;
		return LF_ECORRUPT;	/* (an honest producer moves it once) */
	}
	return n;
}

int64_t lf_kfifo_rec_count(struct lf_kfifo_handle *h)
{
	return rec_count(h, INT64_MAX);
}

/* Is a message queued (1) or not (0)?  The count up to one: padding the
 * producer published alone (its record did not fit yet) is no message. */
int64_t lf_kfifo_rec_any(struct lf_kfifo_handle *h)
{
	return rec_count(h, 1);
}

static inline int rec_prod_enter(struct lf_kfifo_handle *h)
{
	int r = prod_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	/* The same thread inside its own reserve() block: a put would land
	 * on the reserved bytes. */
	return unlikely(h->rsv_open) ? LF_EMISUSE : 0;
}

/* A put's first half (kfifo_rec_put, kfifo_rec_reserve): where a record
 * of n bytes starts (*in, after any padding rec_room published), or an
 * error. */
static inline int rec_begin(struct lf_kfifo_handle *h, uint32_t n,
			    uint32_t *in, int cool)
{
	int r = rec_prod_enter(h);

	if (unlikely(r))
		return r;
	if (unlikely(n > h->size - LF_KFIFO_REC_HDR))
		return LF_EMSGSIZE;
	*in = lf_read32(&h->f->in);
	return rec_room(h, in, n + LF_KFIFO_REC_HDR, cool);
}

int kfifo_rec_put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
{
	uint32_t in;
	int r = rec_begin(h, n, &in, 1);

	if (unlikely(r))
		return r;
	rec_write(h, in, p, n);
	prod_publish(h, in + LF_KFIFO_REC_HDR + n);
	return 0;
}

static int64_t kfifo_rec_put_many(struct lf_kfifo_handle *h, const char *buf,
				  uint64_t buf_len, const uint32_t *lens,
				  uint32_t count)
{
	uint64_t total = 0;
	uint32_t in, i, k;
	int r = rec_prod_enter(h);

	if (unlikely(r))
		return r;
	/* All or nothing per message, and no partial batch when one of them
	 * can never fit: check them all first.  The lengths must add up to
	 * the buffer's, or a copy would read past it. */
	for (i = 0; i < count; i++) {
		if (lens[i] > h->size - LF_KFIFO_REC_HDR)
			return LF_EMSGSIZE;
		total += lens[i];
	}
	if (total != buf_len)
		return LF_EINVAL;
	in = lf_read32(&h->f->in);
	for (k = 0; k < count; k++) {
		r = rec_room(h, &in, lens[k] + LF_KFIFO_REC_HDR, 1);
		if (r) {
			if (r != LF_EAGAIN)
				return r;
			break;	/* (padding, if written, published them) */
		}
		rec_write(h, in, buf, lens[k]);
		buf += lens[k];
		in += lens[k] + LF_KFIFO_REC_HDR;
	}
	if (k && in != lf_read32(&h->f->in))
		prod_publish(h, in);	/* one publish for the whole batch */
	return k;
}

static int64_t kfifo_rec_get_into(struct lf_kfifo_handle *h, char *p,
				  uint32_t n)
{
	uint32_t out = 0, rest = 0;
	int64_t len = rec_next(h, &out, &rest);

	if (unlikely(len < 0))
		return len;
	if (len > n) {	/* the message stays in the ring */
		h->msg_len = (uint32_t)len;
		return LF_EMSGSIZE;
	}
	copy_bytes(p, rec_at(h, out + LF_KFIFO_REC_HDR), (uint32_t)len);
	cons_publish(h, rec_end(h, out + LF_KFIFO_REC_HDR + (uint32_t)len,
				rest));
	return len;
}

static int64_t kfifo_rec_peek_len(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;

	return rec_next(h, &out, &rest);
}

int64_t kfifo_rec_parts(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;
	int64_t len = rec_next(h, &out, &rest);

	set_parts(h, out + LF_KFIFO_REC_HDR, len > 0 ? (uint32_t)len : 0);
	return len;
}

int64_t kfifo_rec_skip(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;
	int64_t len = rec_next(h, &out, &rest);

	if (len >= 0)
		cons_publish(h, rec_end(h, out + LF_KFIFO_REC_HDR +
					(uint32_t)len, rest));
	return len;
}

/* Zero-copy put: reserve, write at part[0], commit or abort (kfifo.h). */
int kfifo_rec_reserve(struct lf_kfifo_handle *h, uint32_t n, int fixed)
{
	uint32_t in;
	int r = rec_begin(h, n, &in, 0);

	if (unlikely(r))
		return r;
	/* Restart decided at commit ("Restart" above): at offset 0 if that
	 * room is free now (out is within a lap of the record's end there),
	 * unless the message must stay where it is written. */
	h->rsv_restart = 0;
	if (!fixed && rec_hot(h, in)) {
		uint32_t next = in + (h->size - (in & h->mask));
		int64_t free = prod_free(h, next, n + LF_KFIFO_REC_HDR);

		if (free >= (int64_t)n + LF_KFIFO_REC_HDR) {
			h->rsv_restart = 1;
			h->rsv_from = in;
			in = next;
		} else {
			rec_cool(h, in);
		}
	}
	/* The header now, the payload by the caller; nothing is published
	 * before kfifo_rec_commit(), so a producer that dies in between leaves
	 * only bytes beyond in, which the consumer never reads. */
	copy_bytes(rec_at(h, in), &n, LF_KFIFO_REC_HDR);
	h->part[0] = (char *)rec_at(h, in + LF_KFIFO_REC_HDR);
	h->part_len[0] = n;
	h->part[1] = (char *)h->data;
	h->part_len[1] = 0;
	h->rsv_end = in + LF_KFIFO_REC_HDR + n;
	h->rsv_open = 1;
	return 0;
}

int kfifo_rec_commit(struct lf_kfifo_handle *h)
{
	int r;

	if (!h->rsv_open)
		return LF_EINVAL;
	h->rsv_open = 0;
	/* Still this process's producer (a fork child's copy of the handle
	 * registers, and is refused while the parent lives). */
	r = prod_enter(h, LF_KFIFO_RECORDS);
	if (unlikely(r))
		return r;
	if (h->rsv_restart) {
		uint32_t from = h->rsv_from;
		uint32_t need = h->rsv_end - (from + (h->size - (from & h->mask)));

		h->rsv_restart = 0;
		/* Pairs with the store-release of out in cons_publish(). */
		if (lf_load_acquire32(&h->f->out) == from) {
			rec_restart(h, from);
		} else {
			/* The consumer has not taken everything before the
			 * record: it goes where it belongs, whose room
			 * rec_room() found at reserve. */
			memmove(rec_at(h, from), h->data, need);
			h->rsv_end = from + need;
			rec_cool(h, from);
		}
	}
	/* The caller's writes before the index, as kfifo_rec_put's copy. */
	prod_publish(h, h->rsv_end);
	return 0;
}

int kfifo_rec_abort(struct lf_kfifo_handle *h)
{
	h->rsv_open = 0;
	h->rsv_restart = 0;
	return 0;
}

LF_KFIFO_CALL(int, rec_put, 0,
	      (struct lf_kfifo_handle *h, const char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, rec_put_many, 0,
	      (struct lf_kfifo_handle *h, const char *buf, uint64_t buf_len,
	       const uint32_t *lens, uint32_t count),
	      (h, buf, buf_len, lens, count))
LF_KFIFO_CALL(int64_t, rec_get_into, 1,
	      (struct lf_kfifo_handle *h, char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, rec_peek_len, 1, (struct lf_kfifo_handle *h),
	      (h))
LF_KFIFO_CALL(int64_t, rec_skip, 1, (struct lf_kfifo_handle *h),
	      (h))
