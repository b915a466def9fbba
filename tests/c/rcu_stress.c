/*
 * rcu_stress: readers dereference and validate objects while an updater
 * replaces them and frees the old ones through call_rcu (and, every few
 * updates, through synchronize + free); freed memory is poisoned first.
 * Before that, the API's error paths.  All in one process: registration
 * and read-side sections (csrc/rcu.c), grace periods (csrc/rcu_sync.c) and
 * the call_rcu thread (csrc/rcu_call.c).  RCU across processes (a forked
 * child's handle, dead-slot reclaim) is checked by rcu_fork_stress.c; the
 * two programs share only stress.h.
 *
 *   usage: rcu_stress [readers [milliseconds]]   (default 3 readers, 400 ms)
 *   LOCKFREE_LONG=1   long mode (10 s)
 *   stdout            key=value lines, last "rcu_stress: OK" / "FAIL <why>"
 *
 * Invariants:
 *   poisoned_reads=0  a reader never sees an object after its reclaim began:
 *                     every field is checked twice, with a pause between, so
 *                     a reclaim racing with the section would be seen.  The
 *                     ASAN build turns the same bug into a use-after-free
 *                     report, the TSAN build into a data race report.
 *   callbacks         every call_rcu callback ran exactly once by barrier.
 *   API checks        synchronize inside a read section fails with
 *                     LF_EDEADLK (instead of deadlocking), nested sections,
 *                     poll_state, a full registry gives LF_ENOSPC, an
 *                     unregistered handle LF_EPERM, unregister inside a
 *                     section LF_EBUSY.
 */
#include "rcu.h"
#include "arch/atomic.h"
#include "lockwait.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "stress.h"

#define NAME		"rcu_stress"
#define MAX_READERS	16
#define CAPACITY	(MAX_READERS + 2)
#define LIVE		0x4c4956454c495645ULL
#define POISON		0x6b6b6b6b6b6b6b6bULL
#define PAYLOAD		8

struct obj {
	uint64_t magic;
	uint64_t seq;
	uint64_t payload[PAYLOAD];	/* seq * (i + 1) */
};

static struct lf_rcu_domain *dom;
static struct lf_rcu_dh dh;	/* the validated handle every call takes */
static struct lf_rcu_reclaimer *rec;
static void *current_obj;
static uint64_t stop;
static uint64_t nr_freed;	/* callbacks run */
static long nreaders, duration_ms;

struct reader {
	pthread_t tid;
	uint64_t reads, poisoned, nested, regress;
} LF_CACHELINE_ALIGNED;
static struct reader readers[MAX_READERS];

static struct obj *obj_new(uint64_t seq)
{
	struct obj *o = malloc(sizeof(*o));
	int i;

	if (!o) {
		perror("malloc");
		exit(1);
	}
	o->magic = LIVE;
	o->seq = seq;
	for (i = 0; i < PAYLOAD; i++)
		o->payload[i] = seq * (uint64_t)(i + 1);
	return o;
}

/* The reclaimer: poison, then free.  A reader still holding the object
 * would see the poison (asm build) or touch freed memory (ASAN). */
static void obj_free(void *arg)
{
	struct obj *o = arg;

	memset(o, 0x6b, sizeof(*o));
	free(o);
	lf_xadd64(&nr_freed, 1);
}

static int obj_bad(const struct obj *o)
{
	int i, bad = lf_read64(&o->magic) != LIVE;

	for (i = 0; i < PAYLOAD; i++)
		bad |= lf_read64(&o->payload[i]) !=
		       lf_read64(&o->seq) * (uint64_t)(i + 1);
	return bad;
}

static void *reader_fn(void *arg)
{
	struct reader *me = arg;
	struct lf_rcu_rh rh, *r = &rh;
	uint64_t last = 0;
	int idx;

	lf_rcu_rh_init(r, &dh, NULL);
	idx = lf_rcu_register(r);
	if (idx < 0) {
		fail("register: %d", idx);
		return NULL;
	}
	while (!lf_load_acquire64(&stop)) {
		struct obj *o;
		int k;

		lf_rcu_read_lock(r);
		o = lf_rcu_dereference(&current_obj);
		me->poisoned += obj_bad(o);
		if (o->seq < last)
			me->regress++;	/* pointer went backwards */
		last = o->seq;
		if ((me->reads & 15) == 0) {
			/* A nested section, and a pause in which a broken
			 * synchronize would let the updater free o. */
			lf_rcu_read_lock(r);
			me->nested += lf_rcu_read_depth(r) == 2;
			for (k = 0; k < 200; k++)
				lf_cpu_relax();
			lf_rcu_read_unlock(r);
		}
		me->poisoned += obj_bad(o);
		lf_rcu_read_unlock(r);
		me->reads++;
	}
	lf_rcu_unregister(r);
	return NULL;
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The API's error paths, single-threaded. */
static void api_checks(void)
{
	struct lf_rcu_rh rh, *r = &rh, extra[CAPACITY];
	int rc, i, n = 0, last = 0;
	uint64_t cookie, before;

	lf_rcu_rh_init(r, &dh, NULL);
	if (lf_rcu_read_lock(r) != LF_EPERM)
		fail("read_lock before register not refused");
	lf_rcu_register(r);
	lf_rcu_read_lock(r);
	rc = lf_rcu_synchronize(&dh);
	printf("synchronize_in_section=%d expected=%d\n", rc, LF_EDEADLK);
	if (rc != LF_EDEADLK)
		fail("synchronize inside a read section returned %d", rc);
	rc = lf_rcu_unregister(r);
	if (rc != LF_EBUSY)
		fail("unregister inside a section returned %d", rc);
	lf_rcu_read_unlock(r);
	if (lf_rcu_read_unlock(r) != LF_EPERM)
		fail("unbalanced read_unlock not refused");

	cookie = lf_rcu_start_poll(&dh);
	if (lf_rcu_poll_state(&dh, cookie))
		fail("poll_state true before any grace period");
	if (lf_rcu_synchronize(&dh))
		fail("synchronize outside a section failed");
	if (!lf_rcu_poll_state(&dh, cookie))
		fail("poll_state false after synchronize");
	else
		printf("poll_state=ok\n");

	/* Fill the registry. */
	for (i = 0; i < CAPACITY; i++) {
		lf_rcu_rh_init(&extra[i], &dh, NULL);
		last = lf_rcu_register(&extra[i]);
		if (last < 0)
			break;
		n++;
	}
	printf("registry_full=%d after=%d\n", i < CAPACITY ? last : 0, n);
	if (i == CAPACITY || last != LF_ENOSPC)
		fail("full registry did not return LF_ENOSPC");
	for (i = 0; i < n; i++)
		lf_rcu_unregister(&extra[i]);
	lf_rcu_unregister(r);
	if (lf_rcu_read_lock(r) != LF_EPERM)
		fail("read_lock on an unregistered handle not refused");
	before = lf_read64(&dom->nr_readers);
	if (lf_rcu_unregister(r) != 0 ||
	    lf_read64(&dom->nr_readers) != before)
		fail("a second unregister changed the registry");
}

static long parse_arg(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "usage: " NAME " [readers [ms]]\n");
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *lng = getenv("LOCKFREE_LONG");
	int long_mode = lng && strcmp(lng, "1") == 0;
	uint64_t seq = 1, queued = 0, direct = 0, reads = 0, poisoned = 0;
	uint64_t nested = 0, regress = 0;
	struct timespec t0;
	long i;

	nreaders = argc > 1 ? parse_arg(argv[1], 1, MAX_READERS) : 3;
	duration_ms = long_mode ? 10000 : 400;
	if (argc > 2)
		duration_ms = parse_arg(argv[2], 1, 3600000);
	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	printf("mode=%s\n", long_mode ? "long" : "quick");
	printf("readers=%ld\n", nreaders);

	dom = aligned_alloc(64, lf_rcu_domain_size(CAPACITY));
	if (!dom || lf_rcu_init(dom, CAPACITY) ||
	    lf_rcu_handle_init(&dh, dom, lf_rcu_domain_size(CAPACITY),
			       CAPACITY, NULL)) {
		printf(NAME ": FAIL domain init\n");
		return 1;
	}
	api_checks();
	rec = lf_rcu_reclaimer_new(&dh);
	if (!rec) {
		printf(NAME ": FAIL reclaimer\n");
		return 1;
	}
	lf_rcu_assign(&current_obj, obj_new(seq));

	for (i = 0; i < nreaders; i++)
		pthread_create(&readers[i].tid, NULL, reader_fn, &readers[i]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (elapsed_ms(&t0) < duration_ms) {
		struct obj *old = lf_rcu_dereference(&current_obj);

		lf_rcu_assign(&current_obj, obj_new(++seq));
		if (seq % 64 == 0) {
			/* The synchronous way. */
			lf_rcu_synchronize(&dh);
			obj_free(old);
			direct++;
		} else {
			lf_rcu_call(rec, obj_free, old);
			queued++;
		}
		if (seq % 1024 == 0)
			lf_rcu_barrier(rec);	/* bound the backlog */
	}
	lf_store_release64(&stop, 1);
	for (i = 0; i < nreaders; i++) {
		pthread_join(readers[i].tid, NULL);
		reads += readers[i].reads;
		poisoned += readers[i].poisoned;
		nested += readers[i].nested;
		regress += readers[i].regress;
	}
	lf_rcu_barrier(rec);
	printf("updates=%" PRIu64 " call_rcu=%" PRIu64 " direct=%" PRIu64 "\n",
	       seq - 1, queued, direct);
	printf("callbacks=%" PRIu64 " expected=%" PRIu64 "\n",
	       lf_read64(&nr_freed) - direct, queued);
	if (lf_read64(&nr_freed) - direct != queued)
		fail("callbacks ran %" PRIu64 " != %" PRIu64,
		     lf_read64(&nr_freed) - direct, queued);
	printf("reads=%" PRIu64 " nested=%" PRIu64 "\n", reads, nested);
	printf("poisoned_reads=%" PRIu64 " expected=0\n", poisoned);
	if (poisoned)
		fail("poisoned_reads=%" PRIu64, poisoned);
	printf("regressions=%" PRIu64 " expected=0\n", regress);
	if (regress)
		fail("a reader saw an older object after a newer one");
	if (!reads || !nested)
		fail("readers did not run (reads=%" PRIu64 ")", reads);
	printf("grace_periods=%" PRIu64 "\n", lf_read64(&dom->nr_gp));
	lf_rcu_reclaimer_free(rec);
	obj_free(lf_rcu_dereference(&current_obj));
	free(dom);

	if (failbuf[0]) {
		printf(NAME ": FAIL %s\n", failbuf);
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
