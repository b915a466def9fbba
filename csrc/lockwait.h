/*
 * The one module for waiting, time, liveness and errors, shared by every
 * primitive (locks, Once, seqlock, RCU, kfifo):
 *
 *   time      lf_now_ns(): CLOCK_MONOTONIC ns, the only clock.  Deadlines
 *             are absolute lf_now_ns() values; LF_NOWAIT (0: one attempt)
 *             and LF_FOREVER (never expires) are the two named extremes.
 *   waiting   struct lf_wait + lf_wait_step(): spin -> yield -> sleep, the
 *             sleep on a futex word when the caller has one to be woken on.
 *   liveness  lf_owner_alive() (a thread) and lf_pid_alive() (a process):
 *             the only two questions, answered from one /proc parser.
 *   errors    errors.h: the one negative error-code set.
 *
 * What every lock in the spinlock family shares (lf_owner_*, lf_wait_*,
 * lf_lockstats): who holds a lock, whether that holder still exists, and how
 * a waiter spins, backs off, yields, sleeps and gives up.
 *
 * Owner ids.  A holder is recorded as one 64-bit word, pid << 32 | tid (the
 * kernel thread id, gettid()), never 0.  lf_owner_self() is a thread-local
 * load: the id is computed once per thread and reset in a fork child
 * (pthread_atfork), whose pid and tid differ.  Processes sharing a lock must
 * share a pid namespace, or the ids mean nothing to each other.
 *
 * Liveness (lf_owner_alive) is a slow-path check: tgkill(pid, tid, 0)
 * failing with ESRCH means the thread is gone; a thread that still exists
 * but is a zombie (state Z or X in /proc/<pid>/task/<tid>/stat: a SIGKILLed
 * child its parent has not reaped yet) is dead too.  It errs towards
 * "alive": EPERM, an unreadable /proc or a recycled tid all say alive, so a
 * live owner is never declared dead, at worst a dead one is missed.
 *
 * Waiting (struct lf_wait): a waiter calls lf_wait_step() after each failed
 * attempt.  The first rounds spin with lf_cpu_relax() and a bounded
 * exponential backoff (1, 2, 4 ... LF_BACKOFF_MAX pauses), so waiters
 * hammer the lock's cache line less and less, until LF_SPIN_PAUSES pauses
 * (16 rounds).  A waiter for data rather than a lock (kfifo) polls instead
 * (lf_wait_poll(): one pause a round, the same LF_SPIN_PAUSES budget, no
 * clock read while it spins): it must see a publish within a pause, not
 * within 64 (~3 us, several messages' time), and the line it polls is
 * written once per publish, not fought over.  After that spin
 * budget the next LF_YIELD_ROUNDS rounds call sched_yield(): when threads
 * outnumber cores the holder may be preempted, and a waiter burning its
 * core would keep it off.  After that every round sleeps: on the caller's
 * futex word if it set one (lf_wait_sleep_on(): the other side wakes it),
 * else for LF_SLEEP_MIN_NS doubling up to LF_SLEEP_MAX_NS, never past the
 * deadline, so a long wait costs no CPU.  A caller that waits in slices
 * (Python's 50 ms ones, so that signal handlers run) names what it waits
 * on with lf_wait_resume(): a slice that follows one of this thread that
 * ended asleep at its deadline on the same key (within LF_RESUME_NS) starts
 * asleep, with that slice's sleep length, instead of spending the spin and
 * yield budgets again: a long idle wait costs its sleeps' wake-ups only.
 * Deadlines are absolute CLOCK_MONOTONIC nanoseconds (lf_now_ns(); Python's
 * time.monotonic_ns() reads the same clock); LF_FOREVER never expires.
 *
 * Statistics (struct lf_lockstats) are kept only when a lock is created
 * with LF_LOCK_STATS, and only on slow paths plus the "_counted" release
 * entry points, so a lock without statistics pays nothing for them.
 */
#ifndef LF_LOCKWAIT_H
#define LF_LOCKWAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/atomic.h"
#include "errors.h"

/* cffi:begin */
#define LF_FOREVER UINT64_MAX  /* a deadline that never expires */
#define LF_NOWAIT  0ull        /* a deadline already past: one attempt */

/* Lock flags, set at init and read-only afterwards. */
#define LF_LOCK_STATS 1u   /* keep struct lf_lockstats */
#define LF_LOCK_TTAS  2u   /* SpinLock: spin on a plain load, not on xchg */
/* cffi:end */

/* Waiting policy. */
/* pause is ~20-140 cycles depending on the core (~23 ns here): the spin
 * budget, 1 + 2 + ... + 64 then 64 a round for 16 rounds, ~700 pauses, is
 * some 10-50 us, about a context switch, before the first yield. */
#define LF_BACKOFF_MAX     64u           /* pauses per round, at most */
#define LF_SPIN_ROUNDS     16u           /* rounds before yielding */
/* ... which with backoff is 1 + 2 + ... + 64 + 9 * 64 pauses */
#define LF_SPIN_PAUSES     703u
#define LF_YIELD_ROUNDS    256u          /* yielding rounds before sleeping */
#define LF_SLEEP_MIN_NS    50000ull      /* first sleep: 50 us */
#define LF_SLEEP_MAX_NS    1000000ull    /* longest sleep: 1 ms */
#define LF_OWNER_CHECK_NS  10000000ull   /* re-check liveness every 10 ms */
#define LF_RESUME_NS       5000000ull    /* lf_wait_resume: the next slice
						 within 5 ms continues */

/* cffi:begin */
typedef struct lf_lockstats {
	uint64_t acquisitions;  /* successful acquisitions (counted releases) */
	uint64_t contended;     /* acquisitions that had to wait */
	uint64_t spins;         /* lf_cpu_relax() calls while waiting */
	uint64_t yields;        /* sched_yield() calls while waiting */
} lf_lockstats_t;
/* cffi:end */

/* -- owners ---------------------------------------------------------------- */

/* initial-exec: one %fs-relative load.  The default model for code in a
 * shared object (general-dynamic) calls __tls_get_addr on every access,
 * which cost ~4 ns per lock/unlock pair here (the measured difference
 * between lf-ttas and pthread_spin_lock); 8 bytes fit easily in the static
 * TLS space glibc reserves for dlopen()ed libraries such as this one. */
#define LF_TLS __thread __attribute__((tls_model("initial-exec")))

extern LF_TLS uint64_t lf_owner_self_cache;
uint64_t lf_owner_self_slow(void);

/* This thread's owner id, pid << 32 | tid; never 0. */
static inline uint64_t lf_owner_self(void)
{
	uint64_t id = lf_owner_self_cache;
	if (__builtin_expect(id != 0, 1))
		return id;
	return lf_owner_self_slow();
}

static inline uint32_t lf_owner_pid(uint64_t id) { return (uint32_t)(id >> 32); }
static inline uint32_t lf_owner_tid(uint64_t id) { return (uint32_t)id; }

/* Could a lock have written id?  pid in 1..INT32_MAX and tid <= INT32_MAX
 * (tid 0: a reader process of an RW lock), so -(id) <= -2^32 never meets
 * an errors.h code.  Anything else in a lock word was scribbled by a peer:
 * lf_owner_alive() calls it dead (so recover() can take it over) and a
 * waiter reports LF_ECORRUPT. */
static inline bool lf_owner_valid(uint64_t id)
{
	uint32_t pid = lf_owner_pid(id), tid = lf_owner_tid(id);
	return pid != 0 && pid <= INT32_MAX && tid <= INT32_MAX;
}

/* 1 if the thread named by id may still exist, 0 if it is certainly dead
 * (gone, or a zombie) or id names no thread (malformed, or tid 0).  A system call and a /proc read: slow paths only. */
/* cffi:begin */
int lf_owner_alive(uint64_t id);
/* The same for a whole process (any of its threads); errs towards alive. */
int lf_pid_alive(uint32_t pid);

/* -- waiting --------------------------------------------------------------- */

uint64_t lf_now_ns(void);  /* CLOCK_MONOTONIC in nanoseconds */
/* cffi:end */

/* The deadline ns from now (saturating at LF_FOREVER - 1). */
static inline uint64_t lf_deadline_in(uint64_t ns)
{
	uint64_t now = lf_now_ns();
	return ns >= LF_FOREVER - 1 - now ? LF_FOREVER - 1 : now + ns;
}

/* The earlier of a deadline and one Python wait slice from now. */
static inline uint64_t lf_deadline_slice(uint64_t deadline, uint64_t slice)
{
	uint64_t end = lf_deadline_in(slice);
	return deadline < end ? deadline : end;
}

/*
 * Futexes, shared (not FUTEX_PRIVATE_FLAG): the kernel keys them by the
 * physical page, so they work across processes mapping the same segment.
 * lf_futex_wait() sleeps while *word == val, until woken, a signal, or the
 * deadline; callers re-check their condition in every case.
 */
void lf_futex_wait(uint32_t *word, uint32_t val, uint64_t deadline);
void lf_futex_wake(uint32_t *word);  /* wake every sleeper on word */

enum lf_wait_result {
	LF_WAIT_AGAIN = 0,    /* try the lock again */
	LF_WAIT_CHECK = 1,    /* try again, but first check the owner is alive */
	LF_WAIT_TIMEOUT = 2,  /* the deadline passed: give up */
};

struct lf_wait {
	uint64_t deadline;    /* CLOCK_MONOTONIC ns, LF_FOREVER for none */
	uint64_t next_check;  /* when LF_WAIT_CHECK is due again */
	uint64_t spins;
	uint64_t yields;
	uint64_t sleeps;
	uint64_t sleep_ns;    /* length of the next timed sleep */
	uint32_t *futex;      /* sleep on this word (NULL: timed sleeps) */
	uint32_t futex_val;   /* ... while it still holds this value */
	uint32_t backoff;     /* pauses in the next spinning round */
	uint32_t backoff_max; /* LF_BACKOFF_MAX, or 1 (lf_wait_poll) */
	uint32_t rounds;
	uint32_t resumed;     /* lf_wait_resume(): asleep from the start */
	const void *key;      /* lf_wait_resume()'s key, or NULL */
};

static inline void lf_wait_init(struct lf_wait *w, uint64_t deadline)
{
	w->deadline = deadline;
	w->next_check = 0;  /* due as soon as the spin budget runs out */
	w->spins = w->yields = w->sleeps = 0;
	w->sleep_ns = LF_SLEEP_MIN_NS;
	w->futex = NULL;
	w->futex_val = 0;
	w->backoff = 1;
	w->backoff_max = LF_BACKOFF_MAX;
	w->rounds = 0;
	w->resumed = 0;
	w->key = NULL;
}

/* This wait is on key (the waited word's address): resume this thread's
 * previous slice on it if that one ended asleep moments ago (see
 * "Waiting").  One compare when it did not. */
void lf_wait_resume(struct lf_wait *w, const void *key);

/* Poll (one pause a round) instead of backing off: see "Waiting". */
static inline void lf_wait_poll(struct lf_wait *w)
{
	w->backoff_max = 1;
}

/* Still in the spin phase (before the first yield)? */
static inline bool lf_wait_spinning(const struct lf_wait *w)
{
	return w->spins < LF_SPIN_PAUSES && !w->resumed;
}

/* Is the next lf_wait_step() a sleep (spin and yield budgets spent)? */
static inline bool lf_wait_sleeping(const struct lf_wait *w)
{
	return !lf_wait_spinning(w) &&
	       (w->yields >= LF_YIELD_ROUNDS || w->resumed);
}

/* Make the next sleeping lf_wait_step() sleep on *word while it equals
 * val (read val before re-checking the condition, so a wake-up between the
 * re-check and the sleep changes *word and the sleep returns at once). */
static inline void lf_wait_sleep_on(struct lf_wait *w, uint32_t *word,
				    uint32_t val)
{
	w->futex = word;
	w->futex_val = val;
}

/* Wait a little (spin, back off, yield or sleep), then say what to do
 * next. */
int lf_wait_step(struct lf_wait *w);

/* owner if it names a holder that is dead, else 0 (0 names nobody). */
static inline uint64_t lf_owner_if_dead(uint64_t owner)
{
	return owner && !lf_owner_alive(owner) ? owner : 0;
}

/*
 * Test hook: builds with LF_TEST_HOOKS (the C stress programs) call it where
 * a waiter has loaded a holder's id (a lock owner, a ticket blocker, a
 * reader slot) and is about to check whether that holder is alive, so a
 * test can make the holder release and exit in exactly that window.  No
 * code at all in the library.
 */
#ifdef LF_TEST_HOOKS
extern void (*lf_test_holder_loaded)(void);
#define LF_TEST_HOLDER_LOADED()						\
	do {								\
		void (*lf_hook_)(void) = __atomic_load_n(		\
			&lf_test_holder_loaded, __ATOMIC_ACQUIRE);	\
		if (lf_hook_)						\
			lf_hook_();					\
	} while (0)
#else
#define LF_TEST_HOLDER_LOADED() do { } while (0)
#endif

/*
 * The owner id in *word if it names a dead holder that still holds, else 0.
 * A holder clears its id before it releases, so it may release and exit
 * between the load of its id and the liveness check: the check alone would
 * then report a lock that is free (or held by someone else) as held by a
 * dead owner.  So the word is read again after the check: a dead holder
 * cannot change it, and if it still names that holder, the holder died
 * holding (a recoverer's CAS, which replaces the id, also shows up here).
 */
static inline uint64_t lf_owner_dead_at(const uint64_t *word)
{
	uint64_t owner = lf_read64(word);
	if (!owner)
		return 0;
	LF_TEST_HOLDER_LOADED();
	if (lf_owner_alive(owner))
		return 0;
	return lf_read64(word) == owner ? owner : 0;
}

/*
 * After lf_wait_step() said LF_WAIT_CHECK or LF_WAIT_TIMEOUT: does the wait
 * end?  dead is the id of a holder found dead (0: none).  A dead holder
 * ends it with *ret = -(its id), a passed deadline with *ret = 0.
 */
static inline bool lf_wait_over(int step, uint64_t dead, int64_t *ret)
{
	if (dead) {
		/* A word no lock wrote (a peer scribbled it) is reported as
		 * such: -(id) of a malformed id could read as another code, or
		 * as "acquired" (0xFF..FF). */
		*ret = lf_owner_valid(dead) ? -(int64_t)dead : LF_ECORRUPT;
		return true;
	}
	if (step == LF_WAIT_TIMEOUT) {
		*ret = 0;
		return true;
	}
	return false;
}

/* Fold a finished wait into the lock's statistics (acquired or not). */
void lf_wait_account(lf_lockstats_t *s, const struct lf_wait *w, bool acquired);

/*
 * Return codes of every acquire entry point (int64_t):
 *   1      acquired;
 *   0      not acquired: the deadline passed (or the lock was busy);
 *   < 0    not acquired: the holder died holding the lock; the value is
 *          -(its owner id).  See the lock's recover call.
 * Blocking acquires from Python wait in slices of LF_SLICE_NS so that the
 * interpreter can run signal handlers (Ctrl-C) between them.
 */
/* cffi:begin */
#define LF_ACQUIRED 1
#define LF_SLICE_NS 50000000ull   /* 50 ms */
/* cffi:end */

#endif /* LF_LOCKWAIT_H */
