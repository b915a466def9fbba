/*
 * kfifo: SPSC ring buffer.  See kfifo.h for the model and the API, and
 * kfifo_impl.h for the ordering and how the kfifo*.c files divide the work.
 * This file: creating the ring, handles and roles (registration, release,
 * takeover after a crash), the state snapshots, close and reset.
 */
#include "kfifo_impl.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

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
		h->rsv_open = 0;	/* the parent's reservation, if any */
		h->fork_gen = gen;
	}
	if (h->roles & role)
		return 0;
	kfifo_membarrier_ready(h->f);
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

/* -- state --------------------------------------------------------------- */

int64_t lf_kfifo_len(struct lf_kfifo_handle *h)
{
	uint32_t out, used;
	int tries = 0;

	do {
		out = lf_load_acquire32(&h->f->out);
		used = lf_load_acquire32(&h->f->in) - out;
		if (used <= h->size)
			return used;
		/* Records: a restart moved out after we read it (kfifo_rec.c,
		 * cons_used() in kfifo_impl.h); read both again. */
	} while (cons_moved(h, out) && ++tries < LF_KFIFO_RETRIES);
	return LF_ECORRUPT;
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

/* -- close and reset ----------------------------------------------------- */

static int kfifo_close_producer(struct lf_kfifo_handle *h)
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

static int64_t kfifo_reset(struct lf_kfifo_handle *h)
{
	struct lf_kfifo *f = h->f;
	uint32_t in, out;
	int tries;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	/* The kernel's kfifo_reset_out: only the consumer moves out, so this
	 * is safe while the producer runs; in is read like a get would.  But
	 * a restart (kfifo_rec.c) may move out meanwhile: a compare-and-swap,
	 * where a store would move it back behind the padding it skipped. */
	for (tries = 0; tries < LF_KFIFO_RETRIES; tries++) {
		out = lf_load_acquire32(&f->out);
		in = lf_load_acquire32(&f->in);
		lf_write32(&f->in_cache, in);
		if (in - out > h->size) {
			if (h->mode == LF_KFIFO_RECORDS && cons_moved(h, out))
				continue;
			return LF_ECORRUPT;
		}
		/* A full barrier: the consumer's reads before the index, as
		 * cons_publish()'s store-release. */
		if (lf_cmpxchg32(&f->out, out, in) == out) {
			lf_kfifo_notify(&f->prod_sleeping, &f->prod_seq);
			return in - out;
		}
	}
	return LF_ECORRUPT;
}

LF_KFIFO_CALL(int, close_producer, 0, (struct lf_kfifo_handle *h),
	      (h))
LF_KFIFO_CALL(int64_t, reset, 1, (struct lf_kfifo_handle *h),
	      (h))

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
