/*
 * rcu_fork_stress: RCU across processes, on domains in MAP_SHARED memory:
 * a forked child's copy of a registered handle (its read-side sections,
 * csrc/rcu.c) and a writer's wait for the reader slots of other processes
 * and its reclaim of dead ones (csrc/rcu_sync.c).  Readers against an
 * updater, call_rcu and the API's error paths, in one process, are
 * checked by rcu_stress.c; the two programs share only stress.h.
 *
 * Contract as every tests/c/<name>_stress.c (see tests/cbuild.py):
 *
 *   usage: rcu_fork_stress        (no arguments; each check runs once, the
 *                                  same when LOCKFREE_LONG=1 or
 *                                  LOCKFREE_EMULATED=1)
 *   stdout            key=value lines, last "rcu_fork_stress: OK" / "FAIL
 *                     <why>"
 *   exit status 0 iff every invariant held
 *
 * Invariants:
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

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "stress.h"

#define NAME		"rcu_fork_stress"

static struct lf_rcu_dh fdh;	/* fork checks: a domain in MAP_SHARED memory */

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
	if (!fired) {
		/* The child still waits on race_pipe (it holds the pipe's
		 * write end too, so it would wait for ever, and keep stdout
		 * open for the test harness): end it here. */
		kill(race_child, SIGKILL);
		waitpid(race_child, NULL, 0);
		fail("reclaim race: the hook never ran");
	}
	else if (depth != 1 || dead != 0)
		fail("reclaim race: a live reader's slot was reclaimed from "
		     "the dead process that had it before (section depth "
		     "%llu, nr_dead %llu)", (unsigned long long)depth,
		     (unsigned long long)dead);
	if (fired) {
		/* After our read of race_rh. */
		lf_store_release32(&race_leave, 1);
		pthread_join(race_thread, NULL);
	}
	close(ready[0]);
	close(ready[1]);
	close(race_pipe[0]);
	close(race_pipe[1]);
	munmap(race_dom, size);
}

int main(void)
{
	size_t fsize = lf_rcu_domain_size(4);
	struct lf_rcu_domain *fd;

	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	run_reclaim_race();
	fd = mmap(NULL, fsize, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fd == MAP_FAILED || lf_rcu_init(fd, 4) ||
	    lf_rcu_handle_init(&fdh, fd, fsize, 4, NULL))
		fail("fork checks: setup");
	else
		fork_checks();
	if (fd != MAP_FAILED)
		munmap(fd, fsize);

	if (failbuf[0]) {
		printf(NAME ": FAIL %s\n", failbuf);
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
