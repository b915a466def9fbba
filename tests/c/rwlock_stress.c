/*
 * Stress test of the RW lock (csrc/rwlock.h).
 * Build: gcc -Icsrc tests/c/rwlock_stress.c csrc/ *.c -lpthread
 * Prints key=value lines; the last is "rwlock_stress: OK" or
 * "rwlock_stress: FAIL <what>"; exit status 0 only if every check held.
 * LOCKFREE_LONG=1 runs longer.  What it shares with spinlock_stress.c and
 * ticketlock_stress.c is in lock_harness.h.
 *
 * Checks, for the write side and the read side:
 *  - mutual exclusion: N threads x M iterations increment a plain (non
 *    atomic) counter inside the lock; the total must be N*M (and under
 *    ThreadSanitizer, which sees the portable atomics, no race may be
 *    reported);
 *  - Concurrency Kit's validator invariant: inside the lock add 1 to a
 *    plain word K times, check it is K, subtract K, check it is 0 -- any
 *    other thread inside at the same time breaks it;
 *  - readers inside see the writers' invariant word at 0 and overlap
 *    (max concurrent readers > 1 reported); a writer gets in while readers
 *    keep arriving; afterwards the owner word and every reader slot are
 *    back to 0; a forked reader
 *    killed holding the read side three times is reported to a waiting
 *    writer by pid, and recovery gives exactly its holds back;
 *  - across processes: forked processes (each claiming its own reader
 *    slot, concurrently) mix reads and writes on a lock in shared memory;
 *    the writers' counter is exact, readers never see a writer's
 *    invariant word nonzero, and every slot ends with 0 holds;
 *  - a holder (writer thread, reader process) that releases and exits
 *    while a waiter checks whether it is alive is not reported dead (the
 *    test hook, LF_TEST_HOOKS, opens that window).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock_harness.h"

/* -- RW: readers overlap; a writer gets in under a stream of readers ------- */

static void *overlap_reader(void *arg)
{
	pthread_barrier_t *start = arg;
	pthread_barrier_wait(start);
	while (!lf_load_acquire32(&stop_word)) {
		lf_rwlock_read_lock_until(&rw, LF_FOREVER);
		reader_section(200);
		lf_rwlock_read_unlock(&rw);
	}
	return NULL;
}

static void run_rw_writer_progress(int nreaders, int writes)
{
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;

	lf_write64(&readers_max, 0);
	lf_store_release32(&stop_word, 0);
	pthread_barrier_init(&start, NULL, nreaders + 1);
	for (int i = 0; i < nreaders; i++)
		pthread_create(&th[i], NULL, overlap_reader, &start);
	pthread_barrier_wait(&start);
	/* Readers arrive continuously; each write must still get in within
	 * a generous timeout (writer preference). */
	int got = 0;
	uint64_t worst = 0;
	for (int i = 0; i < writes; i++) {
		uint64_t t0 = lf_now_ns();
		if (lf_rwlock_write_lock_until(&rw, t0 + 2000000000ull) != 1)
			break;
		invariant += K;
		invariant -= K;
		lf_rwlock_write_unlock(&rw);
		uint64_t dt = lf_now_ns() - t0;
		if (dt > worst)
			worst = dt;
		got++;
		usleep(200);
	}
	lf_store_release32(&stop_word, 1);
	for (int i = 0; i < nreaders; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	printf("rw_writer_under_readers_writes=%d/%d\n", got, writes);
	printf("rw_writer_under_readers_worst_wait_us=%.1f\n", worst / 1e3);
	printf("rw_overlap_max_concurrent_readers=%llu\n",
	       (unsigned long long)lf_read64(&readers_max));
	if (got != writes)
		fail("rw writer starved by readers");
	if (lf_read64(&readers_max) < 2)
		fail("rw readers never overlapped");
}

/* After the RW phases: no holds left anywhere. */
static void check_rw_idle(void)
{
	uint64_t holds = 0;
	for (unsigned i = 0; i < LF_RW_SLOTS; i++)
		holds += (uint32_t)lf_read64(&rw.slots[i].word);
	printf("rw_idle_owner=%llu\nrw_idle_slot_holds=%llu\n",
	       (unsigned long long)lf_read64(&rw.owner),
	       (unsigned long long)holds);
	if (lf_read64(&rw.owner) || holds)
		fail("rw lock not idle after every reader and writer left");
}

/* A reader process killed holding the read side. */
static void run_rw_dead_reader(void)
{
	lf_rwlock_t *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int fds[2];
	char c;
	if (l == MAP_FAILED || pipe(fds) != 0) {
		fail("rw dead reader: mmap/pipe");
		return;
	}
	lf_rwlock_init(l, 0);
	lf_rwlock_read_lock_until(l, LF_FOREVER);  /* a live reader: us */
	fflush(stdout);  /* children must not print our buffer again */
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 3; i++)
			lf_rwlock_read_lock_until(l, LF_FOREVER);
		if (write(fds[1], "x", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	if (pid < 0 || read(fds[0], &c, 1) != 1) {
		fail("rw dead reader: fork");
		return;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	int64_t r = lf_rwlock_write_lock_until(l, lf_now_ns() + 2000000000ull);
	int64_t expect = -(int64_t)((uint64_t)pid << 32);
	uint64_t after_recover;
	int rec = lf_rwlock_recover(l);          /* 0: we still read */
	after_recover = lf_rwlock_readers(l);
	lf_rwlock_read_unlock(l);
	int64_t r2 = lf_rwlock_write_lock_until(l, lf_now_ns() + 2000000000ull);
	printf("rw_dead_reader_ret_is_pid=%d\nrw_dead_reader_holds_left=%llu\n",
	       r == expect, (unsigned long long)after_recover);
	if (r != expect || rec != 0 || after_recover != 1 || r2 != LF_ACQUIRED)
		fail("rw dead reader not detected or not recovered");
	lf_rwlock_write_unlock(l);
	if (lf_read64(&l->owner) != 0 || lf_rwlock_readers(l) != 0)
		fail("rw dead reader: lock not free at the end");
	close(fds[0]);
	close(fds[1]);
	munmap(l, sizeof *l);
}

/* The holder-exit race (lock_harness.h) for a reader process of an RW
 * lock: the writer finds its slot, then the reader returns its hold and
 * exits (reaped) before the check. */
static pid_t race_child;
static int race_pipe[2];

static void race_hook_child(void)
{
	char c = 'x';
	if (!hook_mine())
		return;
	if (write(race_pipe[1], &c, 1) != 1)
		fail("reader exit race: pipe");
	waitpid(race_child, NULL, 0);
}

static void run_reader_exit_race(void)
{
	lf_rwlock_t *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ready[2];
	char c;
	if (l == MAP_FAILED || pipe(race_pipe) != 0 || pipe(ready) != 0) {
		fail("reader exit race: mmap/pipe");
		return;
	}
	lf_rwlock_init(l, 0);
	fflush(stdout);
	race_child = fork();
	if (race_child == 0) {
		lf_rwlock_read_lock_until(l, LF_FOREVER);
		if (write(ready[1], "x", 1) != 1 ||
		    read(race_pipe[0], &c, 1) != 1)
			_exit(2);
		lf_rwlock_read_unlock(l);
		_exit(0);
	}
	if (race_child < 0 || read(ready[0], &c, 1) != 1) {
		fail("reader exit race: fork");
		return;
	}
	race_waiter = pthread_self();
	set_hook(race_hook_child);
	int64_t r = lf_rwlock_write_lock_until(l, lf_now_ns() + 5000000000ull);
	int fired = hook_fired();
	if (!fired) {
		char x = 'x';
		if (write(race_pipe[1], &x, 1) == 1)
			waitpid(race_child, NULL, 0);
	}
	printf("reader_exit_race=%lld\n", (long long)r);
	if (r == LF_ACQUIRED)
		lf_rwlock_write_unlock(l);
	if (!fired || r != LF_ACQUIRED)
		fail(!fired ? "rw: the reader process was never checked" :
		     "rw: a reader that returned its hold and exited during the "
		     "liveness check was reported dead");
	close(ready[0]);
	close(ready[1]);
	close(race_pipe[0]);
	close(race_pipe[1]);
	munmap(l, sizeof *l);
}

/* Reader slots under processes racing to claim them. */
struct rw_shared {
	lf_rwlock_t l;
	uint64_t counter;      /* writers' plain counter */
	uint64_t word;         /* K inside a write, 0 outside */
	uint64_t bad;          /* atomic: readers that saw word != 0 */
};

static void rw_process_body(struct rw_shared *s, long iters)
{
	for (long i = 0; i < iters; i++) {
		if (i % 8 == 0) {
			lf_rwlock_write_lock_until(&s->l, LF_FOREVER);
			s->counter++;
			for (int k = 0; k < K; k++)
				s->word++;
			if (s->word != K)
				lf_xadd64(&s->bad, 1);
			s->word -= K;
			lf_rwlock_write_unlock(&s->l);
		} else {
			lf_rwlock_read_lock_until(&s->l, LF_FOREVER);
			if (s->word != 0)
				lf_xadd64(&s->bad, 1);
			if (lf_rwlock_read_unlock(&s->l) != 0)
				lf_xadd64(&s->bad, 1);
		}
	}
}

static void run_rw_processes(int nproc, long iters)
{
	struct rw_shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[MAX_THREADS];
	int ok = 1;

	if (s == MAP_FAILED) {
		fail("rw processes: mmap");
		return;
	}
	memset(s, 0, sizeof *s);
	lf_rwlock_init(&s->l, 0);
	for (int p = 0; p < nproc; p++) {
		fflush(stdout);
		pids[p] = fork();
		if (pids[p] == 0) {
			rw_process_body(s, iters);
			_exit(0);
		}
		if (pids[p] < 0)
			ok = 0;
	}
	rw_process_body(s, iters);  /* and this process */
	for (int p = 0; p < nproc; p++) {
		int status = 0;
		if (pids[p] > 0 && (waitpid(pids[p], &status, 0) != pids[p] ||
				    !WIFEXITED(status) || WEXITSTATUS(status)))
			ok = 0;
	}
	uint64_t holds = 0, slots = 0;
	for (unsigned i = 0; i < LF_RW_SLOTS; i++) {
		uint64_t w = lf_read64(&s->l.slots[i].word);
		holds += (uint32_t)w;
		slots += w != 0;
	}
	uint64_t expect = (uint64_t)(nproc + 1) * ((iters + 7) / 8);
	printf("rw_processes=%d\nrw_processes_counter=%llu\n"
	       "rw_processes_expected=%llu\nrw_processes_bad=%llu\n"
	       "rw_processes_slots_used=%llu\n", nproc + 1,
	       (unsigned long long)s->counter, (unsigned long long)expect,
	       (unsigned long long)lf_read64(&s->bad),
	       (unsigned long long)slots);
	if (!ok || s->counter != expect || lf_read64(&s->bad) || holds ||
	    slots || lf_read64(&s->l.owner))
		fail("rw across processes: count, invariant or slots wrong");
	munmap(s, sizeof *s);
}

int main(void)
{
	int is_long = long_mode();
	long iters = is_long ? 2000000 : emulated() ? 10000 : 100000;
	int nthreads = 4;

	printf("atomics=%s\nlong=%d\n", LF_ATOMICS_IMPL, is_long);
	lf_rwlock_init(&rw, LF_LOCK_STATS);
	run_mx(RW_WRITE, nthreads, iters);
	run_mx(RW_READ, nthreads, iters);
	run_rw_writer_progress(3, is_long ? 2000 : 50);
	check_rw_idle();
	run_rw_dead_reader();
	run_holder_exit_race(RW_WRITE);
	run_reader_exit_race();
	run_rw_processes(3, is_long ? 1000000 : emulated() ? 5000 : 50000);

	if (lf_read32(&failed)) {
		printf("rwlock_stress: FAIL %s\n", fail_what);
		return 1;
	}
	printf("rwlock_stress: OK\n");
	return 0;
}
