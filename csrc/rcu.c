#define _GNU_SOURCE
#include "rcu.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct lf_rcu_reader) == LF_CACHELINE,
	       "a reader slot is one cache line");
_Static_assert(offsetof(struct lf_rcu_domain, readers) == 2 * LF_CACHELINE,
	       "gp_ctr and the writers' words sit on their own lines");
_Static_assert(sizeof(struct lf_rcu_buf) == LF_CACHELINE,
	       "the buffer header is one cache line");

/*
 * Is the process recorded in an owner word (a reader slot's, gp_lock,
 * wlock) gone?  lf_pid_alive (lockwait.c) is the one liveness check: a
 * zombie counts as dead, a garbage pid (> INT_MAX, LF_RCU_RECLAIMING's
 * included) as dead, our own pid never.  A recycled pid looks alive: then
 * only the caller's deadline helps (documented).
 */
bool lf_rcu_owner_dead(uint64_t owner)
{
	uint32_t pid = lf_owner_pid(owner);

	if (pid == 0 || pid == lf_owner_pid(lf_owner_self()))
		return false;
	return !lf_pid_alive(pid);
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
		return LF_EINVAL;
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

int lf_rcu_handle_init(struct lf_rcu_dh *h, struct lf_rcu_domain *d,
		       uint64_t avail, uint32_t capacity, const char **field)
{
	uint32_t cap;

	memset(h, 0, sizeof(*h));
	if (avail < sizeof(*d))
		LF_RCU_CORRUPT("region size");
	cap = lf_read32(&d->capacity);
	if (cap < 1 || cap > LF_RCU_MAX_READERS || cap != capacity)
		LF_RCU_CORRUPT("domain.capacity");
	if (lf_rcu_domain_size(cap) > avail)
		LF_RCU_CORRUPT("domain.capacity (larger than the region)");
	if ((lf_read64(&d->gp_ctr) & ~LF_RCU_GP_PHASE) != LF_RCU_GP_COUNT)
		LF_RCU_CORRUPT("domain.gp_ctr");
	if (lf_read64(&d->hwm) > cap)
		LF_RCU_CORRUPT("domain.hwm");
	if (lf_read64(&d->nr_readers) > cap)
		LF_RCU_CORRUPT("domain.nr_readers");
	h->d = d;
	h->readers = d->readers;
	h->capacity = cap;
	return 0;
}

/* ----------------------------------------------------------- registration */

void lf_rcu_rh_init(struct lf_rcu_rh *r, const struct lf_rcu_dh *h,
		    const struct lf_rcu_bh *bh)
{
	memset(r, 0, sizeof(*r));
	r->dh = h;
	r->bh = bh;
	r->gp_ctr = &h->d->gp_ctr;
	r->idx = -1;
}

static int claimed(struct lf_rcu_rh *r, struct lf_rcu_reader *s, uint32_t i,
		   uint64_t me)
{
	r->owner = me;
	r->idx = i;
	r->slot = s;
	return (int)i;
}

int lf_rcu_register(struct lf_rcu_rh *r)
{
	const struct lf_rcu_dh *h = r->dh;
	uint64_t me = lf_owner_self(), hwm;
	uint32_t i;

	if (r->slot && r->owner == me)
		return (int)r->idx;
	/* Not registered, or a forked copy of a registration: the slot is
	 * the parent's, never ours to write. */
	r->slot = NULL;
	r->idx = -1;
	for (i = 0; i < h->capacity; i++) {
		struct lf_rcu_reader *s = &h->readers[i];

		if (lf_read64(&s->owner) || lf_cmpxchg64(&s->owner, 0, me))
			continue;
		lf_write64(&s->ctr, 0);
		lf_xadd64(&h->d->nr_readers, 1);
		/*
		 * Raise the scan limit before the first read_lock.  The
		 * cmpxchg is a full barrier: a writer whose scan loaded the
		 * old limit (or reader count) did so before it, so this
		 * reader's first section starts after that writer's flip and
		 * sees its new pointer (pairs with the lf_smp_mb() after the
		 * flip).
		 */
		hwm = lf_read64(&h->d->hwm);
		while (hwm < i + 1) {
			uint64_t seen = lf_cmpxchg64(&h->d->hwm, hwm, i + 1);

			if (seen == hwm)
				break;
			hwm = seen;
		}
		return claimed(r, s, i, me);
	}
	/* Full: take over a slot whose process is gone (killed, or exited
	 * without unregistering, as os._exit does).  The cmpxchg from the
	 * dead id fails if a writer reclaimed it meanwhile. */
	for (i = 0; i < h->capacity; i++) {
		struct lf_rcu_reader *s = &h->readers[i];
		uint64_t o = lf_read64(&s->owner);

		if (o && o != LF_RCU_RECLAIMING && lf_rcu_owner_dead(o) &&
		    lf_cmpxchg64(&s->owner, o, me) == o) {
			lf_write64(&s->ctr, 0);
			lf_xadd64(&h->d->nr_dead, 1);
			return claimed(r, s, i, me);
		}
	}
	return LF_ENOSPC;
}

int lf_rcu_unregister(struct lf_rcu_rh *r)
{
	struct lf_rcu_reader *s = r->slot;

	if (!s)
		return 0;
	if (lf_owner_pid(r->owner) != lf_owner_pid(lf_owner_self())) {
		/* A forked copy: the slot belongs to the parent. */
		r->slot = NULL;
		r->idx = -1;
		return 0;
	}
	if (lf_read64(&s->ctr) & LF_RCU_NEST_MASK &&
	    lf_read64(&s->owner) == r->owner)
		return LF_EBUSY;
	r->slot = NULL;
	r->idx = -1;
	/* Ours only if it still names us (a writer may have reclaimed it).
	 * The cmpxchg orders everything this reader did before the slot is
	 * free: pairs with lf_rcu_register's cmpxchg. */
	if (lf_cmpxchg64(&s->owner, r->owner, 0) == r->owner)
		lf_xadd64(&r->dh->d->nr_readers, -1);
	return 0;
}

/* --------------------------------------------------------------- readers */

/* Not registered, or registered by another process or thread. */
static __attribute__((noinline)) int read_lock_slow(struct lf_rcu_rh *r)
{
	int rc;

	if (r->slot && lf_owner_pid(r->owner) == lf_owner_pid(lf_owner_self()))
		return LF_EMISUSE;	/* another thread's handle */
	if (!r->slot)
		return LF_EPERM;	/* Python registers, then retries */
	/* A forked child: a slot of its own (the parent's stays the
	 * parent's), then the section. */
	rc = lf_rcu_register(r);
	if (rc < 0)
		return rc;
	return lf_rcu_read_lock(r);
}

int lf_rcu_read_lock(struct lf_rcu_rh *r)
{
	struct lf_rcu_reader *s = r->slot;
	uint64_t tmp;

	if (__builtin_expect(!s || r->owner != lf_owner_self(), 0))
		return read_lock_slow(r);
	tmp = lf_read64(&s->ctr);
	if (tmp & LF_RCU_NEST_MASK) {
		/* Nested: only the outermost level snapshots the phase. */
		lf_write64(&s->ctr, tmp + LF_RCU_GP_COUNT);
		return 0;
	}
	if (lf_read64(&s->owner) != r->owner)
		return LF_EPERM;	/* reclaimed (or overwritten) */
	/* Phase bit only: a scribbled gp_ctr never makes the nesting count
	 * wrong (two ALU ops). */
	lf_write64(&s->ctr, (lf_read64(r->gp_ctr) & LF_RCU_GP_PHASE) |
			    LF_RCU_GP_COUNT);
	/*
	 * Order the ctr store before every load of the read section (the
	 * rcu_dereference that follows): store->load, so a full barrier.
	 * Pairs with the lf_smp_mb() after each phase flip in
	 * lf_rcu_synchronize_until: either the writer sees this ctr, or this
	 * section sees everything the writer stored before the flip.
	 */
	lf_smp_mb();
	return 0;
}

int lf_rcu_read_unlock(struct lf_rcu_rh *r)
{
	struct lf_rcu_reader *s = r->slot;
	uint64_t tmp;

	/* A forked copy never writes the parent's slot. */
	if (__builtin_expect(!s || r->owner != lf_owner_self(), 0))
		return LF_EPERM;
	tmp = lf_read64(&s->ctr);
	if ((tmp & LF_RCU_NEST_MASK) == LF_RCU_GP_COUNT) {
		/*
		 * Every load and store of the section completes before the
		 * writer can see it ended: pairs with the acquire load of ctr
		 * in wait_for_readers.  Only load->store and store->store
		 * order is needed here, which a release store gives (a plain
		 * mov on x86-64); liburcu's mb flavor puts a full smp_mb()
		 * here because it targets weaker CPUs with the same code.
		 */
		lf_store_release64(&s->ctr, 0);
		return 0;
	}
	if (!(tmp & LF_RCU_NEST_MASK))
		return LF_EPERM;
	lf_write64(&s->ctr, tmp - LF_RCU_GP_COUNT);
	return 0;
}

int64_t lf_rcu_read_depth(struct lf_rcu_rh *r)
{
	if (!r->slot || r->owner != lf_owner_self())
		return 0;
	return (int64_t)(lf_read64(&r->slot->ctr) & LF_RCU_NEST_MASK);
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
