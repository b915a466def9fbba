#include "seqlock.h"

_Static_assert(offsetof(lf_seqlock_t, lock) == 64,
	       "the writer lock has a cache line of its own");
_Static_assert(offsetof(lf_seqlock_t, inline_) == LF_SEQ_INLINE_OFF &&
	       LF_SEQ_INLINE_OFF + LF_SEQ_INLINE_MAX == 64,
	       "the inline copy fills line 0 after the geometry");
_Static_assert(sizeof(lf_seqlock_t) == LF_SEQ_META_OFF,
	       "the metadata area follows the two control lines");

static uint64_t round64(uint64_t n) { return (n + 63) & ~(uint64_t)63; }

static uint64_t ncopies(uint32_t flags)
{
	return (flags & LF_SEQ_LATCH) ? 2 : 1;
}

/* A classic value small enough lives in line 0 (see seqlock.h). */
static int is_inline(uint64_t size, uint32_t flags)
{
	return !(flags & LF_SEQ_LATCH) && size <= LF_SEQ_INLINE_MAX;
}

static uint64_t data_off(uint64_t size, uint32_t flags, uint64_t meta_len)
{
	return is_inline(size, flags) ? LF_SEQ_INLINE_OFF
				      : round64(LF_SEQ_META_OFF + meta_len);
}

uint64_t lf_seq_state_size(uint64_t size, uint32_t flags, uint64_t meta_len)
{
	uint64_t copies = is_inline(size, flags) ? 0 : ncopies(flags);

	return round64(LF_SEQ_META_OFF + meta_len) +
	       copies * round64(size ? size : 1);
}

void lf_seq_init(lf_seqlock_t *sl, uint64_t size, uint32_t flags,
		 const void *meta, uint64_t meta_len)
{
	memset(sl, 0, lf_seq_state_size(size, flags, meta_len));
	sl->flags = sl->wflags = flags;
	sl->size = sl->wsize = (uint32_t)size;
	sl->meta_len = (uint32_t)meta_len;
	sl->data_off = sl->wdata_off =
		(uint32_t)data_off(size, flags, meta_len);
	sl->stride = (uint32_t)round64(size ? size : 1);
	if (meta_len)
		memcpy((char *)sl + LF_SEQ_META_OFF, meta, meta_len);
	lf_spin_init(&sl->lock, LF_LOCK_TTAS);
}

int lf_seq_check(const lf_seqlock_t *sl, uint64_t size, uint32_t flags,
		 uint64_t meta_len)
{
	uint64_t off = data_off(size, flags, meta_len);

	return size <= LF_SEQ_MAX_SIZE && !(flags & ~LF_SEQ_LATCH) &&
	       sl->flags == flags && sl->wflags == flags &&
	       sl->size == size && sl->wsize == size &&
	       sl->meta_len == meta_len &&
	       sl->data_off == off && sl->wdata_off == off &&
	       sl->stride == round64(size ? size : 1) &&
	       !(lf_read32(&sl->wseq) & 1);
}

const char *lf_seq_meta(const lf_seqlock_t *sl)
{
	return (const char *)sl + LF_SEQ_META_OFF;
}

void lf_seq_write_locked(lf_seqlock_t *sl, const void *src)
{
	/* Geometry from line 1 (wflags, wsize, wdata_off): see seqlock.h. */
	if (!(sl->wflags & LF_SEQ_LATCH)) {
		lf_seq_write_begin(sl);
		lf_seq_copy_in(lf_seq_wcopy(sl, 0), src, sl->wsize);
		lf_seq_write_end(sl);
		return;
	}
	/* Latch: readers use data[s & 1]; fill the other copy, then switch
	 * them over.  Readers still copying data[(s + 1) & 1] began before the
	 * previous switch, so their retry check fails. */
	uint32_t s = lf_read32(&sl->seq);
	/* Earlier switches are visible before these data stores.  Pairs with
	 * the lf_smp_rmb() in lf_seq_read_retry(). */
	lf_smp_wmb();
	lf_seq_copy_in(lf_seq_wcopy(sl, (s + 1) & 1), src, sl->wsize);
	/* Release: the copy is complete before readers switch to it.  Pairs
	 * with the acquire load in lf_seq_read_begin(). */
	lf_store_release32(&sl->seq, s + 1);
}

/* Classic mode, slow path: the counter s is odd.  Wait (spin, back off,
 * yield) for an even count; the deadline is absolute, or if `slice` one
 * LF_SLICE_NS from now.  Returns 0 with the even count in *sp, or an error
 * code. */
static int64_t wait_even(const lf_seqlock_t *sl, uint32_t *sp,
			 uint64_t deadline, int slice)
{
	struct lf_wait w;

	lf_wait_init(&w, slice ? lf_now_ns() + LF_SLICE_NS : deadline);
	for (;;) {
		int r = lf_wait_step(&w);
		uint32_t s = lf_seq_read_begin(sl);
		if (!(s & 1)) {
			*sp = s;
			return 0;
		}
		if (r == LF_WAIT_AGAIN)
			continue;
		/* Odd for a whole spin budget: is the writer alive?  The lock
		 * is held while the count is odd, so its owner is the writer
		 * (or a recoverer, alive, which replaced the dead one's id). */
		uint64_t owner = lf_read64(&sl->lock.owner);
		if (owner && !lf_owner_alive(owner) &&
		    lf_load_acquire32(&sl->seq) == s)
			return -(int64_t)owner;
		if (r == LF_WAIT_TIMEOUT)
			return LF_SEQ_TIMEDOUT;
	}
}

/* Copy len bytes of a shared copy (runtime len).  Small values: word
 * moves instead of a call to memcpy, which costs as much as the whole read
 * of a small record.  The portable build copies in relaxed atomic chunks
 * anyway (see seqlock.h). */
static inline void copy_out(void *dst, const char *shared, uint64_t len)
{
#ifndef LF_ATOMICS_PORTABLE
	if (len <= 256) {
		char *d = dst;
		for (; len >= 8; len -= 8, d += 8, shared += 8)
			memcpy(d, shared, 8);
		while (len--)
			*d++ = *shared++;
		return;
	}
#endif
	lf_seq_copy_out(dst, shared, len);
}

/* One attempt: 1 with a consistent copy in dst, 0 if a classic write is in
 * progress (nothing copied), -1 if the copy was torn. */
static inline int read_once(const lf_seqlock_t *sl, void *dst, uint32_t *sp)
{
	uint32_t s = lf_seq_read_begin(sl);

	/* Writer priority: nothing after this starts until the counter's load
	 * is done (see "Readers and the writer's cache line" in seqlock.h). */
	lf_barrier_nospec();
	*sp = s;
	if ((s & 1) && !(sl->flags & LF_SEQ_LATCH))
		return 0;
	copy_out(dst, lf_seq_copy(sl, lf_seq_read_index(sl, s)), sl->size);
	return lf_seq_read_retry(sl, s) ? -1 : 1;
}

/* Retries: the number of torn copies discarded (waiting for a classic
 * write in progress is not a retry). */
static __attribute__((noinline)) int64_t
read_slow(const lf_seqlock_t *sl, void *dst, int64_t retries,
	  uint64_t deadline, int slice)
{
	uint32_t s;
	int r;

	while ((r = read_once(sl, dst, &s)) <= 0) {
		if (r < 0) {
			retries++;
			continue;
		}
		int64_t err = wait_even(sl, &s, deadline, slice);
		if (err)
			return err;
	}
	return retries;
}

/* The fast path (one attempt) without the slow path's stack frame. */
static inline int64_t read_copy(const lf_seqlock_t *sl, void *dst,
				uint64_t deadline, int slice)
{
	uint32_t s;
	int r = read_once(sl, dst, &s);

	if (__builtin_expect(r > 0, 1))
		return 0;
	return read_slow(sl, dst, r < 0, deadline, slice);
}

int64_t lf_seq_read_until(lf_seqlock_t *sl, void *dst, uint64_t len,
			  uint64_t deadline)
{
	if (len != sl->size)
		return LF_SEQ_EINVAL;
	return read_copy(sl, dst, deadline, 0);
}

int64_t lf_seq_read(lf_seqlock_t *sl, void *dst, uint64_t len)
{
	return lf_seq_read_until(sl, dst, len, LF_FOREVER);
}

int64_t lf_seq_write_until(lf_seqlock_t *sl, const void *src, uint64_t len,
			   uint64_t deadline)
{
	if (len != sl->wsize)
		return LF_SEQ_EINVAL;
	int64_t r = lf_spin_lock_until(&sl->lock, deadline);
	if (r != LF_ACQUIRED)
		return r;
	lf_seq_write_locked(sl, src);
	lf_spin_unlock(&sl->lock);
	return LF_ACQUIRED;
}

int64_t lf_seq_write(lf_seqlock_t *sl, const void *src, uint64_t len)
{
	return lf_seq_write_until(sl, src, len, LF_FOREVER);
}

int64_t lf_seq_recover(lf_seqlock_t *sl, const void *src, uint64_t len)
{
	if (len != sl->wsize)
		return LF_SEQ_EINVAL;
	if (!lf_spin_recover(&sl->lock))
		return 0;
	lf_seq_write_locked(sl, src);
	lf_spin_unlock(&sl->lock);
	return 1;
}

uint32_t lf_seq_sequence(const lf_seqlock_t *sl)
{
	return lf_load_acquire32(&sl->seq);
}

uint64_t lf_seq_writer(const lf_seqlock_t *sl)
{
	return lf_read64(&sl->lock.owner);
}

int64_t lf_seq_fetch(struct lf_seq_handle *h)
{
	const uint64_t me = lf_owner_self();
	const uint64_t owner = lf_read64(&h->owner);

	if (__builtin_expect(owner != me, 0)) {
		/* First use, or a parent's handle after fork: claim it.  Owned
		 * by another thread of this process: not ours to write. */
		if ((owner && lf_owner_pid(owner) == lf_owner_pid(me)) ||
		    lf_cmpxchg64(&h->owner, owner, me) != owner)
			return LF_SEQ_BUSY;
	}
	int64_t r = read_copy(h->sl, h->buf, 0, 1);
	h->retries = r;
	return r;
}

int64_t lf_seq_store(struct lf_seq_handle *h, const void *src)
{
	lf_seqlock_t *sl = h->sl;

	if (!lf_spin_trylock(&sl->lock)) {
		int64_t r = lf_spin_lock_slow(&sl->lock,
					      lf_now_ns() + LF_SLICE_NS);
		if (r != LF_ACQUIRED)
			return r;
	}
	lf_seq_write_locked(sl, src);
	lf_spin_unlock(&sl->lock);
	return LF_ACQUIRED;
}
