/*
 * Reader-writer spinlock (lf_rwlock_*): many readers or one writer, with
 * writer preference, after the kernel's queued rwlock (qrwlock) word.
 * (The kernel has rwlock_t; pthreads has pthread_rwlock_t, which sleeps in
 * futex and is not a spinlock, and no reader-writer spinlock at all.)
 *
 * One 64-bit word `cnts`:
 *   bit 0          LF_RW_LOCKED    a writer holds the lock
 *   bit 1          LF_RW_WAITING   a writer is waiting: no new readers
 *   bits 2..63     readers (LF_RW_READER each)
 *
 * Reader: `lock xadd` one reader in; if a writer holds or waits, take it
 * out again and spin until neither.  Writer: CAS 0 -> LOCKED; otherwise set
 * WAITING (stopping new readers, so a stream of readers cannot starve it),
 * wait for the readers to drain and CAS WAITING -> LOCKED.  Several waiting
 * writers share the WAITING bit; one that wins or gives up clears it and the
 * others set it again on their next round.  Writers are not FIFO among
 * themselves, and readers can starve under a stream of writers.
 *
 * Dead-owner detection covers the writer: its id is in `owner` (same
 * protocol and same one-instruction windows as lf_spin_*), and a waiter that
 * finds it dead returns -id; lf_rwlock_recover() takes the write lock over.
 * A writer that dies while *waiting* leaves WAITING set: its id is in
 * `wwaiter`, and a reader that finds it dead clears the bit (harmless if
 * another writer waits: that one sets it again).
 *
 * Readers are recorded per process in LF_RW_SLOTS slots, one word each,
 * pid << 32 | the read holds of that process's threads, each slot on its
 * own cache line (readers of different processes do not share one).  A
 * process claims a slot on its first read acquire (probing from a hash of
 * its pid; a slot whose pid is dead and holds nothing is reused) and keeps
 * it while it lives, so the fast path is one load and one `lock xadd`
 * beside the `lock xadd` on cnts.  The slot count never exceeds what the
 * process holds in cnts: acquire adds to cnts first, release takes from
 * the slot first.  A waiting writer that finds a slot with holds whose pid
 * is dead returns -(pid << 32) (tid 0: "a reader process"), and
 * lf_rwlock_recover() removes that process's holds from cnts (one CAS on
 * the slot picks one recoverer).  Not detected: a reader that dies within
 * one instruction of a cnts update (between the two words, or backing out
 * of a trylock), a reader thread that exits while its process lives, and
 * readers of a process that found every slot taken by live processes
 * (counted in `untracked`).  read_unlock returns -1 when the calling
 * process holds no read lock (another thread of the same process may).
 */
#ifndef LF_RWLOCK_H
#define LF_RWLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "lockwait.h"

#define LF_RW_LOCKED  1ull
#define LF_RW_WAITING 2ull
#define LF_RW_WMASK   (LF_RW_LOCKED | LF_RW_WAITING)
#define LF_RW_READER  4ull

#define LF_RW_SLOTS_SHIFT 4
#define LF_RW_SLOTS (1u << LF_RW_SLOTS_SHIFT)  /* reader processes recorded */

/* One reader process: pid << 32 | its read holds.  A cache line each. */
struct lf_rw_slot {
	uint64_t word;
	uint64_t pad_[7];
};

typedef struct lf_rwlock {
	uint64_t cnts;     /* see above */
	uint32_t flags;    /* LF_LOCK_STATS */
	uint32_t pad_;
	uint64_t owner;    /* writer's id, 0 when no writer (and in windows) */
	uint64_t wwaiter;  /* id of the writer that last set WAITING */
	lf_lockstats_t stats;        /* contended/spins/yields: both sides */
	uint64_t read_acquisitions;  /* counted read releases */
	uint64_t untracked;  /* read holds of processes that found no slot */
	uint64_t pad2_[5];   /* slots start 128 bytes in */
	struct lf_rw_slot slots[LF_RW_SLOTS];
} lf_rwlock_t;

void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags);
int64_t lf_rwlock_read_lock_slow(lf_rwlock_t *l, uint64_t deadline);
int64_t lf_rwlock_write_lock_slow(lf_rwlock_t *l, uint64_t deadline);
void lf_rwlock_track_slow(lf_rwlock_t *l, uint32_t pid);
int lf_rwlock_untrack_slow(lf_rwlock_t *l, uint32_t pid);

/* The slot a process probes first (Fibonacci hashing of the pid). */
static inline uint32_t lf_rwlock_home(uint32_t pid)
{
	return (pid * 2654435769u) >> (32 - LF_RW_SLOTS_SHIFT);
}

/* Record one read hold of this process (after it is counted in cnts). */
static inline void lf_rwlock_track(lf_rwlock_t *l)
{
	const uint32_t pid = lf_owner_pid(lf_owner_self());
	uint64_t *w = &l->slots[lf_rwlock_home(pid)].word;
	/* A slot holding our pid stays ours while we live (only dead pids'
	 * slots are reused or purged), so the check and the xadd need not be
	 * one atomic step. */
	if (__builtin_expect(lf_read64(w) >> 32 == pid, 1)) {
		lf_xadd64(w, 1);
		return;
	}
	lf_rwlock_track_slow(l, pid);
}

/* Drop one read hold of this process from its slot (before cnts): 0, or -1
 * if this process holds none. */
static inline int lf_rwlock_untrack(lf_rwlock_t *l)
{
	const uint32_t pid = lf_owner_pid(lf_owner_self());
	uint64_t *w = &l->slots[lf_rwlock_home(pid)].word;
	uint64_t v = lf_read64(w);
	/* A CAS, not an xadd: threads of one process that raced to claim
	 * their first slot may hold several, and one must not go below 0. */
	if (__builtin_expect(v >> 32 == pid && (uint32_t)v != 0, 1) &&
	    lf_cmpxchg64(w, v, v - 1) == v)
		return 0;
	return lf_rwlock_untrack_slow(l, pid);
}

static inline int lf_rwlock_read_trylock(lf_rwlock_t *l)
{
	/* Full barrier: pairs with the xadd in lf_rwlock_write_unlock(). */
	uint64_t c = lf_xadd64(&l->cnts, LF_RW_READER);
	if (__builtin_expect(!(c & LF_RW_WMASK), 1)) {
		lf_rwlock_track(l);
		return 1;
	}
	lf_xadd64(&l->cnts, -LF_RW_READER);  /* a writer holds or waits */
	return 0;
}

static inline int64_t lf_rwlock_read_lock_until(lf_rwlock_t *l,
						uint64_t deadline)
{
	if (__builtin_expect(lf_rwlock_read_trylock(l), 1))
		return LF_ACQUIRED;
	return lf_rwlock_read_lock_slow(l, deadline);
}

/* 0, or -1 if this process holds no read lock. */
int lf_rwlock_read_unlock(lf_rwlock_t *l);

static inline int lf_rwlock_write_trylock(lf_rwlock_t *l)
{
	/* Full barrier: pairs with the read/write unlock RMWs. */
	if (lf_cmpxchg64(&l->cnts, 0, LF_RW_LOCKED) != 0)
		return 0;
	lf_write64(&l->owner, lf_owner_self());
	return 1;
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
		return -1;
	lf_write64(&l->owner, 0);
	/* An RMW, not a store: readers' transient counts and WAITING share the
	 * word.  Full barrier; pairs with the readers' xadd and writers' CAS. */
	lf_xadd64(&l->cnts, -LF_RW_LOCKED);
	return 0;
}

/* Out-of-line entry points (for cffi). */
bool lf_rwlock_read_try_acquire(lf_rwlock_t *l);
int64_t lf_rwlock_read_acquire_until(lf_rwlock_t *l, uint64_t deadline);
int lf_rwlock_read_release(lf_rwlock_t *l);
int lf_rwlock_read_release_counted(lf_rwlock_t *l);
bool lf_rwlock_write_try_acquire(lf_rwlock_t *l);
int64_t lf_rwlock_write_acquire_until(lf_rwlock_t *l, uint64_t deadline);
int lf_rwlock_write_release(lf_rwlock_t *l);
int lf_rwlock_write_release_counted(lf_rwlock_t *l);
uint64_t lf_rwlock_readers(lf_rwlock_t *l);   /* may include transients */
bool lf_rwlock_write_locked(lf_rwlock_t *l);
uint64_t lf_rwlock_owner(lf_rwlock_t *l);
/* Dead readers' holds removed, a dead writer's lock taken over: 1 if the
 * caller now holds the write lock. */
int lf_rwlock_recover(lf_rwlock_t *l);
uint64_t lf_rwlock_dead_reader(lf_rwlock_t *l);  /* pid << 32, or 0 */

#endif /* LF_RWLOCK_H */
