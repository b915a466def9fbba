/*
 * kfifo_bench: lf_kfifo between two threads, next to Concurrency Kit's
 * ck_ring SPSC and memcpy, in one run.  Built and run by bench_kfifo.py
 * (gcc -O2 with every csrc C file, -DHAVE_CK -lck when ck_ring.h is
 * installed).
 *
 *   usage: kfifo_bench [rounds]      prints key=value lines (medians)
 *
 *   items    8-byte items, one lf_kfifo_put_elem/lf_kfifo_get_elem per
 *            item (the inline element API; byte mode, 64 KiB ring),
 *            producer thread -> consumer thread; the consumer checks every
 *            value.  call: the same with the out-of-line lf_kfifo_put /
 *            lf_kfifo_get.  ck: ck_ring_enqueue_spsc / ck_ring_dequeue_spsc
 *            of a pointer-sized value, 8192 slots (64 KiB of slots too).
 *            lf_over_ck is the median of the per-round ratios.
 *   bulk     64 KiB chunks through a 1 MiB byte-mode ring between two
 *            threads (copy in, copy out); memcpy: one thread copying the
 *            same chunks between two 1 MiB buffers.
 *
 * A side that finds the ring full/empty spins with pause, and yields the CPU
 * after 64 failed tries at one item (both rings alike): on a shared 2-core
 * machine the peer may be descheduled, and pure spinning then measures the
 * scheduler.  Runs are short (4 M items) and the rounds many, lf and ck
 * back to back in each round: this VM switches between speed regimes every
 * few seconds, and only a ratio taken within one regime means something.
 */
#define _GNU_SOURCE
#include "kfifo.h"
#include "region.h"
#include "arch/atomic.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_CK
#include <ck_ring.h>
#endif

#define ITEMS		4000000UL	/* per run: short runs, many rounds */
#define ITEM_RING	(64u << 10)
#ifndef CHUNK
#define CHUNK		(64u << 10)
#endif
#ifndef BULK_RING
#define BULK_RING	(1u << 20)
#endif
#define BULK_BYTES	(4ULL << 30)

static inline void backoff(unsigned *tries)
{
	if (++*tries < 64) {
		lf_cpu_relax();
	} else {
		*tries = 0;
		sched_yield();
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct lf_kfifo *new_ring(uint32_t size)
{
	struct lf_kfifo *f = aligned_alloc(64, lf_kfifo_state_size(size));

	memset(f, 0, lf_kfifo_state_size(size));
	lf_kfifo_init(f, size, LF_KFIFO_BYTES);
	return f;
}

struct job {
	struct lf_kfifo *f;
	uint64_t bad;
#ifdef HAVE_CK
	ck_ring_t *ring;
	ck_ring_buffer_t *slots;
#endif
};

/* Items with the inline element API (lf_kfifo_put_elem/get_elem: the fast
 * path compiled into this loop, as ck_ring's is). */
static void *item_producer(void *arg)
{
	struct job *j = arg;
	struct lf_kfifo_handle h;
	uint64_t i;
	unsigned tries = 0;

	lf_kfifo_handle_init(&h, j->f, ITEM_RING, LF_KFIFO_BYTES);
	for (i = 0; i < ITEMS; i++)
		for (tries = 0; lf_kfifo_put_elem(&h, &i, 8) != 1;)
			backoff(&tries);
	return NULL;
}

static void *item_consumer(void *arg)
{
	struct job *j = arg;
	struct lf_kfifo_handle h;
	uint64_t i, v;
	unsigned tries = 0;

	lf_kfifo_handle_init(&h, j->f, ITEM_RING, LF_KFIFO_BYTES);
	for (i = 0; i < ITEMS; i++) {
		for (tries = 0; lf_kfifo_get_elem(&h, &v, 8) != 1;)
			backoff(&tries);
		j->bad += v != i;
	}
	return NULL;
}

/* The same items through the general out-of-line byte calls (lf_kfifo_put /
 * lf_kfifo_get, what the Python layer uses). */
static void *call_producer(void *arg)
{
	struct job *j = arg;
	struct lf_kfifo_handle h;
	uint64_t i;
	unsigned tries = 0;

	lf_kfifo_handle_init(&h, j->f, ITEM_RING, LF_KFIFO_BYTES);
	for (i = 0; i < ITEMS; i++)
		for (tries = 0; lf_kfifo_put(&h, (const char *)&i, 8) != 8;)
			backoff(&tries);
	return NULL;
}

static void *call_consumer(void *arg)
{
	struct job *j = arg;
	struct lf_kfifo_handle h;
	uint64_t i, v;
	unsigned tries = 0;

	lf_kfifo_handle_init(&h, j->f, ITEM_RING, LF_KFIFO_BYTES);
	for (i = 0; i < ITEMS; i++) {
		for (tries = 0; lf_kfifo_get(&h, (char *)&v, 8) != 8;)
			backoff(&tries);
		j->bad += v != i;
	}
	return NULL;
}

/* Producer on CPU 0, consumer on CPU 1 (both rings alike), so the figures
 * are for two cores exchanging cache lines, not for a scheduler taking
 * turns on one core; KFIFO_BENCH_PIN=0 lets the scheduler place them. */
static void pin(pthread_t t, int cpu)
{
	cpu_set_t set;
	const char *env = getenv("KFIFO_BENCH_PIN");

	if (env && env[0] == '0')
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(t, sizeof(set), &set);
}

static double run_pair(void *(*prod)(void *), void *(*cons)(void *),
		       struct job *j)
{
	pthread_t p, c;
	double t0 = now();

	pthread_create(&c, NULL, cons, j);
	pin(c, 1);
	pthread_create(&p, NULL, prod, j);
	pin(p, 0);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	return now() - t0;
}

#ifdef HAVE_CK
static void *ck_producer(void *arg)
{
	struct job *j = arg;
	uint64_t i;
	unsigned tries = 0;

	for (i = 0; i < ITEMS; i++)
		for (tries = 0; !ck_ring_enqueue_spsc(j->ring, j->slots,
					     (void *)(uintptr_t)i);)
			backoff(&tries);
	return NULL;
}

static void *ck_consumer(void *arg)
{
	struct job *j = arg;
	uint64_t i;
	unsigned tries = 0;
	void *v;

	for (i = 0; i < ITEMS; i++) {
		for (tries = 0; !ck_ring_dequeue_spsc(j->ring, j->slots, &v);)
			backoff(&tries);
		j->bad += (uintptr_t)v != i;
	}
	return NULL;
}
#endif

static char *src_buf, *dst_buf;

static void *bulk_producer(void *arg)
{
	struct job *j = arg;
	struct lf_kfifo_handle h;
	uint64_t done = 0;
	unsigned tries = 0;
	uint32_t w;

	lf_kfifo_handle_init(&h, j->f, BULK_RING, LF_KFIFO_BYTES);
	while (done < BULK_BYTES) {
		uint32_t off = done % BULK_RING, n = CHUNK - off % CHUNK;

		w = (uint32_t)lf_kfifo_put(&h, src_buf + off, n);
		if (!w)
			backoff(&tries);
		done += w;
	}
	return NULL;
}

static void *bulk_consumer(void *arg)
{
	struct job *j = arg;
	struct lf_kfifo_handle h;
	uint64_t done = 0;
	unsigned tries = 0;
	int64_t r;

	lf_kfifo_handle_init(&h, j->f, BULK_RING, LF_KFIFO_BYTES);
	while (done < BULK_BYTES) {
		uint32_t off = done % BULK_RING;
		uint32_t n = CHUNK - off % CHUNK;

		r = lf_kfifo_get(&h, dst_buf + off, n);
		if (r <= 0)
			backoff(&tries);
		else
			done += r;
	}
	return NULL;
}

static double run_memcpy(void)
{
	double t0 = now();
	uint64_t done;

	for (done = 0; done < BULK_BYTES; done += CHUNK) {
		memcpy(dst_buf + done % BULK_RING, src_buf + done % BULK_RING,
		       CHUNK);
		__asm__ __volatile__("" ::: "memory");
	}
	return now() - t0;
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

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 15, r;
	double lf[64], call[64], ck[64], ratio[64], bulk[64], mc[64], bratio[64];
	uint64_t bad = 0;

	if (rounds < 1 || rounds > 64)
		rounds = 15;
	src_buf = aligned_alloc(64, BULK_RING);
	dst_buf = aligned_alloc(64, BULK_RING);
	memset(src_buf, 0x5a, BULK_RING);
	memset(dst_buf, 0, BULK_RING);
	for (r = 0; r < rounds; r++) {
		struct job j = { .f = new_ring(ITEM_RING) };

		lf[r] = ITEMS / run_pair(item_producer, item_consumer, &j);
		bad += j.bad;
		free(j.f);
#ifdef HAVE_CK
		{
			ck_ring_t ring;
			ck_ring_buffer_t *slots =
				aligned_alloc(64, ITEM_RING);

			ck_ring_init(&ring, ITEM_RING / sizeof(*slots));
			j.ring = &ring;
			j.slots = slots;
			j.bad = 0;
			ck[r] = ITEMS / run_pair(ck_producer, ck_consumer, &j);
			bad += j.bad;
			/* Paired in the round: the VM's speed drifts between
			 * rounds, so the ratio is taken per round. */
			ratio[r] = lf[r] / ck[r];
			free(slots);
		}
#endif
		j.f = new_ring(ITEM_RING);
		j.bad = 0;
		call[r] = ITEMS / run_pair(call_producer, call_consumer, &j);
		bad += j.bad;
		free(j.f);
		j.f = new_ring(BULK_RING);
		bulk[r] = BULK_BYTES / run_pair(bulk_producer, bulk_consumer,
						&j) / 1e9;
		free(j.f);
		mc[r] = BULK_BYTES / run_memcpy() / 1e9;
		bratio[r] = bulk[r] / mc[r];
	}
	printf("rounds=%d\n", rounds);
	printf("lf_items_per_s=%.0f\n", median(lf, rounds));
	printf("lf_call_items_per_s=%.0f\n", median(call, rounds));
#ifdef HAVE_CK
	printf("ck_items_per_s=%.0f\n", median(ck, rounds));
	printf("lf_over_ck_rounds=");
	for (r = 0; r < rounds; r++)
		printf("%s%.2f", r ? "," : "", ratio[r]);
	printf("\nlf_over_ck=%.3f\n", median(ratio, rounds));
#else
	printf("ck_items_per_s=n/a\nlf_over_ck=n/a\n");
#endif
	printf("lf_bulk_gb_per_s=%.3f\n", median(bulk, rounds));
	printf("memcpy_gb_per_s=%.3f\n", median(mc, rounds));
	printf("bulk_over_memcpy=%.3f\n", median(bratio, rounds));
	printf("bad_items=%llu\n", (unsigned long long)bad);
	printf("kfifo_bench: %s\n", bad ? "FAIL" : "OK");
	return bad != 0;
}
