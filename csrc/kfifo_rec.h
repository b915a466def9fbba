/*
 * kfifo records mode's private header: the consumer's record parser
 * (rec_parse, rec_next, rec_end), shared by kfifo_rec.c (gets, skip, the
 * count) and the binding shims (shims/kfifo.c: get_message, get_many).
 * Not an API: cffi never reads it.  The index protocol it is built on is
 * kfifo_impl.h's; the record format and the producer's side (padding,
 * the restart) are stated in kfifo_rec.c.
 */
#ifndef LF_KFIFO_REC_H
#define LF_KFIFO_REC_H

#include "kfifo_impl.h"

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

#endif /* LF_KFIFO_REC_H */
