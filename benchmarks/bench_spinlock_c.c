/*
 * C benchmark of the spinlock family against glibc and Concurrency Kit.
 * Build: gcc -O2 -Icsrc benchmarks/bench_spinlock_c.c csrc/ *.c -lpthread
 * (benchmarks/bench_spinlock.py does this and runs it).  Prints key=value.
 *
 * 1. Uncontended lock+unlock pair, ns (median of REPEATS runs), all in the
 *    same run: lf_spin (inline, TTAS and TAS), lf_spin_acquire_until +
 *    lf_spin_release (the out-of-line entry points cffi calls), lf_ticket,
 *    lf_rwlock write and read, pthread_spin_lock, pthread_mutex, and
 *    ck_spinlock_fas when <ck_spinlock.h> exists.
 * 2. Two threads hammering a tiny critical section (one shared counter
 *    increment) for a fixed time: total acquisitions per second, median of
 *    REPEATS runs, same locks.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rwlock.h"
#include "spinlock.h"
#include "ticketlock.h"

#if defined(__has_include)
# if __has_include(<ck_spinlock.h>)
#  include <ck_spinlock.h>
#  define HAVE_CK 1
# endif
#endif

#define REPEATS 7

static lf_spinlock_t spin_ttas, spin_tas;
static lf_ticketlock_t ticket;
static lf_rwlock_t rw;
static pthread_spinlock_t pspin;
static pthread_mutex_t pmutex = PTHREAD_MUTEX_INITIALIZER;
#ifdef HAVE_CK
static ck_spinlock_fas_t ckfas = CK_SPINLOCK_FAS_INITIALIZER;
#endif

enum which { L_TTAS, L_TAS, L_OOL, L_TICKET, L_RW_W, L_RW_R, L_PSPIN,
	     L_PMUTEX, L_CK, NLOCKS };
static const char *names[] = {"lf_spin_ttas", "lf_spin_tas",
	"lf_spin_outofline", "lf_ticket", "lf_rwlock_write", "lf_rwlock_read",
	"pthread_spin", "pthread_mutex", "ck_spinlock_fas"};

static inline __attribute__((always_inline)) void pair(enum which w)
{
	switch (w) {
	case L_TTAS: lf_spin_lock(&spin_ttas); lf_spin_unlock(&spin_ttas); break;
	case L_TAS: lf_spin_lock(&spin_tas); lf_spin_unlock(&spin_tas); break;
	case L_OOL:
		lf_spin_acquire_until(&spin_ttas, LF_FOREVER);
		lf_spin_release(&spin_ttas);
		break;
	case L_TICKET: lf_ticket_lock(&ticket); lf_ticket_unlock(&ticket); break;
	case L_RW_W:
		lf_rwlock_write_lock_until(&rw, LF_FOREVER);
		lf_rwlock_write_unlock(&rw);
		break;
	case L_RW_R:
		lf_rwlock_read_lock_until(&rw, LF_FOREVER);
		lf_rwlock_read_unlock(&rw);
		break;
	case L_PSPIN: pthread_spin_lock(&pspin); pthread_spin_unlock(&pspin); break;
	case L_PMUTEX:
		pthread_mutex_lock(&pmutex);
		pthread_mutex_unlock(&pmutex);
		break;
	case L_CK:
#ifdef HAVE_CK
		ck_spinlock_fas_lock(&ckfas);
		ck_spinlock_fas_unlock(&ckfas);
#endif
		break;
	default: break;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return v[n / 2];
}

/* Each lock type gets its own instantiation of the loop, so the switch is
 * resolved at compile time and only the pair itself is timed. */
#define UNCONTENDED(W)                                                       \
static double uncontended_##W(long n)                                        \
{                                                                            \
	uint64_t t0 = lf_now_ns();                                           \
	for (long i = 0; i < n; i++) {                                       \
		pair(W);                                                     \
		lf_barrier();                                                \
	}                                                                    \
	return (double)(lf_now_ns() - t0) / n;                               \
}
UNCONTENDED(L_TTAS) UNCONTENDED(L_TAS) UNCONTENDED(L_OOL)
UNCONTENDED(L_TICKET) UNCONTENDED(L_RW_W) UNCONTENDED(L_RW_R)
UNCONTENDED(L_PSPIN) UNCONTENDED(L_PMUTEX) UNCONTENDED(L_CK)

static double (*const uncontended[NLOCKS])(long) = {
	uncontended_L_TTAS, uncontended_L_TAS, uncontended_L_OOL,
	uncontended_L_TICKET, uncontended_L_RW_W, uncontended_L_RW_R,
	uncontended_L_PSPIN, uncontended_L_PMUTEX, uncontended_L_CK};

/* -- contended ------------------------------------------------------------- */

static uint32_t stop_word;
static long shared_counter;  /* the tiny critical section */

struct hammer { enum which w; long count; pthread_barrier_t *start; };

#define HAMMER(W)                                                            \
static void hammer_##W(struct hammer *h)                                     \
{                                                                            \
	long c = 0;                                                          \
	while (!lf_load_acquire32(&stop_word)) {                             \
		for (int i = 0; i < 64; i++) {                               \
			pair_cs(W);                                          \
		}                                                            \
		c += 64;                                                     \
	}                                                                    \
	h->count = c;                                                        \
}

static inline __attribute__((always_inline)) void pair_cs(enum which w)
{
	switch (w) {
	case L_TTAS: lf_spin_lock(&spin_ttas); shared_counter++; lf_spin_unlock(&spin_ttas); break;
	case L_TAS: lf_spin_lock(&spin_tas); shared_counter++; lf_spin_unlock(&spin_tas); break;
	case L_OOL:
		lf_spin_acquire_until(&spin_ttas, LF_FOREVER);
		shared_counter++;
		lf_spin_release(&spin_ttas);
		break;
	case L_TICKET: lf_ticket_lock(&ticket); shared_counter++; lf_ticket_unlock(&ticket); break;
	case L_RW_W:
		lf_rwlock_write_lock_until(&rw, LF_FOREVER);
		shared_counter++;
		lf_rwlock_write_unlock(&rw);
		break;
	case L_PSPIN: pthread_spin_lock(&pspin); shared_counter++; pthread_spin_unlock(&pspin); break;
	case L_PMUTEX:
		pthread_mutex_lock(&pmutex);
		shared_counter++;
		pthread_mutex_unlock(&pmutex);
		break;
	case L_CK:
#ifdef HAVE_CK
		ck_spinlock_fas_lock(&ckfas);
		shared_counter++;
		ck_spinlock_fas_unlock(&ckfas);
#endif
		break;
	default: break;
	}
}

HAMMER(L_TTAS) HAMMER(L_TAS) HAMMER(L_OOL) HAMMER(L_TICKET) HAMMER(L_RW_W)
HAMMER(L_PSPIN) HAMMER(L_PMUTEX) HAMMER(L_CK)

static void (*const hammers[NLOCKS])(struct hammer *) = {
	hammer_L_TTAS, hammer_L_TAS, hammer_L_OOL, hammer_L_TICKET,
	hammer_L_RW_W, NULL, hammer_L_PSPIN, hammer_L_PMUTEX, hammer_L_CK};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	pthread_barrier_wait(h->start);
	hammers[h->w](h);
	return NULL;
}

static double contended(enum which w, int nthreads, int ms)
{
	pthread_t th[8];
	struct hammer h[8];
	pthread_barrier_t start;

	lf_store_release32(&stop_word, 0);
	pthread_barrier_init(&start, NULL, nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		h[i] = (struct hammer){w, 0, &start};
		pthread_create(&th[i], NULL, hammer_thread, &h[i]);
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = lf_now_ns();
	usleep(ms * 1000);
	lf_store_release32(&stop_word, 1);
	long total = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		total += h[i].count;
	}
	uint64_t dt = lf_now_ns() - t0;
	pthread_barrier_destroy(&start);
	return total / (dt / 1e9);
}

int main(int argc, char **argv)
{
	int is_long = getenv("LOCKFREE_LONG") && atoi(getenv("LOCKFREE_LONG"));
	long n = is_long ? 20000000 : 3000000;
	int ms = is_long ? 1000 : 200;
	int repeats = argc > 1 ? atoi(argv[1]) : REPEATS;
	if (repeats < 1 || repeats > 99)
		repeats = REPEATS;
#ifndef HAVE_CK
	const int have_ck = 0;
#else
	const int have_ck = 1;
#endif

	lf_spin_init(&spin_ttas, LF_LOCK_TTAS);
	lf_spin_init(&spin_tas, 0);
	lf_ticket_init(&ticket, 0);
	lf_rwlock_init(&rw, 0);
	pthread_spin_init(&pspin, PTHREAD_PROCESS_PRIVATE);
	printf("atomics=%s\nrepeats=%d\nhave_ck=%d\n", LF_ATOMICS_IMPL,
	       repeats, have_ck);

	/* Interleave the locks within each repeat so that machine noise
	 * hits them alike; report medians. */
	double un[NLOCKS][99], th[NLOCKS][99];
	for (int r = 0; r < repeats; r++)
		for (int w = 0; w < NLOCKS; w++)
			if (w != L_CK || have_ck)
				un[w][r] = uncontended[w](n);
	for (int w = 0; w < NLOCKS; w++) {
		if (w == L_CK && !have_ck)
			continue;
		printf("uncontended_pair_ns_%s=%.2f\n", names[w],
		       median(un[w], repeats));
	}
	double pspin_ns = median(un[L_PSPIN], repeats);
	printf("uncontended_ratio_lf_spin_ttas_vs_pthread_spin=%.3f\n",
	       median(un[L_TTAS], repeats) / pspin_ns);
	printf("uncontended_ratio_lf_spin_tas_vs_pthread_spin=%.3f\n",
	       median(un[L_TAS], repeats) / pspin_ns);
	printf("uncontended_ratio_lf_spin_outofline_vs_pthread_spin=%.3f\n",
	       median(un[L_OOL], repeats) / pspin_ns);

	for (int r = 0; r < repeats; r++)
		for (int w = 0; w < NLOCKS; w++)
			if (hammers[w] && (w != L_CK || have_ck))
				th[w][r] = contended(w, 2, ms);
	double best_ref = 0;
	for (int w = 0; w < NLOCKS; w++) {
		if (!hammers[w] || (w == L_CK && !have_ck))
			continue;
		double m = median(th[w], repeats);
		printf("contended_2threads_mops_%s=%.2f\n", names[w], m / 1e6);
		if ((w == L_PSPIN || w == L_CK) && m > best_ref)
			best_ref = m;
	}
	printf("contended_ratio_lf_spin_ttas_vs_best_ref=%.3f\n",
	       median(th[L_TTAS], repeats) / best_ref);
	printf("contended_ratio_lf_spin_tas_vs_best_ref=%.3f\n",
	       median(th[L_TAS], repeats) / best_ref);
	printf("bench_spinlock_c: done\n");
	return 0;
}
