/*
 * Read-copy-update (lf_rcu_*): the kernel's rcu_read_lock / rcu_dereference /
 * rcu_assign_pointer / synchronize_rcu / call_rcu, on liburcu's user-space
 * grace-period algorithm.
 *
 * Algorithm (liburcu's "mb" flavor; liburcu's "memb" is the same algorithm
 * with the reader-side fences moved into membarrier(2) calls by the writer):
 *
 *   - A domain has one grace-period word, gp_ctr = LF_RCU_GP_COUNT | phase,
 *     and a fixed-capacity registry of reader slots, one cache line each.
 *     A reader thread registers once and then only ever writes its own line.
 *   - The outermost read_lock snapshots gp_ctr (count 1 + current phase) into
 *     the reader's ctr; nested ones add LF_RCU_GP_COUNT.  read_unlock
 *     subtracts it.  The low 32 bits count nesting; bit 32 is the phase.
 *   - synchronize flips the phase and waits until no reader is inside a
 *     section begun in the old phase, twice: a reader that snapshotted gp_ctr
 *     just before the first flip but published it after the writer looked
 *     would be missed by one flip, never by two (see lf_rcu_synchronize()).
 *
 * Readers never block, never loop and never write shared lines: lock and
 * unlock are a handful of instructions plus one full barrier (outermost
 * level only).  Writers serialise on a lock word in the domain.
 *
 * Placement: a domain is position-independent (no pointers), so it can live
 * in shared memory and serve reader threads of several processes.  Reader
 * slots record the owner's pid and tid, so synchronize can tell that it is
 * called from inside a read section (an error, LF_EDEADLK, instead of waiting
 * for itself forever) and that a reader process died inside a read section
 * (its slot is reclaimed: lf_rcu_domain.nr_dead counts those).
 *
 * call_rcu needs a thread, which is a per-process resource: it lives in a
 * separate, malloc'ed lf_rcu_reclaimer attached to a domain.
 *
 * Errors are the LF_E* codes of errors.h; 0 is success.
 */
#ifndef LF_RCU_H
#define LF_RCU_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

#define LF_RCU_GP_COUNT		1ULL
#define LF_RCU_GP_PHASE		(1ULL << 32)
#define LF_RCU_NEST_MASK	(LF_RCU_GP_PHASE - 1)
/* A reader slot's owner while a writer reclaims it from a dead process:
 * nonzero, so lf_rcu_register skips it; no process has this pid. */
#define LF_RCU_RECLAIMING	(~0ULL)

/* cffi:begin */
#define LF_RCU_MAX_READERS	4096

/* One reader slot: one cache line, written only by its owner (and by
 * lf_rcu_register/unregister and dead-reader reclaim, which cmpxchg owner). */
struct lf_rcu_reader {
	uint64_t ctr;		/* 0: outside; else gp_ctr snapshot + nesting */
	uint64_t owner;		/* 0: free; else pid << 32 | tid */
	uint32_t index;		/* position in the registry (informative:
				 * never used to find memory) */
	uint32_t pad0;
	uint64_t pad[5];
};

struct lf_rcu_domain {
	/* Line 0: read by every outermost read_lock, written per flip. */
	uint64_t gp_ctr;
	uint32_t capacity;	/* reader slots */
	uint32_t pad0;
	uint64_t pad1[6];
	/* Line 1: writers only. */
	uint64_t gp_lock;	/* 0 or owner (pid << 32 | tid) */
	uint64_t gp_seq;	/* completed grace periods * 2 (+1 while one
				 * is in progress): start_poll/poll_state */
	uint64_t nr_dead;	/* reader slots reclaimed from dead processes */
	uint64_t nr_gp;		/* grace periods completed (statistics) */
	uint64_t hwm;		/* 1 + highest slot ever registered: scans
				 * stop there */
	uint64_t nr_readers;	/* registered readers */
	uint64_t pad2[2];
	struct lf_rcu_reader readers[];
};

/*
 * Handles.  Shared memory is input from other processes, which may be
 * buggy, dying or hostile: the geometry (capacity, slot count, slot size,
 * offsets) is validated ONCE, at create or attach, and copied into a
 * per-process handle; operations use only the handle's copies, and every
 * value read from the segment that selects memory (the current slot, a
 * version's length, the scan limit) is bounds-checked before use.  The worst
 * a peer's scribble does is wrong data inside the segment, LF_ECORRUPT or a
 * timeout; never an access outside the segment.
 *
 *   struct lf_rcu_dh   a domain handle (geometry of one domain);
 *   struct lf_rcu_bh   an RcuBuffer handle (its domain's handle + slots);
 *   struct lf_rcu_rh   one thread's reader registration in a domain.
 *
 * Fork: a reader handle records the owner id (lf_owner_self(): pid << 32 |
 * tid) it registered with.  A copy of it in a forked child sees another id
 * on its next read_lock and registers a slot of its own instead of writing
 * the parent's (lf_owner_self() is reset in a fork child); its unlock and
 * unregister never touch the parent's slot.  A writer reclaims a slot only
 * when the process recorded in it is dead, so it never reclaims a slot of a
 * live process.
 */
struct lf_rcu_dh {
	struct lf_rcu_domain *d;
	struct lf_rcu_reader *readers;	/* d->readers */
	uint32_t capacity;		/* validated copy of d->capacity */
	uint32_t pad;
};

struct lf_rcu_bh {
	struct lf_rcu_dh dom;		/* the embedded domain */
	struct lf_rcu_buf *b;
	struct lf_rcu_buf_meta *meta;	/* b + meta_off (validated) */
	char *data;			/* b + data_off (validated) */
	uint64_t slot_size;		/* bytes per slot, a multiple of 64 */
	uint64_t size;			/* longest version: the buffer's size */
	uint32_t nslots;
	uint32_t pad;
};

struct lf_rcu_rh {
	struct lf_rcu_reader *slot;	/* NULL: not registered */
	const struct lf_rcu_dh *dh;
	const struct lf_rcu_bh *bh;	/* RcuBuffer readers, else NULL */
	uint64_t *gp_ctr;		/* &dh->d->gp_ctr */
	uint64_t owner;			/* lf_owner_self() when registered */
	int64_t idx;			/* slot index, -1 if none */
};

/* Bytes a domain with capacity reader slots takes (a multiple of 64). */
uint64_t lf_rcu_domain_size(uint32_t capacity);
/* Initialise zeroed memory; capacity in 1..LF_RCU_MAX_READERS. */
int lf_rcu_init(struct lf_rcu_domain *d, uint32_t capacity);
/*
 * Validate the domain at d (avail bytes mapped from d on; capacity the
 * value the region header promises) and fill h.  0, or LF_ECORRUPT with
 * *field naming the bad field.
 */
int lf_rcu_handle_init(struct lf_rcu_dh *h, struct lf_rcu_domain *d,
		       uint64_t avail, uint32_t capacity, const char **field);

/* A reader handle of h (bh: the RcuBuffer's, or NULL), not registered. */
void lf_rcu_rh_init(struct lf_rcu_rh *r, const struct lf_rcu_dh *h,
		    const struct lf_rcu_bh *bh);
/* Claim a free reader slot for the calling thread: its index, or
 * LF_ENOSPC.  Registered already: its index. */
int lf_rcu_register(struct lf_rcu_rh *r);
/* Release the slot: 0 (also if not registered, or a forked copy: the
 * parent's slot is left alone), LF_EBUSY inside a read section. */
int lf_rcu_unregister(struct lf_rcu_rh *r);

/* Read side: 0, or LF_EPERM (not registered; slot reclaimed or unbalanced
 * unlock), LF_ENOSPC (a forked child found no free slot), LF_EMISUSE (the
 * handle of another thread). */
int lf_rcu_read_lock(struct lf_rcu_rh *r);
int lf_rcu_read_unlock(struct lf_rcu_rh *r);
/* Nesting depth of r's current read section (0 outside). */
int64_t lf_rcu_read_depth(struct lf_rcu_rh *r);
/* cffi:end */

/* rcu_assign_pointer / rcu_dereference on a pointer-sized word. */
void lf_rcu_assign(void **slot, void *v);
void *lf_rcu_dereference(void **slot);

/*
 * Wait until every read section that began before the call has ended, or
 * the absolute deadline (lf_now_ns(); LF_FOREVER) passes: LF_EAGAIN
 * (nothing is left half done: a new call starts a new grace period).
 * LF_EDEADLK if the calling thread is inside a read section of the domain.
 */
int lf_rcu_synchronize(const struct lf_rcu_dh *h);
/* cffi:begin */
int lf_rcu_synchronize_until(const struct lf_rcu_dh *h, uint64_t deadline);

/* Polling (liburcu >= 0.14's start_poll_synchronize_rcu / poll_state): a
 * cookie, then "has a full grace period elapsed since?".  start_poll does not
 * start one: someone must synchronize (lf_rcu_reclaimer_start_poll asks the
 * reclaimer thread to). */
uint64_t lf_rcu_start_poll(const struct lf_rcu_dh *h);
int lf_rcu_poll_state(const struct lf_rcu_dh *h, uint64_t cookie);
/* cffi:end */

/* call_rcu: a per-process reclaimer thread that batches callbacks. */
struct lf_rcu_reclaimer;
typedef void (*lf_rcu_cb)(void *arg);

/* h is copied. */
struct lf_rcu_reclaimer *lf_rcu_reclaimer_new(const struct lf_rcu_dh *h);
/* Run every queued callback (barrier), stop the thread, free. */
void lf_rcu_reclaimer_free(struct lf_rcu_reclaimer *rc);
/* Queue fn(arg) to run after a grace period: 0 or LF_ENOMEM. */
int lf_rcu_call(struct lf_rcu_reclaimer *rc, lf_rcu_cb fn, void *arg);
/* Wait until every callback queued before the call has run. */
void lf_rcu_barrier(struct lf_rcu_reclaimer *rc);
uint64_t lf_rcu_reclaimer_start_poll(struct lf_rcu_reclaimer *rc);

/*
 * RcuBuffer: a byte blob with nslots version slots, published through a
 * domain embedded in the same region (so it works across processes).
 */
struct lf_rcu_buf_meta {
	uint64_t version;	/* of the bytes in the slot */
	uint64_t length;
	uint64_t cookie;	/* retired: start_poll cookie; free when polled */
	uint32_t state;		/* LF_RCU_SLOT_* */
	uint32_t pad;
};

enum { LF_RCU_SLOT_FREE = 0, LF_RCU_SLOT_CURRENT = 1, LF_RCU_SLOT_RETIRED = 2 };

/* cffi:begin */
/* Layout: this 64-byte header, the domain, meta[nslots], data. */
struct lf_rcu_buf {
	uint64_t current;	/* published: version << 8 | slot */
	uint64_t wlock;		/* writers: 0 or owner (pid << 32 | tid) */
	uint64_t slot_size;	/* bytes per slot, a multiple of 64 */
	uint64_t meta_off;	/* from the start of this struct */
	uint64_t data_off;
	uint32_t nslots;
	uint32_t pad0;
	uint64_t nr_recycled;	/* slots reused after a grace period */
	uint64_t pad1;
};

#define LF_RCU_BUF_MAX_SLOTS 255
#define LF_RCU_BUF_MAX_SIZE (1ULL << 40)

/* Bytes of a buffer region; 0 if a parameter is out of range. */
uint64_t lf_rcu_buf_size(uint32_t capacity, uint32_t nslots,
			 uint64_t slot_size);
int lf_rcu_buf_init(struct lf_rcu_buf *b, uint32_t capacity, uint32_t nslots,
		    uint64_t slot_size);
/*
 * Validate the buffer at b (avail bytes mapped from b on) against the
 * parameters the region header promises and fill h: 0, or LF_ECORRUPT with
 * *field naming the bad field.
 */
int lf_rcu_buf_handle_init(struct lf_rcu_bh *h, struct lf_rcu_buf *b,
			   uint64_t avail, uint32_t capacity, uint32_t nslots,
			   uint64_t size, const char **field);
/*
 * Reader: read_lock on r (a reader handle of the buffer) and return the
 * current version as length << 8 | slot; or, unlocked, a negative code
 * (lf_rcu_read_lock's, or LF_ECORRUPT: the current slot or its length is
 * out of range).
 */
int64_t lf_rcu_buf_read_lock(struct lf_rcu_rh *r);
/* Writer: copy len bytes into a free slot and publish them; the old version's
 * slot is reused only after a grace period.  0, LF_EMSGSIZE, LF_EAGAIN (the
 * deadline passed), LF_EDEADLK. */
int lf_rcu_buf_publish(const struct lf_rcu_bh *h, const char *data,
		       uint64_t len, uint64_t deadline);
uint64_t lf_rcu_buf_version(const struct lf_rcu_bh *h);
/* cffi:end */

/* Internal, shared by rcu.c, rcu_sync.c, rcu_call.c and rcu_buf.c. */
#define LF_RCU_ALIGN64(x) (((x) + 63) & ~(uint64_t)63)
/* Validation failure in a *_handle_init: name the field, LF_ECORRUPT. */
#define LF_RCU_CORRUPT(name)			\
	do {					\
		if (field)			\
			*field = (name);	\
		return LF_ECORRUPT;		\
	} while (0)
/* Is the process in an owner word gone (lf_pid_alive; our own never)? */
bool lf_rcu_owner_dead(uint64_t owner);
/* Take an owner word (gp_lock, wlock) by cmpxchg 0 -> me, stealing it from
 * a dead owner process: 0; LF_EAGAIN at w's deadline; LF_EDEADLK if it names
 * the caller; 1 (not taken) if poll is given and a grace period of that
 * domain completed meanwhile. */
struct lf_wait;
int lf_rcu_owner_lock(uint64_t *word, uint64_t me, struct lf_wait *w,
		      const struct lf_rcu_dh *poll);

#endif /* LF_RCU_H */
