/*
 * kfifo: SPSC ring buffer.  See kfifo.h for the model and the API.
 *
 * Ordering (the kernel's kfifo.c barriers, as acquire/release on the index
 * words so ThreadSanitizer sees them too):
 *
 *   producer: copy data into the ring; store-release in      (publish)
 *   consumer: load-acquire in; copy data out; store-release out
 *   producer: load-acquire out before overwriting freed bytes
 *
 * Sleeping: see lf_kfifo_sleep_prepare(), the one place the handshake
 * between a sleeping side and the publishing side is defined.
 */
#include "kfifo.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include "lockwait.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

_Static_assert(sizeof(struct lf_kfifo) == 3 * LF_CACHELINE,
	       "producer, consumer and control lines, then the data");
_Static_assert(__builtin_offsetof(struct lf_kfifo, out) == LF_CACHELINE,
	       "in and out on separate cache lines");

/* Bumped in the child after fork(): a handle copied into a child must
 * register again, under the child's pid, before it may produce or consume.
 * Exported for the inline element fast paths in kfifo.h. */
uint32_t lf_kfifo_fork_gen;
static uint32_t next_handle_id;

/* membarrier registration of this process: 0 not tried, 1 registered,
 * 2 unavailable.  A fork child is not registered (the kernel resets it), so
 * it tries again. */
static uint32_t membarrier_state;

static void after_fork_in_child(void)
{
	lf_xadd32(&lf_kfifo_fork_gen, 1);
	lf_write32(&membarrier_state, 0);
}

__attribute__((constructor)) static void kfifo_setup(void)
{
	pthread_atfork(NULL, NULL, after_fork_in_child);
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* -- the sleeper handshake ---------------------------------------------- */

/* Out of line and cold: keeps the publish fast path free of the syscall's
 * register spills.  Exported for the inline fast paths in kfifo.h. */
__attribute__((noinline, cold)) void lf_kfifo_wake(uint32_t *seq)
{
	/* Full barrier (lock xadd): the index stored before is visible before
	 * the new seq, which the waiter reads before its re-check. */
	lf_xadd32(seq, 1);
	lf_futex_wake(seq);
}

/* Register this process for MEMBARRIER_CMD_GLOBAL_EXPEDITED (once per
 * process, at role registration): then a waiter's membarrier makes this
 * process's publishing threads pass a full barrier.  1 if registered. */
static int membarrier_ready(struct lf_kfifo *f)
{
	uint32_t st = lf_read32(&membarrier_state);

	if (likely(st))
		return st == 1;
	st = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
		     0, 0) == 0 ? 1 : 2;
	lf_write32(&membarrier_state, st);
	if (st != 1)	/* every waiter on this ring must bound its sleep */
		lf_xchg32(&f->weak_wake, 1);
	return st == 1;
}

/*
 * The sleeper handshake, waiter half; the publisher half is
 * lf_kfifo_notify() (kfifo.h), run after every store-release of an index.
 *
 *   waiter:     *sleeping = 1; BARRIER; s = *seq; re-check; sleep while
 *               *seq == s
 *   publisher:  store-release index; if (*sleeping) { *seq += 1; wake }
 *
 * Invariant: a waiter that goes to sleep after its re-check found nothing
 * is woken by the next publish.  That needs the store->load order on both
 * sides (a Dekker pair): the waiter's flag store before its re-check's load
 * of the index, and the publisher's index store before its load of the flag.
 * The publisher has no barrier (an mfence there costs 5-7x on small items
 * between two cores: it waits for the index's line to come back).  BARRIER
 * is therefore asymmetric: membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) makes
 * every running thread of every registered process (each process registers
 * when it takes a role) execute a full barrier before it returns, and is a
 * full barrier for the caller.  A publisher whose flag load came before
 * that point had its index store drained by it, so the re-check sees the
 * index; one whose flag load came after it sees the flag (stored before the
 * membarrier) and wakes.  seq is read before the re-check, so a wake-up
 * between the re-check and the sleep changes seq and FUTEX_WAIT returns at
 * once.  tests/c/kfifo_stress.c's "wakerace" phase races the two halves
 * and fails when the membarrier is removed (misses in most runs).
 *
 * The guarantee stated is a bound, not "impossible": the waiter's first
 * sleep lasts at most LF_KFIFO_RACE_NS (50 us, kfifo.h), then it re-checks,
 * so a wake-up the handshake missed comes at most LF_KFIFO_RACE_NS late
 * (the publisher's index store, made before its early flag load, has
 * drained from its store buffer by then: nanoseconds).  Why not rely on the
 * membarrier alone: the wakerace litmus once saw 4 misses in 20,000 racing
 * rounds with it (ASAN build, loaded machine), not reproduced since (0 in
 * some 15 asm and 3 ASAN runs the session after).  Two ways a real miss can happen:
 *  - the compiler hoisting the publisher's flag load above its index
 *    store (allowed for a relaxed load after a release store in C11; the
 *    portable atomics layer): the membarrier orders instructions, not the
 *    source.  lf_kfifo_notify() now has a compiler barrier between them.
 *  - the kernel: membarrier_global_expedited() skips a CPU whose runqueue
 *    state lacks MEMBARRIER_STATE_GLOBAL_EXPEDITED.  That state is copied
 *    from the mm at a context switch only when the mm changes
 *    (membarrier_switch_mm(rq, prev->active_mm, next->mm)), and
 *    registration updates only CPUs whose current task uses the mm; a CPU
 *    idle in lazy-TLB mode on our mm at registration keeps the old state
 *    until it next switches to another process.  A publisher running there
 *    gets no IPI.
 * tests/c/kfifo_stress.c "wakebound" publishes without notifying inside a
 * waiter's first sleep and fails if the waiter is not back within 100 ms
 * (an unbounded first sleep fails it); "wakerace" fails above 1 % misses
 * (the mutant without the membarrier misses far more).
 *
 * Cost: ~2 us per sleep, paid only after lf_wait's spin and yield budget.
 * Where membarrier is unavailable (old kernel, seccomp) the process marks
 * the ring (weak_wake) and waiters bound their first sleep to
 * LF_KFIFO_RACE_NS, then re-check: a store buffer drains in nanoseconds, so
 * the worst case is then a wake-up LF_KFIFO_RACE_NS late.
 */
uint32_t lf_kfifo_sleep_prepare(uint32_t *sleeping, uint32_t *seq)
{
	/* Pairs with the publisher's load of the flag in lf_kfifo_notify(),
	 * through the membarrier below. */
	lf_xchg32(sleeping, 1);
	if (lf_read32(&membarrier_state) == 1)
		syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
	/* Pairs with the lf_xadd32 of seq in lf_kfifo_wake(). */
	return lf_load_acquire32(seq);
}

/* -- creation, handles, roles ------------------------------------------- */

uint64_t lf_kfifo_state_size(uint32_t size)
{
	return sizeof(struct lf_kfifo) + (uint64_t)size;
}

void lf_kfifo_init(struct lf_kfifo *f, uint32_t size, uint32_t mode)
{
	/* The region is zeroed; the magic published after this makes every
	 * field visible to attachers (lf_region_publish). */
	f->size = size;
	f->mask = size - 1;
	f->mode = mode;
}

static int valid_geometry(uint32_t size, uint32_t mode)
{
	if (size < LF_KFIFO_MIN_SIZE || size > LF_KFIFO_MAX_SIZE ||
	    (size & (size - 1)))
		return 0;
	if (mode == LF_KFIFO_BYTES)
		return 1;
	return mode == LF_KFIFO_RECORDS && size >= 2 * LF_KFIFO_REC_HDR;
}

int lf_kfifo_handle_init(struct lf_kfifo_handle *h, struct lf_kfifo *f,
			 uint32_t size, uint32_t mode)
{
	memset(h, 0, sizeof(*h));
	/* Copy the geometry once, after checking it against the region
	 * header's parameters: a corrupted state cannot widen the copies. */
	if (!valid_geometry(size, mode) || f->size != size ||
	    f->mask != size - 1 || f->mode != mode)
		return LF_EINVAL;
	h->f = f;
	h->data = f->data;
	h->size = size;
	h->mask = size - 1;
	h->mode = mode;
	h->id = lf_xadd32(&next_handle_id, 1) + 1;
	h->fork_gen = lf_read32(&lf_kfifo_fork_gen);
	return 0;
}

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

static uint64_t *role_slot(struct lf_kfifo *f, uint32_t role)
{
	return role == LF_KFIFO_ROLE_PRODUCER ? &f->prod_owner
					      : &f->cons_owner;
}

int lf_kfifo_register(struct lf_kfifo_handle *h, uint32_t role)
{
	uint32_t gen = lf_read32(&lf_kfifo_fork_gen);
	uint64_t *slot, token, cur;
	int pid;

	if (h->f == NULL ||
	    (role != LF_KFIFO_ROLE_PRODUCER && role != LF_KFIFO_ROLE_CONSUMER))
		return LF_EINVAL;
	if (h->fork_gen != gen) {	/* a copy in a forked child */
		h->roles = 0;
		h->fork_gen = gen;
	}
	if (h->roles & role)
		return 0;
	membarrier_ready(h->f);
	slot = role_slot(h->f, role);
	pid = getpid();
	token = (uint64_t)(uint32_t)pid << 32 | h->id;
	for (;;) {
		cur = lf_load_acquire64(slot);
		if (cur == token)
			break;
		if (cur != 0) {
			uint32_t owner = (uint32_t)(cur >> 32);

			/* pid 0 names no process: garbage, free to take. */
			if (owner != 0 && ((int)owner == pid ||
					   lf_pid_alive(owner)))
				return LF_EBUSY;
		}
		/* Empty, or its registrant is dead: take it.  Full barrier,
		 * so our later index accesses follow the takeover. */
		if (lf_cmpxchg64(slot, cur, token) == cur) {
			/* A registrant killed in its sleep left its flag set:
			 * clear it, or the peer would pay a futex wake-up on
			 * every publish until we happen to sleep. */
			lf_write32(role == LF_KFIFO_ROLE_PRODUCER ?
				   &h->f->prod_sleeping : &h->f->cons_sleeping,
				   0);
			break;
		}
	}
	h->roles |= role;
	return 0;
}

void lf_kfifo_release(struct lf_kfifo_handle *h)
{
	uint64_t token;

	if (h->f != NULL && h->roles &&
	    h->fork_gen == lf_read32(&lf_kfifo_fork_gen)) {
		token = (uint64_t)(uint32_t)getpid() << 32 | h->id;
		if (h->roles & LF_KFIFO_ROLE_PRODUCER)
			lf_cmpxchg64(&h->f->prod_owner, token, 0);
		if (h->roles & LF_KFIFO_ROLE_CONSUMER)
			lf_cmpxchg64(&h->f->cons_owner, token, 0);
	}
	h->roles = 0;
}

int lf_kfifo_owner_pid(struct lf_kfifo_handle *h, uint32_t role)
{
	if (role != LF_KFIFO_ROLE_PRODUCER && role != LF_KFIFO_ROLE_CONSUMER)
		return LF_EINVAL;
	return (int)(lf_load_acquire64(role_slot(h->f, role)) >> 32);
}

/* The hot-path role check: one load of a process-local word. */
static inline int need_role(struct lf_kfifo_handle *h, uint32_t role)
{
	if (likely(lf_kfifo_ready(h, role)))
		return 0;
	return lf_kfifo_register(h, role);
}

static int peer_dead(struct lf_kfifo *f, uint32_t peer_role)
{
	uint64_t owner = lf_load_acquire64(role_slot(f, peer_role));

	/* No registrant yet is not a death: a peer may still come. */
	return owner != 0 && ((owner >> 32) == 0 ||
			      !lf_pid_alive((uint32_t)(owner >> 32)));
}

/* -- copies (kfifo.c's kfifo_copy_in / kfifo_copy_out) ------------------- */

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
 * Bytes readable at read index out, re-reading in only when the cached copy
 * shows fewer than want.  Empty: LF_EOF if the producer closed, else
 * LF_EAGAIN.
 */
static inline int64_t cons_used(struct lf_kfifo_handle *h, uint32_t out,
				uint32_t want)
{
	struct lf_kfifo *f = h->f;
	uint32_t used = lf_read32(&f->in_cache) - out;
	uint32_t flags, in;

	if (likely(used >= want && used <= h->size))
		return used;
	/* The flags before in: pairs with the xchg in close_producer(), which
	 * follows the producer's last publish, so seeing CLOSED here means the
	 * in loaded next is final. */
	flags = lf_load_acquire32(&f->flags);
	/* Pairs with the store-release of in in prod_publish(): the bytes
	 * below in are in the data area. */
	in = lf_load_acquire32(&f->in);
	lf_write32(&f->in_cache, in);
	used = in - out;
	if (unlikely(used > h->size))
		return LF_ECORRUPT;
	if (used == 0)
		return (flags & LF_KFIFO_F_CLOSED) ? LF_EOF
						   : LF_EAGAIN;
	return used;
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

/* -- state --------------------------------------------------------------- */

int64_t lf_kfifo_len(struct lf_kfifo_handle *h)
{
	uint32_t out = lf_load_acquire32(&h->f->out);
	uint32_t used = lf_load_acquire32(&h->f->in) - out;

	return used > h->size ? (int64_t)LF_ECORRUPT : (int64_t)used;
}

int64_t lf_kfifo_avail(struct lf_kfifo_handle *h)
{
	int64_t used = lf_kfifo_len(h);

	return used < 0 ? used : h->size - used;
}

int lf_kfifo_is_closed(struct lf_kfifo_handle *h)
{
	return !!(lf_load_acquire32(&h->f->flags) & LF_KFIFO_F_CLOSED);
}

/* -- byte mode ----------------------------------------------------------- */

static int64_t put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
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
	used = cons_used(h, *out, n ? n : 1);
	if (used < 0)
		return used;
	return min_u32(n, (uint32_t)used);
}

static int64_t peek(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0)
		copy_out(h, p, out, (uint32_t)l);
	return l;
}

static int64_t get(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0) {
		copy_out(h, p, out, (uint32_t)l);
		cons_publish(h, out + (uint32_t)l);
	}
	return l;
}

static int64_t get_scratch(struct lf_kfifo_handle *h, uint32_t n)
{
	return get(h, h->scratch, min_u32(n, h->scratch_size));
}

static int64_t skip(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0)
		cons_publish(h, out + (uint32_t)l);
	return l;
}

/* The readable bytes (at most n) as two pointers into the data area, the
 * second part after the wrap (the kernel's kfifo_out_linear, both parts).
 * They stay valid and unchanged until the consumer moves out. */
static void set_parts(struct lf_kfifo_handle *h, uint32_t off, uint32_t len)
{
	uint32_t l;

	off &= h->mask;
	l = min_u32(len, h->size - off);
	h->part[0] = (char *)h->data + off;
	h->part_len[0] = l;
	h->part[1] = (char *)h->data;
	h->part_len[1] = len - l;
}

static int64_t parts(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	set_parts(h, out, l > 0 ? (uint32_t)l : 0);
	return l;
}

/* -- elements: the slow paths of lf_kfifo_put_elem/get_elem (kfifo.h) ---- */

static int put_elem_slow(struct lf_kfifo_handle *h, const void *p,
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

static int get_elem_slow(struct lf_kfifo_handle *h, void *p, uint32_t esize)
{
	int64_t used;
	uint32_t out;
	int r = cons_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	if (esize == 0 || esize > h->size)
		return LF_EMSGSIZE;
	out = lf_read32(&h->f->out);
	used = cons_used(h, out, esize);
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

/* -- record mode --------------------------------------------------------- */

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

static inline unsigned char *rec_at(const struct lf_kfifo_handle *h,
				    uint32_t idx)
{
	return h->data + (idx & h->mask);
}

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
		copy_bytes(&len, h->data + off, LF_KFIFO_REC_HDR);
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
	copy_bytes(&len, h->data, LF_KFIFO_REC_HDR);
	/* (A second padding marker is larger than used: corrupt too.) */
	if (unlikely(len > used - LF_KFIFO_REC_HDR))
		return LF_ECORRUPT;
	return len;
}

/*
 * Records mode: how many messages are queued (a snapshot, like
 * queue.qsize()).  Walks the records from out to in; needs no role.  A
 * record or padding that does not fit (the consumer freed it and the
 * producer reused its bytes while we walked) ends the count: the result
 * may be stale, never a read outside the data area.  The acquire loads
 * pair with prod_publish's and cons_publish's release stores.
 */
int64_t lf_kfifo_rec_count(struct lf_kfifo_handle *h)
{
	uint32_t out = lf_load_acquire32(&h->f->out);
	uint32_t in = lf_load_acquire32(&h->f->in);
	uint32_t used = in - out, pad;
	int64_t len, n = 0;

	if (used > h->size)
		return LF_ECORRUPT;
	if (h->mode != LF_KFIFO_RECORDS)
		return LF_EINVAL;
	while (used > 0) {
		len = rec_parse(h, out, used, &pad);
		if (len < 0)
			break;
		out += pad + LF_KFIFO_REC_HDR + (uint32_t)len;
		used -= pad + LF_KFIFO_REC_HDR + (uint32_t)len;
		n++;
	}
	return n;
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

/* A put's first half (rec_put, rec_reserve): where a record of n bytes
 * starts (*in, after any padding rec_room published), or an error. */
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

static int rec_put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
{
	uint32_t in;
	int r = rec_begin(h, n, &in);

	if (unlikely(r))
		return r;
	rec_write(h, in, p, n);
	prod_publish(h, in + LF_KFIFO_REC_HDR + n);
	return 0;
}

static int64_t rec_put_many(struct lf_kfifo_handle *h, const char *buf,
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
	int r = cons_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	*out = lf_read32(&h->f->out);
	/* A record is published whole, so any readable byte means a whole
	 * record (or padding) is there. */
	used = cons_used(h, *out, 1);
	if (unlikely(used < 0))
		return used;
	len = rec_parse(h, *out, (uint32_t)used, &pad);
	if (unlikely(pad)) {
		*out += pad;
		used -= pad;
		if (len == LF_EAGAIN) {
			cons_publish(h, *out);
			used = cons_used(h, *out, 1);
			if (used < 0)
				return used;
			/* At offset 0 now, where rec_parse finds no padding. */
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

static int64_t rec_get(struct lf_kfifo_handle *h)
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

static int64_t rec_get_into(struct lf_kfifo_handle *h, char *p, uint32_t n)
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
static int64_t rec_get_many(struct lf_kfifo_handle *h, uint32_t max_items)
{
	int64_t used, len;
	uint32_t out, start, pad, pos = 0, k = 0;
	char *fmt = h->fmt;
	int r = cons_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	if (unlikely(fmt == NULL))
		return LF_EINVAL;
	out = start = lf_read32(&h->f->out);
	max_items = min_u32(max_items, h->fmt_items);
again:
	used = cons_used(h, out, UINT32_MAX);	/* always refresh in */
	if (used < 0)
		return used;
	while (k < max_items && used > 0) {
		len = rec_parse(h, out, (uint32_t)used, &pad);
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
	if (k == 0 && max_items && out != start) {
		/* Only padding was there: look again at offset 0 (once; there
		 * padding is corrupt). */
		start = out;
		goto again;
	}
	return pos;
}

static int64_t rec_peek_len(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;

	return rec_next(h, &out, &rest);
}

static int64_t rec_parts(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;
	int64_t len = rec_next(h, &out, &rest);

	set_parts(h, out + LF_KFIFO_REC_HDR, len > 0 ? (uint32_t)len : 0);
	return len;
}

static int64_t rec_skip(struct lf_kfifo_handle *h)
{
	uint32_t out = 0, rest = 0;
	int64_t len = rec_next(h, &out, &rest);

	if (len >= 0)
		cons_publish(h, rec_end(h, out + LF_KFIFO_REC_HDR +
					(uint32_t)len, rest));
	return len;
}

/* Zero-copy put: reserve, write at part[0], commit or abort (kfifo.h). */
static int rec_reserve(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t in;
	int r = rec_begin(h, n, &in);

	if (unlikely(r))
		return r;
	/* The header now, the payload by the caller; nothing is published
	 * before rec_commit(), so a producer that dies in between leaves
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

static int rec_commit(struct lf_kfifo_handle *h)
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
	/* The caller's writes before the index, as rec_put's copy. */
	prod_publish(h, h->rsv_end);
	return 0;
}

static int rec_abort(struct lf_kfifo_handle *h)
{
	h->rsv_open = 0;
	return 0;
}

/* -- blocking ------------------------------------------------------------ */

typedef int (*cond_fn)(struct lf_kfifo_handle *h, uint32_t idx, uint32_t need);

/*
 * Wait until cond() is no longer LF_EAGAIN or the deadline passed, with
 * lf_wait's policy (spin -> yield -> sleep); the sleep is on *seq after the
 * handshake (lf_kfifo_sleep_prepare).  Every LF_OWNER_CHECK_NS of waiting,
 * and at the deadline, the peer's liveness is checked: a dead peer ends the
 * wait with LF_EDEAD (after one more look, since it may have died right
 * after its last publish).
 */
static int wait_on(struct lf_kfifo_handle *h, cond_fn cond, uint32_t idx,
		   uint32_t need, uint32_t *sleeping, uint32_t *seq,
		   uint32_t peer, uint64_t deadline)
{
	struct lf_kfifo *f = h->f;
	struct lf_wait w;
	uint32_t s;
	int r, step, announced = 0;

	lf_wait_init(&w, deadline);
	lf_wait_poll(&w);
	for (;;) {
		r = cond(h, idx, need);
		if (r != LF_EAGAIN || deadline == LF_NOWAIT)
			break;
		if (lf_wait_sleeping(&w)) {
			s = announced ? lf_load_acquire32(seq)
				      : lf_kfifo_sleep_prepare(sleeping, seq);
			r = cond(h, idx, need);
			if (r != LF_EAGAIN)
				break;
			if (!announced++) {
				/* The first sleep is bounded, with or
				 * without the asymmetric barrier: see
				 * lf_kfifo_sleep_prepare() for why. */
				uint64_t end = lf_deadline_in(LF_KFIFO_RACE_NS);

				lf_futex_wait(seq, s, end < deadline ? end
								     : deadline);
				continue;
			}
			lf_wait_sleep_on(&w, seq, s);
		}
		step = lf_wait_step(&w);
		/* Liveness is a system call and a /proc read: not while a
		 * short wait still spins or yields, only once it sleeps (every
		 * LF_OWNER_CHECK_NS) and at the deadline. */
		if (step == LF_WAIT_AGAIN ||
		    (step == LF_WAIT_CHECK && !lf_wait_sleeping(&w)))
			continue;
		r = cond(h, idx, need);
		if (r != LF_EAGAIN)
			break;
		if (peer_dead(f, peer)) {
			r = LF_EDEAD;
			break;
		}
		if (step == LF_WAIT_TIMEOUT)
			break;
	}
	if (announced)
		lf_write32(sleeping, 0);
	return r;
}

static int readable(struct lf_kfifo_handle *h, uint32_t out, uint32_t need)
{
	int64_t used = cons_used(h, out, need);

	return used > 0 ? 0 : (int)used;
}

static int wait_readable(struct lf_kfifo_handle *h, uint64_t deadline)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	return wait_on(h, readable, lf_read32(&f->out), 1, &f->cons_sleeping,
		       &f->cons_seq, LF_KFIFO_ROLE_PRODUCER, deadline);
}

static int writable(struct lf_kfifo_handle *h, uint32_t in, uint32_t need)
{
	int64_t free;

	if (lf_read32(&h->f->flags) & LF_KFIFO_F_CLOSED)
		return LF_ECLOSED;
	free = prod_free(h, in, need);
	if (free < 0)
		return (int)free;
	return free >= need ? 0 : LF_EAGAIN;
}

static int wait_writable(struct lf_kfifo_handle *h, uint32_t need,
			 uint64_t deadline)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	if (need > h->size)
		return LF_EMSGSIZE;
	return wait_on(h, writable, lf_read32(&f->in), need, &f->prod_sleeping,
		       &f->prod_seq, LF_KFIFO_ROLE_CONSUMER, deadline);
}

static int rec_put_wait(struct lf_kfifo_handle *h, const char *p,
			  uint32_t n)
{
	int r = rec_put(h, p, n);

	if (r != LF_EAGAIN)
		return r;
	r = wait_writable(h, n + LF_KFIFO_REC_HDR,
			  lf_deadline_in(LF_SLICE_NS));
	return r ? r : rec_put(h, p, n);
}

static int64_t rec_get_wait(struct lf_kfifo_handle *h)
{
	int64_t n = rec_get(h);
	int r;

	if (n != LF_EAGAIN)
		return n;
	r = wait_readable(h, lf_deadline_in(LF_SLICE_NS));
	return r ? r : rec_get(h);
}

static int64_t rec_get_many_wait(struct lf_kfifo_handle *h,
				   uint32_t max_items)
{
	int64_t n = rec_get_many(h, max_items);
	int r;

	if (n != LF_EAGAIN)
		return n;
	r = wait_readable(h, lf_deadline_in(LF_SLICE_NS));
	return r ? r : rec_get_many(h, max_items);
}

static int close_producer(struct lf_kfifo_handle *h)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	if (h->rsv_open)	/* inside reserve(): the stream is not at its end */
		return LF_EMISUSE;
	/* After the last publish of in (program order, and xchg is a full
	 * barrier); pairs with the load-acquire of flags in cons_used().  The
	 * wake-up is unconditional: close is rare, and the consumer re-checks
	 * the flags after every wake-up. */
	lf_xchg32(&f->flags, lf_read32(&f->flags) | LF_KFIFO_F_CLOSED);
	lf_kfifo_wake(&f->cons_seq);
	return 0;
}

static int64_t reset(struct lf_kfifo_handle *h)
{
	struct lf_kfifo *f = h->f;
	uint32_t in, out;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	/* The kernel's kfifo_reset_out: only the consumer moves out, so this
	 * is safe while the producer runs; in is read like a get would. */
	out = lf_read32(&f->out);
	in = lf_load_acquire32(&f->in);
	lf_write32(&f->in_cache, in);
	if (in - out > h->size)
		return LF_ECORRUPT;
	cons_publish(h, in);
	return in - out;
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

#define LF_KFIFO_CALL(ret, name, role, params, args)			\
ret lf_kfifo_##name params						\
{									\
	int c = claim(h, role);						\
	ret r;								\
									\
	if (unlikely(c < 0))						\
		return c;						\
	r = name args;							\
	if (likely(c))							\
		unclaim(h, role);					\
	return r;							\
}

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
	r = name args;							\
	if (unlikely(c && r < 0))					\
		unclaim(h, 1);						\
	return r;							\
}

LF_KFIFO_CALL(int64_t, put, 0,
	      (struct lf_kfifo_handle *h, const char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, peek, 1,
	      (struct lf_kfifo_handle *h, char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, get, 1, (struct lf_kfifo_handle *h, char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, get_scratch, 1, (struct lf_kfifo_handle *h, uint32_t n),
	      (h, n))
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
LF_KFIFO_CALL(int, rec_put, 0,
	      (struct lf_kfifo_handle *h, const char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL(int64_t, rec_put_many, 0,
	      (struct lf_kfifo_handle *h, const char *buf, uint64_t buf_len,
	       const uint32_t *lens, uint32_t count),
	      (h, buf, buf_len, lens, count))
LF_KFIFO_CALL_KEEP(rec_get, (struct lf_kfifo_handle *h),
		   (h))
LF_KFIFO_CALL(int64_t, rec_get_into, 1,
	      (struct lf_kfifo_handle *h, char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL_KEEP(rec_get_many,
		   (struct lf_kfifo_handle *h, uint32_t max_items),
		   (h, max_items))
LF_KFIFO_CALL(int64_t, rec_peek_len, 1, (struct lf_kfifo_handle *h),
	      (h))
LF_KFIFO_CALL_KEEP(rec_parts, (struct lf_kfifo_handle *h),
		   (h))
LF_KFIFO_CALL(int64_t, rec_skip, 1, (struct lf_kfifo_handle *h),
	      (h))
/*
 * Zero-copy: the role's in-use word holds the opener's id with
 * LF_KFIFO_ZC_HELD set (owner ids never have bit 63: lf_owner_valid), which
 * claim() refuses even to the same thread, and which only the calls below
 * accept.  So a put_message (or get_message) nested in a reserve() (or
 * receive()) block fails instead of writing over the reservation (or
 * consuming the message under the view).
 */
#define LF_KFIFO_ZC_HELD (1ull << 63)

/* Open a zero-copy block on role i: 0, or LF_EMISUSE (another thread is
 * inside a call on it, or a block is open already: claim() refuses the
 * held mark to everyone). */
static int zc_open(struct lf_kfifo_handle *h, int i)
{
	int c = claim(h, i);  /* 0: this thread's own plain claim (a kept
				 result, a hold): it becomes the block's */

	if (c < 0)
		return c;
	lf_write64(&h->user[i].word, lf_owner_self() | LF_KFIFO_ZC_HELD);
	return 0;
}

/* Is a block on role i open, by this thread? */
static inline int zc_mine(struct lf_kfifo_handle *h, int i)
{
	return lf_read64(&h->user[i].word) ==
	       (lf_owner_self() | LF_KFIFO_ZC_HELD);
}

int64_t lf_kfifo_zc_reserve(struct lf_kfifo_handle *h, uint32_t n)
{
	int r = zc_open(h, 0);

	if (unlikely(r))
		return r;
	r = rec_reserve(h, n);
	if (unlikely(r)) {
		unclaim(h, 0);
		return r;
	}
	return (char *)h->part[0] - (char *)h->data;
}

int lf_kfifo_zc_commit(struct lf_kfifo_handle *h)
{
	int r;

	if (unlikely(!zc_mine(h, 0)))
		return LF_EMISUSE;
	r = rec_commit(h);
	unclaim(h, 0);
	return r;
}

int lf_kfifo_zc_abort(struct lf_kfifo_handle *h)
{
	if (unlikely(!zc_mine(h, 0)))
		return LF_EMISUSE;
	rec_abort(h);
	unclaim(h, 0);
	return 0;
}

int64_t lf_kfifo_zc_receive(struct lf_kfifo_handle *h)
{
	int64_t len;
	int r = zc_open(h, 1);

	if (unlikely(r))
		return r;
	len = rec_parts(h);
	if (len < 0) {
		unclaim(h, 1);
		return len;
	}
	/* The offset is below LF_KFIFO_MAX_SIZE (2^31), the length too. */
	return (int64_t)((uint64_t)((char *)h->part[0] - (char *)h->data)
			 << 32 | (uint64_t)len);
}

int64_t lf_kfifo_zc_consume(struct lf_kfifo_handle *h)
{
	int64_t r;

	if (unlikely(!zc_mine(h, 1)))
		return LF_EMISUSE;
	r = rec_skip(h);
	unclaim(h, 1);
	return r;
}

int lf_kfifo_zc_leave(struct lf_kfifo_handle *h)
{
	if (unlikely(!zc_mine(h, 1)))
		return LF_EMISUSE;
	unclaim(h, 1);
	return 0;
}

int lf_kfifo_zc_held(struct lf_kfifo_handle *h)
{
	return (lf_read64(&h->user[0].word) & LF_KFIFO_ZC_HELD) ||
	       (lf_read64(&h->user[1].word) & LF_KFIFO_ZC_HELD);
}

LF_KFIFO_CALL(int, rec_put_wait, 0,
	      (struct lf_kfifo_handle *h, const char *p, uint32_t n),
	      (h, p, n))
LF_KFIFO_CALL_KEEP(rec_get_wait, (struct lf_kfifo_handle *h),
		   (h))
LF_KFIFO_CALL_KEEP(rec_get_many_wait,
		   (struct lf_kfifo_handle *h, uint32_t max_items),
		   (h, max_items))
LF_KFIFO_CALL(int, wait_readable, 1,
	      (struct lf_kfifo_handle *h, uint64_t deadline),
	      (h, deadline))
LF_KFIFO_CALL(int, wait_writable, 0,
	      (struct lf_kfifo_handle *h, uint32_t need, uint64_t deadline),
	      (h, need, deadline))
LF_KFIFO_CALL(int, close_producer, 0, (struct lf_kfifo_handle *h),
	      (h))
LF_KFIFO_CALL(int64_t, reset, 1, (struct lf_kfifo_handle *h),
	      (h))

/* -- the asyncio waiter (src/lockfree/kfifo_async.py) ------------------- */

/*
 * lf_kfifo_wait_readable/writable that another thread can end: they also
 * return 1 as soon as *stop is non-zero.  lf_kfifo_wait_stop() sets *stop
 * and wakes the sleeper.  The stop word is the caller's (process-private
 * memory, never the shared state).  wait_on()'s conditions take (h, idx,
 * need) only, so the condition reads the word through a thread-local
 * pointer set for the duration of the call.
 */
static __thread const uint32_t *wait_stop_word;

static int readable_or_stop(struct lf_kfifo_handle *h, uint32_t out,
			    uint32_t need)
{
	/* Pairs with the store-release in lf_kfifo_wait_stop(). */
	if (lf_load_acquire32(wait_stop_word))
		return 1;
	return readable(h, out, need);
}

static int writable_or_stop(struct lf_kfifo_handle *h, uint32_t in,
			    uint32_t need)
{
	/* Pairs with the store-release in lf_kfifo_wait_stop(). */
	if (lf_load_acquire32(wait_stop_word))
		return 1;
	return writable(h, in, need);
}

static int wait_readable_or(struct lf_kfifo_handle *h, uint64_t deadline,
			    const uint32_t *stop)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	wait_stop_word = stop;
	r = wait_on(h, readable_or_stop, lf_read32(&f->out), 1,
		    &f->cons_sleeping, &f->cons_seq, LF_KFIFO_ROLE_PRODUCER,
		    deadline);
	wait_stop_word = NULL;
	return r;
}

static int wait_writable_or(struct lf_kfifo_handle *h, uint32_t need,
			    uint64_t deadline, const uint32_t *stop)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	if (need > h->size)
		return LF_EMSGSIZE;
	wait_stop_word = stop;
	r = wait_on(h, writable_or_stop, lf_read32(&f->in), need,
		    &f->prod_sleeping, &f->prod_seq, LF_KFIFO_ROLE_CONSUMER,
		    deadline);
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

#ifdef LF_TEST_HOOKS
int lf_kfifo_debug_set_index(struct lf_kfifo_handle *h, uint32_t idx)
{
	struct lf_kfifo *f = h->f;

	/* Tests only, with both sides idle: an empty ring whose indexes start
	 * at idx (e.g. just below 2^32, to hit every wrap path). */
	lf_write32(&f->in_cache, idx);
	lf_write32(&f->out_cache, idx);
	lf_store_release32(&f->out, idx);
	lf_store_release32(&f->in, idx);
	return 0;
}
#endif /* LF_TEST_HOOKS */
