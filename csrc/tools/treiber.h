/*
 * A Treiber stack over a fixed pool of nodes, for the ABA demonstration.
 *
 * Nodes are indexes 0..capacity-1 into next[]; the head holds an index and a
 * tag.  A plain stack CASes the index only, so a pop that read head = A,
 * next = B can succeed after other threads popped A and B and pushed A back:
 * the head becomes B, a node that is no longer on the stack (ABA).  A tagged
 * stack CASes {index, tag} with lf_cmpxchg128 (x86-64 cmpxchg16b) and bumps
 * the tag on every change, so that stale pop fails and retries.
 *
 * Nodes are never freed, so reading next[] of a node popped meanwhile is
 * harmless: the CAS that follows rejects the stale value (tagged) or
 * installs it (plain: that is the bug being shown).
 *
 * pop_begin/pop_commit split a pop so a demo can script an interleaving.
 * Lock-free; push/pop may be called from any thread.
 */
#ifndef LF_TREIBER_H
#define LF_TREIBER_H

#include <stdint.h>
#include "arch/atomic.h"

/* cffi:begin */
#define LF_TREIBER_NIL UINT64_MAX

struct lf_treiber {
	lf_u128_t head;          /* lo = top node index (or NIL), hi = tag */
	uint64_t tagged;         /* 1: CAS {index, tag}; 0: CAS index only */
	uint64_t capacity;
	uint64_t next[];         /* next[i]: node below node i */
};

struct lf_treiber_snap {
	uint64_t top, tag, next;  /* what a pop read before its CAS */
};

uint64_t lf_treiber_size(uint64_t capacity);  /* bytes for the struct */
void lf_treiber_init(struct lf_treiber *s, uint64_t capacity, int tagged);
void lf_treiber_push(struct lf_treiber *s, uint64_t node);
uint64_t lf_treiber_pop(struct lf_treiber *s);          /* NIL if empty */
int lf_treiber_pop_begin(struct lf_treiber *s, struct lf_treiber_snap *snap);
int lf_treiber_pop_commit(struct lf_treiber *s,
			  const struct lf_treiber_snap *snap);
uint64_t lf_treiber_walk(struct lf_treiber *s, uint64_t *out, uint64_t max);
/* cffi:end */

#endif /* LF_TREIBER_H */
