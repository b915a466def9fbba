#define _GNU_SOURCE
#include "lockwait.h"
#include "arch/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

LF_TLS uint64_t lf_owner_self_cache;

#ifdef LF_TEST_HOOKS
void (*lf_test_holder_loaded)(void);
#endif

static pthread_once_t lf_atfork_once = PTHREAD_ONCE_INIT;

/* A fork child is a new process with a new tid: forget the parent's id so
 * the child never passes for the thread that forked it (which may hold a
 * lock in shared memory).  Runs in the child's only thread. */
static void lf_owner_atfork_child(void) { lf_owner_self_cache = 0; }

static void lf_owner_register_atfork(void)
{
	pthread_atfork(NULL, NULL, lf_owner_atfork_child);
}

uint64_t lf_owner_self_slow(void)
{
	pthread_once(&lf_atfork_once, lf_owner_register_atfork);
	uint64_t pid = (uint64_t)(uint32_t)getpid();
	uint64_t tid = (uint64_t)(uint32_t)syscall(SYS_gettid);
	lf_owner_self_cache = pid << 32 | tid;
	return lf_owner_self_cache;
}

/* The fields of a /proc stat file after "pid (comm) ", starting with the
 * state letter, in buf; NULL if unreadable.  The comm field may hold spaces
 * and parentheses, so parse after the last ')'. */
static const char *lf_stat_fields(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ')
		return NULL;
	return rp + 2;
}

/* Field n (0 = the state letter) of the fields lf_stat_fields returned,
 * or NULL. */
static const char *lf_stat_field(const char *f, int n)
{
	while (n-- > 0 && f) {
		f = strchr(f, ' ');
		if (f)
			f++;
	}
	return f;
}

/* PF_EXITING (include/linux/sched.h), in the flags field of a stat file
 * (field 9; 6 after the state): set at the start of do_exit(), before the
 * task lets go of anything.  A task with it set never runs user code again,
 * but its /proc entry can outlive pthread_join() returning by a moment
 * (the join wakes at the tid-clear in mm_release, before the task is
 * unhashed), so without this check a lock's owner would look alive
 * just after a thread that held it was joined. */
#define LF_PF_EXITING 0x4u

/* A zombie (exited, not reaped), dead, or exiting task. */
static bool lf_task_dead(const char *f)
{
	if (f[0] == 'Z' || f[0] == 'X' || f[0] == 'x')
		return true;
	const char *flags = lf_stat_field(f, 6);
	return flags && (strtoul(flags, NULL, 10) & LF_PF_EXITING);
}

int lf_owner_alive(uint64_t id)
{
	uint32_t pid = lf_owner_pid(id), tid = lf_owner_tid(id);
	if (id == 0)
		return 1;  /* names nobody: claim nothing */
	if (!lf_owner_valid(id) || tid == 0)
		return 0;  /* no thread has such an id: a peer scribbled it */
	if (syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) != 0 &&
	    errno == ESRCH)
		return 0;
	/* It exists (or we may not signal it: EPERM).  A zombie still answers
	 * signals but will never release anything; nor will an exiting task. */
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%u/task/%u/stat", pid, tid);
	const char *f = lf_stat_fields(path, buf, sizeof buf);
	return !(f && lf_task_dead(f));
}

int lf_pid_alive(uint32_t pid)
{
	if (pid == 0)
		return 1;
	if (pid > INT_MAX)
		return 0;  /* kill() would read it as a process group */
	if (pid == (uint32_t)getpid())
		return 1;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return 0;
	/* A zombie (killed, not yet reaped) still exists.  Its /proc/<pid>/stat
	 * says Z (or, while it exits, carries PF_EXITING); but so does a live
	 * process whose main thread alone exited, so it counts as dead only
	 * with at most one thread left. */
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%u/stat", pid);
	const char *f = lf_stat_fields(path, buf, sizeof buf);
	if (!f || !lf_task_dead(f))
		return 1;
	/* num_threads: field 20 of 52, 17 after the state. */
	f = lf_stat_field(f, 17);
	return f ? strtol(f, NULL, 10) > 1 : 1;
}

uint64_t lf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lf_futex_wait(uint32_t *word, uint32_t val, uint64_t deadline)
{
	uint64_t now = lf_now_ns();
	struct timespec ts, *tp = NULL;

	if (deadline != LF_FOREVER) {
		uint64_t left = deadline > now ? deadline - now : 0;
		ts.tv_sec = (time_t)(left / 1000000000u);
		ts.tv_nsec = (long)(left % 1000000000u);
		tp = &ts;
	}
	/* EAGAIN (word changed), EINTR (signal), ETIMEDOUT: the caller
	 * re-checks its condition in every case. */
	syscall(SYS_futex, word, FUTEX_WAIT, val, tp, NULL, 0);
}

void lf_futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void lf_wait_sleep(struct lf_wait *w)
{
	uint64_t end;

	w->sleeps++;
	if (w->futex) {
		lf_futex_wait(w->futex, w->futex_val, w->deadline);
		w->futex = NULL;  /* the caller sets it again before each sleep */
		return;
	}
	end = lf_deadline_in(w->sleep_ns);
	if (end > w->deadline)
		end = w->deadline;
	uint64_t now = lf_now_ns();
	if (end > now) {
		struct timespec ts = {
			.tv_sec = (time_t)((end - now) / 1000000000u),
			.tv_nsec = (long)((end - now) % 1000000000u),
		};
		nanosleep(&ts, NULL);
	}
	if (w->sleep_ns < LF_SLEEP_MAX_NS)
		w->sleep_ns <<= 1;
}

/* The last wait of this thread that ended asleep at its deadline, by key. */
static __thread const void *resume_key;
static __thread uint64_t resume_at, resume_sleep_ns;

void lf_wait_resume(struct lf_wait *w, const void *key)
{
	w->key = key;
	if (resume_key != key)
		return;
	resume_key = NULL;
	if (lf_now_ns() - resume_at > LF_RESUME_NS)
		return;
	w->resumed = 1;
	w->sleep_ns = resume_sleep_ns;
}

int lf_wait_step(struct lf_wait *w)
{
	bool spinning = lf_wait_spinning(w);

	if (spinning) {
		/* Bounded exponential backoff: fewer probes of the lock's cache
		 * line the longer it stays busy (none for a poll). */
		for (uint32_t i = 0; i < w->backoff; i++)
			lf_cpu_relax();
		w->spins += w->backoff;
		if (w->backoff < w->backoff_max)
			w->backoff <<= 1;
	} else if (w->yields < LF_YIELD_ROUNDS && !w->resumed) {
		/* Spin budget spent: the holder is probably not running (more
		 * threads than cores).  Give it our core. */
		sched_yield();
		w->yields++;
	} else {
		/* Still waiting after the yields: a long wait, which should
		 * cost no CPU. */
		lf_wait_sleep(w);
	}
	w->rounds++;
	/* No clock needed yet; a poll's deadline may pass by its spin
	 * budget (~20-100 us), its rounds are too short to read the clock. */
	if (spinning && lf_wait_spinning(w) &&
	    (w->deadline == LF_FOREVER || w->backoff_max == 1))
		return LF_WAIT_AGAIN;
	uint64_t now = lf_now_ns();
	if (now >= w->deadline) {
		if (w->key && lf_wait_sleeping(w)) {  /* for lf_wait_resume */
			resume_key = w->key;
			resume_at = now;
			resume_sleep_ns = w->sleep_ns;
		}
		return LF_WAIT_TIMEOUT;
	}
	if (!lf_wait_spinning(w) && now >= w->next_check) {
		w->next_check = now + LF_OWNER_CHECK_NS;
		return LF_WAIT_CHECK;
	}
	return LF_WAIT_AGAIN;
}

void lf_wait_account(lf_lockstats_t *s, const struct lf_wait *w, bool acquired)
{
	/* Atomic adds: waiters that gave up account outside the lock. */
	if (acquired)
		lf_xadd64(&s->contended, 1);
	if (w->spins)
		lf_xadd64(&s->spins, w->spins);
	if (w->yields)
		lf_xadd64(&s->yields, w->yields);
}
