/*
 * What the seqlock stress programs share (tests/c/seqlock_stress.c: torn
 * reads under concurrent writers, and seqlock_fault_stress.c: a dead
 * writer and a scribbled state; both test csrc/seqlock.c in classic and
 * latch modes): the record sizes, fail() (the first failure wins and is
 * printed on the last line), check() (a snapshot whose 64-bit words are
 * not all equal is torn) and make(), a new seqlock with a handle on it,
 * in private or shared memory.  Each program defines _GNU_SOURCE before
 * including it; their contract is in tests/cbuild.py.
 */
#ifndef LF_TESTS_SEQLOCK_HARNESS_H
#define LF_TESTS_SEQLOCK_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "seqlock.h"

#define BIG 4096
#define SMALL 32
#define MAXW (BIG / 8)

static uint32_t failed;
static char fail_what[256];

static void fail(const char *what)
{
	if (lf_xchg32(&failed, 1) == 0)
		snprintf(fail_what, sizeof fail_what, "%s", what);
}

/* A snapshot is good if every word is equal; returns the word. */
static int check(const uint64_t *w, uint64_t n, uint64_t *val)
{
	for (uint64_t i = 1; i < n; i++)
		if (w[i] != w[0])
			return 0;
	*val = w[0];
	return 1;
}

/* A new seqlock and a handle on it (h->sl is the state to free). */
static struct lf_seq_handle *make(uint64_t size, uint32_t flags, int shared)
{
	static struct lf_seq_handle hs[16];
	static int used;
	uint64_t bytes = lf_seq_state_size(size, flags, 0);
	void *m = shared ? mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0)
			 : aligned_alloc(64, bytes);  /* a multiple of 64 */
	if (m == MAP_FAILED || !m || used == 16) {
		perror("alloc");
		exit(2);
	}
	lf_seq_init(m, size, flags, NULL, 0);
	struct lf_seq_handle *h = &hs[used++];
	if (lf_seq_handle_init(h, m, bytes, size, flags, 0, NULL) != 0) {
		fail("lf_seq_handle_init refused a fresh state");
		exit(1);
	}
	return h;
}

#endif /* LF_TESTS_SEQLOCK_HARNESS_H */
