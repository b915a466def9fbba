/*
 * Stress test of the TAS and TTAS spinlock (csrc/spinlock.h).
 * Build: gcc -Icsrc tests/c/spinlock_stress.c csrc/ *.c -lpthread
 * Prints key=value lines; the last is "spinlock_stress: OK" or
 * "spinlock_stress: FAIL <what>"; exit status 0 only if every check held.
 * LOCKFREE_LONG=1 runs longer.  The ticket lock is checked by
 * ticketlock_stress.c, the RW lock by rwlock_stress.c; what the three
 * share is in lock_harness.h.
 *
 * Checks, for TAS and TTAS:
 *  - mutual exclusion: N threads x M iterations increment a plain (non
 *    atomic) counter inside the lock; the total must be N*M (and under
 *    ThreadSanitizer, which sees the portable atomics, no race may be
 *    reported);
 *  - Concurrency Kit's validator invariant: inside the lock add 1 to a
 *    plain word K times, check it is K, subtract K, check it is 0 -- any
 *    other thread inside at the same time breaks it;
 *  - a holder that releases and exits while a waiter checks whether it is
 *    alive is not reported dead (the test hook, LF_TEST_HOOKS, opens that
 *    window);
 *  - timed lock gives up after roughly its timeout (and a timed ticket
 *    lock on a free lock takes it).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "lock_harness.h"

/* -- timed lock ------------------------------------------------------------ */

static void *hold_spin(void *arg)
{
	(void)arg;
	lf_spin_lock(&spin);
	while (!lf_load_acquire32(&stop_word))
		usleep(1000);
	lf_spin_unlock(&spin);
	return NULL;
}

static void run_timed(void)
{
	pthread_t th;
	lf_store_release32(&stop_word, 0);
	pthread_create(&th, NULL, hold_spin, NULL);
	while (!lf_spin_locked(&spin))
		usleep(100);
	uint64_t t0 = lf_now_ns();
	int64_t r = lf_spin_lock_until(&spin, t0 + 30000000ull);  /* 30 ms */
	uint64_t dt = lf_now_ns() - t0;
	int64_t rt = lf_ticket_lock_until(&ticket, lf_now_ns() + 1000000ull);
	lf_store_release32(&stop_word, 1);
	pthread_join(th, NULL);
	printf("timed_spin_result=%lld\ntimed_spin_waited_ms=%.2f\n",
	       (long long)r, dt / 1e6);
	if (r != 0 || dt < 30000000ull || dt > 2000000000ull)
		fail("timed spin lock: wrong result or time");
	if (rt != LF_ACQUIRED || lf_ticket_unlock(&ticket) != 0)
		fail("timed ticket lock on a free lock");
	if (lf_spin_unlock(&spin) != LF_EPERM)
		fail("unlock of a free lock did not fail");
}

int main(void)
{
	int is_long = long_mode();
	long iters = is_long ? 2000000 : emulated() ? 10000 : 100000;
	int nthreads = 4;

	printf("atomics=%s\nlong=%d\n", LF_ATOMICS_IMPL, is_long);
	lf_spin_init(&spin, 0);
	lf_ticket_init(&ticket, LF_LOCK_STATS);
	run_mx(TAS, nthreads, iters);
	lf_spin_init(&spin, LF_LOCK_TTAS | LF_LOCK_STATS);
	run_mx(TTAS, nthreads, iters);
	printf("ttas_contended=%llu\nttas_yields=%llu\n",
	       (unsigned long long)spin.stats.contended,
	       (unsigned long long)spin.stats.yields);
	run_holder_exit_race(TTAS);
	lf_spin_init(&spin, 0);
	run_holder_exit_race(TAS);
	run_timed();

	if (lf_read32(&failed)) {
		printf("spinlock_stress: FAIL %s\n", fail_what);
		return 1;
	}
	printf("spinlock_stress: OK\n");
	return 0;
}
