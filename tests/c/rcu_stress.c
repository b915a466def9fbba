/*
 * rcu_stress: readers dereference and validate objects while an updater
 * replaces them and frees the old ones through call_rcu (and, every few
 * updates, through synchronize + free); freed memory is poisoned first.
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
 *   API checks        synchronize inside a read section fails with -EDEADLK
 *                     (instead of deadlocking), nested sections, poll_state,
 *                     a full registry gives -ENOSPC, an unregistered slot
 *                     gives -EPERM, unregister inside a section -EBUSY.
 *   reclaim race      a writer about to reclaim a dead process's reader slot
 *                     leaves it alone if, meanwhile, the owner unregistered
 *                     and exited and a live reader claimed the slot (the
 *                     test hook, LF_TEST_HOOKS, opens that window): the
 *                     live section survives and nr_dead stays 0.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
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
	int idx = lf_rcu_register(dom);
	struct lf_rcu_reader *r;
	uint64_t last = 0;

	if (idx < 0) {
		fail("register: %d", idx);
		return NULL;
	}
	r = lf_rcu_reader(dom, idx);
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
	lf_rcu_unregister(dom, idx);
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
	int idx = lf_rcu_register(dom), rc, i, n = 0;
	int extra[CAPACITY];
	struct lf_rcu_reader *r = lf_rcu_reader(dom, idx);
	uint64_t cookie;

	lf_rcu_read_lock(r);
	rc = lf_rcu_synchronize(dom);
	printf("synchronize_in_section=%d expected=%d\n", rc, -EDEADLK);
	if (rc != -EDEADLK)
		fail("synchronize inside a read section returned %d", rc);
	rc = lf_rcu_unregister(dom, idx);
	if (rc != -EBUSY)
		fail("unregister inside a section returned %d", rc);
	lf_rcu_read_unlock(r);
	if (lf_rcu_read_unlock(r) != -EPERM)
		fail("unbalanced read_unlock not refused");

	cookie = lf_rcu_start_poll(dom);
	if (lf_rcu_poll_state(dom, cookie))
		fail("poll_state true before any grace period");
	if (lf_rcu_synchronize(dom))
		fail("synchronize outside a section failed");
	if (!lf_rcu_poll_state(dom, cookie))
		fail("poll_state false after synchronize");
	else
		printf("poll_state=ok\n");

	/* Fill the registry. */
	for (i = 0; i < CAPACITY; i++) {
		extra[i] = lf_rcu_register(dom);
		if (extra[i] < 0)
			break;
		n++;
	}
	printf("registry_full=%d after=%d\n", i < CAPACITY ? extra[i] : 0, n);
	if (i == CAPACITY || extra[i] != -ENOSPC)
		fail("full registry did not return -ENOSPC");
	for (i = 0; i < n; i++)
		lf_rcu_unregister(dom, extra[i]);
	lf_rcu_unregister(dom, idx);
	if (lf_rcu_read_lock(r) != -EPERM)
		fail("read_lock on an unregistered slot not refused");
	if (lf_rcu_unregister(dom, idx) != -EPERM)
		fail("double unregister not refused");
}

/*
 * A writer must not reclaim a reader slot from a dead process once a live
 * reader has claimed it: the test hook (LF_TEST_HOOKS) runs in
 * synchronize right after it loaded the owner of a slot still inside an
 * old-phase section, on its slow path.  There it lets that owner, a child
 * process, leave its section, unregister and exit (reaped); a thread of
 * ours then claims the same slot and enters a section.  The dead owner's
 * id is stale: the writer must leave the slot (and the live section) alone.
 */
static struct lf_rcu_domain *race_dom;
static pid_t race_child;
static int race_pipe[2];
static uint32_t race_in, race_leave;	/* atomic */
static int race_idx = -1;
static pthread_t race_thread;

static void *race_reader(void *arg)
{
	(void)arg;
	race_idx = lf_rcu_register(race_dom);
	lf_rcu_read_lock(lf_rcu_reader(race_dom, race_idx));
	lf_xchg32(&race_in, 1);  /* publishes race_idx */
	while (!lf_read32(&race_leave))
		usleep(100);
	lf_rcu_read_unlock(lf_rcu_reader(race_dom, race_idx));
	lf_rcu_unregister(race_dom, race_idx);
	return NULL;
}

static void race_hook(void)
{
	char c = 'x';

	__atomic_store_n(&lf_test_holder_loaded, NULL, __ATOMIC_RELEASE);
	if (write(race_pipe[1], &c, 1) != 1)
		fail("reclaim race: pipe");
	waitpid(race_child, NULL, 0);
	pthread_create(&race_thread, NULL, race_reader, NULL);
	while (!lf_load_acquire32(&race_in))
		usleep(100);
}

static void run_reclaim_race(void)
{
	size_t size = lf_rcu_domain_size(4);
	int ready[2], rc;
	char c;

	race_dom = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (race_dom == MAP_FAILED || lf_rcu_init(race_dom, 4) ||
	    pipe(race_pipe) || pipe(ready)) {
		fail("reclaim race: setup");
		return;
	}
	fflush(stdout);
	race_child = fork();
	if (race_child == 0) {
		int idx = lf_rcu_register(race_dom);
		struct lf_rcu_reader *r = lf_rcu_reader(race_dom, idx);

		lf_rcu_read_lock(r);
		if (write(ready[1], "x", 1) != 1 ||
		    read(race_pipe[0], &c, 1) != 1)
			_exit(2);
		lf_rcu_read_unlock(r);
		lf_rcu_unregister(race_dom, idx);
		_exit(0);
	}
	if (race_child < 0 || read(ready[0], &c, 1) != 1) {
		fail("reclaim race: fork");
		return;
	}
	__atomic_store_n(&lf_test_holder_loaded, race_hook, __ATOMIC_RELEASE);
	/* Waits for the thread's section if it began in an old phase (it
	 * may not have): a timeout here is the right outcome, not an error. */
	rc = lf_rcu_synchronize_timeout(race_dom, 200 * 1000000LL);
	int fired = __atomic_exchange_n(&lf_test_holder_loaded, NULL,
					__ATOMIC_ACQ_REL) == NULL;
	uint64_t depth = fired ? (uint64_t)lf_rcu_read_depth(
		lf_rcu_reader(race_dom, race_idx)) : 0;
	uint64_t dead = lf_read64(&race_dom->nr_dead);
	printf("reclaim_race_rc=%d\nreclaim_race_depth=%llu\n"
	       "reclaim_race_nr_dead=%llu\n", rc, (unsigned long long)depth,
	       (unsigned long long)dead);
	if (!fired)
		fail("reclaim race: the hook never ran");
	else if (depth != 1 || dead != 0)
		fail("reclaim race: a live reader's slot was reclaimed from "
		     "the dead process that had it before (section depth "
		     "%llu, nr_dead %llu)", (unsigned long long)depth,
		     (unsigned long long)dead);
	if (fired) {
		lf_write32(&race_leave, 1);
		pthread_join(race_thread, NULL);
	}
	close(ready[0]);
	close(ready[1]);
	close(race_pipe[0]);
	close(race_pipe[1]);
	munmap(race_dom, size);
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
	if (!dom || lf_rcu_init(dom, CAPACITY)) {
		printf(NAME ": FAIL domain init\n");
		return 1;
	}
	api_checks();
	run_reclaim_race();
	rec = lf_rcu_reclaimer_new(dom);
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
			lf_rcu_synchronize(dom);
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
