/*
 * Lock benchmark harness (lf_bench_*): the timed loop behind
 * `python -m lockfree bench`.  Python fills a struct lf_bench_config, makes
 * ONE cffi call (GIL released) and reads a struct lf_bench_result: no Python
 * runs while the threads are timed.
 *
 * One run: `threads` pthreads (each pinned to cpu[i], or unpinned if -1)
 * wait at a start gate, then loop for `duration_ns`:
 *
 *	t0 = clock(); acquire(); lat = clock() - t0;     -> histogram
 *	critical section: read K shared cache lines, busy work of cs_ns,
 *	                  write the K lines back + 1 (readers only check them)
 *	release();
 *	non-critical busy work of ncs_ns
 *
 * The critical section is a read-modify-write of the protected lines that
 * spans the busy work, so any overlap of two holders loses an update: at
 * the end every line must equal the number of exclusive acquisitions (the
 * "counter check"); readers of the RW lock check that all K lines agree
 * before and after their busy work (a writer inside with them would tear
 * them).  LF_BENCH_NONE takes no lock at all, to show the check failing.
 *
 * Clock: rdtsc (a compiler builtin, not inline asm) calibrated against
 * CLOCK_MONOTONIC once per process; CLOCK_MONOTONIC elsewhere.  Every
 * acquisition is timed by default; the timer's own cost (timer_ns, two
 * reads an iteration) is reported and is paid by every primitive alike.
 * lat_every = 2^k times only one acquisition in 2^k (a regular sample), so
 * that a critical section of a few instructions is not dwarfed by the
 * timer; latency counts then cover the sample only.  Latencies go into a
 * per-thread log-linear histogram (16 sub-buckets per power of two, <= 6%
 * relative error), allocated before the start gate: nothing allocates in
 * the timed loop.  Busy work is a dependent multiply-add chain whose
 * iterations per ns are calibrated once per process (fastest of several
 * tries, so preemption during calibration does not inflate it).
 *
 * CPU time: getrusage(RUSAGE_THREAD) per thread around its loop: a mutex
 * whose waiters sleep burns less CPU than a spinlock whose waiters spin.
 *
 * Concurrency Kit's ck_spinlock_fas/ticket/mcs are compiled in when
 * <ck_spinlock.h> exists at build time (and LF_BENCH_NO_CK is not defined);
 * lf_bench_available() says whether they are.
 */
#ifndef LF_BENCH_H
#define LF_BENCH_H

#include <stdint.h>

/* cffi:begin */
enum lf_bench_prim {
	LF_BENCH_NONE = 0,         /* no lock: the counter check must fail */
	LF_BENCH_LF_TAS,           /* lf_spin_*, xchg on every attempt */
	LF_BENCH_LF_TTAS,          /* lf_spin_* with LF_LOCK_TTAS */
	LF_BENCH_LF_TICKET,        /* lf_ticket_* */
	LF_BENCH_LF_RW_WRITE,      /* lf_rwlock_*, every acquisition a write */
	LF_BENCH_LF_RW_MIXED,      /* lf_rwlock_*, read_pct% reads */
	LF_BENCH_PTHREAD_MUTEX,    /* pthread_mutex_t, default type */
	LF_BENCH_PTHREAD_ADAPTIVE, /* PTHREAD_MUTEX_ADAPTIVE_NP */
	LF_BENCH_PTHREAD_SPIN,     /* pthread_spin_lock */
	LF_BENCH_CK_FAS,           /* ck_spinlock_fas */
	LF_BENCH_CK_TICKET,        /* ck_spinlock_ticket */
	LF_BENCH_CK_MCS,           /* ck_spinlock_mcs */
	LF_BENCH_NPRIMS
};

#define LF_BENCH_MAX_THREADS 64
#define LF_BENCH_MAX_LINES 64
#define LF_BENCH_SUB_BITS 4
#define LF_BENCH_BUCKETS 976  /* 16 exact + 60 octaves x 16 */

struct lf_bench_config {
	int32_t prim;            /* enum lf_bench_prim */
	int32_t threads;         /* 1 .. LF_BENCH_MAX_THREADS */
	uint64_t duration_ns;    /* wall time of the timed loop */
	uint64_t cs_ns;          /* busy work inside the lock */
	uint64_t ncs_ns;         /* busy work outside the lock */
	int32_t cs_lines;        /* K shared cache lines, 1 .. MAX_LINES */
	int32_t read_pct;        /* LF_BENCH_LF_RW_MIXED: % of reads, 0..100 */
	uint32_t lat_every;      /* time 1 acquisition in this many (a power
				  * of two; 0 or 1: every one) */
	int32_t cpu[LF_BENCH_MAX_THREADS];  /* thread i's CPU, -1: unpinned */
};

struct lf_bench_thread {
	uint64_t acquisitions;   /* all, reads included */
	uint64_t reads;          /* RW read acquisitions */
	uint64_t utime_ns;       /* RUSAGE_THREAD over the loop */
	uint64_t stime_ns;
	uint64_t vcsw;           /* voluntary context switches (slept) */
	uint64_t ivcsw;          /* involuntary (preempted) */
	int32_t cpu;             /* CPU it was pinned to, -1 if unpinned */
	int32_t pin_error;       /* errno of pthread_setaffinity_np, or 0 */
};

struct lf_bench_result {
	uint64_t elapsed_ns;     /* start gate opened -> stop flag set */
	uint64_t acquisitions;   /* sum over threads */
	uint64_t reads;
	uint64_t writes;         /* exclusive acquisitions */
	uint64_t timed;          /* acquisitions in the latency histogram */
	uint64_t counter;        /* protected line 0 at the end */
	uint64_t torn;           /* lines disagreeing (end check + readers) */
	int32_t ok;              /* counter == writes && torn == 0 */
	int32_t cs_iters;        /* busy iterations of the critical section */
	int32_t ncs_iters;
	int32_t pad_;
	double iters_per_ns;     /* busy-work calibration */
	double ticks_per_ns;     /* clock calibration (1.0: CLOCK_MONOTONIC) */
	double timer_ns;         /* cost of one clock read */
	double lat_p50_ns, lat_p99_ns, lat_p999_ns, lat_max_ns, lat_mean_ns;
	uint64_t hist[LF_BENCH_BUCKETS];  /* acquire latency, clock ticks */
	struct lf_bench_thread thread[LF_BENCH_MAX_THREADS];
};

/* 0 on success, -EINVAL (bad config), -ENOTSUP (primitive not built in),
 * -ENOMEM, -EAGAIN (could not start every thread: nothing was timed). */
int lf_bench_run(const struct lf_bench_config *cfg, struct lf_bench_result *r);
int lf_bench_available(int prim);          /* 1 if built in */
const char *lf_bench_name(int prim);       /* "lf-tas", ...; NULL if bad */
const char *lf_bench_clock(void);          /* "rdtsc" or "clock_gettime" */
double lf_bench_bucket_ns(int i, double ticks_per_ns);  /* lower bound */
/* cffi:end */

#endif /* LF_BENCH_H */
