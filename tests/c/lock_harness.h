/*
 * What the lock stress programs share (tests/c/spinlock_stress.c,
 * ticketlock_stress.c, rwlock_stress.c): the kinds of lock under test and
 * their instances, lock()/unlock() dispatch, fail() (the first failure
 * wins and is printed on the last line), the mutual exclusion + validator
 * run for any kind, and the holder-exit race: the test hook of
 * csrc/lockwait.h (LF_TEST_HOOKS) and the helpers that open its window.
 * Each program defines _GNU_SOURCE before including it.
 */
#ifndef LF_TESTS_LOCK_HARNESS_H
#define LF_TESTS_LOCK_HARNESS_H

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "rwlock.h"
#include "spinlock.h"
#include "ticketlock.h"
#include "mode.h"

#define MAX_THREADS 8
#define K 5            /* increments per validator round */

enum kind { TAS, TTAS, TICKET, RW_WRITE, RW_READ, NKINDS };
static const char *kind_name[] __attribute__((unused)) = {
	"tas", "ttas", "ticket", "rw_write", "rw_read"};

static lf_spinlock_t spin;
static lf_ticketlock_t ticket;
static lf_rwlock_t rw;

static uint32_t failed;  /* atomic: first failure wins */
static char fail_what[256];

static void __attribute__((unused)) fail(const char *what)
{
	if (lf_xchg32(&failed, 1) == 0)
		snprintf(fail_what, sizeof fail_what, "%s", what);
}

static void __attribute__((unused)) lock(enum kind k)
{
	int64_t r;
	switch (k) {
	case TAS: case TTAS: r = lf_spin_lock(&spin); break;
	case TICKET: r = lf_ticket_lock(&ticket); break;
	case RW_WRITE: r = lf_rwlock_write_lock_until(&rw, LF_FOREVER); break;
	default: r = lf_rwlock_read_lock_until(&rw, LF_FOREVER); break;
	}
	if (r != LF_ACQUIRED)
		fail("lock did not return LF_ACQUIRED");
}

static void __attribute__((unused)) unlock(enum kind k)
{
	int r;
	switch (k) {
	case TAS: case TTAS: r = lf_spin_unlock(&spin); break;
	case TICKET: r = lf_ticket_unlock(&ticket); break;
	case RW_WRITE: r = lf_rwlock_write_unlock(&rw); break;
	default: r = lf_rwlock_read_unlock(&rw); break;
	}
	if (r != 0)
		fail("unlock by the holder failed");
}

/* Set to stop the threads of a timed phase (timed lock, fairness, RW
 * readers arriving). */
static uint32_t stop_word;

/* -- mutual exclusion + validator ------------------------------------------ */

struct mx {
	enum kind kind;
	long iters;
	pthread_barrier_t *start;
};

static long counter;          /* plain: protected by the lock under test */
static long invariant;        /* plain: CK validator word */
static uint64_t readers_in;   /* atomic: concurrent readers now */
static uint64_t readers_max;  /* atomic: most seen at once */

static void __attribute__((unused)) reader_section(int stay)
{
	uint64_t n = lf_xadd64(&readers_in, 1) + 1;
	for (uint64_t m = lf_read64(&readers_max); n > m;
	     m = lf_read64(&readers_max))
		if (lf_cmpxchg64(&readers_max, m, n) == m)
			break;
	/* A writer inside would show a nonzero invariant.  The read is
	 * plain on purpose: TSAN must find it ordered by the lock. */
	if (invariant != 0)
		fail("reader saw a writer inside");
	for (int i = 0; i < stay; i++)
		lf_cpu_relax();  /* stay a while, so readers overlap */
	lf_xadd64(&readers_in, -1ull);
}

static __attribute__((unused)) void *mx_thread(void *arg)
{
	struct mx *a = arg;
	pthread_barrier_wait(a->start);
	for (long i = 0; i < a->iters; i++) {
		/* For RW_READ, every 4th thread iteration is a writer so the
		 * readers have someone to exclude. */
		enum kind k = a->kind;
		bool writer = k != RW_READ || (i % 4 == 0);
		if (k == RW_READ && writer)
			k = RW_WRITE;
		lock(k);
		if (writer) {
			counter++;
			for (int j = 0; j < K; j++)
				invariant++;
			if (invariant != K)
				fail("validator: invariant != K inside the lock");
			invariant -= K;
			if (invariant != 0)
				fail("validator: invariant != 0 after undo");
		} else {
			reader_section(20);
		}
		unlock(k);
	}
	return NULL;
}

static void __attribute__((unused)) run_mx(enum kind k, int nthreads,
					   long iters)
{
	pthread_t th[MAX_THREADS];
	struct mx args[MAX_THREADS];
	pthread_barrier_t start;

	counter = invariant = 0;
	lf_write64(&readers_max, 0);
	pthread_barrier_init(&start, NULL, nthreads);
	for (int i = 0; i < nthreads; i++) {
		args[i] = (struct mx){k, iters, &start};
		pthread_create(&th[i], NULL, mx_thread, &args[i]);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);

	long want = (long)nthreads * iters;
	if (k == RW_READ)  /* writers only every 4th iteration */
		want = (long)nthreads * ((iters + 3) / 4);
	printf("%s_threads=%d\n%s_iters=%ld\n%s_counter=%ld\n%s_expected=%ld\n",
	       kind_name[k], nthreads, kind_name[k], iters, kind_name[k],
	       counter, kind_name[k], want);
	if (k == RW_READ)
		printf("rw_read_max_concurrent_readers=%llu\n",
		       (unsigned long long)lf_read64(&readers_max));
	if (counter != want) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s counter %ld != %ld",
			 kind_name[k], counter, want);
		fail(msg);
	}
}

/*
 * A holder that releases and exits while a waiter checks whether it is
 * alive is not a dead owner.  The test hook (LF_TEST_HOOKS) runs in the
 * waiter right after it loaded the holder's id: it lets the holder release
 * and waits until the holder is gone, so the liveness check that follows
 * finds it dead.  The waiter must look again, see the lock no longer held
 * on the dead holder's behalf, and take the lock.
 */
static uint32_t race_go, race_held;     /* atomic */
static pthread_t race_waiter;		/* the thread the hooks act in */

static void __attribute__((unused)) set_hook(void (*h)(void))
{
	__atomic_store_n(&lf_test_holder_loaded, h, __ATOMIC_RELEASE);
}

/* Is the hook running in the waiter under test (and not yet fired)?  Other
 * waiters (the ticket handover's next thread) pass through it. */
static int __attribute__((unused)) hook_mine(void)
{
	if (!pthread_equal(pthread_self(), race_waiter))
		return 0;
	set_hook(NULL);  /* once */
	return 1;
}

static int __attribute__((unused)) hook_fired(void)
{
	int fired = __atomic_load_n(&lf_test_holder_loaded,
				    __ATOMIC_ACQUIRE) == NULL;
	set_hook(NULL);
	return fired;
}
static pthread_t race_thread;

static void __attribute__((unused)) let_holder_go(void)
{
	lf_write32(&race_go, 1);
	pthread_join(race_thread, NULL);
}

static void __attribute__((unused)) race_hook_thread(void)
{
	if (!hook_mine())
		return;
	lf_write32(&race_go, 1);
	pthread_join(race_thread, NULL);
}

static __attribute__((unused)) void *race_holder(void *arg)
{
	enum kind k = *(enum kind *)arg;
	lock(k);
	lf_write32(&race_held, 1);
	while (!lf_read32(&race_go))
		usleep(100);
	unlock(k);
	return NULL;  /* and the thread is gone */
}

static int64_t __attribute__((unused)) lock_until(enum kind k,
						  uint64_t deadline)
{
	switch (k) {
	case TAS: case TTAS: return lf_spin_lock_until(&spin, deadline);
	case TICKET: return lf_ticket_lock_until(&ticket, deadline);
	default: return lf_rwlock_write_lock_until(&rw, deadline);
	}
}

static void __attribute__((unused)) run_holder_exit_race(enum kind k)
{
	char msg[128];
	lf_write32(&race_go, 0);
	lf_write32(&race_held, 0);
	if (pthread_create(&race_thread, NULL, race_holder, &k) != 0) {
		fail("holder exit race: pthread_create");
		return;
	}
	while (!lf_read32(&race_held))
		usleep(100);
	race_waiter = pthread_self();
	set_hook(race_hook_thread);
	int64_t r = lock_until(k, lf_now_ns() + 5000000000ull);
	int fired = hook_fired();
	if (!fired)
		let_holder_go();
	printf("holder_exit_race_%s=%lld\n", kind_name[k], (long long)r);
	if (r == LF_ACQUIRED)
		unlock(k);
	snprintf(msg, sizeof msg, "%s: a holder that released and exited "
		 "during the liveness check was %s", kind_name[k],
		 !fired ? "never checked" : r < 0 ? "reported dead" :
		 "not given up");
	if (!fired || r != LF_ACQUIRED)
		fail(msg);
}

#endif /* LF_TESTS_LOCK_HARNESS_H */
