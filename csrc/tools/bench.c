#define _GNU_SOURCE
#include "bench.h"
#include "arch/atomic.h"
#include "lockwait.h"
#include "rwlock.h"
#include "spinlock.h"
#include "ticketlock.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
# include <x86intrin.h>
# define LF_BENCH_RDTSC 1
#endif

#if !defined(LF_BENCH_NO_CK) && defined(__has_include)
# if __has_include(<ck_spinlock.h>)
#  include <ck_spinlock.h>
#  define LF_BENCH_HAVE_CK 1
# endif
#endif

static const char *const names[LF_BENCH_NPRIMS] = {
	"none", "lf-tas", "lf-ttas", "lf-ticket", "lf-rw-write", "lf-rw-mixed",
	"pthread-mutex", "pthread-adaptive", "pthread-spin",
	"ck-fas", "ck-ticket", "ck-mcs",
};

/* -- clock and busy work ----------------------------------------------------- */

static inline uint64_t ticks(void)
{
#ifdef LF_BENCH_RDTSC
	/* Not serialising: it may run a few instructions early or late, which
	 * is noise of a few ns on a latency, the same for every primitive. */
	return __rdtsc();
#else
	return lf_now_ns();
#endif
}

/* A dependent multiply-add chain (~4 cycles an iteration): work the CPU
 * cannot skip or overlap, whose length in ns is calibrated below. */
static inline uint64_t busy(uint64_t iters, uint64_t x)
{
	for (uint64_t i = 0; i < iters; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

static struct {
	double iters_per_ns, ticks_per_ns, timer_ns;
} calib;
static pthread_once_t calib_once = PTHREAD_ONCE_INIT;
static volatile uint64_t calib_sink;

static void calibrate(void)
{
	const uint64_t n = 200000;
	double best = 1e300;

	/* Fastest of several tries: a try that was preempted is slower. */
	for (int i = 0; i < 7; i++) {
		uint64_t t0 = lf_now_ns();
		calib_sink = busy(n, t0);
		double dt = (double)(lf_now_ns() - t0);
		if (dt > 0 && dt < best)
			best = dt;
	}
	calib.iters_per_ns = best < 1e300 ? n / best : 1.0;
#ifdef LF_BENCH_RDTSC
	uint64_t c0 = lf_now_ns(), k0 = ticks(), c1;
	while ((c1 = lf_now_ns()) - c0 < 20000000ull)
		;
	calib.ticks_per_ns = (double)(ticks() - k0) / (double)(c1 - c0);
#else
	calib.ticks_per_ns = 1.0;
#endif
	best = 1e300;
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = lf_now_ns(), s = 0;
		for (int j = 0; j < 10000; j++)
			s += ticks();
		calib_sink = s;
		double dt = (double)(lf_now_ns() - t0) / 10000;
		if (dt < best)
			best = dt;
	}
	calib.timer_ns = best;
}

/* -- histogram --------------------------------------------------------------- */

static inline int bucket(uint64_t v)
{
	if (v < (1u << LF_BENCH_SUB_BITS))
		return (int)v;
	int e = 63 - __builtin_clzll(v);  /* >= SUB_BITS */
	int s = e - LF_BENCH_SUB_BITS;
	return (1 << LF_BENCH_SUB_BITS) + (s << LF_BENCH_SUB_BITS)
		+ (int)((v >> s) & ((1u << LF_BENCH_SUB_BITS) - 1));
}

static uint64_t bucket_lo(int i)
{
	const int sub = 1 << LF_BENCH_SUB_BITS;
	if (i < sub)
		return (uint64_t)i;
	int s = (i - sub) / sub;
	return (uint64_t)(sub + (i - sub) % sub) << s;
}

static uint64_t bucket_width(int i)
{
	const int sub = 1 << LF_BENCH_SUB_BITS;
	return i < sub ? 1 : 1ull << ((i - sub) / sub);
}

double lf_bench_bucket_ns(int i, double ticks_per_ns)
{
	if (i < 0 || i >= LF_BENCH_BUCKETS || ticks_per_ns <= 0)
		return -1;
	return (double)bucket_lo(i) / ticks_per_ns;
}

/* The value below which a fraction q of the samples lie: the midpoint of
 * the bucket holding that sample. */
static double percentile_ticks(const uint64_t *h, uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;
	if (want >= total)
		want = total - 1;
	for (int i = 0; i < LF_BENCH_BUCKETS; i++) {
		seen += h[i];
		if (seen > want)
			return (double)bucket_lo(i) + (double)(bucket_width(i) - 1) / 2;
	}
	return 0;
}

/* -- the run ------------------------------------------------------------------ */

union lock {
	lf_spinlock_t spin;
	lf_ticketlock_t ticket;
	lf_rwlock_t rw;
	pthread_mutex_t mutex;
	pthread_spinlock_t pspin;
#ifdef LF_BENCH_HAVE_CK
	ck_spinlock_fas_t fas;
	ck_spinlock_ticket_t ckticket;
	ck_spinlock_mcs_t mcs;
#endif
};

struct line {
	uint64_t v;
} LF_CACHELINE_ALIGNED;

struct bench {
	union lock lock LF_CACHELINE_ALIGNED;
	/* The start gate and stop flag: read by every worker each iteration,
	 * written twice per run, so the line stays shared in every cache. */
	uint32_t go LF_CACHELINE_ALIGNED;  /* 1 start, 2 abandon */
	uint32_t stop;
	uint32_t ready;
	int32_t prim;
	int32_t read_pct;
	int32_t lines;
	uint64_t lat_mask;  /* time acquisition n iff (n & lat_mask) == 0 */
	uint64_t cs_iters, ncs_iters;
	struct line line[LF_BENCH_MAX_LINES];  /* the protected data */
};

struct worker {
	struct bench *b;
	int32_t id;
	int32_t cpu;
	pthread_t tid;
	uint64_t rng;
	uint64_t torn;
	uint64_t lat_sum, lat_max;
	uint64_t sink;
	struct lf_bench_thread out;
#ifdef LF_BENCH_HAVE_CK
	ck_spinlock_mcs_context_t mcs_node;  /* MCS: each waiter's own node */
#endif
	uint64_t hist[LF_BENCH_BUCKETS];
} LF_CACHELINE_ALIGNED;

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void lock_op(union lock *l, struct worker *w, const int prim,
			   int read)
{
	(void)w;  /* MCS only */
	switch (prim) {
	case LF_BENCH_LF_TAS:
	case LF_BENCH_LF_TTAS: lf_spin_lock(&l->spin); break;
	case LF_BENCH_LF_TICKET: lf_ticket_lock(&l->ticket); break;
	case LF_BENCH_LF_RW_WRITE:
	case LF_BENCH_LF_RW_MIXED:
		if (read)
			lf_rwlock_read_lock_until(&l->rw, LF_FOREVER);
		else
			lf_rwlock_write_lock_until(&l->rw, LF_FOREVER);
		break;
	case LF_BENCH_PTHREAD_MUTEX:
	case LF_BENCH_PTHREAD_ADAPTIVE: pthread_mutex_lock(&l->mutex); break;
	case LF_BENCH_PTHREAD_SPIN: pthread_spin_lock(&l->pspin); break;
#ifdef LF_BENCH_HAVE_CK
	case LF_BENCH_CK_FAS: ck_spinlock_fas_lock(&l->fas); break;
	case LF_BENCH_CK_TICKET: ck_spinlock_ticket_lock(&l->ckticket); break;
	case LF_BENCH_CK_MCS: ck_spinlock_mcs_lock(&l->mcs, &w->mcs_node); break;
#endif
	default: break;
	}
}

ALWAYS_INLINE void unlock_op(union lock *l, struct worker *w, const int prim,
			     int read)
{
	(void)w;  /* MCS only */
	switch (prim) {
	case LF_BENCH_LF_TAS:
	case LF_BENCH_LF_TTAS: lf_spin_unlock(&l->spin); break;
	case LF_BENCH_LF_TICKET: lf_ticket_unlock(&l->ticket); break;
	case LF_BENCH_LF_RW_WRITE:
	case LF_BENCH_LF_RW_MIXED:
		if (read)
			lf_rwlock_read_unlock(&l->rw);
		else
			lf_rwlock_write_unlock(&l->rw);
		break;
	case LF_BENCH_PTHREAD_MUTEX:
	case LF_BENCH_PTHREAD_ADAPTIVE: pthread_mutex_unlock(&l->mutex); break;
	case LF_BENCH_PTHREAD_SPIN: pthread_spin_unlock(&l->pspin); break;
#ifdef LF_BENCH_HAVE_CK
	case LF_BENCH_CK_FAS: ck_spinlock_fas_unlock(&l->fas); break;
	case LF_BENCH_CK_TICKET: ck_spinlock_ticket_unlock(&l->ckticket); break;
	case LF_BENCH_CK_MCS: ck_spinlock_mcs_unlock(&l->mcs, &w->mcs_node); break;
#endif
	default: break;
	}
}

/* Writer: read the K lines, work, write them back + 1.  Plain (untorn)
 * accesses: only the lock orders them, which is what is being tested. */
ALWAYS_INLINE uint64_t write_cs(struct bench *b, int k, uint64_t iters,
				uint64_t x)
{
	uint64_t v = lf_read64(&b->line[0].v);
	for (int i = 1; i < k; i++)
		x += lf_read64(&b->line[i].v);
	x = busy(iters, x ^ v);
	for (int i = 0; i < k; i++)
		lf_write64(&b->line[i].v, v + 1);
	return x;
}

/* Reader: the K lines must agree, before and after the work. */
ALWAYS_INLINE uint64_t read_cs(struct bench *b, int k, uint64_t iters,
			       uint64_t *x)
{
	uint64_t v = lf_read64(&b->line[0].v), torn = 0;
	for (int i = 1; i < k; i++)
		torn += lf_read64(&b->line[i].v) != v;
	*x = busy(iters, *x ^ v);
	for (int i = 0; i < k; i++)
		torn += lf_read64(&b->line[i].v) != v;
	return torn;
}

ALWAYS_INLINE void worker_loop(struct worker *w, const int prim)
{
	struct bench *b = w->b;
	union lock *l = &b->lock;
	const uint64_t cs = b->cs_iters, ncs = b->ncs_iters;
	const int k = b->lines;
	const uint32_t read_pct = (uint32_t)b->read_pct;
	const uint64_t lat_mask = b->lat_mask;
	uint64_t n = 0, reads = 0, torn = 0, sum = 0, max = 0, x = w->rng;
	uint64_t rng = w->rng;

	/* Pairs with the release store of stop in lf_bench_run(). */
	while (!lf_load_acquire32(&b->stop)) {
		int read = 0;
		if (prim == LF_BENCH_LF_RW_MIXED) {
			rng ^= rng << 13;  /* xorshift64 */
			rng ^= rng >> 7;
			rng ^= rng << 17;
			read = (uint32_t)(rng % 100) < read_pct;
		}
		if (!(n & lat_mask)) {
			uint64_t t0 = ticks();
			lock_op(l, w, prim, read);
			uint64_t t1 = ticks();
			uint64_t dt = t1 > t0 ? t1 - t0 : 0;
			w->hist[bucket(dt)]++;
			sum += dt;
			max = dt > max ? dt : max;
		} else {
			lock_op(l, w, prim, read);
		}
		if (read) {
			torn += read_cs(b, k, cs, &x);
			reads++;
		} else {
			x = write_cs(b, k, cs, x);
		}
		unlock_op(l, w, prim, read);
		x = busy(ncs, x);
		n++;
	}
	w->out.acquisitions = n;
	w->out.reads = reads;
	w->torn = torn;
	w->lat_sum = sum;
	w->lat_max = max;
	w->sink = x;
}

/* One instantiation per primitive: the switches above fold away. */
#define LOOP(P) static void loop_##P(struct worker *w) { worker_loop(w, P); }
LOOP(LF_BENCH_NONE) LOOP(LF_BENCH_LF_TAS) LOOP(LF_BENCH_LF_TTAS)
LOOP(LF_BENCH_LF_TICKET) LOOP(LF_BENCH_LF_RW_WRITE) LOOP(LF_BENCH_LF_RW_MIXED)
LOOP(LF_BENCH_PTHREAD_MUTEX) LOOP(LF_BENCH_PTHREAD_ADAPTIVE)
LOOP(LF_BENCH_PTHREAD_SPIN) LOOP(LF_BENCH_CK_FAS) LOOP(LF_BENCH_CK_TICKET)
LOOP(LF_BENCH_CK_MCS)

static void (*const loops[LF_BENCH_NPRIMS])(struct worker *) = {
	loop_LF_BENCH_NONE, loop_LF_BENCH_LF_TAS, loop_LF_BENCH_LF_TTAS,
	loop_LF_BENCH_LF_TICKET, loop_LF_BENCH_LF_RW_WRITE,
	loop_LF_BENCH_LF_RW_MIXED, loop_LF_BENCH_PTHREAD_MUTEX,
	loop_LF_BENCH_PTHREAD_ADAPTIVE, loop_LF_BENCH_PTHREAD_SPIN,
	loop_LF_BENCH_CK_FAS, loop_LF_BENCH_CK_TICKET, loop_LF_BENCH_CK_MCS,
};

static uint64_t tv_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	struct rusage r0, r1;
	uint32_t go;

	w->out.cpu = -1;
	if (w->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		w->out.pin_error = pthread_setaffinity_np(pthread_self(),
							  sizeof(set), &set);
		if (!w->out.pin_error)
			w->out.cpu = w->cpu;
	}
	lf_owner_self();  /* the lf locks' owner id: not on the first acquire */
	lf_xadd32(&b->ready, 1);
	/* Pairs with the release store of go in lf_bench_run(). */
	while (!(go = lf_load_acquire32(&b->go)))
		sched_yield();
	if (go != 1)
		return NULL;
	getrusage(RUSAGE_THREAD, &r0);
	loops[b->prim](w);
	getrusage(RUSAGE_THREAD, &r1);
	w->out.utime_ns = tv_ns(r1.ru_utime) - tv_ns(r0.ru_utime);
	w->out.stime_ns = tv_ns(r1.ru_stime) - tv_ns(r0.ru_stime);
	w->out.vcsw = (uint64_t)(r1.ru_nvcsw - r0.ru_nvcsw);
	w->out.ivcsw = (uint64_t)(r1.ru_nivcsw - r0.ru_nivcsw);
	return NULL;
}

int lf_bench_available(int prim)
{
	if (prim < 0 || prim >= LF_BENCH_NPRIMS)
		return 0;
#ifndef LF_BENCH_HAVE_CK
	if (prim >= LF_BENCH_CK_FAS)
		return 0;
#endif
	return 1;
}

const char *lf_bench_name(int prim)
{
	return prim >= 0 && prim < LF_BENCH_NPRIMS ? names[prim] : NULL;
}

const char *lf_bench_clock(void)
{
#ifdef LF_BENCH_RDTSC
	return "rdtsc";
#else
	return "clock_gettime";
#endif
}

static int lock_init(union lock *l, int prim)
{
	pthread_mutexattr_t a;
	int err = 0;

	switch (prim) {
	case LF_BENCH_LF_TAS: lf_spin_init(&l->spin, 0); break;
	case LF_BENCH_LF_TTAS: lf_spin_init(&l->spin, LF_LOCK_TTAS); break;
	case LF_BENCH_LF_TICKET: lf_ticket_init(&l->ticket, 0); break;
	case LF_BENCH_LF_RW_WRITE:
	case LF_BENCH_LF_RW_MIXED: lf_rwlock_init(&l->rw, 0); break;
	case LF_BENCH_PTHREAD_MUTEX: err = pthread_mutex_init(&l->mutex, NULL); break;
	case LF_BENCH_PTHREAD_ADAPTIVE:
		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
		err = pthread_mutex_init(&l->mutex, &a);
		pthread_mutexattr_destroy(&a);
		break;
	case LF_BENCH_PTHREAD_SPIN:
		err = pthread_spin_init(&l->pspin, PTHREAD_PROCESS_PRIVATE);
		break;
#ifdef LF_BENCH_HAVE_CK
	case LF_BENCH_CK_FAS: ck_spinlock_fas_init(&l->fas); break;
	case LF_BENCH_CK_TICKET: ck_spinlock_ticket_init(&l->ckticket); break;
	case LF_BENCH_CK_MCS: ck_spinlock_mcs_init(&l->mcs); break;
#endif
	default: break;
	}
	return -err;
}

static void lock_destroy(union lock *l, int prim)
{
	if (prim == LF_BENCH_PTHREAD_MUTEX || prim == LF_BENCH_PTHREAD_ADAPTIVE)
		pthread_mutex_destroy(&l->mutex);
	else if (prim == LF_BENCH_PTHREAD_SPIN)
		pthread_spin_destroy(&l->pspin);
}

static int check_config(const struct lf_bench_config *c)
{
	if (c->prim < 0 || c->prim >= LF_BENCH_NPRIMS)
		return -EINVAL;
	if (c->threads < 1 || c->threads > LF_BENCH_MAX_THREADS)
		return -EINVAL;
	if (c->cs_lines < 1 || c->cs_lines > LF_BENCH_MAX_LINES)
		return -EINVAL;
	if (c->read_pct < 0 || c->read_pct > 100)
		return -EINVAL;
	if (c->lat_every & (c->lat_every - 1))
		return -EINVAL;  /* not a power of two */
	/* An hour is plenty; the busy-work counts must not overflow. */
	if (c->duration_ns > 3600000000000ull || c->cs_ns > 1000000000ull ||
	    c->ncs_ns > 1000000000ull)
		return -EINVAL;
	for (int i = 0; i < c->threads; i++)
		if (c->cpu[i] < -1 || c->cpu[i] >= CPU_SETSIZE)
			return -EINVAL;
	return lf_bench_available(c->prim) ? 0 : -ENOTSUP;
}

static void sleep_until(uint64_t deadline)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline / 1000000000ull),
		.tv_nsec = (long)(deadline % 1000000000ull),
	};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void collect(struct bench *b, struct worker *w, int n,
		    struct lf_bench_result *r)
{
	uint64_t lat_sum = 0, lat_max = 0;

	for (int t = 0; t < n; t++) {
		r->thread[t] = w[t].out;
		r->acquisitions += w[t].out.acquisitions;
		r->reads += w[t].out.reads;
		r->torn += w[t].torn;
		lat_sum += w[t].lat_sum;
		lat_max = w[t].lat_max > lat_max ? w[t].lat_max : lat_max;
		for (int i = 0; i < LF_BENCH_BUCKETS; i++) {
			r->hist[i] += w[t].hist[i];
			r->timed += w[t].hist[i];
		}
	}
	r->writes = r->acquisitions - r->reads;
	/* The workers are joined: plain reads see their last writes. */
	r->counter = b->line[0].v;
	for (int i = 1; i < b->lines; i++)
		r->torn += b->line[i].v != r->counter;
	r->ok = r->counter == r->writes && r->torn == 0;
	if (r->timed) {
		double tpn = r->ticks_per_ns;
		r->lat_p50_ns = percentile_ticks(r->hist, r->timed, 0.50) / tpn;
		r->lat_p99_ns = percentile_ticks(r->hist, r->timed, 0.99) / tpn;
		r->lat_p999_ns = percentile_ticks(r->hist, r->timed, 0.999) / tpn;
		r->lat_max_ns = (double)lat_max / tpn;
		r->lat_mean_ns = (double)lat_sum / (double)r->timed / tpn;
	}
}

int lf_bench_run(const struct lf_bench_config *cfg, struct lf_bench_result *r)
{
	struct bench *b = NULL;
	struct worker *w = NULL;
	int n = cfg->threads, started = 0, err = check_config(cfg);

	if (err)
		return err;
	pthread_once(&calib_once, calibrate);
	if (posix_memalign((void **)&b, LF_CACHELINE, sizeof(*b)) ||
	    posix_memalign((void **)&w, LF_CACHELINE, sizeof(*w) * (size_t)n)) {
		free(b);
		return -ENOMEM;
	}
	memset(b, 0, sizeof(*b));
	memset(w, 0, sizeof(*w) * (size_t)n);
	memset(r, 0, sizeof(*r));
	r->iters_per_ns = calib.iters_per_ns;
	r->ticks_per_ns = calib.ticks_per_ns;
	r->timer_ns = calib.timer_ns;
	b->prim = cfg->prim;
	b->lines = cfg->cs_lines;
	b->lat_mask = cfg->lat_every ? cfg->lat_every - 1 : 0;
	b->read_pct = cfg->prim == LF_BENCH_LF_RW_MIXED ? cfg->read_pct : 0;
	b->cs_iters = (uint64_t)((double)cfg->cs_ns * calib.iters_per_ns + 0.5);
	b->ncs_iters = (uint64_t)((double)cfg->ncs_ns * calib.iters_per_ns + 0.5);
	r->cs_iters = (int32_t)b->cs_iters;
	r->ncs_iters = (int32_t)b->ncs_iters;
	err = lock_init(&b->lock, cfg->prim);
	if (err)
		goto out;

	for (int t = 0; t < n; t++) {
		w[t].b = b;
		w[t].id = t;
		w[t].cpu = cfg->cpu[t];
		w[t].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
		if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]))
			break;
		started++;
	}
	if (started < n) {
		lf_store_release32(&b->go, 2);  /* abandon: nothing is timed */
		err = -EAGAIN;
	} else {
		while (lf_load_acquire32(&b->ready) < (uint32_t)n)
			sched_yield();
		uint64_t t0 = lf_now_ns();
		/* Pairs with the acquire loads of go in worker_main(). */
		lf_store_release32(&b->go, 1);
		sleep_until(t0 + cfg->duration_ns);
		/* Pairs with the acquire load of stop in worker_loop(). */
		lf_store_release32(&b->stop, 1);
		r->elapsed_ns = lf_now_ns() - t0;
	}
	for (int t = 0; t < started; t++)
		pthread_join(w[t].tid, NULL);
	if (!err)
		collect(b, w, n, r);
	lock_destroy(&b->lock, cfg->prim);
out:
	free(w);
	free(b);
	return err;
}
