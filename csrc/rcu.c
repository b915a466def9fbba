#define _GNU_SOURCE
#include "rcu.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct lf_rcu_reader) == LF_CACHELINE,
	       "a reader slot is one cache line");
_Static_assert(offsetof(struct lf_rcu_domain, readers) == 2 * LF_CACHELINE,
	       "gp_ctr and the writers' words sit on their own lines");
_Static_assert(sizeof(struct lf_rcu_buf) == LF_CACHELINE,
	       "the buffer header is one cache line");

static struct lf_rcu_domain *domain_of(struct lf_rcu_reader *r)
{
	/* index is written once by lf_rcu_init() and never changes. */
	return (struct lf_rcu_domain *)((char *)(r - r->index) -
					offsetof(struct lf_rcu_domain, readers));
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Absolute deadline for a relative timeout; -1 = none. */
static int64_t deadline_of(int64_t timeout_ns)
{
	return timeout_ns < 0 ? -1 : now_ns() + timeout_ns;
}

/*
 * Is the process that owns this word gone?  lf_pid_alive (lockwait.c):
 * kill(pid, 0) failing with ESRCH, or a zombie with no live thread left.
 * Our own pid is never dead.  A recycled pid looks alive: then only the
 * timeout helps (documented).
 */
static int owner_dead(uint64_t owner)
{
	uint32_t pid = (uint32_t)(owner >> 32);

	if (pid == 0 || pid == LF_RCU_RECLAIMING >> 32 ||
	    pid == lf_owner_self() >> 32)
		return 0;
	return !lf_pid_alive(pid);
}

/*
 * Waiting: spin a little (grace periods with short read sections end within
 * microseconds), then yield, then sleep with exponential backoff up to 1 ms,
 * so a writer waiting for a long reader costs no CPU.  Returns -ETIMEDOUT
 * once the deadline has passed.
 */
struct backoff {
	unsigned n;
	long sleep_ns;
	int64_t deadline;
};

#define SPINS	200
#define YIELDS	20

static int backoff(struct backoff *b)
{
	struct timespec ts;

	b->n++;
	if (b->n < SPINS) {
		lf_cpu_relax();
		return 0;
	}
	if (b->deadline >= 0 && now_ns() >= b->deadline)
		return -ETIMEDOUT;
	if (b->n < SPINS + YIELDS) {
		sched_yield();
		return 0;
	}
	b->sleep_ns = b->sleep_ns ? b->sleep_ns * 2 : 10000;
	if (b->sleep_ns > 1000000)
		b->sleep_ns = 1000000;
	ts.tv_sec = 0;
	ts.tv_nsec = b->sleep_ns;
	nanosleep(&ts, NULL);
	return 0;
}

/* Sleeping phase reached: time to look for dead owners (a syscall or two). */
static int backoff_slow(const struct backoff *b)
{
	return b->n >= SPINS + YIELDS;
}

/* ---------------------------------------------------------------- domain */

uint64_t lf_rcu_domain_size(uint32_t capacity)
{
	return sizeof(struct lf_rcu_domain) +
	       (uint64_t)capacity * sizeof(struct lf_rcu_reader);
}

int lf_rcu_init(struct lf_rcu_domain *d, uint32_t capacity)
{
	uint32_t i;

	if (capacity < 1 || capacity > LF_RCU_MAX_READERS)
		return -EINVAL;
	memset(d, 0, lf_rcu_domain_size(capacity));
	d->capacity = capacity;
	d->gp_ctr = LF_RCU_GP_COUNT;
	for (i = 0; i < capacity; i++)
		d->readers[i].index = i;
	/* Publish to other threads: pairs with whatever hands d over
	 * (lf_region_publish's release, pthread_create). */
	lf_smp_wmb();
	return 0;
}

struct lf_rcu_reader *lf_rcu_reader(struct lf_rcu_domain *d, int idx)
{
	if (idx < 0 || (uint32_t)idx >= d->capacity)
		return NULL;
	return &d->readers[idx];
}

int lf_rcu_register(struct lf_rcu_domain *d)
{
	uint64_t me = lf_owner_self(), hwm;
	uint32_t i;

	for (i = 0; i < d->capacity; i++) {
		struct lf_rcu_reader *r = &d->readers[i];

		if (lf_read64(&r->owner) || lf_cmpxchg64(&r->owner, 0, me))
			continue;
		lf_write64(&r->ctr, 0);
		lf_xadd64(&d->nr_readers, 1);
		/*
		 * Raise the scan limit before the first read_lock.  The
		 * cmpxchg is a full barrier: a writer whose scan loaded the
		 * old limit (or reader count) did so before it, so this reader's
	 * first section
		 * starts after that writer's flip and sees its new pointer
		 * (pairs with the lf_smp_mb() after the flip).
		 */
		hwm = lf_read64(&d->hwm);
		while (hwm < i + 1) {
			uint64_t seen = lf_cmpxchg64(&d->hwm, hwm, i + 1);

			if (seen == hwm)
				break;
			hwm = seen;
		}
		return (int)i;
	}
	return -ENOSPC;
}

int lf_rcu_unregister(struct lf_rcu_domain *d, int idx)
{
	struct lf_rcu_reader *r = lf_rcu_reader(d, idx);

	if (!r)
		return -EINVAL;
	if (!lf_read64(&r->owner))
		return -EPERM;
	if (lf_read64(&r->ctr) & LF_RCU_NEST_MASK)
		return -EBUSY;
	/* Pairs with lf_rcu_register's cmpxchg: the slot is free only after
	 * everything its owner did. */
	lf_store_release64(&r->owner, 0);
	lf_xadd64(&d->nr_readers, -1);
	return 0;
}

/* --------------------------------------------------------------- readers */

int lf_rcu_read_lock(struct lf_rcu_reader *r)
{
	uint64_t tmp = lf_read64(&r->ctr);

	if (tmp & LF_RCU_NEST_MASK) {
		/* Nested: only the outermost level snapshots the phase. */
		lf_write64(&r->ctr, tmp + LF_RCU_GP_COUNT);
		return 0;
	}
	if (!lf_read64(&r->owner))
		return -EPERM;
	lf_write64(&r->ctr, lf_read64(&domain_of(r)->gp_ctr));
	/*
	 * Order the ctr store before every load of the read section (the
	 * rcu_dereference that follows): store->load, so a full barrier.
	 * Pairs with the lf_smp_mb() after each phase flip in
	 * lf_rcu_synchronize: either the writer sees this ctr, or this
	 * section sees everything the writer stored before the flip.
	 */
	lf_smp_mb();
	return 0;
}

int lf_rcu_read_unlock(struct lf_rcu_reader *r)
{
	uint64_t tmp = lf_read64(&r->ctr);

	if ((tmp & LF_RCU_NEST_MASK) == LF_RCU_GP_COUNT) {
		/*
		 * Every load and store of the section completes before the
		 * writer can see it ended: pairs with the acquire load of ctr
		 * in wait_for_readers.  Only load->store and store->store
		 * order is needed here, which a release store gives (a plain
		 * mov on x86-64); liburcu's mb flavor puts a full smp_mb()
		 * here because it targets weaker CPUs with the same code.
		 */
		lf_store_release64(&r->ctr, 0);
		return 0;
	}
	if (!(tmp & LF_RCU_NEST_MASK))
		return -EPERM;
	lf_write64(&r->ctr, tmp - LF_RCU_GP_COUNT);
	return 0;
}

int64_t lf_rcu_read_depth(struct lf_rcu_reader *r)
{
	return (int64_t)(lf_read64(&r->ctr) & LF_RCU_NEST_MASK);
}

void lf_rcu_assign(void **slot, void *v)
{
	/* rcu_assign_pointer: the object's initialisation is stored before
	 * the pointer.  Pairs with the acquire in lf_rcu_dereference. */
	lf_store_release64((uint64_t *)slot, (uint64_t)(uintptr_t)v);
}

void *lf_rcu_dereference(void **slot)
{
	/* Pairs with the release in lf_rcu_assign. */
	return (void *)(uintptr_t)lf_load_acquire64((uint64_t *)slot);
}

/* --------------------------------------------------------------- writers */

/*
 * Reclaim reader slot r from its dead owner o.  Take the slot first: the
 * owner may have unregistered and exited after the writer loaded o, and a
 * live reader have claimed the slot since and be inside a section; the CAS
 * fails then, the slot is left alone and false returned (the caller looks at
 * the slot again next round).  Once it succeeds nobody else
 * writes the slot (register skips a nonzero owner), so its counter can be
 * cleared before the slot is freed.
 */
static bool reclaim_slot(struct lf_rcu_domain *d, struct lf_rcu_reader *r,
			 uint64_t o)
{
	if (lf_cmpxchg64(&r->owner, o, LF_RCU_RECLAIMING) != o)
		return false;
	lf_write64(&r->ctr, 0);
	/* Pairs with lf_rcu_register's cmpxchg, as in unregister. */
	lf_store_release64(&r->owner, 0);
	lf_xadd64(&d->nr_readers, -1);
	lf_xadd64(&d->nr_dead, 1);
	return true;
}

/*
 * Wait until no reader is inside a section begun in the phase before the
 * current one.  Readers of the current phase, and readers outside, do not
 * hold anything the caller unpublished before the flip.
 */
static int wait_for_readers(struct lf_rcu_domain *d, struct backoff *b)
{
	uint64_t me = 0;

	for (;;) {
		uint64_t gp = lf_read64(&d->gp_ctr);
		uint64_t i, hwm = lf_read64(&d->hwm);
		int blocked = 0, rc;

		for (i = 0; i < hwm && i < d->capacity; i++) {
			struct lf_rcu_reader *r = &d->readers[i];
			/* Pairs with the release store in read_unlock. */
			uint64_t c = lf_load_acquire64(&r->ctr), o;

			if (!(c & LF_RCU_NEST_MASK) ||
			    !((c ^ gp) & LF_RCU_GP_PHASE))
				continue;
			o = lf_read64(&r->owner);
			if (!me)
				me = lf_owner_self();
			if (o == me)
				return -EDEADLK;
			if (backoff_slow(b)) {
				LF_TEST_HOLDER_LOADED();
				if (owner_dead(o) && reclaim_slot(d, r, o))
					continue;
			}
			blocked = 1;
		}
		if (!blocked)
			return 0;
		rc = backoff(b);
		if (rc)
			return rc;
	}
}

uint64_t lf_rcu_start_poll(struct lf_rcu_domain *d)
{
	/* The caller's unpublishing stores come before the load of gp_seq:
	 * pairs with the lf_smp_mb() after gp_seq goes odd in synchronize.
	 * If gp_seq is even, the next grace period covers the caller; if odd,
	 * the one in progress may have flipped already, so it takes the one
	 * after. */
	lf_smp_mb();
	return (lf_load_acquire64(&d->gp_seq) + 3) & ~1ULL;
}

int lf_rcu_poll_state(struct lf_rcu_domain *d, uint64_t cookie)
{
	/* Pairs with the release store of gp_seq ending a grace period. */
	return (int64_t)(lf_load_acquire64(&d->gp_seq) - cookie) >= 0;
}

int lf_rcu_synchronize_timeout(struct lf_rcu_domain *d, int64_t timeout_ns)
{
	struct backoff b = { 0, 0, deadline_of(timeout_ns) };
	uint64_t cookie = 0, me = lf_owner_self(), seq, o;
	int rc = 0, flip;

	/* Serialise writers.  A grace period that another writer starts and
	 * completes meanwhile covers us too (liburcu batches waiters); the
	 * cookie is taken once we have to wait (later is only stricter). */
	for (;;) {
		o = lf_read64(&d->gp_lock);
		/* The cmpxchg is a full barrier: the caller's unpublishing
		 * stores come before everything below. */
		if (!o && lf_cmpxchg64(&d->gp_lock, 0, me) == 0)
			break;
		if (!cookie)
			cookie = lf_rcu_start_poll(d);
		else if (lf_rcu_poll_state(d, cookie))
			return 0;
		if (o == me)
			return -EDEADLK;
		if (backoff_slow(&b) && owner_dead(o))
			lf_cmpxchg64(&d->gp_lock, o, 0);  /* died holding it */
		rc = backoff(&b);
		if (rc)
			return rc;
	}
	b.n = 0;
	b.sleep_ns = 0;

	seq = lf_read64(&d->gp_seq) + 1;
	if (!lf_read64(&d->nr_readers)) {
		/* No reader registered (liburcu's empty-registry exit): one
		 * that registers now starts after the cmpxchg above and sees
		 * what the caller published (pairs with the xadd in
		 * lf_rcu_register). */
		lf_store_release64(&d->gp_seq, seq + 1);
		goto done;
	}
	/* Odd while in progress (start_poll then asks for the next one). */
	lf_store_release64(&d->gp_seq, seq);
	/* gp_seq before the flips: pairs with lf_smp_mb() in start_poll. */
	lf_smp_mb();
	for (flip = 0; flip < 2; flip++) {
		/*
		 * Two flips: a reader may have loaded gp_ctr before the first
		 * flip and stored its snapshot only after our scan; it looks
		 * like a current-phase reader and may hold the old pointer.
		 * After the second flip its snapshot is of the old phase and
		 * we wait for it.
		 */
		lf_write64(&d->gp_ctr, lf_read64(&d->gp_ctr) ^ LF_RCU_GP_PHASE);
		/* Flip before scanning: pairs with lf_smp_mb() in read_lock. */
		lf_smp_mb();
		rc = wait_for_readers(d, &b);
		if (rc) {
			/* Not a grace period: back to even, unchanged count.
			 * Cookies taken meanwhile wait for one more. */
			lf_store_release64(&d->gp_seq, seq - 1);
			goto out;
		}
	}
	/* The readers' sections ended before the caller reclaims: the acquire
	 * loads of their ctr in wait_for_readers pair with the release store
	 * in read_unlock.  Pairs with the acquire in lf_rcu_poll_state. */
	lf_store_release64(&d->gp_seq, seq + 1);
done:
	lf_write64(&d->nr_gp, lf_read64(&d->nr_gp) + 1);
out:
	/* Pairs with the cmpxchg taking it. */
	lf_store_release64(&d->gp_lock, 0);
	return rc;
}

int lf_rcu_synchronize(struct lf_rcu_domain *d)
{
	return lf_rcu_synchronize_timeout(d, -1);
}

/* ------------------------------------------------------------- call_rcu */

struct lf_rcu_cbnode {
	struct lf_rcu_cbnode *next;
	lf_rcu_cb fn;
	void *arg;
};

struct lf_rcu_reclaimer {
	struct lf_rcu_domain *d;
	pthread_mutex_t lock;
	pthread_cond_t work;	/* queue non-empty, poll request, or stop */
	pthread_cond_t done;	/* completed advanced */
	struct lf_rcu_cbnode *head, **tail;
	uint64_t queued;	/* callbacks ever queued */
	uint64_t completed;	/* callbacks ever run */
	int poll;		/* a start_poll wants a grace period */
	int stop;
	pthread_t thread;
};

static void *reclaimer_main(void *arg)
{
	struct lf_rcu_reclaimer *rc = arg;

	pthread_mutex_lock(&rc->lock);
	for (;;) {
		struct lf_rcu_cbnode *batch, *next;
		uint64_t n = 0;

		while (!rc->head && !rc->poll && !rc->stop)
			pthread_cond_wait(&rc->work, &rc->lock);
		if (!rc->head && !rc->poll)
			break;	/* stop, and nothing left to do */
		batch = rc->head;
		rc->head = NULL;
		rc->tail = &rc->head;
		rc->poll = 0;
		pthread_mutex_unlock(&rc->lock);

		/* One grace period for the whole batch.  This thread is never
		 * a reader, so -EDEADLK cannot happen; there is no timeout. */
		lf_rcu_synchronize(rc->d);
		for (; batch; batch = next, n++) {
			next = batch->next;
			batch->fn(batch->arg);
			free(batch);
		}

		pthread_mutex_lock(&rc->lock);
		rc->completed += n;
		pthread_cond_broadcast(&rc->done);
	}
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

struct lf_rcu_reclaimer *lf_rcu_reclaimer_new(struct lf_rcu_domain *d)
{
	struct lf_rcu_reclaimer *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	rc->d = d;
	rc->tail = &rc->head;
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->work, NULL);
	pthread_cond_init(&rc->done, NULL);
	if (pthread_create(&rc->thread, NULL, reclaimer_main, rc)) {
		pthread_cond_destroy(&rc->done);
		pthread_cond_destroy(&rc->work);
		pthread_mutex_destroy(&rc->lock);
		free(rc);
		return NULL;
	}
	return rc;
}

int lf_rcu_call(struct lf_rcu_reclaimer *rc, lf_rcu_cb fn, void *arg)
{
	struct lf_rcu_cbnode *node = malloc(sizeof(*node));

	if (!node)
		return -ENOMEM;
	node->next = NULL;
	node->fn = fn;
	node->arg = arg;
	pthread_mutex_lock(&rc->lock);
	*rc->tail = node;
	rc->tail = &node->next;
	rc->queued++;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

void lf_rcu_barrier(struct lf_rcu_reclaimer *rc)
{
	uint64_t target;

	pthread_mutex_lock(&rc->lock);
	target = rc->queued;
	/* Callbacks run in queue order, so completed reaching the count
	 * queued before the call means all of those ran. */
	while (rc->completed < target)
		pthread_cond_wait(&rc->done, &rc->lock);
	pthread_mutex_unlock(&rc->lock);
}

uint64_t lf_rcu_reclaimer_start_poll(struct lf_rcu_reclaimer *rc)
{
	uint64_t cookie = lf_rcu_start_poll(rc->d);

	pthread_mutex_lock(&rc->lock);
	rc->poll = 1;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->lock);
	return cookie;
}

void lf_rcu_reclaimer_free(struct lf_rcu_reclaimer *rc)
{
	if (!rc)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->stop = 1;
	pthread_cond_signal(&rc->work);
	pthread_mutex_unlock(&rc->lock);
	pthread_join(rc->thread, NULL);	/* it drains the queue first */
	pthread_cond_destroy(&rc->done);
	pthread_cond_destroy(&rc->work);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

/* ------------------------------------------------------------ RcuBuffer */

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

static struct lf_rcu_buf_meta *buf_meta(struct lf_rcu_buf *b)
{
	return (struct lf_rcu_buf_meta *)((char *)b + b->meta_off);
}

uint64_t lf_rcu_buf_size(uint32_t capacity, uint32_t nslots,
			 uint64_t slot_size)
{
	return sizeof(struct lf_rcu_buf) + lf_rcu_domain_size(capacity) +
	       ALIGN64((uint64_t)nslots * sizeof(struct lf_rcu_buf_meta)) +
	       (uint64_t)nslots * ALIGN64(slot_size);
}

int lf_rcu_buf_init(struct lf_rcu_buf *b, uint32_t capacity, uint32_t nslots,
		    uint64_t slot_size)
{
	int rc;

	if (nslots < 2 || nslots > LF_RCU_BUF_MAX_SLOTS || slot_size == 0 ||
	    slot_size > (1ULL << 40))
		return -EINVAL;
	rc = lf_rcu_init(lf_rcu_buf_domain(b), capacity);
	if (rc)
		return rc;
	b->slot_size = ALIGN64(slot_size);
	b->nslots = nslots;
	b->meta_off = sizeof(*b) + lf_rcu_domain_size(capacity);
	b->data_off = b->meta_off +
		      ALIGN64((uint64_t)nslots * sizeof(struct lf_rcu_buf_meta));
	/* Version 0: empty, in slot 0. */
	buf_meta(b)[0].state = LF_RCU_SLOT_CURRENT;
	lf_store_release64(&b->current, 0);
	return 0;
}

struct lf_rcu_domain *lf_rcu_buf_domain(struct lf_rcu_buf *b)
{
	return (struct lf_rcu_domain *)(b + 1);
}

int64_t lf_rcu_buf_read_lock(struct lf_rcu_reader *r)
{
	struct lf_rcu_buf *b = (struct lf_rcu_buf *)domain_of(r) - 1;
	uint64_t cur;
	int rc = lf_rcu_read_lock(r);

	if (rc)
		return rc;
	/* rcu_dereference of the current version: pairs with the release
	 * store in lf_rcu_buf_publish (the bytes and length come first). */
	cur = lf_load_acquire64(&b->current);
	return (int64_t)(lf_read64(&buf_meta(b)[cur & 0xff].length) << 8 |
			 (cur & 0xff));
}

uint64_t lf_rcu_buf_version(struct lf_rcu_buf *b)
{
	return lf_load_acquire64(&b->current) >> 8;
}

/* Writers' lock: an owner word, stolen from a dead owner process. */
static int buf_wlock(struct lf_rcu_buf *b, uint64_t me, struct backoff *bo)
{
	for (;;) {
		uint64_t o = lf_read64(&b->wlock);
		int rc;

		if (!o && lf_cmpxchg64(&b->wlock, 0, me) == 0)
			return 0;
		if (o == me)
			return -EDEADLK;
		if (o && backoff_slow(bo) && owner_dead(o))
			lf_cmpxchg64(&b->wlock, o, 0);
		rc = backoff(bo);
		if (rc)
			return rc;
	}
}

/* A free slot, recycling retired ones whose grace period has elapsed. */
static int buf_free_slot(struct lf_rcu_buf *b, uint32_t curslot)
{
	struct lf_rcu_domain *d = lf_rcu_buf_domain(b);
	struct lf_rcu_buf_meta *m = buf_meta(b);
	uint32_t i;

	for (i = 0; i < b->nslots; i++) {
		if (i == curslot)
			continue;
		/* A writer that died between publishing and retiring left
		 * its old slot marked current: retire it now. */
		if (m[i].state == LF_RCU_SLOT_CURRENT) {
			m[i].cookie = lf_rcu_start_poll(d);
			m[i].state = LF_RCU_SLOT_RETIRED;
		}
		if (m[i].state == LF_RCU_SLOT_FREE)
			return (int)i;
	}
	for (i = 0; i < b->nslots; i++) {
		if (m[i].state == LF_RCU_SLOT_RETIRED &&
		    lf_rcu_poll_state(d, m[i].cookie)) {
			m[i].state = LF_RCU_SLOT_FREE;
			b->nr_recycled++;
			return (int)i;
		}
	}
	return -1;
}

int lf_rcu_buf_publish(struct lf_rcu_buf *b, const char *data, uint64_t len,
		       int64_t timeout_ns)
{
	struct backoff bo = { 0, 0, deadline_of(timeout_ns) };
	struct lf_rcu_domain *d = lf_rcu_buf_domain(b);
	struct lf_rcu_buf_meta *m = buf_meta(b);
	uint64_t cur, version;
	uint32_t curslot;
	int rc, slot;

	if (len > b->slot_size)
		return -EMSGSIZE;
	rc = buf_wlock(b, lf_owner_self(), &bo);
	if (rc)
		return rc;
	cur = lf_read64(&b->current);
	curslot = (uint32_t)(cur & 0xff);
	slot = buf_free_slot(b, curslot);
	if (slot < 0) {
		/* Every other slot is retired: one grace period frees all. */
		int64_t left = bo.deadline < 0 ? -1 : bo.deadline - now_ns();

		rc = bo.deadline >= 0 && left <= 0 ? -ETIMEDOUT
			: lf_rcu_synchronize_timeout(d, left);
		if (rc)
			goto out;
		slot = buf_free_slot(b, curslot);
		if (slot < 0) {
			rc = -EAGAIN;	/* cannot happen: nslots >= 2 */
			goto out;
		}
	}
	/* No reader can see this slot: it was never published or its readers
	 * all left during a grace period. */
	memcpy((char *)b + b->data_off + (uint64_t)slot * b->slot_size, data,
	       len);
	version = (cur >> 8) + 1;
	m[slot].length = len;
	m[slot].version = version;
	m[slot].state = LF_RCU_SLOT_CURRENT;
	/* rcu_assign_pointer: bytes and length before the new current; pairs
	 * with the acquire in lf_rcu_buf_read_lock. */
	lf_store_release64(&b->current, version << 8 | (uint64_t)slot);
	/* start_poll after the unpublish (it has the full barrier). */
	m[curslot].cookie = lf_rcu_start_poll(d);
	m[curslot].state = LF_RCU_SLOT_RETIRED;
out:
	lf_store_release64(&b->wlock, 0);
	return rc;
}
