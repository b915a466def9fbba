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
 *   API checks        synchronize inside a read section fails with
 *                     LF_EDEADLK (instead of deadlocking), nested sections,
 *                     poll_state, a full registry gives LF_ENOSPC, an
 *                     unregistered handle LF_EPERM, unregister inside a
 *                     section LF_EBUSY.
 *   fork              a forked child's copy of a registered handle takes a
 *                     slot of its own and never writes the parent's; the
 *                     parent's synchronize waits for the child's section
 *                     (LF_EAGAIN at a short deadline, not LF_EDEADLK).
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
static struct lf_rcu_dh dh;	/* the validated handle every call takes */
static struct lf_rcu_dh fdh;	/* fork checks: a domain in MAP_SHARED memory */
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

/*
 * Fork: a child that inherits a registered handle (inside no section)
 * gets a slot of its own on its first read_lock; the parent's slot keeps
 * its owner and counter, and the parent, in no section, synchronizes while
 * the child sits in one (it waits for the child: LF_EAGAIN at a short
 * deadline, never LF_EDEADLK).
 */
static void fork_checks(void)
{
	struct lf_rcu_rh rh, *r = &rh;
	int ready[2], go[2], status, idx;
	uint64_t owner;
	pid_t child;
	char c;

	lf_rcu_rh_init(r, &fdh, NULL);
	idx = lf_rcu_register(r);
	lf_rcu_read_lock(r);
	lf_rcu_read_unlock(r);
	owner = lf_read64(&fdh.readers[idx].owner);
	if (pipe(ready) || pipe(go)) {
		fail("fork checks: pipe");
		return;
	}
	fflush(stdout);
	child = fork();
	if (child == 0) {
		int ok = lf_rcu_read_lock(r) == 0 && r->idx != idx &&
			 lf_read64(&fdh.readers[idx].owner) == owner &&
			 !(lf_read64(&fdh.readers[idx].ctr) & LF_RCU_NEST_MASK);

		if (write(ready[1], ok ? "y" : "n", 1) != 1 ||
		    read(go[0], &c, 1) != 1)
			_exit(2);
		lf_rcu_read_unlock(r);
		lf_rcu_unregister(r);
		_exit(lf_read64(&fdh.readers[idx].owner) == owner ? 0 : 3);
	}
	if (child < 0 || read(ready[0], &c, 1) != 1) {
		fail("fork checks: fork");
		return;
	}
	if (c != 'y')
		fail("fork: the child did not get a slot of its own");
	int rc = lf_rcu_synchronize_until(&fdh, lf_deadline_in(20000000));
	printf("fork_parent_synchronize=%d expected=%d\n", rc, LF_EAGAIN);
	if (rc != LF_EAGAIN)
		fail("fork: the parent's synchronize returned %d while the "
		     "child read", rc);
	if (write(go[1], "x", 1) != 1 || waitpid(child, &status, 0) != child ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("fork: the child's unregister touched the parent's slot");
	if (lf_rcu_synchronize(&fdh))
		fail("fork: synchronize after the child left failed");
	lf_rcu_unregister(r);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
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
static struct lf_rcu_dh race_dh;
static pid_t race_child;
static int race_pipe[2];
static uint32_t race_in, race_leave;	/* atomic */
static struct lf_rcu_rh race_rh;
static pthread_t race_thread;

static void *race_reader(void *arg)
{
	(void)arg;
	lf_rcu_rh_init(&race_rh, &race_dh, NULL);
	lf_rcu_register(&race_rh);
	lf_rcu_read_lock(&race_rh);
	lf_xchg32(&race_in, 1);  /* publishes race_rh */
	while (!lf_load_acquire32(&race_leave))
		usleep(100);
	lf_rcu_read_unlock(&race_rh);
	lf_rcu_unregister(&race_rh);
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
	    lf_rcu_handle_init(&race_dh, race_dom, size, 4, NULL) ||
	    pipe(race_pipe) || pipe(ready)) {
		fail("reclaim race: setup");
		return;
	}
	fflush(stdout);
	race_child = fork();
	if (race_child == 0) {
		struct lf_rcu_rh r;

		lf_rcu_rh_init(&r, &race_dh, NULL);
		lf_rcu_register(&r);
		lf_rcu_read_lock(&r);
		if (write(ready[1], "x", 1) != 1 ||
		    read(race_pipe[0], &c, 1) != 1)
			_exit(2);
		lf_rcu_read_unlock(&r);
		lf_rcu_unregister(&r);
		_exit(0);
	}
	if (race_child < 0 || read(ready[0], &c, 1) != 1) {
		fail("reclaim race: fork");
		return;
	}
	__atomic_store_n(&lf_test_holder_loaded, race_hook, __ATOMIC_RELEASE);
	/* Waits for the thread's section if it began in an old phase (it
	 * may not have): a timeout here is the right outcome, not an error. */
	rc = lf_rcu_synchronize_until(&race_dh, lf_deadline_in(200000000));
	int fired = __atomic_exchange_n(&lf_test_holder_loaded, NULL,
					__ATOMIC_ACQ_REL) == NULL;
	/* The thread's section, read from its slot (depth() would say 0 in
	 * this thread: the handle is the other thread's). */
	uint64_t depth = fired ? lf_read64(&race_rh.slot->ctr) &
				 LF_RCU_NEST_MASK : 0;
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
		lf_store_release32(&race_leave, 1);  /* after our read of race_rh */
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
	if (!dom || lf_rcu_init(dom, CAPACITY) ||
	    lf_rcu_handle_init(&dh, dom, lf_rcu_domain_size(CAPACITY),
			       CAPACITY, NULL)) {
		printf(NAME ": FAIL domain init\n");
		return 1;
	}
	api_checks();
	run_reclaim_race();
	{
		size_t fsize = lf_rcu_domain_size(4);
		struct lf_rcu_domain *fd = mmap(NULL, fsize,
			PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);

		if (fd == MAP_FAILED || lf_rcu_init(fd, 4) ||
		    lf_rcu_handle_init(&fdh, fd, fsize, 4, NULL))
			fail("fork checks: setup");
		else
			fork_checks();
		if (fd != MAP_FAILED)
			munmap(fd, fsize);
	}
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
