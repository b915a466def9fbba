#include "region.h"
#include "arch/atomic.h"

#include <string.h>

_Static_assert(sizeof(struct lf_region) == LF_REGION_HEADER,
	       "the region header is one cache line");

void lf_region_init(struct lf_region *r, uint32_t kind, uint64_t size)
{
	memset(r, 0, size);
	r->kind = kind;
	r->size = size;
}

void lf_region_publish(struct lf_region *r)
{
	r->version = LF_LAYOUT_VERSION;
	r->reserved = 0;
	/* Publish: the header fields and the primitive's initialised state are
	 * stored before the magic.  Pairs with the acquire load of the magic
	 * in lf_region_check(). */
	lf_store_release64(&r->magic, LF_REGION_MAGIC);
}

int lf_region_check(const struct lf_region *r, uint64_t avail, uint32_t kind)
{
	/* Pairs with the release store in lf_region_publish(): nothing below
	 * is read before the magic. */
	if (avail < LF_REGION_HEADER ||
	    lf_load_acquire64(&r->magic) != LF_REGION_MAGIC)
		return LF_REGION_EMAGIC;
	if (r->version != LF_LAYOUT_VERSION)
		return LF_REGION_EVERSION;
	if (r->kind != kind)
		return LF_REGION_EKIND;
	if (r->size < LF_REGION_HEADER || r->size > avail)
		return LF_REGION_ESIZE;
	return LF_REGION_OK;
}
