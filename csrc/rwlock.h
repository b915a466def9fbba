/*
 * Reader-writer spinlock (lf_rwlock_*): many readers or one writer, with
 * writer preference.  (The kernel has rwlock_t; pthreads has
 * pthread_rwlock_t, which sleeps in futex and is not a spinlock, and no
 * reader-writer spinlock at all.)
 *
 * Every record is one word changed by one atomic instruction, so a thread
 * or process killed at any instruction leaves each word either unchanged or
 * changed, never half-recorded (no kill window):
 *
 *   owner     the write-lock word, as lf_spin_*: 0, or the id
 *             (pid << 32 | tid) of the one writer that holds the lock or
 *             is waiting for the readers to drain.  cmpxchg(0 -> id) takes
 *             it, one release store of 0 gives it back.
 *   slots[]   the readers, one word per reading process (packed, two
 *             cache lines for the sixteen): pid << 32 | the read holds
 *             of that process's
 *             threads, 0 when it holds none.  A read hold is taken and
 *             given back by one cmpxchg on the slot (claiming an empty slot
 *             is the same cmpxchg: 0 -> pid << 32 | 1); there is no other
 *             reader count to get out of step with it.
 *
 * Reader: cmpxchg one hold into its slot (a full barrier), then load owner;
 * if a writer is there, take the hold out again and wait until owner is 0.
 * Writer: cmpxchg owner (a full barrier; new readers now back out: writer
 * preference), then load every slot and wait until none holds.  Each side
 * announces itself with a locked RMW and then looks at the other's word
 * (lf_read64_after_rmw), so at least one of them sees the other: never a
 * reader and a writer inside at once.  Waiting writers spin on owner; they
 * are not FIFO among themselves, and readers can starve under a stream of
 * writers.  At most LF_RW_SLOTS processes hold the read side at once; a
 * reader of one more process waits (and can time out) until a slot frees.
 *
 * Dead holders.  A dead writer (owner names a dead thread) is reported to
 * waiters of both sides as -id; lf_rwlock_recover() takes the write lock
 * over.  A writer kept waiting by a slot whose process is dead gets
 * -(pid << 32) (tid 0: "a reader process"), and lf_rwlock_recover() gives
 * that process's holds back (one cmpxchg on the slot picks one recoverer).
 * Not detected: a reader *thread* that exits holding while its process
 * lives (holds are per process), and a dead reader whose pid a new process
 * has reused.  read_unlock returns LF_EPERM when the calling process holds
 * no read lock (another thread of the same process may).
 */
#ifndef LF_RWLOCK_H
#define LF_RWLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "lockwait.h"

#define LF_RW_SLOTS_SHIFT 4
#define LF_RW_HOLDS 0xFFFFFFFFull              /* holds in a slot word */

/* cffi:begin */
#define LF_RW_SLOTS (1u << LF_RW_SLOTS_SHIFT)  /* reading processes at once:
						  lf_rwlock_has_readers()
						  reads exactly 16 */

/* One reader process: pid << 32 | its read holds. */
struct lf_rw_slot {
	uint64_t word;
};

typedef struct lf_rwlock {
	uint64_t pad0_;    /* (was the reader count of the two-word lock) */
	uint32_t flags;    /* LF_LOCK_STATS */
	uint32_t pad_;
	uint64_t owner;    /* THE write-lock word: writer's id, or 0 */
	uint64_t pad1_;
	lf_lockstats_t stats;        /* contended/spins/yields: both sides */
	/* 64 bytes in: the slots, packed in two cache lines, so a writer's
	 * scan is two line loads,
	 * while readers of different processes share a line, as they shared
	 * the reader count of the kernel-style one-word lock. */
	struct lf_rw_slot slots[LF_RW_SLOTS];
	uint64_t read_acquisitions;  /* counted read releases */
	uint64_t pad2_[7];
} lf_rwlock_t;

void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags);
int64_t lf_rwlock_read_lock_slow(lf_rwlock_t *l, uint64_t deadline);
int64_t lf_rwlock_write_lock_slow(lf_rwlock_t *l, uint64_t deadline);
/* cffi:end */
int lf_rwlock_read_try_slow(lf_rwlock_t *l);

/* The slot a process probes first (Fibonacci hashing of the pid). */
static inline uint32_t lf_rwlock_home(uint32_t pid)
{
	return (pid * 2654435769u) >> (32 - LF_RW_SLOTS_SHIFT);
}

/* Give one read hold of this process back (its slot's cmpxchg is a full
 * barrier: the read section stays above it; pairs with the writer's load
 * of the slot after its cmpxchg on owner).  0, or LF_EPERM if this process
 * holds none. */
int lf_rwlock_untrack(lf_rwlock_t *l);

/* 1 if acquired, 0 if a writer holds or waits (or no slot is free). */
static inline int lf_rwlock_read_trylock(lf_rwlock_t *l)
{
	const uint32_t pid = lf_owner_pid(lf_owner_self());
	uint64_t *w = &l->slots[lf_rwlock_home(pid)].word;
	uint64_t v = lf_read64(w);
	/* The home slot, empty or already ours (a slot holding our pid stays
	 * ours while we hold: only we, or a recoverer once we are dead,
	 * change it). */
	if (__builtin_expect(v == 0 || (v >> 32 == pid &&
					(v & LF_RW_HOLDS) != LF_RW_HOLDS), 1) &&
	    lf_cmpxchg64(w, v, v ? v + 1 : (uint64_t)pid << 32 | 1) == v) {
		/* Pairs with the writer's cmpxchg on owner, then slot loads. */
		if (__builtin_expect(lf_read64_after_rmw(&l->owner) == 0, 1))
			return 1;
		lf_rwlock_untrack(l);  /* a writer holds or waits: back out */
		return 0;
	}
	return lf_rwlock_read_try_slow(l);
}

static inline int64_t lf_rwlock_read_lock_until(lf_rwlock_t *l,
						uint64_t deadline)
{
	if (__builtin_expect(lf_rwlock_read_trylock(l), 1))
		return LF_ACQUIRED;
	return lf_rwlock_read_lock_slow(l, deadline);
}

/* 0, or LF_EPERM if this process holds no read lock. */
static inline int lf_rwlock_read_unlock(lf_rwlock_t *l)
{
	return lf_rwlock_untrack(l);
}

/* Does any process hold the read side?  After the caller's RMW on owner
 * (pairs with the readers' slot cmpxchg, then owner load).  The atomics
 * layer reads the sixteen slot words (x86-64: eight 16-byte SSE2 loads,
 * 4-10x cheaper than sixteen scalar loads after a locked cmpxchg). */
_Static_assert(LF_RW_SLOTS == 16, "lf_any_nonzero64x16_after_rmw()");
static inline bool lf_rwlock_has_readers(lf_rwlock_t *l)
{
	return lf_any_nonzero64x16_after_rmw(&l->slots[0].word);
}

static inline int lf_rwlock_write_trylock(lf_rwlock_t *l)
{
	/* Full barrier: new readers back out from here on.  Pairs with the
	 * readers' slot cmpxchg and their owner load after it. */
	if (lf_cmpxchg64(&l->owner, 0, lf_owner_self()) != 0)
		return 0;
	if (__builtin_expect(!lf_rwlock_has_readers(l), 1))
		return 1;
	lf_store_release64(&l->owner, 0);  /* readers inside: back out */
	return 0;
}

static inline int64_t lf_rwlock_write_lock_until(lf_rwlock_t *l,
						 uint64_t deadline)
{
	if (__builtin_expect(lf_rwlock_write_trylock(l), 1))
		return LF_ACQUIRED;
	return lf_rwlock_write_lock_slow(l, deadline);
}

static inline int lf_rwlock_write_unlock(lf_rwlock_t *l)
{
	if (lf_read64(&l->owner) != lf_owner_self())
		return LF_EPERM;
	/* Pairs with the cmpxchg of the next writer and the readers' owner
	 * load: the write section is not sunk below this store. */
	lf_store_release64(&l->owner, 0);
	return 0;
}

/* Out-of-line calls (out-of-line copies of the inline lock and unlock
 * calls, for cffi, are binding shims: csrc/shims/rwlock.h). */
/* cffi:begin */
int lf_rwlock_read_release_counted(lf_rwlock_t *l);
int lf_rwlock_write_release_counted(lf_rwlock_t *l);
uint64_t lf_rwlock_readers(lf_rwlock_t *l);   /* may include transients */
bool lf_rwlock_write_locked(lf_rwlock_t *l);  /* a writer holds or waits */
uint64_t lf_rwlock_owner(lf_rwlock_t *l);
/* Dead readers' holds given back, a dead writer's lock taken over: 1 if
 * the caller now holds the write lock.  Taking a dead writer's lock over
 * waits up to LF_RW_RECOVER_NS for live readers to leave; if they do not,
 * the lock is left free and 0 returned. */
#define LF_RW_RECOVER_NS 1000000000ull
int lf_rwlock_recover(lf_rwlock_t *l);
uint64_t lf_rwlock_dead_reader(lf_rwlock_t *l);  /* pid << 32, or 0 */
/* cffi:end */

#endif /* LF_RWLOCK_H */
