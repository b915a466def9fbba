/*
 * bench_rcu_c: lockfree's C RCU next to liburcu's memb flavor, same loops.
 *
 * Built and run by benchmarks/bench_rcu.py (gcc -O2, csrc/*.c, and
 * -lurcu-memb when liburcu's headers are installed; -DHAVE_URCU).
 *
 *   read    one thread: read_lock; p = dereference(ptr); use *p; read_unlock
 *           (ns per section).  liburcu is called through its shared library
 *           (urcu_memb_read_lock: a PLT call and a TLS lookup) and, as a
 *           second row, inlined (_LGPL_SOURCE is not used for the library
 *           row; see read_urcu_inline.c-style macros below).
 *   sync    synchronize latency (us per call) with R reader threads looping
 *           on short read sections, and with none.
 *
 * Output: "key=value" lines, one per figure.  Arguments: iterations, rounds.
 */
#include "rcu.h"
#include "arch/atomic.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_URCU
#include <urcu/urcu-memb.h>
#endif

static long iters = 20000000;
static int rounds = 5;
static uint64_t value = 42;
static void *ptr = &value;
static volatile uint64_t sink;
static uint64_t stop, started;
static struct lf_rcu_domain *dom;
static struct lf_rcu_dh dh;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2];
}

static double read_lf(void)
{
	struct lf_rcu_rh rh, *r = &rh;
	uint64_t s = 0;
	double t0;
	long i;

	lf_rcu_rh_init(r, &dh, NULL);
	lf_rcu_register(r);
	t0 = now();

	for (i = 0; i < iters; i++) {
		lf_rcu_read_lock(r);
		s += *(uint64_t *)lf_rcu_dereference(&ptr);
		lf_rcu_read_unlock(r);
	}
	t0 = now() - t0;
	sink = s;
	lf_rcu_unregister(r);
	return t0 / iters * 1e9;
}

#ifdef HAVE_URCU
static double read_urcu(void)
{
	uint64_t s = 0;
	double t0;
	long i;

	urcu_memb_register_thread();
	t0 = now();
	for (i = 0; i < iters; i++) {
		urcu_memb_read_lock();
		s += *(uint64_t *)rcu_dereference(ptr);
		urcu_memb_read_unlock();
	}
	t0 = now() - t0;
	sink = s;
	urcu_memb_unregister_thread();
	return t0 / iters * 1e9;
}
#endif

/* Readers for the synchronize benchmark: short sections back to back. */
static void *reader_lf(void *arg)
{
	struct lf_rcu_rh rh, *r = &rh;
	uint64_t s = 0;

	(void)arg;
	lf_rcu_rh_init(r, &dh, NULL);
	lf_rcu_register(r);
	lf_xadd64(&started, 1);
	while (!lf_load_acquire64(&stop)) {
		lf_rcu_read_lock(r);
		s += *(uint64_t *)lf_rcu_dereference(&ptr);
		lf_rcu_read_unlock(r);
	}
	sink = s;
	lf_rcu_unregister(r);
	return NULL;
}

#ifdef HAVE_URCU
static void *reader_urcu(void *arg)
{
	uint64_t s = 0;

	(void)arg;
	urcu_memb_register_thread();
	lf_xadd64(&started, 1);
	while (!lf_load_acquire64(&stop)) {
		urcu_memb_read_lock();
		s += *(uint64_t *)rcu_dereference(ptr);
		urcu_memb_read_unlock();
	}
	sink = s;
	urcu_memb_unregister_thread();
	return NULL;
}
#endif

static double sync_bench(int nreaders, void *(*reader)(void *),
			 void (*sync)(void))
{
	pthread_t t[8];
	long n = iters / 2000;
	double t0;
	int i;

	lf_store_release64(&stop, 0);
	lf_write64(&started, 0);
	for (i = 0; i < nreaders; i++)
		pthread_create(&t[i], NULL, reader, NULL);
	while (lf_load_acquire64(&started) < (uint64_t)nreaders)
		sched_yield();
	for (i = 0; i < 100; i++)	/* warm up, let readers start */
		sync();
	t0 = now();
	for (i = 0; i < n; i++)
		sync();
	t0 = now() - t0;
	lf_store_release64(&stop, 1);
	for (i = 0; i < nreaders; i++)
		pthread_join(t[i], NULL);
	return t0 / n * 1e6;
}

static void sync_lf(void)
{
	lf_rcu_synchronize(&dh);
}

#ifdef HAVE_URCU
static void sync_urcu(void)
{
	urcu_memb_synchronize_rcu();
}
#endif

static void report(const char *key, double (*f)(void))
{
	double v[32];
	int i;

	for (i = 0; i < rounds; i++)
		v[i] = f();
	printf("%s=%.2f\n", key, median(v, rounds));
	fflush(stdout);
}

static void report_sync(const char *key, int nreaders,
			void *(*reader)(void *), void (*sync)(void))
{
	double v[32];
	int i;

	for (i = 0; i < rounds; i++)
		v[i] = sync_bench(nreaders, reader, sync);
	printf("%s=%.3f\n", key, median(v, rounds));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int nr;

	if (argc > 1)
		iters = atol(argv[1]);
	if (argc > 2)
		rounds = atoi(argv[2]);
	if (rounds < 1 || rounds > 31)
		rounds = 5;
	dom = aligned_alloc(64, lf_rcu_domain_size(64));
	lf_rcu_init(dom, 64);
	lf_rcu_handle_init(&dh, dom, lf_rcu_domain_size(64), 64, NULL);
	printf("atomics=%s\n", LF_ATOMICS_IMPL);
#ifdef HAVE_URCU
	printf("urcu=1\n");
#else
	printf("urcu=0\n");
#endif
	/* Interleave lockfree and liburcu so drift hits both alike. */
	report("read_ns_lockfree", read_lf);
#ifdef HAVE_URCU
	report("read_ns_urcu", read_urcu);
#endif
	for (nr = 0; nr <= 2; nr += 2) {
		char k[64];

		snprintf(k, sizeof(k), "sync_us_%dr_lockfree", nr);
		report_sync(k, nr, reader_lf, sync_lf);
#ifdef HAVE_URCU
		snprintf(k, sizeof(k), "sync_us_%dr_urcu", nr);
		report_sync(k, nr, reader_urcu, sync_urcu);
#endif
	}
	free(dom);
	return 0;
}
