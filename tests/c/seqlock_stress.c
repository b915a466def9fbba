/*
 * Stress test of the seqlock (csrc/seqlock.h), classic and latch modes.
 * Build: gcc -Icsrc tests/c/seqlock_stress.c csrc/ *.c -lpthread
 * Prints key=value lines; the last is "seqlock_stress: OK" or
 * "seqlock_stress: FAIL <what>"; exit status 0 only if every check held.
 * LOCKFREE_LONG=1: >= 10^7 reads per mode and record size.
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
 *
 * Dead writer: a forked child takes the writer lock, starts a write and
 * exits.  Classic mode: a reader gets -(child's owner id) instead of
 * waiting for ever; lf_seq_recover() then restores a consistent record.
 * Latch mode: readers keep reading the last complete record.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seqlock.h"

#define WRITERS 2
#define READERS 2
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

struct run {
	lf_seqlock_t *sl;
	uint64_t size;
	uint64_t reads_each;    /* per reader */
	uint32_t readers_done;  /* atomic */
	uint64_t reads, retries, torn;  /* atomic totals */
	uint64_t writes;        /* atomic */
	uint32_t next_id;       /* atomic: writer ids 1..WRITERS */
};

/* A snapshot is good if every word is equal; returns the word. */
static int check(const uint64_t *w, uint64_t n, uint64_t *val)
{
	for (uint64_t i = 1; i < n; i++)
		if (w[i] != w[0])
			return 0;
	*val = w[0];
	return 1;
}

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
		if (lf_seq_write(r->sl, buf, r->size) != LF_ACQUIRED)
			fail("lf_seq_write did not return LF_ACQUIRED");
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
				while ((s = lf_seq_read_begin(r->sl)) & 1 &&
				       !(r->sl->flags & LF_SEQ_LATCH))
					lf_cpu_relax();
				lf_seq_copy_out(buf, lf_seq_copy(r->sl,
					lf_seq_read_index(r->sl, s)), r->size);
			} while (lf_seq_read_retry(r->sl, s));
			retries += tries;
		} else {
			int64_t got = lf_seq_read(r->sl, buf, r->size);
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

static lf_seqlock_t *make(uint64_t size, uint32_t flags, int shared)
{
	uint64_t bytes = lf_seq_state_size(size, flags, 0);
	void *m = shared ? mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0)
			 : aligned_alloc(64, (bytes + 63) & ~63ull);
	if (m == MAP_FAILED || !m) {
		perror("alloc");
		exit(2);
	}
	lf_seq_init(m, size, flags, NULL, 0);
	return m;
}

static void torn_run(uint32_t flags, uint64_t size, uint64_t reads_each)
{
	struct run r = {.sl = make(size, flags, 0), .size = size,
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
	free(r.sl);
}

/* -- control: the same copy without the protocol ----------------------------- */

struct ctl {
	lf_seqlock_t *sl;
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
		lf_seq_write(c->sl, buf, BIG);
	}
	return NULL;
}

static void control(uint64_t copies)
{
	struct ctl c = {.sl = make(BIG, 0, 0)};
	static uint64_t buf[MAXW];
	pthread_t t;
	uint64_t v;

	pthread_create(&t, NULL, ctl_writer, &c);
	for (uint64_t k = 0; k < copies; k++) {
		lf_seq_copy_out(buf, lf_seq_copy(c.sl, 0), BIG);
		c.torn += !check(buf, MAXW, &v);
	}
	lf_store_release32(&c.stop, 1);
	pthread_join(t, NULL);
	printf("control_unprotected_torn=%llu copies=%llu\n",
	       (unsigned long long)c.torn, (unsigned long long)copies);
	free(c.sl);
}

/* -- a writer that dies mid-write -------------------------------------------- */

static void dead_writer(uint32_t flags)
{
	const char *mode = flags & LF_SEQ_LATCH ? "latch" : "classic";
	lf_seqlock_t *sl = make(SMALL, flags, 1);
	uint64_t good[SMALL / 8], half[SMALL / 8], buf[SMALL / 8], v;
	uint64_t buf2[SMALL / 8];
	char what[96];

	for (int i = 0; i < SMALL / 8; i++) {
		good[i] = 7;
		half[i] = i < 2 ? 8 : 7;  /* a torn record */
	}
	lf_seq_write(sl, good, SMALL);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		/* Die holding the lock, in the middle of a write. */
		lf_spin_lock(&sl->lock);
		if (flags & LF_SEQ_LATCH) {
			lf_seq_copy_in(lf_seq_copy(sl, (sl->seq + 1) & 1),
				       half, SMALL);
		} else {
			lf_seq_write_begin(sl);
			lf_seq_copy_in(lf_seq_copy(sl, 0), half, SMALL);
		}
		_exit(0);
	}
	while (lf_seq_writer(sl) == 0 || lf_owner_pid(lf_seq_writer(sl))
	       != (uint32_t)pid)
		lf_cpu_relax();
	/* Let it exit; it stays a zombie (dead) until reaped below. */
	usleep(20000);
	int64_t r = lf_seq_read_until(sl, buf, SMALL,
				      lf_now_ns() + 2000000000ull);
	int64_t w = lf_seq_write_until(sl, good, SMALL,
				       lf_now_ns() + 2000000000ull);
	int recovered = (int)lf_seq_recover(sl, good, SMALL);
	int64_t r2 = lf_seq_read(sl, buf2, SMALL);
	int ok2 = r2 >= 0 && check(buf2, SMALL / 8, &v) && v == 7;
	int died = r < LF_SEQ_BUSY && lf_owner_pid((uint64_t)-r) ==
		   (uint32_t)pid;
	printf("dead_writer_%s read=%s write=%s recover=%d read_after=%s\n",
	       mode, r >= 0 ? "ok" : died ? "owner_died" : "other",
	       w < LF_SEQ_BUSY ? "owner_died" : "other", recovered,
	       ok2 ? "consistent" : "bad");
	waitpid(pid, NULL, 0);
	snprintf(what, sizeof what, "dead writer (%s) not handled", mode);
	if (flags & LF_SEQ_LATCH) {
		/* Readers never notice: the copy they use is complete. */
		if (r < 0 || !check(buf, SMALL / 8, &v) || v != 7)
			fail(what);
	} else if (!died) {
		fail(what);  /* classic readers must not wait for ever */
	}
	if (w >= LF_SEQ_BUSY || recovered != 1 || !ok2)
		fail(what);
	munmap(sl, lf_seq_state_size(SMALL, flags, 0));
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
	dead_writer(0);
	dead_writer(LF_SEQ_LATCH);
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
