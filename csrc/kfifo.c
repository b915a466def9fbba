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
 * Sleeping: a side that waits sets its "sleeping" flag with xchg (a full
 * barrier), re-checks the condition, and only then sleeps on its futex word
 * (seq) with FUTEX_WAIT(seq).  The other side, after storing its index,
 * reads the flag; if it is set, it bumps seq and calls FUTEX_WAKE.
 *
 * The publishing side deliberately has no full barrier between its index
 * store and its flag load (measured: lf_smp_mb() there costs 5-7x on small
 * items between two cores, because the barrier waits for the store's cache
 * line to come back from the other core).  So the store may still sit in
 * the store buffer when the flag is read: the one race is a publish whose
 * flag load ran before the waiter's flag store and whose index store
 * became visible after the waiter's re-check.  The waiter covers it: its
 * first sleep lasts at most LF_KFIFO_RACE_NS, then it re-checks (reading seq
 * before each re-check, so a wake-up in between is never lost).  By then a
 * store buffered before the flag was set has drained (store buffers drain in
 * nanoseconds; a context switch drains them too), and every later publish
 * reads the flag after it was set.  Worst case if that physical assumption
 * ever failed: a wake-up delayed to the caller's timeout slice (100 ms from
 * Python); never lost data and never a hang.
 */
#include "kfifo.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

#define SPIN_LOOPS	1000	/* lf_cpu_relax() rounds before sleeping */
#define LF_KFIFO_RACE_NS 50000	/* first sleep: see the comment on top */

_Static_assert(sizeof(struct lf_kfifo) == 3 * LF_CACHELINE,
	       "producer, consumer and control lines, then the data");
_Static_assert(__builtin_offsetof(struct lf_kfifo, out) == LF_CACHELINE,
	       "in and out on separate cache lines");

/* Bumped in the child after fork(): a handle copied into a child must
 * register again, under the child's pid, before it may produce or consume.
 * Exported for the inline element fast paths in kfifo.h. */
uint32_t lf_kfifo_fork_gen;
static uint32_t next_handle_id;

static void after_fork_in_child(void)
{
	lf_xadd32(&lf_kfifo_fork_gen, 1);
}

__attribute__((constructor)) static void kfifo_setup(void)
{
	pthread_atfork(NULL, NULL, after_fork_in_child);
}

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* -- futex ---------------------------------------------------------------- */

/* Shared (not FUTEX_PRIVATE_FLAG) futexes: the kernel keys them by the
 * physical page, so they work across processes mapping the same segment. */
static void futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts = {
		.tv_sec = timeout_ns / 1000000000,
		.tv_nsec = timeout_ns % 1000000000,
	};

	/* EAGAIN (word changed), EINTR (signal), ETIMEDOUT: the caller
	 * re-checks its condition in every case. */
	syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, NULL, 0);
}

/* Out of line and cold: keeps the publish fast path free of the syscall's
 * register spills.  Exported for the inline fast paths in kfifo.h. */
__attribute__((noinline, cold)) void lf_kfifo_wake(uint32_t *seq)
{
	lf_xadd32(seq, 1);
	syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
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
		return LF_KFIFO_EINVAL;
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
		return LF_KFIFO_EINVAL;
	if (h->fork_gen != gen) {	/* a copy in a forked child */
		h->roles = 0;
		h->fork_gen = gen;
	}
	if (h->roles & role)
		return 0;
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
				return LF_KFIFO_EBUSY;
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
		return LF_KFIFO_EINVAL;
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
		return LF_KFIFO_ECORRUPT;
	return h->size - used;
}

static inline void prod_publish(struct lf_kfifo_handle *h, uint32_t in)
{
	struct lf_kfifo *f = h->f;

	/* Make sure the data is copied before the index is updated (the
	 * smp_wmb of kfifo_in); pairs with the load-acquire of in in
	 * cons_used(). */
	lf_store_release32(&f->in, in);
	/* No lf_smp_mb() here: see "Sleeping" on top (the waiter's bounded
	 * first sleep covers the store->load reordering). */
	if (unlikely(lf_read32(&f->cons_sleeping)))
		lf_kfifo_wake(&f->cons_seq);
}

/*
 * Bytes readable at read index out, re-reading in only when the cached copy
 * shows fewer than want.  Empty: LF_KFIFO_EOF if the producer closed, else
 * LF_KFIFO_EAGAIN.
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
		return LF_KFIFO_ECORRUPT;
	if (used == 0)
		return (flags & LF_KFIFO_F_CLOSED) ? LF_KFIFO_EOF
						   : LF_KFIFO_EAGAIN;
	return used;
}

static inline void cons_publish(struct lf_kfifo_handle *h, uint32_t out)
{
	struct lf_kfifo *f = h->f;

	/* Make sure the data is copied out before the index is updated (the
	 * smp_mb of kfifo_out); pairs with the load-acquire of out in
	 * prod_free(). */
	lf_store_release32(&f->out, out);
	/* No lf_smp_mb(): see "Sleeping" on top. */
	if (unlikely(lf_read32(&f->prod_sleeping)))
		lf_kfifo_wake(&f->prod_seq);
}

static inline int prod_enter(struct lf_kfifo_handle *h, uint32_t mode)
{
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (unlikely(r))
		return r;
	if (unlikely(h->mode != mode))
		return LF_KFIFO_EINVAL;
	if (unlikely(lf_read32(&h->f->flags) & LF_KFIFO_F_CLOSED))
		return LF_KFIFO_ECLOSED;
	return 0;
}

static inline int cons_enter(struct lf_kfifo_handle *h, uint32_t mode)
{
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (unlikely(r))
		return r;
	return unlikely(h->mode != mode) ? LF_KFIFO_EINVAL : 0;
}

/* -- state --------------------------------------------------------------- */

int64_t lf_kfifo_len(struct lf_kfifo_handle *h)
{
	uint32_t out = lf_load_acquire32(&h->f->out);
	uint32_t used = lf_load_acquire32(&h->f->in) - out;

	return used > h->size ? (int64_t)LF_KFIFO_ECORRUPT : (int64_t)used;
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

int64_t lf_kfifo_put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
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

int64_t lf_kfifo_peek(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0)
		copy_out(h, p, out, (uint32_t)l);
	return l;
}

int64_t lf_kfifo_get(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	if (l > 0) {
		copy_out(h, p, out, (uint32_t)l);
		cons_publish(h, out + (uint32_t)l);
	}
	return l;
}

int64_t lf_kfifo_get_scratch(struct lf_kfifo_handle *h, uint32_t n)
{
	return lf_kfifo_get(h, h->scratch, min_u32(n, h->scratch_size));
}

int64_t lf_kfifo_skip(struct lf_kfifo_handle *h, uint32_t n)
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

int64_t lf_kfifo_parts(struct lf_kfifo_handle *h, uint32_t n)
{
	uint32_t out = 0;
	int64_t l = cons_take(h, &out, n);

	set_parts(h, out, l > 0 ? (uint32_t)l : 0);
	return l;
}

/* -- elements: the slow paths of lf_kfifo_put_elem/get_elem (kfifo.h) ---- */

int lf_kfifo_put_elem_slow(struct lf_kfifo_handle *h, const void *p,
			   uint32_t esize)
{
	int64_t free;
	uint32_t in;
	int r = prod_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	if (esize == 0 || esize > h->size)
		return LF_KFIFO_EMSGSIZE;
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

int lf_kfifo_get_elem_slow(struct lf_kfifo_handle *h, void *p, uint32_t esize)
{
	int64_t used;
	uint32_t out;
	int r = cons_enter(h, LF_KFIFO_BYTES);

	if (unlikely(r))
		return r;
	if (esize == 0 || esize > h->size)
		return LF_KFIFO_EMSGSIZE;
	out = lf_read32(&h->f->out);
	used = cons_used(h, out, esize);
	if (used == LF_KFIFO_EAGAIN)
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

int lf_kfifo_rec_put(struct lf_kfifo_handle *h, const char *p, uint32_t n)
{
	int64_t free;
	uint32_t in;
	int r = prod_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	if (unlikely(n > h->size - LF_KFIFO_REC_HDR))
		return LF_KFIFO_EMSGSIZE;
	in = lf_read32(&h->f->in);
	free = prod_free(h, in, n + LF_KFIFO_REC_HDR);
	if (unlikely(free < n + LF_KFIFO_REC_HDR))
		return free < 0 ? free : LF_KFIFO_EAGAIN;
	copy_in(h, in, &n, LF_KFIFO_REC_HDR);
	copy_in(h, in + LF_KFIFO_REC_HDR, p, n);
	prod_publish(h, in + LF_KFIFO_REC_HDR + n);
	return 0;
}

int64_t lf_kfifo_rec_put_many(struct lf_kfifo_handle *h, const char *buf,
			      uint64_t buf_len, const uint32_t *lens,
			      uint32_t count)
{
	int64_t free;
	uint64_t total = 0;
	uint32_t in, i, k, need;
	int r = prod_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	/* All or nothing per message, and no partial batch when one of them
	 * can never fit: check them all first.  The lengths must add up to
	 * the buffer's, or a copy would read past it. */
	for (i = 0; i < count; i++) {
		if (lens[i] > h->size - LF_KFIFO_REC_HDR)
			return LF_KFIFO_EMSGSIZE;
		total += lens[i];
	}
	if (total != buf_len)
		return LF_KFIFO_EINVAL;
	in = lf_read32(&h->f->in);
	free = prod_free(h, in, 0);
	if (unlikely(free < 0))
		return free;
	for (k = 0; k < count; k++) {
		need = lens[k] + LF_KFIFO_REC_HDR;
		if (need > free) {
			free = prod_free(h, in, need);
			if (free < need) {
				if (free < 0)
					return free;
				break;
			}
		}
		copy_in(h, in, &lens[k], LF_KFIFO_REC_HDR);
		copy_in(h, in + LF_KFIFO_REC_HDR, buf, lens[k]);
		buf += lens[k];
		in += need;
		free -= need;
	}
	if (k)	/* one publish, one barrier, for the whole batch */
		prod_publish(h, in);
	return k;
}

/* The next message's length at out, or a status. */
static inline int64_t rec_next(struct lf_kfifo_handle *h, uint32_t *out)
{
	int64_t used;
	uint32_t len;
	int r = cons_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	*out = lf_read32(&h->f->out);
	/* A record is published whole, so any readable byte means a whole
	 * message is there. */
	used = cons_used(h, *out, 1);
	if (unlikely(used < LF_KFIFO_REC_HDR))
		return used < 0 ? used : LF_KFIFO_ECORRUPT;
	copy_out(h, &len, *out, LF_KFIFO_REC_HDR);
	if (unlikely(len > used - LF_KFIFO_REC_HDR))
		return LF_KFIFO_ECORRUPT;
	return len;
}

int64_t lf_kfifo_rec_get(struct lf_kfifo_handle *h)
{
	uint32_t out = 0;
	int64_t len = rec_next(h, &out);

	if (unlikely(len < 0))
		return len;
	if (unlikely(len > h->scratch_size)) {
		h->msg_len = (uint32_t)len;
		return LF_KFIFO_EBIG;
	}
	copy_out(h, h->scratch, out + LF_KFIFO_REC_HDR, (uint32_t)len);
	cons_publish(h, out + LF_KFIFO_REC_HDR + (uint32_t)len);
	return len;
}

int64_t lf_kfifo_rec_get_into(struct lf_kfifo_handle *h, char *p, uint32_t n)
{
	uint32_t out = 0;
	int64_t len = rec_next(h, &out);

	if (unlikely(len < 0))
		return len;
	if (len > n) {	/* the message stays in the ring */
		h->msg_len = (uint32_t)len;
		return LF_KFIFO_EMSGSIZE;
	}
	copy_out(h, p, out + LF_KFIFO_REC_HDR, (uint32_t)len);
	cons_publish(h, out + LF_KFIFO_REC_HDR + (uint32_t)len);
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
 * status; LF_KFIFO_EBIG if the first message alone exceeds the scratch.
 */
int64_t lf_kfifo_rec_get_many(struct lf_kfifo_handle *h, uint32_t max_items)
{
	int64_t used;
	uint32_t out, len, pos = 0, k = 0;
	char *fmt = h->fmt;
	int r = cons_enter(h, LF_KFIFO_RECORDS);

	if (unlikely(r))
		return r;
	if (unlikely(fmt == NULL))
		return LF_KFIFO_EINVAL;
	out = lf_read32(&h->f->out);
	used = cons_used(h, out, UINT32_MAX);	/* always refresh in */
	if (used < 0)
		return used;
	max_items = min_u32(max_items, h->fmt_items);
	while (k < max_items && used > 0) {
		if (unlikely(used < LF_KFIFO_REC_HDR))
			return LF_KFIFO_ECORRUPT;
		copy_out(h, &len, out, LF_KFIFO_REC_HDR);
		if (unlikely(len > used - LF_KFIFO_REC_HDR))
			return LF_KFIFO_ECORRUPT;
		if (len > h->scratch_size - pos) {
			if (k == 0) {
				h->msg_len = len;
				return LF_KFIFO_EBIG;
			}
			break;
		}
		copy_out(h, h->scratch + pos, out + LF_KFIFO_REC_HDR, len);
		fmt = fmt_item(fmt, len);
		pos += len;
		k++;
		out += LF_KFIFO_REC_HDR + len;
		used -= LF_KFIFO_REC_HDR + len;
	}
	*fmt = 0;
	if (k)
		cons_publish(h, out);
	return pos;
}

int64_t lf_kfifo_rec_peek_len(struct lf_kfifo_handle *h)
{
	uint32_t out = 0;

	return rec_next(h, &out);
}

int64_t lf_kfifo_rec_parts(struct lf_kfifo_handle *h)
{
	uint32_t out = 0;
	int64_t len = rec_next(h, &out);

	set_parts(h, out + LF_KFIFO_REC_HDR, len > 0 ? (uint32_t)len : 0);
	return len;
}

int64_t lf_kfifo_rec_skip(struct lf_kfifo_handle *h)
{
	uint32_t out = 0;
	int64_t len = rec_next(h, &out);

	if (len >= 0)
		cons_publish(h, out + LF_KFIFO_REC_HDR + (uint32_t)len);
	return len;
}

/* -- blocking ------------------------------------------------------------ */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef int (*cond_fn)(struct lf_kfifo_handle *h, uint32_t idx, uint32_t need);

/*
 * Wait until cond() is no longer LF_KFIFO_EAGAIN or timeout_ns passed: spin
 * with lf_cpu_relax(), then announce the sleep in *sleeping and sleep on
 * *seq, the first time for at most LF_KFIFO_RACE_NS (see "Sleeping").
 */
static int wait_on(struct lf_kfifo_handle *h, cond_fn cond, uint32_t idx,
		   uint32_t need, uint32_t *sleeping, uint32_t *seq,
		   int64_t timeout_ns)
{
	int64_t step = LF_KFIFO_RACE_NS, t0;
	uint32_t s;
	int i, r;

	for (i = 1; i <= SPIN_LOOPS; i++) {
		r = cond(h, idx, need);
		if (r != LF_KFIFO_EAGAIN || timeout_ns <= 0)
			return r;
		/* Mostly pause; now and then give the CPU away, in case
		 * the peer waits for it (more runnable threads than CPUs). */
		if (i % 64)
			lf_cpu_relax();
		else
			sched_yield();
	}
	/* Full barrier: the flag is visible before the condition is
	 * re-checked, so a publish after the re-check sees the flag. */
	lf_xchg32(sleeping, 1);
	for (;;) {
		/* seq before the re-check: a wake-up after the re-check
		 * changes seq and FUTEX_WAIT returns at once. */
		s = lf_load_acquire32(seq);
		r = cond(h, idx, need);
		if (r != LF_KFIFO_EAGAIN || timeout_ns <= 0)
			break;
		if (step > timeout_ns)
			step = timeout_ns;
		t0 = now_ns();
		futex_wait(seq, s, step);
		timeout_ns -= now_ns() - t0;
		step = timeout_ns;
	}
	lf_write32(sleeping, 0);
	return r;
}

static int readable(struct lf_kfifo_handle *h, uint32_t out, uint32_t need)
{
	int64_t used = cons_used(h, out, need);

	return used > 0 ? 0 : (int)used;
}

int lf_kfifo_wait_readable(struct lf_kfifo_handle *h, int64_t timeout_ns)
{
	struct lf_kfifo *f = h->f;
	uint32_t out;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	out = lf_read32(&f->out);
	r = wait_on(h, readable, out, 1, &f->cons_sleeping, &f->cons_seq,
		    timeout_ns);
	if (r == LF_KFIFO_EAGAIN && timeout_ns > 0 &&
	    peer_dead(f, LF_KFIFO_ROLE_PRODUCER)) {
		/* A producer may die right after its last publish. */
		r = readable(h, out, 1);
		if (r == LF_KFIFO_EAGAIN)
			r = LF_KFIFO_EDEAD;
	}
	return r;
}

static int writable(struct lf_kfifo_handle *h, uint32_t in, uint32_t need)
{
	int64_t free;

	if (lf_read32(&h->f->flags) & LF_KFIFO_F_CLOSED)
		return LF_KFIFO_ECLOSED;
	free = prod_free(h, in, need);
	if (free < 0)
		return (int)free;
	return free >= need ? 0 : LF_KFIFO_EAGAIN;
}

int lf_kfifo_wait_writable(struct lf_kfifo_handle *h, uint32_t need,
			   int64_t timeout_ns)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	if (need > h->size)
		return LF_KFIFO_EMSGSIZE;
	r = wait_on(h, writable, lf_read32(&f->in), need, &f->prod_sleeping,
		    &f->prod_seq, timeout_ns);
	if (r == LF_KFIFO_EAGAIN && timeout_ns > 0 &&
	    peer_dead(f, LF_KFIFO_ROLE_CONSUMER))
		r = LF_KFIFO_EDEAD;
	return r;
}

int lf_kfifo_rec_put_wait(struct lf_kfifo_handle *h, const char *p,
			  uint32_t n)
{
	int r = lf_kfifo_rec_put(h, p, n);

	if (r != LF_KFIFO_EAGAIN)
		return r;
	r = lf_kfifo_wait_writable(h, n + LF_KFIFO_REC_HDR, LF_KFIFO_SLICE_NS);
	return r ? r : lf_kfifo_rec_put(h, p, n);
}

int64_t lf_kfifo_rec_get_wait(struct lf_kfifo_handle *h)
{
	int64_t n = lf_kfifo_rec_get(h);
	int r;

	if (n != LF_KFIFO_EAGAIN)
		return n;
	r = lf_kfifo_wait_readable(h, LF_KFIFO_SLICE_NS);
	return r ? r : lf_kfifo_rec_get(h);
}

int64_t lf_kfifo_rec_get_many_wait(struct lf_kfifo_handle *h,
				   uint32_t max_items)
{
	int64_t n = lf_kfifo_rec_get_many(h, max_items);
	int r;

	if (n != LF_KFIFO_EAGAIN)
		return n;
	r = lf_kfifo_wait_readable(h, LF_KFIFO_SLICE_NS);
	return r ? r : lf_kfifo_rec_get_many(h, max_items);
}

int lf_kfifo_close_producer(struct lf_kfifo_handle *h)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	/* After the last publish of in (program order, and xchg is a full
	 * barrier); pairs with the load-acquire of flags in cons_used().  The
	 * wake-up is unconditional: close is rare, and the consumer re-checks
	 * the flags after every wake-up. */
	lf_xchg32(&f->flags, lf_read32(&f->flags) | LF_KFIFO_F_CLOSED);
	lf_kfifo_wake(&f->cons_seq);
	return 0;
}

int64_t lf_kfifo_reset(struct lf_kfifo_handle *h)
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
		return LF_KFIFO_ECORRUPT;
	cons_publish(h, in);
	return in - out;
}

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
