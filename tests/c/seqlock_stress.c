/*
 * Stress test of the seqlock (csrc/seqlock.h), classic and latch modes:
 * torn reads under concurrent writers.
 * Build: gcc -Icsrc tests/c/seqlock_stress.c csrc/ *.c -lpthread
 * Prints key=value lines; the last is "seqlock_stress: OK" or
 * "seqlock_stress: FAIL <what>"; exit status 0 only if every check held.
 * LOCKFREE_LONG=1: >= 10^7 reads per mode and record size.  A writer that
 * dies and a scribbled state are seqlock_fault_stress.c's; what the two
 * share is in seqlock_harness.h.
 *
 * Torn reads.  Writers replace records whose 64-bit words all hold the same
 * value (writer id << 48 | count); readers check every snapshot has equal
 * words and, per writer, never goes back in time.  For each mode and record
 * size (32 bytes, 4 KiB): WRITERS writer threads (writer exclusion: two
 * writers interleaving their copies would tear records too) and READERS
 * reader threads, half of them through lf_seq_read(), half through the
 * inline read_begin / copy / read_retry loop.  torn must be 0; the reads
 * and retries are reported.  Under ThreadSanitizer (portable atomics) the
 * optimistic copies are relaxed atomic accesses and the counter
 * acquire/release, so no race may be reported.
 *
 * Control: one thread copies the 4 KiB record without the protocol while
 * the writer writes and counts torn copies (reported, usually > 0: it is
 * what the seqlock prevents).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "seqlock_harness.h"

#define WRITERS 2
#define READERS 2

struct run {
	struct lf_seq_handle *h;
	uint64_t size;
	uint64_t reads_each;    /* per reader */
	uint32_t readers_done;  /* atomic */
	uint64_t reads, retries, torn;  /* atomic totals */
	uint64_t writes;        /* atomic */
	uint32_t next_id;       /* atomic: writer ids 1..WRITERS */
};

static void *writer(void *arg)
{
	struct run *r = arg;
	static __thread uint64_t buf[MAXW];
	const uint64_t id = lf_xadd32(&r->next_id, 1) + 1;
	const uint64_t n = r->size / 8;
	uint64_t count = 0;

	while (lf_load_acquire32(&r->readers_done) < READERS) {
		uint64_t v = id << 48 | ++count;
		for (uint64_t i = 0; i < n; i++)
			buf[i] = v;
		if (lf_seq_write(r->h, buf, r->size) != LF_OK)
			fail("lf_seq_write did not return LF_OK");
	}
	lf_xadd64(&r->writes, count);
	return NULL;
}

struct reader_arg {
	struct run *r;
	int inline_api;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	struct run *r = a->r;
	static __thread uint64_t buf[MAXW];
	uint64_t last[WRITERS + 1] = {0};
	uint64_t retries = 0, torn = 0, v;
	const uint64_t n = r->size / 8;

	for (uint64_t k = 0; k < r->reads_each; k++) {
		if (a->inline_api) {
			uint32_t s;
			int64_t tries = -1;
			do {
				tries++;
				while ((s = lf_seq_read_begin(r->h)) & 1 &&
				       !(r->h->flags & LF_SEQ_LATCH))
					lf_cpu_relax();
				lf_seq_copy_out(buf, lf_seq_copy(r->h,
					lf_seq_read_index(r->h, s)), r->size);
			} while (lf_seq_read_retry(r->h, s));
			retries += tries;
		} else {
			int64_t got = lf_seq_read(r->h, buf, r->size);
			if (got < 0) {
				fail("lf_seq_read returned an error");
				break;
			}
			retries += got;
		}
		if (!check(buf, n, &v)) {
			torn++;
			continue;
		}
		/* Per writer, counts only go up: no snapshot older than one
		 * this reader already saw. */
		uint64_t w = v >> 48, c = v & 0xFFFFFFFFFFFFull;
		if (w > WRITERS) {
			torn++;
			continue;
		}
		if (w && c < last[w])
			fail("a reader saw a writer's records go back in time");
		last[w] = c;
	}
	lf_xadd64(&r->reads, r->reads_each);
	lf_xadd64(&r->retries, retries);
	lf_xadd64(&r->torn, torn);
	lf_xadd32(&r->readers_done, 1);
	return NULL;
}

static void torn_run(uint32_t flags, uint64_t size, uint64_t reads_each)
{
	struct run r = {.h = make(size, flags, 0), .size = size,
			.reads_each = reads_each};
	pthread_t w[WRITERS], rd[READERS];
	struct reader_arg ra[READERS];

	for (int i = 0; i < WRITERS; i++)
		pthread_create(&w[i], NULL, writer, &r);
	for (int i = 0; i < READERS; i++) {
		ra[i] = (struct reader_arg){&r, i & 1};
		pthread_create(&rd[i], NULL, reader, &ra[i]);
	}
	for (int i = 0; i < READERS; i++)
		pthread_join(rd[i], NULL);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	printf("torn_%s_%llu=%llu reads=%llu retries=%llu writes=%llu\n",
	       flags & LF_SEQ_LATCH ? "latch" : "classic",
	       (unsigned long long)size, (unsigned long long)r.torn,
	       (unsigned long long)r.reads, (unsigned long long)r.retries,
	       (unsigned long long)r.writes);
	if (r.torn)
		fail("a reader got a torn snapshot");
	if (r.reads != READERS * reads_each)
		fail("reads lost");
	free(r.h->sl);
}

/* -- control: the same copy without the protocol --------------------------- */

struct ctl {
	struct lf_seq_handle *h;
	uint32_t stop;
	uint64_t copies, torn;
};

static void *ctl_writer(void *p)
{
	struct ctl *c = p;
	static __thread uint64_t buf[MAXW];
	uint64_t v = 0;

	while (!lf_load_acquire32(&c->stop)) {
		v++;
		for (int i = 0; i < MAXW; i++)
			buf[i] = v;
		lf_seq_write(c->h, buf, BIG);
	}
	return NULL;
}

static void control(uint64_t copies)
{
	struct ctl c = {.h = make(BIG, 0, 0)};
	static uint64_t buf[MAXW];
	pthread_t t;
	uint64_t v;

	pthread_create(&t, NULL, ctl_writer, &c);
	for (uint64_t k = 0; k < copies; k++) {
		lf_seq_copy_out(buf, lf_seq_copy(c.h, 0), BIG);
		c.torn += !check(buf, MAXW, &v);
	}
	lf_store_release32(&c.stop, 1);
	pthread_join(t, NULL);
	printf("control_unprotected_torn=%llu copies=%llu\n",
	       (unsigned long long)c.torn, (unsigned long long)copies);
	free(c.h->sl);
}

int main(void)
{
	const char *lng = getenv("LOCKFREE_LONG");
	int long_mode = lng && atoi(lng);
	/* Reads per reader: long mode gives >= 10^7 reads per run. */
	uint64_t small_reads = long_mode ? 5000000 : 100000;
	uint64_t big_reads = long_mode ? 5000000 : 10000;
#if defined(__SANITIZE_THREAD__)
	if (!long_mode) {  /* every access instrumented: ~30x slower */
		small_reads /= 4;
		big_reads /= 4;
	}
#endif

	printf("atomics=%s\nlong=%d\nwriters=%d\nreaders=%d\n",
	       LF_ATOMICS_IMPL, long_mode, WRITERS, READERS);
	for (int latch = 0; latch < 2; latch++) {
		uint32_t flags = latch ? LF_SEQ_LATCH : 0;
		torn_run(flags, SMALL, small_reads);
		torn_run(flags, BIG, big_reads);
	}
	control(long_mode ? 1000000 : 20000);
	if (failed) {
		printf("seqlock_stress: FAIL %s\n", fail_what);
		return 1;
	}
	printf("seqlock_stress: OK\n");
	return 0;
}
