/*
 * What the kfifo stress programs share (kfifo_stress.c, kfifo_rec_stress.c,
 * kfifo_wait_stress.c; each tests one part of csrc/kfifo*.c): the failure
 * flag and fail(), new_ring(), the mix() generator, the two-thread run()
 * of a producer and a consumer on a ring whose indexes start just below
 * 2^32, and small timing helpers.  The contract of the programs is in
 * tests/cbuild.py.
 */
#ifndef LF_TESTS_KFIFO_HARNESS_H
#define LF_TESTS_KFIFO_HARNESS_H

#include "kfifo.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <inttypes.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mode.h"

#define BYTE_SIZE	256u
#define START_INDEX	(UINT32_MAX - 700u)
#define SOON		lf_deadline_in(1000000000ull)	/* a blocking wait */

/* Set by the first failure; every wait loop polls it, so a failing side
 * never leaves the other one waiting forever. */
static uint32_t failed;

static void fail(const char *why, uint64_t a, uint64_t b)
{
	if (!lf_xchg32(&failed, 1))
		printf("first_failure=%s a=%" PRIu64 " b=%" PRIu64 "\n", why, a,
		       b);
}

static struct lf_kfifo *new_ring(uint32_t size, uint32_t mode)
{
	struct lf_kfifo *f = aligned_alloc(64, lf_kfifo_state_size(size));

	memset(f, 0, lf_kfifo_state_size(size));
	lf_kfifo_init(f, size, mode);
	return f;
}

/* xorshift64*: the sizes and payloads, reproducible from the seq number. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return x * 0x2545F4914F6CDD1DULL;
}

struct side {
	struct lf_kfifo *f;
	uint64_t sleeps;	/* blocking waits that returned 0 */
	uint64_t eof_seen;
};

static void __attribute__((unused))
run(void *(*prod)(void *), void *(*cons)(void *), struct side *ps,
    struct side *cs, uint32_t size, uint32_t mode)
{
	struct lf_kfifo_handle h;
	pthread_t p, c;

	ps->f = cs->f = new_ring(size, mode);
	lf_kfifo_handle_init(&h, ps->f, size, mode);
	lf_kfifo_debug_set_index(&h, START_INDEX);
	pthread_create(&c, NULL, cons, cs);
	pthread_create(&p, NULL, prod, ps);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	free(ps->f);
}

/* lf_now_ns() under the name the wake-up phases use. */
static uint64_t __attribute__((unused)) mono_ns(void)
{
	return lf_now_ns();
}

/* Wait for *word == v; yield now and then (2 cores, other processes). */
static void __attribute__((unused)) await32(uint32_t *word, uint32_t v)
{
	uint32_t i;

	for (i = 1; lf_load_acquire32(word) != v; i++) {
		if (lf_read32(&failed))
			return;
		if (i % 256)
			lf_cpu_relax();
		else
			sched_yield();
	}
}

static void __attribute__((unused)) pause_n(uint64_t n)
{
	while (n--)
		lf_cpu_relax();
}

#endif /* LF_TESTS_KFIFO_HARNESS_H */
