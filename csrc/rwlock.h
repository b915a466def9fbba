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
 * another writer waits: that one sets it again).  Readers are tracked by
 * count only: a reader that dies holding the read lock blocks writers for
 * good (their timed acquires return 0) and is NOT detected or recoverable,
 * and read_unlock can only detect "no reader at all holds it", not "this
 * thread does not".
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

typedef struct lf_rwlock {
	uint64_t cnts;     /* see above */
	uint32_t flags;    /* LF_LOCK_STATS */
	uint32_t pad_;
	uint64_t owner;    /* writer's id, 0 when no writer (and in windows) */
	uint64_t wwaiter;  /* id of the writer that last set WAITING */
	lf_lockstats_t stats;        /* contended/spins/yields: both sides */
	uint64_t read_acquisitions;  /* counted read releases */
} lf_rwlock_t;

void lf_rwlock_init(lf_rwlock_t *l, uint32_t flags);
int64_t lf_rwlock_read_lock_slow(lf_rwlock_t *l, uint64_t deadline);
int64_t lf_rwlock_write_lock_slow(lf_rwlock_t *l, uint64_t deadline);

static inline int lf_rwlock_read_trylock(lf_rwlock_t *l)
{
	/* Full barrier: pairs with the xadd in lf_rwlock_write_unlock(). */
	uint64_t c = lf_xadd64(&l->cnts, LF_RW_READER);
	if (__builtin_expect(!(c & LF_RW_WMASK), 1))
		return 1;
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

int lf_rwlock_read_unlock(lf_rwlock_t *l);  /* 0, or -1 if no reader */

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
int lf_rwlock_recover(lf_rwlock_t *l);        /* the write lock, as spin */

#endif /* LF_RWLOCK_H */
