/*
 * Regions: the one shared-memory mechanism every primitive uses.
 *
 * A region is a 64-byte header followed by one primitive's state.  It can sit
 * in private memory, in a caller's buffer, or in a named POSIX shared-memory
 * segment that other processes attach to.  The header lets an attacher check,
 * without writing anything, that the bytes really hold the primitive it
 * expects, laid out the way this build lays it out.
 *
 *   offset  field
 *        0  magic     LF_REGION_MAGIC, stored last by lf_region_publish()
 *        8  version   LF_LAYOUT_VERSION of the build that created it
 *       12  kind      LF_KIND_*
 *       16  size      total bytes, header included
 *       24  param[4]  kind-specific parameters (capacity, record size, ...)
 *       56  reserved  zero
 *       64  state     the primitive's state, 8-byte aligned (64-byte aligned
 *                     when the region itself is, as in named segments)
 *
 * Creation: zero the state, initialise it, fill the header fields, then
 * lf_region_publish().  Attach: lf_region_check().  The magic is written with
 * release order after everything else and read with acquire order before
 * anything else, so an attacher that sees the magic sees initialised state.
 */
#ifndef LF_REGION_H
#define LF_REGION_H

#include <stdint.h>

#define LF_REGION_MAGIC   0x4e4f494745524c46ULL  /* "FLREGION" little-endian */
/* cffi:begin */
/* Bumped whenever any primitive's state layout changes (2: the seqlock's
 * writer line and inline copy; 3: the reader-writer lock's reader slots;
 * 4: owner-word locks: the lock word is the owner id, ticket slots, packed
 * RW reader slots; 5: kfifo records never wrap: padding to the end of
 * the data area, header 0xFFFFFFFF; 6: a kfifo records producer may move
 * out over padding when it restarts at offset 0, which an older consumer
 * would misread), so a segment made by an older build is refused at
 * attach instead of misread. */
#define LF_LAYOUT_VERSION 6u
#define LF_REGION_HEADER  64u

enum lf_kind {
	LF_KIND_ATOMIC = 1,
	LF_KIND_SPINLOCK = 2,
	LF_KIND_TICKETLOCK = 3,
	LF_KIND_RWLOCK = 4,
	LF_KIND_SEQLOCK = 5,
	LF_KIND_RCU = 6,
	LF_KIND_KFIFO = 7,
};

/* lf_region_check() results. */
enum lf_region_err {
	LF_REGION_OK = 0,
	LF_REGION_EMAGIC = -1,    /* not a lockfree region (or not yet published) */
	LF_REGION_EVERSION = -2,  /* created by a build with another layout */
	LF_REGION_EKIND = -3,     /* a region of another primitive */
	LF_REGION_ESIZE = -4,     /* header size smaller than a header, or larger
				     than the bytes available */
};

struct lf_region {
	uint64_t magic;
	uint32_t version;
	uint32_t kind;
	uint64_t size;
	uint64_t param[4];
	uint64_t reserved;
};

/* Zero all size bytes, then fill kind and size; the magic stays 0. */
void lf_region_init(struct lf_region *r, uint32_t kind, uint64_t size);
void lf_region_publish(struct lf_region *r);
int lf_region_check(const struct lf_region *r, uint64_t avail, uint32_t kind);
/* cffi:end */

#endif /* LF_REGION_H */
