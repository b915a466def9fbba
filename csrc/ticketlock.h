/*
 * Ticket spinlock (lf_ticket_*): FIFO.  An arrival takes the next ticket
 * (`tail`) and waits until `head` ("now serving") reaches it; unlock
 * advances head.  Waiters are served in arrival order, so nobody starves,
 * but a preempted waiter whose turn comes stalls everyone behind it (the
 * price of fairness when threads outnumber cores).
 *
 * Tickets are recorded, not just counted.  Ticket t lives in slot
 * t % LF_TICKET_SLOTS (permuted across cache lines) as one word: its taker's id and t itself (a tag).
 * Taking ticket t is claiming that slot with one cmpxchg (empty or stale ->
 * tag t | my id); `tail` is advanced afterwards, by the taker or by any
 * arrival that finds slot t claimed (helping, so a taker killed between
 * the two leaves nothing half-done).  The holder is, by definition, the
 * taker recorded in slot head % LF_TICKET_SLOTS: being served stores
 * nothing, and unlock is one release store of head + 1.  So whoever is
 * killed, at any instruction, is either not in the queue or named in a
 * slot: no kill window, and no separate owner word to get out of step.
 *
 * Giving up (deadline, Ctrl-C, a dead holder) is one cmpxchg on the
 * waiter's own slot, adding LF_TICKET_ABANDONED; whoever then finds an
 * abandoned ticket at head (waiters, arrivals, trylock, locked()) skips it
 * with a cmpxchg on head.  So a given-up ticket never stalls the queue, and
 * a waiter can give up at any time, wherever it is in the queue: a timeout
 * is honoured whatever the queue length.  An abandoned ticket at head is
 * simply skipped, which also covers a waiter whose turn came just as it
 * gave up.
 *
 * At most LF_TICKET_SLOTS tickets are out at once.  A further arrival
 * waits for a place in line (without a ticket: it can give up at any time,
 * and is not FIFO with other such arrivals).
 *
 * Dead owners: a waiter that checks liveness (after its spin budget, every
 * 10 ms, on timeout) looks at the taker of the ticket at head: the holder,
 * or a waiter killed in line whose turn has come.  If it is dead the waiter
 * gives its own ticket up and returns -id; lf_ticket_recover() takes the
 * dead taker's turn over (one cmpxchg on its slot).
 *
 * The slot word: bit 63 LF_TICKET_ABANDONED, bits 44..62 the low 19 bits
 * of the ticket, bits 22..43 pid, bits 0..21 tid (Linux pids and tids are
 * below PID_MAX_LIMIT = 2^22).  A stale slot could pass for a fresh one
 * only after 2^19 more tickets, all while a taker is stopped between two
 * loads; a taker re-checks tail after claiming and undoes a claim that
 * cannot be right.
 */
#ifndef LF_TICKETLOCK_H
#define LF_TICKETLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "lockwait.h"

#define LF_TICKET_ABANDONED (1ull << 63)  /* in a slot: that ticket gave up */
#define LF_TICKET_TAG_SHIFT 44
#define LF_TICKET_TAG_MASK 0x7FFFFull
#define LF_TICKET_ID_BITS 22

/* cffi:begin */
#define LF_TICKET_SLOTS 64u
#define LF_TICKET_QUEUED 2  /* lf_ticket_take(): >= this is ticket + 2 */

typedef struct lf_ticketlock {
	uint32_t head;    /* ticket being served */
	uint32_t tail;    /* next ticket to hand out */
	uint32_t flags;   /* LF_LOCK_STATS */
	uint32_t pad_;
	uint64_t pad1_;   /* (was the owner word beside the tickets) */
	lf_lockstats_t stats;
	uint64_t slot[LF_TICKET_SLOTS];  /* see above; 0 never used */
} lf_ticketlock_t;
/* cffi:end */

/* Slot words. */
static inline uint64_t lf_ticket_enc(uint32_t t, uint64_t id)
{
	const uint64_t m = (1ull << LF_TICKET_ID_BITS) - 1;
	return ((uint64_t)t & LF_TICKET_TAG_MASK) << LF_TICKET_TAG_SHIFT |
	       (lf_owner_pid(id) & m) << LF_TICKET_ID_BITS |
	       (lf_owner_tid(id) & m);
}

static inline uint64_t lf_ticket_slot_id(uint64_t s)
{
	const uint64_t m = (1ull << LF_TICKET_ID_BITS) - 1;
	return (s >> LF_TICKET_ID_BITS & m) << 32 | (s & m);
}

/* Does slot word s record ticket t (abandoned or not)? */
static inline bool lf_ticket_is(uint64_t s, uint32_t t)
{
	return s != 0 && (s >> LF_TICKET_TAG_SHIFT & LF_TICKET_TAG_MASK) ==
			 (t & LF_TICKET_TAG_MASK);
}

/* cffi:begin */
void lf_ticket_init(lf_ticketlock_t *l, uint32_t flags);

/* Take a ticket: LF_ACQUIRED if served at once, LF_TICKET_QUEUED + ticket
 * if queued (continue with lf_ticket_wait() or lf_ticket_abandon()), 0 if
 * the deadline passed with no place in line, -id if a dead holder blocks
 * the queue. */
int64_t lf_ticket_take(lf_ticketlock_t *l, uint64_t deadline);
/* Wait for ticket t until deadline.  1 acquired; 0 deadline passed (the
 * ticket is kept if !give_up, else given up); -id the taker of the ticket
 * at head died (ours is given up). */
int64_t lf_ticket_wait(lf_ticketlock_t *l, uint32_t t, uint64_t deadline,
		       int give_up);
/* Give ticket t up (one cmpxchg): 0, or LF_EPERM if t is not the
 * caller's waiting ticket.  If its turn had come, the lock is passed on. */
int lf_ticket_abandon(lf_ticketlock_t *l, uint32_t t);
/* cffi:end */

static inline int64_t lf_ticket_lock_until(lf_ticketlock_t *l,
					   uint64_t deadline)
{
	int64_t r = lf_ticket_take(l, deadline);
	if (r < LF_TICKET_QUEUED)
		return r;
	return lf_ticket_wait(l, (uint32_t)(r - LF_TICKET_QUEUED), deadline, 1);
}

static inline int64_t lf_ticket_lock(lf_ticketlock_t *l)
{
	return lf_ticket_lock_until(l, LF_FOREVER);
}

int lf_ticket_unlock(lf_ticketlock_t *l);  /* 0, or LF_EPERM: not held */

/* Out-of-line calls (out-of-line copies of the inline lock and unlock, for
 * cffi, are binding shims: csrc/shims/ticketlock.h). */
/* cffi:begin */
bool lf_ticket_try_acquire(lf_ticketlock_t *l);  /* never queues */
int lf_ticket_release_counted(lf_ticketlock_t *l);
bool lf_ticket_locked(lf_ticketlock_t *l);
uint64_t lf_ticket_owner(lf_ticketlock_t *l);  /* taker at head, or 0 */
int lf_ticket_recover(lf_ticketlock_t *l);
/* cffi:end */

#endif /* LF_TICKETLOCK_H */
