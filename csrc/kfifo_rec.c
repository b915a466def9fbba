/*
 * kfifo records mode: length-prefixed messages that never wrap (kfifo.h).
 * The producer's room and padding, put and put_many, the count, the gets
 * that copy or skip (the consumer's parser, rec_parse/rec_next/rec_end, is
 * in kfifo_impl.h: the shims' gets use it too), and the reserve/commit
 * halves of the zero-copy put (kfifo_zc.c opens and ends the blocks).
 */
#include "kfifo_impl.h"

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
 * Producer: room for a record of need bytes at *in (unpublished records
 * before it included).  0: it fits, and *in is where it starts (padding
 * written before it, published with it).  LF_EAGAIN: not yet; if the
 * padding alone fits it is written and published now (records before it
 * too), and *in moves to the next lap's offset 0, so that the wait is for
 * the record alone.  Or a status.
 */
static inline int rec_room(struct lf_kfifo_handle *h, uint32_t *in,
			   uint32_t need)
{
	uint32_t pad = rec_pad(h, *in, need);
	int64_t free = prod_free(h, *in, pad + need);

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
	uint32_t out = lf_load_acquire32(&h->f->out);
	uint32_t in = lf_load_acquire32(&h->f->in);
	uint32_t used = in - out, pad;
	int64_t len, n = 0;

	if (used > h->size)
		return LF_ECORRUPT;
	if (h->mode != LF_KFIFO_RECORDS)
		return LF_EINVAL;
	while (used > 0 && n < most) {
		len = rec_parse(h, out, used, &pad);
		if (len < 0)
			break;
		out += pad + LF_KFIFO_REC_HDR + (uint32_t)len;
		used -= pad + LF_KFIFO_REC_HDR + (uint32_t)len;
		n++;
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
			    uint32_t *in)
{
	int r = rec_prod_enter(h);

	if (unlikely(r))
		return r;
	if (unlikely(n > h->size - LF_KFIFO_REC_HDR))
		return LF_EMSGSIZE;
	*in = lf_read32(&h->f->in);
	return rec_room(h, in, n + LF_KFIFO_REC_HDR);
}

int kfifo_rec_put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
{
	uint32_t in;
	int r = rec_begin(h, n, &in);

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
		r = rec_room(h, &in, lens[k] + LF_KFIFO_REC_HDR);
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
int kfifo_rec_reserve(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t in;
	int r = rec_begin(h, n, &in);

	if (unlikely(r))
		return r;
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
	/* The caller's writes before the index, as kfifo_rec_put's copy. */
	prod_publish(h, h->rsv_end);
	return 0;
}

int kfifo_rec_abort(struct lf_kfifo_handle *h)
{
	h->rsv_open = 0;
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
