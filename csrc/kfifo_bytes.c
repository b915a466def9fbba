/*
 * kfifo byte mode: a byte stream whose put/get/peek/skip are partial, like
 * the kernel's kfifo_in/kfifo_out, with its two-part copy around the end of
 * the data area; and the out-of-line slow paths of the element fast paths
 * (lf_kfifo_put_elem/get_elem, kfifo.h).  See kfifo_impl.h.
 */
#include "kfifo_impl.h"

#include <string.h>

/* -- copies (the kernel's kfifo_copy_in / kfifo_copy_out) --------------- */

static inline void copy_in(struct lf_kfifo_handle *h, uint32_t off,
			   const void *src, uint32_t len)
{
	uint32_t l;

	off &= h->mask;
	l = min_u32(len, h->size - off);
	copy_bytes(h->data + off, src, l);
	if (unlikely(len != l))		/* the part after the wrap */
		copy_bytes(h->data, (const char *)src + l, len - l);
}

static inline void copy_out(struct lf_kfifo_handle *h, void *dst,
			    uint32_t off, uint32_t len)
{
	uint32_t l;

	off &= h->mask;
	l = min_u32(len, h->size - off);
	copy_bytes(dst, h->data + off, l);
	if (unlikely(len != l))
		copy_bytes((char *)dst + l, h->data, len - l);
}

/* -- byte mode ----------------------------------------------------------- */

static int64_t kfifo_put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
{
	int64_t free;
	uint32_t in, l;
	int r = prod_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	in = lf_read32(&h->f->in);
	free = prod_free(h, in, n);
	if (unlikely(free < 0))
		return free;
	l = min_u32(n, (uint32_t)free);
	if (l) {
		copy_in(h, in, p, l);
		prod_publish(h, in + l);
	}
	return l;
}

/* Bytes from out the consumer may take: min(n, readable), or a status. */
static inline int64_t cons_take(struct lf_kfifo_handle *h, uint32_t *out,
				uint32_t n)
{
	int64_t used;
	int r = cons_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	*out = lf_read32(&h->f->out);
	used = cons_used(h, out, n ? n : 1);
	if (used < 0)
		return used;
	return min_u32(n, (uint32_t)used);
}

static int64_t kfifo_peek(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0)
		copy_out(h, p, out, (uint32_t)l);
	return l;
}

int64_t kfifo_get(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0) {
		copy_out(h, p, out, (uint32_t)l);
		cons_publish(h, out + (uint32_t)l);
	}
	return l;
}

static int64_t kfifo_skip(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0)
		cons_publish(h, out + (uint32_t)l);
	return l;
}

static int64_t kfifo_parts(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	set_parts(h, out, l > 0 ? (uint32_t)l : 0);
	return l;
}

/* -- elements: the slow paths of lf_kfifo_put_elem/get_elem (kfifo.h) ---- */

static int kfifo_put_elem_slow(struct lf_kfifo_handle *h, const void *p,
			       uint32_t esize)
{
	int64_t free;
	uint32_t in;
	int r = prod_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	if (esize == 0 || esize > h->size)
		return LF_EMSGSIZE;
	in = lf_read32(&h->f->in);
	free = prod_free(h, in, esize);
	if (unlikely(free < 0))
		return (int)free;
	if (free < esize)
		return 0;			/* full: all or nothing */
	copy_in(h, in, p, esize);
	prod_publish(h, in + esize);
	return 1;
}

static int kfifo_get_elem_slow(struct lf_kfifo_handle *h, void *p,
			       uint32_t esize)
{
	int64_t used;
	uint32_t out;
	int r = cons_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	if (esize == 0 || esize > h->size)
		return LF_EMSGSIZE;
	out = lf_read32(&h->f->out);
	used = cons_used(h, &out, esize);
	if (used == LF_EAGAIN)
		return 0;			/* empty */
	if (used < 0)
		return (int)used;		/* EOF, ECORRUPT */
	if (used < esize)
		return 0;	/* part of an element: the rest is coming */
	copy_out(h, p, out, esize);
	cons_publish(h, out + esize);
	return 1;
}

LF_KFIFO_CALL(int64_t, put, 0,
	      (struct lf_kfifo_handle *h, const char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, peek, 1,
	      (struct lf_kfifo_handle *h, char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, get, 1, (struct lf_kfifo_handle *h, char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, skip, 1, (struct lf_kfifo_handle *h, uint32_t n),
	      (h, n))
LF_KFIFO_CALL(int64_t, parts, 1, (struct lf_kfifo_handle *h, uint32_t n),
	      (h, n))
LF_KFIFO_CALL(int, put_elem_slow, 0,
	      (struct lf_kfifo_handle *h, const void *p, uint32_t esize),
	      (h, p, esize))
LF_KFIFO_CALL(int, get_elem_slow, 1,
	      (struct lf_kfifo_handle *h, void *p, uint32_t esize),
	      (h, p, esize))
