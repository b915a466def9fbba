#include "seqlock.h"

#include <stdint.h>

_Static_assert(offsetof(lf_seqlock_t, lock) == 64,
	       "the writer lock has a cache line of its own");
_Static_assert(offsetof(lf_seqlock_t, inline_) == LF_SEQ_INLINE_OFF &&
	       LF_SEQ_INLINE_OFF + LF_SEQ_INLINE_MAX == 64,
	       "the inline copy fills line 0 after the geometry");
_Static_assert(sizeof(lf_seqlock_t) == LF_SEQ_META_OFF,
	       "the metadata area follows the two control lines");

#ifdef LF_TEST_HOOKS
void (*lf_test_seq_copied)(lf_seqlock_t *sl);
#endif

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

/* The first field of the state that differs from what lf_seq_init() writes
 * for this geometry, or NULL.  Reads only the two control lines, and only
 * once the geometry is known to fit in the `bytes` mapped. */
static const char *bad_field(const lf_seqlock_t *sl, uint64_t bytes,
			     uint64_t size, uint32_t flags, uint64_t meta_len)
{
	const uint64_t off = data_off(size, flags, meta_len);

	if (size > LF_SEQ_MAX_SIZE || meta_len > UINT32_MAX)
		return "size";
	if (flags & ~LF_SEQ_LATCH)
		return "flags";
	if (bytes < LF_SEQ_META_OFF ||
	    lf_seq_state_size(size, flags, meta_len) > bytes)
		return "size";  /* does not fit in the memory mapped */
	if (lf_read32(&sl->flags) != flags)
		return "flags";
	if (lf_read32(&sl->size) != size)
		return "size";
	if (lf_read32(&sl->data_off) != off)
		return "data_off";
	if (lf_read32(&sl->stride) != round64(size ? size : 1))
		return "stride";
	if (lf_read32(&sl->meta_len) != meta_len)
		return "meta_len";
	if (lf_read32(&sl->wflags) != flags)
		return "wflags";
	if (lf_read32(&sl->wsize) != size)
		return "wsize";
	if (lf_read32(&sl->wdata_off) != off)
		return "wdata_off";
	if (lf_read32(&sl->wseq) & 1)
		return "wseq";  /* always even between writes */
	return NULL;
}

int lf_seq_handle_init(struct lf_seq_handle *h, lf_seqlock_t *sl,
		       uint64_t bytes, uint64_t size, uint32_t flags,
		       uint64_t meta_len, const char **field)
{
	const char *bad = bad_field(sl, bytes, size, flags, meta_len);

	memset(h, 0, sizeof *h);
	if (field)
		*field = bad;
	if (bad)
		return LF_ECORRUPT;
	/* From the checked parameters, not from the state: a peer writing
	 * the state now changes nothing here. */
	h->sl = sl;
	h->copy0 = (char *)sl + data_off(size, flags, meta_len);
	h->size = (uint32_t)size;
	h->stride = (uint32_t)round64(size ? size : 1);
	h->flags = flags;
	h->meta_len = (uint32_t)meta_len;
	return 0;
}

const char *lf_seq_meta(const struct lf_seq_handle *h)
{
	return (const char *)h->sl + LF_SEQ_META_OFF;
}

void lf_seq_write_locked(const struct lf_seq_handle *h, const void *src)
{
	lf_seqlock_t *sl = h->sl;

	/* Geometry from the handle, the count from line 1: see seqlock.h. */
	if (!(h->flags & LF_SEQ_LATCH)) {
		uint32_t end = lf_seq_write_begin(sl);
		lf_seq_copy_in(h->copy0, src, h->size);
		lf_seq_write_end(sl, end);
		return;
	}
	/* Latch: readers use data[s & 1]; fill the other copy, then switch
	 * them over.  Readers still copying data[(s + 1) & 1] began before the
	 * previous switch, so their retry check fails. */
	uint32_t s = lf_read32(&sl->seq);
	/* Earlier switches are visible before these data stores.  Pairs with
	 * the lf_smp_rmb() in lf_seq_read_retry(). */
	lf_smp_wmb();
	lf_seq_copy_in(lf_seq_copy(h, (s + 1) & 1), src, h->size);
	/* Release: the copy is complete before readers switch to it.  Pairs
	 * with the acquire load in lf_seq_read_begin(). */
	lf_store_release32(&sl->seq, s + 1);
}

/* An owner word no lock ever writes: ids are pid << 32 | tid with
 * 0 < pid <= INT_MAX (so that -(id) <= -2^32, see errors.h) and tid != 0
 * (lf_owner_alive() calls such an id alive: it would be waited for). */
static int owner_garbage(uint64_t owner)
{
	uint32_t pid = lf_owner_pid(owner);

	return pid == 0 || pid > INT32_MAX || lf_owner_tid(owner) == 0;
}

/* The result of an acquire of the writer lock that did not acquire it,
 * onto the seqlock's codes (LF_EAGAIN for a deadline that passed). */
static int64_t lock_failed(int64_t r)
{
	if (r == 0)
		return LF_EAGAIN;
	if (LF_IS_DEAD_OWNER(r))
		return r;
	return LF_ECORRUPT;  /* a "dead owner" no lock could have recorded */
}

/* Classic mode, a reader waiting: the counter has stayed odd (s) for a
 * spin budget or until the deadline.  The lock is held while a write is
 * in progress, so its owner is the writer (or a recoverer, alive, which
 * replaced the dead one's id).  0: keep waiting; else the result. */
static int64_t check_writer(const lf_seqlock_t *sl, uint32_t s,
			    uint32_t *lock_free)
{
	lf_spinlock_t *lock = (lf_spinlock_t *)&sl->lock;
	uint64_t owner = lf_spin_owner(lock);

	/* The owner's load is done before seq's second load.  Pairs with the
	 * release stores that end a write and then the lock (a writer clears
	 * its id only after its even count is out). */
	lf_smp_rmb();
	if (lf_load_acquire32(&sl->seq) != s) {
		*lock_free = 0;
		return 0;  /* moved: a writer is at work */
	}
	if (!owner) {
		/* Odd with the lock free: no write is in progress, and a write
		 * unlocks only after its even count.  So a peer wrote seq (or
		 * the owner word); seen at two checks an owner-check interval
		 * apart it is not a store in flight. */
		return ++*lock_free >= 2 ? LF_ECORRUPT : 0;
	}
	*lock_free = 0;
	if (owner_garbage(owner))
		return LF_ECORRUPT;
	if (!lf_owner_alive(owner) && lf_spin_owner(lock) == owner &&
	    lf_load_acquire32(&sl->seq) == s)
		return -(int64_t)owner;
	return 0;
}

/* Classic mode, slow path: the counter s is odd.  Wait (spin, back off,
 * yield, sleep) for an even count until the deadline.  Returns 0 with the
 * even count in *sp, or an error code. */
static int64_t wait_even(const struct lf_seq_handle *h, uint32_t *sp,
			 uint64_t deadline)
{
	struct lf_wait w;
	uint32_t lock_free = 0;

	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, sp);
	for (;;) {
		int r = lf_wait_step(&w);
		uint32_t s = lf_seq_read_begin(h);
		if (!(s & 1)) {
			*sp = s;
			return 0;
		}
		if (r == LF_WAIT_AGAIN)
			continue;
		int64_t err = check_writer(h->sl, s, &lock_free);
		if (err)
			return err;
		if (r == LF_WAIT_TIMEOUT)
			return LF_EAGAIN;
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
static inline int read_once(const struct lf_seq_handle *h, void *dst,
			    uint32_t *sp)
{
	const lf_seqlock_t *sl = h->sl;
	/* Pairs with the release store in lf_seq_write_end() (and the latch
	 * flip): see lf_seq_read_begin(). */
	uint32_t s = lf_load_acquire32(&sl->seq);

	/* Writer priority: nothing after this starts until the counter's load
	 * is done (see "Readers and the writer's cache line" in seqlock.h). */
	lf_barrier_nospec();
	*sp = s;
	const char *copy = h->copy0;  /* data[0] for every even count */
	if (s & 1) {
		if (!(h->flags & LF_SEQ_LATCH))
			return 0;  /* a classic write is in progress */
		copy += h->stride;  /* latch: data[s & 1], masked */
	}
	copy_out(dst, copy, h->size);
	LF_TEST_SEQ_COPIED((lf_seqlock_t *)sl);
	/* Pairs with the lf_smp_wmb() in lf_seq_write_begin(): see
	 * lf_seq_read_retry(). */
	lf_smp_rmb();
	return lf_read32(&sl->seq) != s ? -1 : 1;
}

#define RETRY_CHECK 64u  /* torn copies between looks at the clock */

/* Retries: the number of torn copies discarded (waiting for a classic
 * write in progress is not a retry).  `once`: do not wait for a write in
 * progress (LF_EAGAIN at once; the caller waits with its own deadline). */
static __attribute__((noinline)) int64_t
read_slow(const struct lf_seq_handle *h, void *dst, int64_t retries,
	  uint64_t deadline, int once)
{
	uint32_t s;
	int r;

	while ((r = read_once(h, dst, &s)) <= 0) {
		if (r < 0) {
			/* Writes keep overlapping the copy: a peer bumping
			 * the counter must not keep a reader past its
			 * deadline. */
			if (!(++retries % RETRY_CHECK) &&
			    lf_now_ns() >= deadline)
				return LF_EAGAIN;
			continue;
		}
		if (once)
			return LF_EAGAIN;
		int64_t err = wait_even(h, &s, deadline);
		if (err)
			return err;
	}
	return retries;
}

/* The fast path (one attempt) without the slow path's stack frame. */
static inline int64_t read_copy(const struct lf_seq_handle *h, void *dst,
				uint64_t deadline, int once)
{
	uint32_t s;
	int r = read_once(h, dst, &s);

	if (__builtin_expect(r > 0, 1))
		return 0;
	return read_slow(h, dst, r < 0, deadline, once);
}

int64_t lf_seq_read_until(const struct lf_seq_handle *h, void *dst,
			  uint64_t len, uint64_t deadline)
{
	if (len != h->size)
		return LF_EINVAL;
	return read_copy(h, dst, deadline, 0);
}

int64_t lf_seq_read(const struct lf_seq_handle *h, void *dst, uint64_t len)
{
	return lf_seq_read_until(h, dst, len, LF_FOREVER);
}

int64_t lf_seq_write_until(const struct lf_seq_handle *h, const void *src,
			   uint64_t len, uint64_t deadline)
{
	lf_seqlock_t *sl = h->sl;

	if (len != h->size)
		return LF_EINVAL;
	int64_t r = lf_spin_lock_until(&sl->lock, deadline);
	if (r != LF_ACQUIRED)
		return lock_failed(r);
	lf_seq_write_locked(h, src);
	lf_spin_unlock(&sl->lock);
	return LF_OK;
}

int64_t lf_seq_write(const struct lf_seq_handle *h, const void *src,
		     uint64_t len)
{
	return lf_seq_write_until(h, src, len, LF_FOREVER);
}

int64_t lf_seq_recover(const struct lf_seq_handle *h, const void *src,
		       uint64_t len)
{
	lf_seqlock_t *sl = h->sl;

	if (len != h->size)
		return LF_EINVAL;
	if (!lf_spin_recover(&sl->lock))
		return 0;
	lf_seq_write_locked(h, src);
	lf_spin_unlock(&sl->lock);
	return 1;
}

uint32_t lf_seq_sequence(const struct lf_seq_handle *h)
{
	return lf_load_acquire32(&h->sl->seq);
}

uint64_t lf_seq_writer(const struct lf_seq_handle *h)
{
	return lf_spin_owner(&h->sl->lock);
}

int64_t lf_seq_try_read(const struct lf_seq_handle *h, void *dst,
			uint64_t len)
{
	if (__builtin_expect(len != h->size, 0))
		return LF_EINVAL;
	return read_copy(h, dst, LF_NOWAIT, 1);
}
