/*
 * Ticket spinlock (lf_ticket_*): FIFO.  An arrival takes the next ticket
 * with `lock xadd` on `tail` and waits until `head` ("now serving") reaches
 * it; unlock advances head.  Waiters are served strictly in arrival order,
 * so nobody starves, but a preempted waiter whose turn comes stalls everyone
 * behind it (the price of fairness when threads outnumber cores).
 *
 * Giving up.  A plain ticket lock cannot time out: a ticket that is never
 * used stalls the queue.  Here a waiter that gives up (deadline, dead owner,
 * Python exception) marks its slot in `waiter[]` abandoned, and unlock skips
 * abandoned tickets.  Both sides do "store, full barrier, load" (the waiter:
 * mark then read head; unlock: store head then read the mark), so at least
 * one sees the other; a compare-and-swap on the mark decides who acts on it
 * when both do (the waiter then simply holds the lock).  Slots are indexed by
 * ticket modulo LF_TICKET_SLOTS: a waiter registers only once it is fewer
 * than LF_TICKET_SLOTS places from the head, so a slot is never shared; a
 * waiter further back cannot give up until it moves that close.
 *
 * Owner record and dead-owner detection: the holder's id is in `owner`
 * (stored right after it is served, cleared first thing in unlock); a
 * registered waiter's id is in its slot.  A waiter that checks liveness
 * (after its spin budget, every 10 ms, on timeout) looks at the holder, or,
 * if the owner word is 0, at the waiter whose turn it is: a process killed
 * while queued stalls the queue when its turn comes, and that is detected
 * too.  Not detected: death within one instruction of taking a ticket or of
 * being served uncontended (owner 0, no slot), and a dead waiter that never
 * registered (it was more than LF_TICKET_SLOTS places back).
 */
#ifndef LF_TICKETLOCK_H
#define LF_TICKETLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "lockwait.h"

#define LF_TICKET_SLOTS 64u
#define LF_TICKET_ABANDONED (1ull << 63)  /* in a slot: that ticket gave up */
#define LF_TICKET_QUEUED 2  /* lf_ticket_enqueue(): >= this is ticket + 2 */

typedef struct lf_ticketlock {
	uint32_t head;    /* ticket being served; written by the holder only */
	uint32_t tail;    /* next ticket to hand out (lock xadd) */
	uint32_t flags;   /* LF_LOCK_STATS */
	uint32_t pad_;
	uint64_t owner;   /* holder's id, 0 when free (and in the windows) */
	lf_lockstats_t stats;
	uint64_t waiter[LF_TICKET_SLOTS];  /* id | LF_TICKET_ABANDONED, or 0 */
} lf_ticketlock_t;

void lf_ticket_init(lf_ticketlock_t *l, uint32_t flags);

/* 1 if acquired (the queue was empty), 0 otherwise.  Never queues. */
static inline int lf_ticket_trylock(lf_ticketlock_t *l)
{
	uint32_t t = lf_read32(&l->tail);
	if (lf_load_acquire32(&l->head) != t)
		return 0;
	/* head == tail: nobody holds or waits, and head cannot move until
	 * someone takes ticket t, so the CAS on tail alone suffices. */
	if (lf_cmpxchg32(&l->tail, t, t + 1) != t)
		return 0;
	lf_write64(&l->owner, lf_owner_self());
	return 1;
}

/* Take a ticket: LF_ACQUIRED if served at once, else LF_TICKET_QUEUED +
 * ticket; continue with lf_ticket_wait() (or lf_ticket_abandon()). */
static inline int64_t lf_ticket_enqueue(lf_ticketlock_t *l)
{
	uint32_t t = lf_xadd32(&l->tail, 1);
	/* Pairs with the head store in lf_ticket_unlock(). */
	if (__builtin_expect(lf_load_acquire32(&l->head) == t, 1)) {
		lf_write64(&l->owner, lf_owner_self());
		return LF_ACQUIRED;
	}
	return LF_TICKET_QUEUED + (int64_t)t;
}

/* Wait for ticket t until deadline.  1 acquired; 0 deadline passed (the
 * ticket is kept if !give_up, else abandoned); -id holder died (abandoned). */
int64_t lf_ticket_wait(lf_ticketlock_t *l, uint32_t t, uint64_t deadline,
		       int give_up);
/* Give ticket t up.  1 if its turn had come meanwhile: the caller now holds
 * the lock (and should release it); 0 once it is marked abandoned; -1 if t
 * is still LF_TICKET_SLOTS or more places back: wait, then try again. */
int lf_ticket_abandon(lf_ticketlock_t *l, uint32_t t);

static inline int64_t lf_ticket_lock_until(lf_ticketlock_t *l,
					   uint64_t deadline)
{
	int64_t r = lf_ticket_enqueue(l);
	if (__builtin_expect(r == LF_ACQUIRED, 1))
		return r;
	return lf_ticket_wait(l, (uint32_t)(r - LF_TICKET_QUEUED), deadline, 1);
}

static inline int64_t lf_ticket_lock(lf_ticketlock_t *l)
{
	return lf_ticket_lock_until(l, LF_FOREVER);
}

int lf_ticket_unlock(lf_ticketlock_t *l);  /* 0, or -1 if not the holder */

/* Out-of-line entry points (for cffi). */
bool lf_ticket_try_acquire(lf_ticketlock_t *l);
int64_t lf_ticket_take(lf_ticketlock_t *l);  /* lf_ticket_enqueue() */
int64_t lf_ticket_acquire_until(lf_ticketlock_t *l, uint64_t deadline);
int lf_ticket_release(lf_ticketlock_t *l);
int lf_ticket_release_counted(lf_ticketlock_t *l);
bool lf_ticket_locked(lf_ticketlock_t *l);
uint64_t lf_ticket_owner(lf_ticketlock_t *l);  /* holder, or dead waiter */
int lf_ticket_recover(lf_ticketlock_t *l);

#endif /* LF_TICKETLOCK_H */
