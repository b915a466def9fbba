/*
 * Seqlock (lf_seq_*): consistent snapshots of a value that one writer at a
 * time replaces, without readers ever blocking the writer.  The kernel's
 * seqlock_t (include/linux/seqlock.h) is the model: a sequence counter plus
 * a writer spinlock (lf_spin, so writers exclude each other across processes
 * and a writer that dies holding it is detected).
 *
 * Two modes, chosen at init:
 *
 *   classic  one copy of the value.  The writer makes the counter odd,
 *            writes the copy in place, makes it even.  A reader copies the
 *            value out between two reads of the counter and retries if the
 *            counter was odd or changed: it waits (spins with pause, then
 *            yields) while a write is in progress.
 *   latch    (LF_SEQ_LATCH) two copies, the kernel's
 *            raw_write_seqcount_latch(): readers copy data[seq & 1] and
 *            never wait for a write in progress; they only retry if the
 *            counter moved while they copied.  The writer fills the copy
 *            readers do NOT use (data[(seq + 1) & 1]) and then increments
 *            the counter, which switches readers over.  The kernel's latch
 *            updates both copies because its users modify data structures
 *            in place (each copy must see every modification); a value
 *            replaced whole needs only the idle copy written, which halves
 *            the writer's copying and keeps the copy readers use complete
 *            at every instant, even if a writer dies mid-write.  Use it for
 *            readers that must not wait: signal handlers (which may
 *            interrupt the writer itself), or strict latency.
 *
 * Values only: the copy is raw bytes, never dereferenced.  A seqlock must
 * not protect pointers: a reader may load a torn or stale pointer, and the
 * retry check only validates the copy, not what the reader did with it
 * in between (dereferencing freed or half-written memory); a validated
 * pointer may also be freed by the next writer right after the check.
 *
 * Memory layout (struct lf_seqlock, then an optional caller-defined
 * metadata area, then the copies, each starting on a 64-byte boundary
 * relative to the struct):
 *
 *   line 0   seq and the geometry (read-only after init; attachers check
 *            it); in classic mode a value of at most LF_SEQ_INLINE_MAX
 *            (40) bytes lives here too (a 4-field record does).
 *   line 1   the writer lock, the writers' shadow of seq (wseq) and a
 *            second copy of the geometry (checked at attach too).
 *            Readers never touch it.
 *   meta     e.g. the Python struct format; written once at init.
 *   copies   1 (classic) or 2 (latch), `stride` bytes apart, unless the
 *            classic copy is inline in line 0.
 *
 * Why writers never load from line 0 (writer priority): a reader that
 * polls seq keeps line 0 in its cache; the writer's first access to it then
 * misses.  A store miss waits in the store buffer, a load miss stalls the
 * writer, and each line the write touches is one more such transfer.  So
 * a writer takes its geometry from its private handle and the count it
 * continues from (wseq) from line 1, which only writers use, and stores to
 * line 0 without loading it;
 * a small value shares line 0 with seq, so a write costs one transfer.
 * Measured from Python with a reader process polling: the writer kept
 * ~0.80 of its solo rate before, ~0.9 after (docs/seqlock.md).
 *
 * Readers and the writer's cache line.  A reader that issues all its loads
 * of line 0 at once (the counter, the geometry, the copy, the counter
 * again: an out-of-order core does) while the line is still on its way
 * makes the writer pay about two transfers a write instead of one: the
 * p90 of a write's store-and-drain went from ~0.2 to ~0.45 us in a C
 * harness here, and a Python writer lost ~130-190 ns a write instead of
 * the ~80 ns a single shared store loses.  Making the copy's addresses
 * depend on the counter's value did not help; an lfence after the
 * counter's load (lf_barrier_nospec) did, down to the single store's loss.
 * It costs an uncontended C read ~13 ns, so only the out-of-line copy-out
 * helpers (lf_seq_read_until, lf_seq_try_read: what Python calls, ~250 ns
 * a call) use it; the inline lf_seq_read_begin does not.
 *
 * Dead writers.  A writer killed mid-write leaves, in classic mode, an odd
 * counter and a half-written copy: readers waiting for it check the writer
 * lock's owner after their spin budget and return -(owner id) instead of
 * waiting for ever.  lf_seq_recover() takes the lock over and writes a
 * whole new value, which makes the counter even again.  In latch mode
 * readers never notice (their copy is always complete); only writers see
 * the dead owner.
 *
 * Handles: the shared state is input from other processes.  Every
 * operation goes through a struct lf_seq_handle, private to the process,
 * whose geometry (size, flags, where the copies are) lf_seq_handle_init()
 * copied once from the state after checking it against the bytes actually
 * mapped.  Nothing read from shared memory afterwards selects an address:
 * the copy a latch reader uses is data[seq & 1], the classic copy is fixed.
 * A peer that scribbles over the state can make a read return wrong bytes
 * of this state or fail with an error code, never touch memory outside it:
 *   - a counter left odd with the writer lock free (no write can be in
 *     progress) is LF_ECORRUPT once readers have seen it so at two owner
 *     checks (lf_seq_read_until), and healed by the next write: writers
 *     count from wseq & ~1 and end on the even count they computed;
 *   - a lock owner word no lock writes (pid 0 or > INT_MAX) is LF_ECORRUPT;
 *   - a live-looking owner holding the lock with the counter odd makes
 *     readers wait like a slow writer does: until their deadline.
 *
 * Data copies are plain memcpy in the x86-64 build and relaxed 8-byte
 * atomic copies in the portable build (see "copying" below), so
 * ThreadSanitizer sees the optimistic reads as the benign races they are;
 * the counter is read with acquire and written with release order.
 *
 * Return codes (int64_t, errors.h): reads return the number of discarded
 * copies (>= 0), writes LF_OK (0).  Both may return LF_EAGAIN (the
 * deadline passed), LF_EINVAL (len is not the value's size), LF_ECORRUPT
 * (see above) or -(owner id) (LF_IS_DEAD_OWNER: the writer holding the
 * lock died).
 */
#ifndef LF_SEQLOCK_H
#define LF_SEQLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arch/atomic.h"
#include "errors.h"
#include "lockwait.h"
#include "spinlock.h"

/* cffi:begin */
#define LF_SEQ_LATCH     1u   /* flags: two copies, readers never wait */
#define LF_SEQ_MAX_SIZE  (1u << 30)  /* bytes of a value, at most */
#define LF_SEQ_INLINE_OFF 24u /* a classic copy of <= LF_SEQ_INLINE_MAX */
#define LF_SEQ_INLINE_MAX 40u /* bytes lives in line 0, beside seq */

typedef struct lf_seqlock {
	/* line 0: everything readers read.  Only seq (and, for a small value
	 * in classic mode, the inline copy) is written after init. */
	uint32_t seq;       /* classic: odd while a write is in progress;
			       latch: readers use data[seq & 1] */
	uint32_t flags;     /* LF_SEQ_*, read-only after init */
	uint32_t size;      /* bytes of the value (at most LF_SEQ_MAX_SIZE) */
	uint32_t data_off;  /* bytes from this struct to copy 0 */
	uint32_t stride;    /* bytes from copy 0 to copy 1 */
	uint32_t meta_len;  /* bytes of the metadata area at offset 128 */
	uint8_t inline_[LF_SEQ_INLINE_MAX];  /* the copy, if it fits here */
	/* line 1: writers only; readers never touch it */
	lf_spinlock_t lock;
	uint32_t wseq;      /* classic: the even count the next write starts
			       from (see lf_seq_write_begin) */
	uint32_t wflags;    /* second copies of flags, size, data_off, */
	uint32_t wsize;     /* checked at attach (lf_seq_handle_init) */
	uint32_t wdata_off;
} lf_seqlock_t;

#define LF_SEQ_META_OFF 128u

/*
 * The per-process view of one seqlock: never in shared memory.  The
 * geometry is copied from the state once, by lf_seq_handle_init(), after
 * checking it; every operation takes its sizes and addresses from here.
 *
 * The last three fields serve bindings: one-argument calls (cheapest
 * through cffi) that copy into a private scratch buffer (buf, size bytes).
 * The first thread that fetches through a handle owns it (its owner id is
 * recorded with a compare-and-swap); a fetch by another thread of the same
 * process returns LF_EBUSY without touching the buffer, so the owner can
 * convert its buffer after the call without any release step (the binding
 * gives other threads handles of their own, copies of this one).  A handle
 * inherited through fork (an owner of another pid) is taken over.
 */
struct lf_seq_handle {
	lf_seqlock_t *sl;
	char *copy0;        /* copy 0: (char *)sl + data_off */
	uint32_t size;      /* bytes of the value */
	uint32_t stride;    /* bytes from copy 0 to copy 1 */
	uint32_t flags;     /* LF_SEQ_* */
	uint32_t meta_len;  /* bytes of the metadata area */
	void *buf;          /* size bytes (lf_seq_fetch: csrc/shims/) */
	uint64_t owner;     /* owner id of the thread using buf, or 0 */
	int64_t retries;    /* of the last fetch through this handle */
};

/* Bytes of state for a value of `size` bytes, `meta_len` metadata bytes. */
uint64_t lf_seq_state_size(uint64_t size, uint32_t flags, uint64_t meta_len);
/* Initialise zeroed or fresh memory of lf_seq_state_size() bytes; copies
 * meta (may be NULL if meta_len is 0) into the metadata area.  The value
 * starts as all zero bytes. */
void lf_seq_init(lf_seqlock_t *sl, uint64_t size, uint32_t flags,
		 const void *meta, uint64_t meta_len);
/* Check a state of which `bytes` bytes are mapped at sl against the
 * geometry lf_seq_init() writes for (size, flags, meta_len) (from the
 * region header), and fill *h from it.  0, or LF_ECORRUPT with *field
 * naming the first field found wrong ("size", "data_off", "wseq" ...);
 * *h is then unusable.  buf, owner and retries start as 0. */
int lf_seq_handle_init(struct lf_seq_handle *h, lf_seqlock_t *sl,
		       uint64_t bytes, uint64_t size, uint32_t flags,
		       uint64_t meta_len, const char **field);
/* The metadata area: h->meta_len bytes. */
const char *lf_seq_meta(const struct lf_seq_handle *h);
/* cffi:end */

/* Copy idx (0, or 1 in latch mode) as the handle addresses it. */
static inline char *lf_seq_copy(const struct lf_seq_handle *h, uint32_t idx)
{
	return h->copy0 + (uint64_t)idx * h->stride;
}

/* -- copying ------------------------------------------------------------------
 * Readers copy while a writer may be writing: a data race the retry check
 * makes harmless (a torn copy is discarded).  The x86-64 build copies with
 * memcpy, as the kernel's seqlock readers do: the acquire load and the
 * read barrier around the copy are compiler barriers, so it cannot move out
 * of the read section, and memcpy of a constant size compiles to a few
 * vector moves.  The portable build (what ThreadSanitizer checks) copies in
 * 8-byte relaxed atomic chunks, so the race is one the memory model
 * allows; the shared copies are 8-byte aligned and padded to 64 bytes, so a
 * whole last word may be read or written, and the private side may be
 * unaligned.
 */
#ifdef LF_ATOMICS_PORTABLE
static inline void lf_seq_copy_out(void *dst, const char *shared, uint64_t len)
{
	const uint64_t *s = (const uint64_t *)shared;
	char *d = dst;
	uint64_t v;

	for (; len >= 8; len -= 8, d += 8) {
		v = lf_read64(s++);
		memcpy(d, &v, 8);
	}
	if (len) {
		v = lf_read64(s);
		memcpy(d, &v, len);
	}
}

static inline void lf_seq_copy_in(char *shared, const void *src, uint64_t len)
{
	uint64_t *d = (uint64_t *)shared;
	const char *s = src;
	uint64_t v;

	for (; len >= 8; len -= 8, s += 8) {
		memcpy(&v, s, 8);
		lf_write64(d++, v);
	}
	if (len) {
		v = 0;
		memcpy(&v, s, len);
		lf_write64(d, v);
	}
}
#else
static inline void lf_seq_copy_out(void *dst, const char *shared, uint64_t len)
{
	memcpy(dst, shared, len);
}

static inline void lf_seq_copy_in(char *shared, const void *src, uint64_t len)
{
	memcpy(shared, src, len);
}
#endif

/* -- readers ----------------------------------------------------------------
 * uint32_t s;
 * do {
 *	s = lf_seq_read_begin(h);           (classic: odd means wait)
 *	lf_seq_copy_out(dst, lf_seq_copy(h, lf_seq_read_index(h, s)),
 *			h->size);
 * } while (lf_seq_read_retry(h, s));
 */

/* One load of the counter.  Classic mode: odd means a write is in
 * progress; the caller waits (lf_seq_read waits with pause, backoff and
 * yields) and loads again. */
static inline uint32_t lf_seq_read_begin(const struct lf_seq_handle *h)
{
	/* Pairs with the release store in lf_seq_write_end() (and the latch
	 * flip in lf_seq_write_locked()): a reader that sees the new count
	 * sees the data written before it. */
	return lf_load_acquire32(&h->sl->seq);
}

/* The copy to read for count s: 0, or in latch mode s & 1 (a mask: no
 * count a peer stores can name a third copy). */
static inline uint32_t lf_seq_read_index(const struct lf_seq_handle *h,
					 uint32_t s)
{
	return (h->flags & LF_SEQ_LATCH) ? (s & 1) : 0;
}

/* True if the copy made since lf_seq_read_begin() returned s may be torn. */
static inline int lf_seq_read_retry(const struct lf_seq_handle *h, uint32_t s)
{
	/* The data loads are done before the counter is loaded again.  Pairs
	 * with the lf_smp_wmb() in lf_seq_write_begin() (and at the start of
	 * a latch write): a reader that saw any byte of a new write sees
	 * the counter that write changed. */
	lf_smp_rmb();
	return lf_read32(&h->sl->seq) != s;
}

/* -- writers (caller holds h->sl->lock; see lf_seq_write) ------------------- */

/* Classic mode: make the counter odd; returns the even count the write
 * ends on (pass it to lf_seq_write_end).  Writers continue from wseq,
 * their even shadow of seq on line 1, and store seq without loading it.
 * wseq moves first, so a writer that dies anywhere in a write leaves the
 * next write to start above every count it may have stored: seq only grows
 * (a reader can never see an old count again).  If the dead writer left
 * seq odd, it stays odd (readers keep waiting) until the next write ends.
 * & ~1: a wseq a peer made odd cannot make a write leave seq odd. */
static inline uint32_t lf_seq_write_begin(lf_seqlock_t *sl)
{
	uint32_t s = lf_read32(&sl->wseq) & ~1u;

	lf_write32(&sl->wseq, s + 2);
	lf_write32(&sl->seq, s + 1);
	/* The odd count is visible before any data store.  Pairs with the
	 * lf_smp_rmb() in lf_seq_read_retry(). */
	lf_smp_wmb();
	return s + 2;
}

static inline void lf_seq_write_end(lf_seqlock_t *sl, uint32_t end)
{
	/* Release: the data stores are visible before the even count.
	 * Pairs with the acquire load in lf_seq_read_begin(). */
	lf_store_release32(&sl->seq, end);
}

/* Test hook: builds with LF_TEST_HOOKS (the C stress programs) call it in
 * the copy-out readers between the copy and the retry check, so a test can
 * play a peer that moves the counter under every copy.  No code at all in
 * the library. */
#ifdef LF_TEST_HOOKS
extern void (*lf_test_seq_copied)(lf_seqlock_t *sl);
#define LF_TEST_SEQ_COPIED(sl)						\
	do {								\
		void (*lf_hook_)(lf_seqlock_t *) = __atomic_load_n(	\
			&lf_test_seq_copied, __ATOMIC_ACQUIRE);		\
		if (lf_hook_)						\
			lf_hook_(sl);					\
	} while (0)
#else
#define LF_TEST_SEQ_COPIED(sl) do { } while (0)
#endif

/* Write a whole value (h->size bytes) with the lock held, in either mode. */
void lf_seq_write_locked(const struct lf_seq_handle *h, const void *src);

/* -- out-of-line entry points (cffi binds these) ---------------------------- */
/* cffi:begin */

/* Copy a consistent snapshot to dst (len == h->size).  Classic mode waits
 * for writes in progress, until the CLOCK_MONOTONIC deadline (ns;
 * LF_FOREVER: none); a reader retrying torn copies gives up at the
 * deadline too.  Returns retries >= 0, LF_EAGAIN, LF_EINVAL, LF_ECORRUPT
 * or -(owner id) of a writer that died mid-write. */
int64_t lf_seq_read_until(const struct lf_seq_handle *h, void *dst,
			  uint64_t len, uint64_t deadline);
int64_t lf_seq_read(const struct lf_seq_handle *h, void *dst, uint64_t len);
/* Lock, write src (len == h->size), unlock.  Returns LF_OK, LF_EAGAIN if
 * the deadline passed first, LF_EINVAL, LF_ECORRUPT or -(owner id) if the
 * lock's holder died (see lf_seq_recover). */
int64_t lf_seq_write_until(const struct lf_seq_handle *h, const void *src,
			   uint64_t len, uint64_t deadline);
int64_t lf_seq_write(const struct lf_seq_handle *h, const void *src,
		     uint64_t len);
/* If the writer holding the lock died, take the lock over, write src (a
 * whole value, which makes the data consistent again) and unlock: 1.  0 if
 * there was nothing to recover (see lf_spin_recover), LF_EINVAL. */
int64_t lf_seq_recover(const struct lf_seq_handle *h, const void *src,
		       uint64_t len);
uint32_t lf_seq_sequence(const struct lf_seq_handle *h);
uint64_t lf_seq_writer(const struct lf_seq_handle *h);  /* owner id or 0 */
/* cffi:end */

/* lf_seq_read_until without waiting: LF_EAGAIN at once if a classic write
 * is in progress (or after RETRY_CHECK torn copies).  The bindings' hot
 * path (lf_seq_fetch, csrc/shims/seqlock.h): they wait, if they must, with
 * their own deadline. */
int64_t lf_seq_try_read(const struct lf_seq_handle *h, void *dst,
			uint64_t len);

#endif /* LF_SEQLOCK_H */
