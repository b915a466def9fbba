#include "treiber.h"

uint64_t lf_treiber_size(uint64_t capacity)
{
	return sizeof(struct lf_treiber) + capacity * sizeof(uint64_t);
}

void lf_treiber_init(struct lf_treiber *s, uint64_t capacity, int tagged)
{
	s->head.lo = LF_TREIBER_NIL;
	s->head.hi = 0;
	s->tagged = tagged != 0;
	s->capacity = capacity;
	for (uint64_t i = 0; i < capacity; i++)
		lf_write64(&s->next[i], LF_TREIBER_NIL);
}

/* Swing the head from snap's {top, tag} to new_top. */
static int head_cas(struct lf_treiber *s, uint64_t top, uint64_t tag,
		    uint64_t new_top)
{
	if (!s->tagged)  /* the ABA-prone CAS: compares the index only */
		return lf_cmpxchg64(&s->head.lo, top, new_top) == top;
	lf_u128_t old = { top, tag };
	return lf_cmpxchg128(&s->head, &old, (lf_u128_t){ new_top, tag + 1 });
}

static void read_head(struct lf_treiber *s, uint64_t *top, uint64_t *tag)
{
	/* Two loads may tear; the 16-byte CAS that follows validates both.
	 * Acquire on the index: the pusher's next[] store is visible before
	 * we read next[top]; pairs with the full-barrier CAS in push. */
	*tag = lf_read64(&s->head.hi);
	*top = lf_load_acquire64(&s->head.lo);
}

void lf_treiber_push(struct lf_treiber *s, uint64_t node)
{
	uint64_t top, tag;

	do {
		read_head(s, &top, &tag);
		/* Ordered before the node is published by the full-barrier CAS;
		 * pairs with the CAS-then-read of next[] in pop. */
		lf_write64(&s->next[node], top);
	} while (!head_cas(s, top, tag, node));
}

int lf_treiber_pop_begin(struct lf_treiber *s, struct lf_treiber_snap *snap)
{
	read_head(s, &snap->top, &snap->tag);
	if (snap->top == LF_TREIBER_NIL)
		return 0;
	snap->next = lf_read64(&s->next[snap->top]);
	return 1;
}

int lf_treiber_pop_commit(struct lf_treiber *s,
			  const struct lf_treiber_snap *snap)
{
	return head_cas(s, snap->top, snap->tag, snap->next);
}

uint64_t lf_treiber_pop(struct lf_treiber *s)
{
	struct lf_treiber_snap snap;

	do {
		if (!lf_treiber_pop_begin(s, &snap))
			return LF_TREIBER_NIL;
	} while (!lf_treiber_pop_commit(s, &snap));
	return snap.top;
}

/* Copy up to max node indexes from the top down; not atomic with respect to
 * concurrent pushes/pops (for printing a quiescent stack). */
uint64_t lf_treiber_walk(struct lf_treiber *s, uint64_t *out, uint64_t max)
{
	uint64_t n = 0, node = lf_read64(&s->head.lo);

	while (node != LF_TREIBER_NIL && node < s->capacity && n < max) {
		out[n++] = node;
		node = lf_read64(&s->next[node]);
	}
	return n;
}
