/*
 * atomic_stress: hammer lf_atomic_* from several threads at once and check
 * that no update is ever lost.
 *
 * Standalone program, linked with every csrc/ source; it uses only the
 * public API in atomic.h and the atomics layer in arch/atomic.h.  Contract
 * shared by every tests/c/<name>_stress.c (tests/test_c_stress.py runs them
 * all, built by tests/cbuild.py):
 *
 *   usage: atomic_stress [threads [iterations]]   (default 4 threads)
 *   LOCKFREE_LONG=1      long mode (10^7 iterations per thread)
 *   stdout               one key=value line per figure, then a last line
 *                        "atomic_stress: OK" or "atomic_stress: FAIL <why>"
 *   exit status          0 iff every invariant held
 *
 * Phases, each started by every thread at once (see phase_start()) so that
 * the threads really contend on one cache line, and separated by barriers
 * so that they never overlap:
 *
 *   fetch_add  M x lf_atomic_fetch_add(&a, 1) or lf_atomic_fetch_inc(&a)
 *              (alternately) per thread: the total must be
 *              exactly N*M, and the old values returned should be each of
 *              0 .. N*M-1 once (checked cheaply: their sum, and each thread
 *              must see its own values strictly increase).
 *   cas        the same count done with a load + lf_atomic_cmpxchg retry
 *              loop; exactly N*M.  The retries (a CAS that lost the race)
 *              are reported, not asserted: they depend on the scheduler.
 *   bits       thread t owns bits t, t+N, t+2N, ... of one shared word and
 *              toggles them with test_and_set_bit/test_and_clear_bit; every
 *              RMW must return the old bit the owner expects, even though
 *              the other threads are flipping other bits of the same word,
 *              and the final word must be the one computed from the rule.
 *              Thread t does M + t + 1 toggles, so that the final word is not
 *              trivially 0 when M is a multiple of the bits each one owns.
 *   racy       the same threads incrementing a plain volatile counter: a
 *              demonstration of lost updates, printed and never asserted.
 *              Compiled out under ThreadSanitizer (which would rightly report
 *              it) and with -DLF_NO_RACY.
 */
#include "atomic.h"
#include "arch/atomic.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "stress.h"

#if defined(__SANITIZE_THREAD__) && !defined(LF_NO_RACY)
# define LF_NO_RACY 1
#endif

#define NAME		"atomic_stress"
#define MAX_THREADS	64	/* the bits phase gives each thread >= 1 bit */
#define QUICK_ITERS	500000L
#define LONG_ITERS	10000000L

/* Each counter on its own cache line, so that a phase measures contention on
 * its own word and not false sharing with a neighbour. */
static lf_atomic_t fa_counter LF_CACHELINE_ALIGNED;
static lf_atomic_t cas_counter LF_CACHELINE_ALIGNED;
static lf_atomic_t bits_word LF_CACHELINE_ALIGNED;
static lf_atomic_t gate LF_CACHELINE_ALIGNED;	/* see phase_start() */
#ifndef LF_NO_RACY
static volatile uint64_t racy_counter LF_CACHELINE_ALIGNED;
#endif

static pthread_barrier_t phase_barrier;
static long nthreads;
static long iters;

/* Per-thread results, written by the owner only and read by main after
 * pthread_join (which orders them); padded so the writes never share a line. */
struct worker {
	pthread_t tid;
	long id;
	uint64_t fa_oldsum;
	uint64_t fa_nonmonotonic;
	uint64_t cas_retries;
	uint64_t bits_errors;
} LF_CACHELINE_ALIGNED;

static struct worker workers[MAX_THREADS];

enum { PH_FETCH_ADD, PH_CAS, PH_BITS, PH_RACY, PH_END, NR_MARKS };
static struct timespec marks[NR_MARKS];


/*
 * Start a phase in every thread at once.  The barrier alone is not enough:
 * it wakes the sleepers one futex wake at a time, and with more threads than
 * cores the first one out can finish a short phase before the last is even
 * scheduled, so nothing would contend.  After it, each thread checks in at a
 * spinning gate and nobody starts until all are running.  The gate is built
 * from the very operations under test, so it gives up after 1-2 s rather than
 * hang if they are broken (the checks then report the damage).  The thread
 * the barrier singles out timestamps the start of the phase.
 */
static void phase_start(int mark)
{
	int64_t all = (int64_t)nthreads * (mark + 1);
	struct timespec t0, now;
	unsigned spins = 0;
	bool serial;

	serial = pthread_barrier_wait(&phase_barrier) ==
		 PTHREAD_BARRIER_SERIAL_THREAD;
	lf_atomic_fetch_add(&gate, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (lf_atomic_load(&gate) < all) {
		lf_cpu_relax();
		/* Oversubscribed (4 threads, 2 cores): let latecomers run. */
		if (++spins % 128)
			continue;
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 1)
			break;
	}
	if (serial)
		clock_gettime(CLOCK_MONOTONIC, &marks[mark]);
}

static double ms_between(int a, int b)
{
	return (marks[b].tv_sec - marks[a].tv_sec) * 1e3 +
	       (marks[b].tv_nsec - marks[a].tv_nsec) / 1e6;
}

/* Bits of the shared word owned by thread t: t, t+N, t+2N, ... < 64. */
static unsigned bits_owned(long t)
{
	return (unsigned)((64 - t + nthreads - 1) / nthreads);
}

static long bits_iters(long t)
{
	return iters + t + 1;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	unsigned nown = bits_owned(w->id);
	uint64_t mine = 0;	/* this thread's view of its own bits */
	int64_t prev = -1;
	long i;

	phase_start(PH_FETCH_ADD);
	for (i = 0; i < iters; i++) {
		/* Every other increment through the one-argument form
		 * Python's fetch_add(1) uses. */
		int64_t old = (i & 1) ? lf_atomic_fetch_inc(&fa_counter)
				      : lf_atomic_fetch_add(&fa_counter, 1);

		/* The counter only grows, so a thread must see its own
		 * increments land in increasing order. */
		if (old <= prev)
			w->fa_nonmonotonic++;
		prev = old;
		w->fa_oldsum += (uint64_t)old;
	}

	phase_start(PH_CAS);
	for (i = 0; i < iters; i++) {
		int64_t old = lf_atomic_load(&cas_counter);
		int64_t seen;

		/* The classic retry loop: on failure cmpxchg hands back the
		 * value it found, which is the next guess, so no reload. */
		while ((seen = lf_atomic_cmpxchg(&cas_counter, old,
						 old + 1)) != old) {
			old = seen;
			w->cas_retries++;
		}
	}

	phase_start(PH_BITS);
	for (i = 0; i < bits_iters(w->id); i++) {
		unsigned nr = (unsigned)(w->id + (long)(i % nown) * nthreads);
		uint64_t mask = (uint64_t)1 << nr;
		bool was;

		/* Only this thread touches bit nr, so the old bit each RMW
		 * returns is known in advance; a non-atomic RMW racing with
		 * the neighbours' RMWs on the same word would lose bits. */
		if (mine & mask) {
			was = lf_atomic_test_and_clear_bit(&bits_word, nr);
			mine &= ~mask;
		} else {
			was = lf_atomic_test_and_set_bit(&bits_word, nr);
			mine |= mask;
		}
		if (was != !(mine & mask))
			w->bits_errors++;
		if (lf_atomic_test_bit(&bits_word, nr) != !!(mine & mask))
			w->bits_errors++;
	}

	phase_start(PH_RACY);
#ifndef LF_NO_RACY
	/* Deliberately a data race: load, add, store, with no lock prefix. */
	for (i = 0; i < iters; i++)
		racy_counter++;
#endif

	phase_start(PH_END);
	return NULL;
}

/* The word the bits phase must end with, from the rule alone: bit b belongs
 * to thread b % N as its (b / N)-th bit, and is toggled once per iteration
 * that selects it; it ends set iff toggled an odd number of times. */
static uint64_t bits_expected(void)
{
	uint64_t word = 0;
	unsigned b;

	for (b = 0; b < 64; b++) {
		long owner = b % nthreads, j = b / nthreads;
		long nown = bits_owned(owner);
		long n = bits_iters(owner);
		long toggles = n / nown + (j < n % nown);

		if (toggles & 1)
			word |= (uint64_t)1 << b;
	}
	return word;
}

static long parse_arg(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "usage: " NAME " [threads [iterations]]: "
			"bad %s '%s' (%ld..%ld)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *lng = getenv("LOCKFREE_LONG");
	bool long_mode = lng && strcmp(lng, "1") == 0;
	uint64_t total, expected, got, want;
	uint64_t nonmono = 0, retries = 0, berrs = 0, oldsum = 0;
	long t;
	int err;

	nthreads = argc > 1 ? parse_arg(argv[1], 1, MAX_THREADS, "threads") : 4;
	iters = long_mode ? LONG_ITERS : QUICK_ITERS;
	if (argc > 2)
		iters = parse_arg(argv[2], 1, 1000000000L, "iterations");

	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	printf("mode=%s\n", long_mode ? "long" : "quick");
	printf("threads=%ld\n", nthreads);
	printf("iterations=%ld\n", iters);
	fflush(stdout);

	lf_atomic_init(&fa_counter, 0);
	lf_atomic_init(&cas_counter, 0);
	lf_atomic_init(&bits_word, 0);
	lf_atomic_init(&gate, 0);

	err = pthread_barrier_init(&phase_barrier, NULL, (unsigned)nthreads);
	if (err) {
		printf(NAME ": FAIL pthread_barrier_init: %s\n", strerror(err));
		return 1;
	}
	for (t = 0; t < nthreads; t++) {
		workers[t].id = t;
		err = pthread_create(&workers[t].tid, NULL, worker_fn,
				     &workers[t]);
		if (err) {
			/* The barrier would wait forever for this thread. */
			printf(NAME ": FAIL pthread_create: %s\n",
			       strerror(err));
			return 1;
		}
	}
	for (t = 0; t < nthreads; t++) {
		pthread_join(workers[t].tid, NULL);
		nonmono += workers[t].fa_nonmonotonic;
		oldsum += workers[t].fa_oldsum;
		retries += workers[t].cas_retries;
		berrs += workers[t].bits_errors;
	}
	pthread_barrier_destroy(&phase_barrier);

	expected = (uint64_t)nthreads * (uint64_t)iters;

	total = (uint64_t)lf_atomic_load(&fa_counter);
	printf("fetch_add_total=%" PRIu64 " expected=%" PRIu64 "\n",
	       total, expected);
	if (total != expected)
		fail("fetch_add_total=%" PRIu64 " != %" PRIu64,
		     total, expected);
	/* 0 + 1 + ... + (NM-1), the sum of the old values if each was
	 * returned exactly once. */
	want = expected * (expected - 1) / 2;
	printf("fetch_add_oldsum=%" PRIu64 " expected=%" PRIu64 "\n",
	       oldsum, want);
	if (oldsum != want)
		fail("fetch_add_oldsum=%" PRIu64 " != %" PRIu64, oldsum, want);
	printf("fetch_add_nonmonotonic=%" PRIu64 " expected=0\n", nonmono);
	if (nonmono)
		fail("fetch_add_nonmonotonic=%" PRIu64, nonmono);
	printf("fetch_add_ms=%.1f\n", ms_between(PH_FETCH_ADD, PH_CAS));

	total = (uint64_t)lf_atomic_load(&cas_counter);
	printf("cas_total=%" PRIu64 " expected=%" PRIu64 "\n", total, expected);
	if (total != expected)
		fail("cas_total=%" PRIu64 " != %" PRIu64, total, expected);
	printf("cas_retries=%" PRIu64 "\n", retries);
	printf("cas_ms=%.1f\n", ms_between(PH_CAS, PH_BITS));

	got = (uint64_t)lf_atomic_load(&bits_word);
	want = bits_expected();
	printf("bits_word=0x%016" PRIx64 " expected=0x%016" PRIx64 "\n",
	       got, want);
	if (got != want)
		fail("bits_word=0x%016" PRIx64 " != 0x%016" PRIx64, got, want);
	printf("bits_errors=%" PRIu64 " expected=0\n", berrs);
	if (berrs)
		fail("bits_errors=%" PRIu64, berrs);
	printf("bits_ms=%.1f\n", ms_between(PH_BITS, PH_RACY));

#ifndef LF_NO_RACY
	got = racy_counter;
	printf("racy_total=%" PRIu64 " expected=%" PRIu64 " lost=%" PRIu64 "\n",
	       got, expected, expected - got);
	printf("racy_ms=%.1f\n", ms_between(PH_RACY, PH_END));
#else
	printf("racy_total=disabled\n");
#endif

	if (failbuf[0]) {
		printf(NAME ": FAIL %s\n", failbuf);
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
