/*
 * C benchmark of the seqlock against Concurrency Kit's ck_sequence and a
 * lock.  Build: gcc -O2 -Icsrc benchmarks/bench_seqlock_c.c csrc/ *.c
 * -lpthread (benchmarks/bench_seqlock.py does this and runs it).  Prints
 * key=value lines.  argv[1]: repeats (default 7).
 *
 * 1. Uncontended read of a 32-byte record (4 x uint64), ns per read, median
 *    of the repeats, taken in turn:
 *      lf_inline    lf_seq_read_begin / lf_seq_copy_out / lf_seq_read_retry
 *                   (the header's inline API, as ck is used)
 *      lf_read      lf_seq_read(sl, dst, 32): the out-of-line copy-out
 *                   helper (a call, a length check, the loop)
 *      lf_latch     lf_inline on a latch seqlock
 *      ck_sequence  ck_sequence_read_begin / struct copy / _read_retry,
 *                   when <ck_sequence.h> exists; otherwise "reimpl", a
 *                   straightforward seqlock written here (labelled so).
 * 2. Writer rate: one thread writes the record for a fixed time, alone,
 *    then with a reader thread hammering the same record (pinned to the
 *    other core), repeats taken in turn; writes/s medians and the ratio.
 *    The same for the lock-based alternative: readers take the writer's
 *    lock (lf_spin) to copy the record.  Also the ns each write lost to the
 *    reader (per hammered write minus per solo write).
 * 3. One cache-line transfer, the floor of that loss: a store to a line the
 *    other core has just read, then a locked instruction (which waits for
 *    the store; cffi retakes the GIL with one after every call), minus the
 *    same on a line only this thread uses; median ns.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seqlock.h"

#if defined(__has_include)
# if __has_include(<ck_sequence.h>)
#  include <ck_sequence.h>
#  define HAVE_CK 1
# endif
#endif

#define N_READS 2000000
#define RATE_NS 100000000ull   /* 100 ms per writer-rate trial */

struct rec { uint64_t a, b, c, d; };

static struct lf_seq_handle *sl, *sl_latch;  /* handles */

/* Make the copy observable, so the compiler cannot drop it. */
static inline void sink(struct rec *r)
{
	__asm__ __volatile__("" : : "r"(r) : "memory");
}

#ifdef HAVE_CK
static ck_sequence_t ck_seq = CK_SEQUENCE_INITIALIZER;
#define ANCHOR "ck_sequence"
#else
/* A straightforward seqlock, for comparison when ck is absent. */
static struct { uint32_t seq; } ck_seq;
#define ANCHOR "reimpl"
#endif
static struct rec ck_data;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static __attribute__((noinline)) void read_lf_inline(struct lf_seq_handle *l)
{
	struct rec r;
	uint32_t s;
	do {
		while ((s = lf_seq_read_begin(l)) & 1)
			lf_cpu_relax();
		lf_seq_copy_out(&r, lf_seq_copy(l, lf_seq_read_index(l, s)),
				sizeof r);
	} while (lf_seq_read_retry(l, s));
	sink(&r);
}

static __attribute__((noinline)) void read_lf_latch(struct lf_seq_handle *l)
{
	struct rec r;
	uint32_t s;
	do {
		s = lf_seq_read_begin(l);  /* latch: never waits */
		lf_seq_copy_out(&r, lf_seq_copy(l, s & 1), sizeof r);
	} while (lf_seq_read_retry(l, s));
	sink(&r);
}

static __attribute__((noinline)) void read_lf_call(struct lf_seq_handle *l)
{
	struct rec r;
	lf_seq_read(l, &r, sizeof r);
	sink(&r);
}

static __attribute__((noinline)) void read_anchor(void)
{
	struct rec r;
#ifdef HAVE_CK
	unsigned int v;
	do {
		v = ck_sequence_read_begin(&ck_seq);
		r = ck_data;
	} while (ck_sequence_read_retry(&ck_seq, v));
#else
	uint32_t v;
	do {
		while ((v = __atomic_load_n(&ck_seq.seq, __ATOMIC_ACQUIRE)) & 1)
			;
		r = *(volatile struct rec *)&ck_data;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&ck_seq.seq, __ATOMIC_RELAXED) != v);
#endif
	sink(&r);
}

enum { R_INLINE, R_CALL, R_LATCH, R_ANCHOR, NR };
static const char *rnames[] = {"lf_inline", "lf_read", "lf_latch", ANCHOR};

static double time_reads(int which)
{
	double t0 = now();
	for (int i = 0; i < N_READS; i++) {
		switch (which) {
		case R_INLINE: read_lf_inline(sl); break;
		case R_CALL: read_lf_call(sl); break;
		case R_LATCH: read_lf_latch(sl_latch); break;
		default: read_anchor(); break;
		}
	}
	return (now() - t0) / N_READS;
}

/* -- writer rate ------------------------------------------------------------- */

static lf_spinlock_t biglock;  /* the lock-based alternative */
static struct rec locked_data;
static uint32_t stop_reader;
static int use_lock;

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *hammer(void *arg)
{
	(void)arg;
	struct rec r;
	pin(1);
	while (!lf_load_acquire32(&stop_reader)) {
		if (use_lock) {
			lf_spin_lock(&biglock);
			r = locked_data;
			lf_spin_unlock(&biglock);
			sink(&r);
		} else {
			lf_seq_read(sl, &r, sizeof r);
			sink(&r);
		}
	}
	return NULL;
}

static double writer_rate(int with_reader)
{
	pthread_t t;
	struct rec r = {0};
	uint64_t n = 0;

	lf_store_release32(&stop_reader, 0);
	if (with_reader)
		pthread_create(&t, NULL, hammer, NULL);
	pin(0);
	double t0 = now(), t1;
	do {
		for (int i = 0; i < 1000; i++, n++) {
			r.a = r.b = r.c = r.d = n;
			if (use_lock) {
				lf_spin_lock(&biglock);
				locked_data = r;
				lf_spin_unlock(&biglock);
			} else {
				lf_seq_write(sl, &r, sizeof r);
			}
		}
		t1 = now();
	} while (t1 - t0 < RATE_NS);
	lf_store_release32(&stop_reader, 1);
	if (with_reader)
		pthread_join(t, NULL);
	return n / ((t1 - t0) / 1e9);
}

/* -- one cache-line transfer ------------------------------------------------ */

/* [0] the line written, [1] the writer's turn counter, [2] the reader's. */
static struct {
	uint64_t v;
	char pad[120];
} xline[3] __attribute__((aligned(128)));
#define N_XFER 20000

static void *xfer_reader(void *arg)
{
	int remote = *(int *)arg;
	pin(1);
	for (uint64_t i = 1; i <= N_XFER; i++) {
		while (lf_load_acquire64(&xline[1].v) != i)
			lf_cpu_relax();
		if (remote)
			(void)lf_read64(&xline[0].v);  /* take a shared copy */
		lf_store_release64(&xline[2].v, i);
	}
	return NULL;
}

static double transfer_ns(int remote)
{
	static double t[N_XFER];
	pthread_t th;

	xline[1].v = xline[2].v = 0;
	pthread_create(&th, NULL, xfer_reader, &remote);
	pin(0);
	for (uint64_t i = 1; i <= N_XFER; i++) {
		lf_write64(&xline[0].v, i);  /* own the line again */
		lf_smp_mb();
		lf_store_release64(&xline[1].v, i);
		while (lf_load_acquire64(&xline[2].v) != i)
			lf_cpu_relax();
		double t0 = now();
		lf_write64(&xline[0].v, i + 1);
		lf_smp_mb();
		t[i - 1] = now() - t0;
	}
	pthread_join(th, NULL);
	return median(t, N_XFER);
}

int main(int argc, char **argv)
{
	int repeats = argc > 1 ? atoi(argv[1]) : 7;
	double samples[NR][64], rate[2][2][64];

	if (repeats < 1 || repeats > 64)
		repeats = 7;
	static struct lf_seq_handle h, h_latch;
	uint64_t bytes = lf_seq_state_size(sizeof(struct rec), 0, 0);
	uint64_t bytes_latch = lf_seq_state_size(sizeof(struct rec),
						 LF_SEQ_LATCH, 0);
	lf_seqlock_t *st = aligned_alloc(64, bytes);
	lf_seqlock_t *st_latch = aligned_alloc(64, bytes_latch);
	lf_seq_init(st, sizeof(struct rec), 0, NULL, 0);
	lf_seq_init(st_latch, sizeof(struct rec), LF_SEQ_LATCH, NULL, 0);
	if (lf_seq_handle_init(&h, st, bytes, sizeof(struct rec), 0, 0,
			       NULL) ||
	    lf_seq_handle_init(&h_latch, st_latch, bytes_latch,
			       sizeof(struct rec), LF_SEQ_LATCH, 0, NULL))
		return 2;
	sl = &h;
	sl_latch = &h_latch;
	lf_spin_init(&biglock, LF_LOCK_TTAS);
	printf("atomics=%s\nrepeats=%d\nanchor=%s\nrecord_bytes=%zu\n",
	       LF_ATOMICS_IMPL, repeats, ANCHOR, sizeof(struct rec));
	for (int k = 0; k < repeats; k++)
		for (int w = 0; w < NR; w++)
			samples[w][k] = time_reads(w);
	double med[NR];
	for (int w = 0; w < NR; w++) {
		med[w] = median(samples[w], repeats);
		printf("read_ns_%s=%.2f\n", rnames[w], med[w]);
	}
	for (int w = 0; w < R_ANCHOR; w++)
		printf("read_ratio_%s_vs_%s=%.3f\n", rnames[w], ANCHOR,
		       med[w] / med[R_ANCHOR]);

	for (int k = 0; k < repeats; k++)
		for (use_lock = 0; use_lock < 2; use_lock++)
			for (int h = 0; h < 2; h++)
				rate[use_lock][h][k] = writer_rate(h);
	const char *alt[] = {"seqlock", "spinlock_readers"};
	for (int l = 0; l < 2; l++) {
		double solo = median(rate[l][0], repeats);
		double ham = median(rate[l][1], repeats);
		printf("writer_mwrites_per_s_%s_solo=%.2f\n", alt[l], solo / 1e6);
		printf("writer_mwrites_per_s_%s_reader_hammering=%.2f\n", alt[l],
		       ham / 1e6);
		printf("writer_ratio_%s=%.3f\n", alt[l], ham / solo);
		printf("writer_lost_ns_per_write_%s=%.1f\n", alt[l],
		       1e9 / ham - 1e9 / solo);
	}
	double xr[64], xl[64];
	for (int k = 0; k < repeats; k++) {
		xr[k] = transfer_ns(1);
		xl[k] = transfer_ns(0);
	}
	double r = median(xr, repeats), l = median(xl, repeats);
	printf("store_mb_ns_after_remote_read=%.1f\nstore_mb_ns_local=%.1f\n"
	       "transfer_ns=%.1f\n", r, l, r - l);
	printf("bench_seqlock_c: done\n");
	return 0;
}
