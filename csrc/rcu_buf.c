/*
 * RcuBuffer (lf_rcu_buf_*): bytes in version slots, published through a
 * domain embedded in the same region (rcu.h).  Every slot number and length
 * read from the segment is checked against the handle's geometry
 * (struct lf_rcu_bh) before it selects memory.
 */
#include "rcu.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

uint64_t lf_rcu_buf_size(uint32_t capacity, uint32_t nslots,
			 uint64_t slot_size)
{
	if (capacity < 1 || capacity > LF_RCU_MAX_READERS || nslots < 2 ||
	    nslots > LF_RCU_BUF_MAX_SLOTS || slot_size < 1 ||
	    slot_size > LF_RCU_BUF_MAX_SIZE)
		return 0;
	return sizeof(struct lf_rcu_buf) + lf_rcu_domain_size(capacity) +
	       LF_RCU_ALIGN64((uint64_t)nslots * sizeof(struct lf_rcu_buf_meta)) +
	       (uint64_t)nslots * LF_RCU_ALIGN64(slot_size);
}

static struct lf_rcu_domain *buf_domain(struct lf_rcu_buf *b)
{
	return (struct lf_rcu_domain *)(b + 1);
}

int lf_rcu_buf_init(struct lf_rcu_buf *b, uint32_t capacity, uint32_t nslots,
		    uint64_t slot_size)
{
	struct lf_rcu_buf_meta *m;
	int rc;

	if (!lf_rcu_buf_size(capacity, nslots, slot_size))
		return LF_EINVAL;
	rc = lf_rcu_init(buf_domain(b), capacity);
	if (rc)
		return rc;
	b->slot_size = LF_RCU_ALIGN64(slot_size);
	b->nslots = nslots;
	b->meta_off = sizeof(*b) + lf_rcu_domain_size(capacity);
	b->data_off = b->meta_off +
		      LF_RCU_ALIGN64((uint64_t)nslots * sizeof(struct lf_rcu_buf_meta));
	/* Version 0: empty, in slot 0. */
	m = (struct lf_rcu_buf_meta *)((char *)b + b->meta_off);
	m[0].state = LF_RCU_SLOT_CURRENT;
	lf_store_release64(&b->current, 0);
	return 0;
}

int lf_rcu_buf_handle_init(struct lf_rcu_bh *h, struct lf_rcu_buf *b,
			   uint64_t avail, uint32_t capacity, uint32_t nslots,
			   uint64_t size, const char **field)
{
	uint64_t total = lf_rcu_buf_size(capacity, nslots, size), meta_off;
	struct lf_rcu_buf_meta *m;
	uint64_t cur;
	uint32_t i;
	int rc;

	memset(h, 0, sizeof(*h));
	/* The header's parameters give the geometry; every shared copy of
	 * it must agree. */
	if (!total)
		LF_RCU_CORRUPT("region header parameters");
	if (total > avail)
		LF_RCU_CORRUPT("region size");
	rc = lf_rcu_handle_init(&h->dom, buf_domain(b), avail - sizeof(*b),
				capacity, field);
	if (rc)
		return rc;
	meta_off = sizeof(*b) + lf_rcu_domain_size(capacity);
	if (lf_read32(&b->nslots) != nslots)
		LF_RCU_CORRUPT("nslots");
	if (lf_read64(&b->slot_size) != LF_RCU_ALIGN64(size))
		LF_RCU_CORRUPT("slot_size");
	if (lf_read64(&b->meta_off) != meta_off)
		LF_RCU_CORRUPT("meta_off");
	if (lf_read64(&b->data_off) != meta_off +
	    LF_RCU_ALIGN64((uint64_t)nslots * sizeof(struct lf_rcu_buf_meta)))
		LF_RCU_CORRUPT("data_off");
	m = (struct lf_rcu_buf_meta *)((char *)b + meta_off);
	cur = lf_load_acquire64(&b->current);
	if ((cur & 0xff) >= nslots)
		LF_RCU_CORRUPT("current (slot number)");
	for (i = 0; i < nslots; i++) {
		if (lf_read32(&m[i].state) > LF_RCU_SLOT_RETIRED)
			LF_RCU_CORRUPT("meta.state");
		if (lf_read64(&m[i].length) > size)
			LF_RCU_CORRUPT("meta.length");
	}
	h->b = b;
	h->meta = m;
	h->data = (char *)b + lf_read64(&b->data_off);
	h->slot_size = LF_RCU_ALIGN64(size);
	h->size = size;
	h->nslots = nslots;
	return 0;
}

int64_t lf_rcu_buf_read_lock(struct lf_rcu_rh *r)
{
	const struct lf_rcu_bh *h = r->bh;
	uint64_t cur, slot, len;
	int rc = lf_rcu_read_lock(r);

	if (rc)
		return rc;
	/* rcu_dereference of the current version: pairs with the release
	 * store in lf_rcu_buf_publish (the bytes and length come first).
	 * Slot and length come from the segment: checked against the
	 * handle's geometry before anyone uses them. */
	cur = lf_load_acquire64(&h->b->current);
	slot = cur & 0xff;
	if (__builtin_expect(slot >= h->nslots, 0))
		goto corrupt;
	/* Longer than any version (not merely than the slot): a peer wrote
	 * it, and a reader must never see more than size bytes. */
	len = lf_read64(&h->meta[slot].length);
	if (__builtin_expect(len > h->size, 0))
		goto corrupt;
	return (int64_t)(len << 8 | slot);
corrupt:
	lf_rcu_read_unlock(r);
	return LF_ECORRUPT;
}

uint64_t lf_rcu_buf_version(const struct lf_rcu_bh *h)
{
	return lf_load_acquire64(&h->b->current) >> 8;
}

/*
 * A free slot, recycling retired ones whose grace period has elapsed
 * (after a full grace period, synced: every retired one).  States are read
 * from the segment: one a peer scribbled into something else is retired
 * now, so it is reused only after a grace period.
 */
static int buf_free_slot(const struct lf_rcu_bh *h, uint32_t curslot,
			 bool synced)
{
	struct lf_rcu_buf_meta *m = h->meta;
	uint32_t i;

	for (i = 0; i < h->nslots; i++) {
		uint32_t st = lf_read32(&m[i].state);

		if (i == curslot)
			continue;
		/* A writer that died between publishing and retiring left
		 * its old slot marked current: retire it now. */
		if (st != LF_RCU_SLOT_FREE && st != LF_RCU_SLOT_RETIRED) {
			lf_write64(&m[i].cookie, lf_rcu_start_poll(&h->dom));
			lf_write32(&m[i].state, LF_RCU_SLOT_RETIRED);
			continue;
		}
		if (st == LF_RCU_SLOT_FREE)
			return (int)i;
	}
	for (i = 0; i < h->nslots; i++) {
		if (i != curslot &&
		    lf_read32(&m[i].state) == LF_RCU_SLOT_RETIRED &&
		    (synced ||
		     lf_rcu_poll_state(&h->dom, lf_read64(&m[i].cookie)))) {
			lf_write32(&m[i].state, LF_RCU_SLOT_FREE);
			lf_write64(&h->b->nr_recycled,
				   lf_read64(&h->b->nr_recycled) + 1);
			return (int)i;
		}
	}
	return -1;
}

int lf_rcu_buf_publish(const struct lf_rcu_bh *h, const char *data,
		       uint64_t len, uint64_t deadline)
{
	struct lf_rcu_buf *b = h->b;
	struct lf_rcu_buf_meta *m = h->meta;
	uint64_t cur, version;
	uint32_t curslot;
	struct lf_wait w;
	int rc, slot;

	if (len > h->size)
		return LF_EMSGSIZE;
	lf_wait_init(&w, deadline);
	lf_wait_resume(&w, h);
	rc = lf_rcu_owner_lock(&b->wlock, lf_owner_self(), &w, NULL);
	if (rc)
		return rc;
	cur = lf_read64(&b->current);
	curslot = (uint32_t)(cur & 0xff);
	if (curslot >= h->nslots)
		curslot = UINT32_MAX;	/* scribbled: no slot to keep */
	slot = buf_free_slot(h, curslot, false);
	if (slot < 0) {
		/* Every other slot is retired (all retired before this
		 * grace period began, since we hold wlock): one frees all. */
		rc = lf_rcu_synchronize_until(&h->dom, deadline);
		if (rc)
			goto out;
		slot = buf_free_slot(h, curslot, true);
		if (slot < 0) {
			rc = LF_ECORRUPT;  /* only a peer's scribble does it */
			goto out;
		}
	}
	/* No reader can see this slot: it was never published or its readers
	 * all left during a grace period.  slot < h->nslots: inside the
	 * validated data area. */
	memcpy(h->data + (uint64_t)slot * h->slot_size, data, len);
	version = (cur >> 8) + 1;
	lf_write64(&m[slot].length, len);
	lf_write64(&m[slot].version, version);
	lf_write32(&m[slot].state, LF_RCU_SLOT_CURRENT);
	/* rcu_assign_pointer: bytes and length before the new current; pairs
	 * with the acquire in lf_rcu_buf_read_lock. */
	lf_store_release64(&b->current, version << 8 | (uint64_t)slot);
	if (curslot != UINT32_MAX) {
		/* start_poll after the unpublish (it has the full barrier). */
		lf_write64(&m[curslot].cookie, lf_rcu_start_poll(&h->dom));
		lf_write32(&m[curslot].state, LF_RCU_SLOT_RETIRED);
	}
out:
	/* Pairs with the cmpxchg taking it. */
	lf_store_release64(&b->wlock, 0);
	return rc;
}
