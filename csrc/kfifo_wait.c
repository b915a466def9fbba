/*
 * kfifo: the sleeper handshake (lf_kfifo_sleep_prepare with
 * lf_kfifo_notify of kfifo.h, the membarrier registration) and the
 * blocking waits (lf_kfifo_wait_readable/writable).  See kfifo_impl.h.
 */
#include "kfifo_impl.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

/* membarrier registration of this process: 0 not tried, 1 registered,
 * 2 unavailable.  A fork child is not registered (the kernel resets it), so
 * it tries again. */
static uint32_t membarrier_state;

static void after_fork_in_child(void)
{
	lf_write32(&membarrier_state, 0);
}

__attribute__((constructor)) static void kfifo_wait_setup(void)
{
	pthread_atfork(NULL, NULL, after_fork_in_child);
}

/* -- the sleeper handshake ---------------------------------------------- */

/* Out of line and cold: keeps the publish fast path free of the syscall's
 * register spills.  Exported for the inline fast paths in kfifo.h. */
__attribute__((noinline, cold)) void lf_kfifo_wake(uint32_t *seq)
{
	/* Full barrier (lock xadd): the index stored before is visible before
	 * the new seq, which the waiter reads before its re-check. */
	lf_xadd32(seq, 1);
	lf_futex_wake(seq);
}

/* Register this process for MEMBARRIER_CMD_GLOBAL_EXPEDITED (once per
 * process, at role registration): then a waiter's membarrier makes this
 * process's publishing threads pass a full barrier.  1 if registered. */
int kfifo_membarrier_ready(struct lf_kfifo *f)
{
	uint32_t st = lf_read32(&membarrier_state);

	if (likely(st))
		return st == 1;
	st = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
		     0, 0) == 0 ? 1 : 2;
	lf_write32(&membarrier_state, st);
	if (st != 1)	/* every waiter on this ring must bound its sleep */
		lf_xchg32(&f->weak_wake, 1);
	return st == 1;
}

/*
 * The sleeper handshake, waiter half; the publisher half is
 * lf_kfifo_notify() (kfifo.h), run after every store-release of an index.
 *
 *   waiter:     *sleeping = 1; BARRIER; s = *seq; re-check; sleep while
 *               *seq == s
 *   publisher:  store-release index; if (*sleeping) { *seq += 1; wake }
 *
 * Invariant: a waiter that goes to sleep after its re-check found nothing
 * is woken by the next publish.  That needs the store->load order on both
 * sides (a Dekker pair): the waiter's flag store before its re-check's load
 * of the index, and the publisher's index store before its load of the flag.
 * The publisher has no barrier (an mfence there costs 5-7x on small items
 * between two cores: it waits for the index's line to come back).  BARRIER
 * is therefore asymmetric: membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) makes
 * every running thread of every registered process (each process registers
 * when it takes a role) execute a full barrier before it returns, and is a
 * full barrier for the caller.  A publisher whose flag load came before
 * that point had its index store drained by it, so the re-check sees the
 * index; one whose flag load came after it sees the flag (stored before the
 * membarrier) and wakes.  seq is read before the re-check, so a wake-up
 * between the re-check and the sleep changes seq and FUTEX_WAIT returns at
 * once.  tests/c/kfifo_wait_stress.c's "wakerace" phase races the two
 * halves and fails when the membarrier is removed (misses in most runs).
 *
 * The guarantee stated is a bound, not "impossible": the waiter's first
 * sleep lasts at most LF_KFIFO_RACE_NS (50 us, kfifo.h), then it re-checks,
 * so a wake-up the handshake missed comes at most LF_KFIFO_RACE_NS late
 * (the publisher's index store, made before its early flag load, has
 * drained from its store buffer by then: nanoseconds).  Why not rely on the
 * membarrier alone: the wakerace litmus once saw 4 misses in 20,000 racing
 * rounds with it (ASAN build, loaded machine), not reproduced since (0 in
 * some 15 asm and 3 ASAN runs the session after).  Two ways a real miss can happen:
 *  - the compiler hoisting the publisher's flag load above its index
 *    store (allowed for a relaxed load after a release store in C11; the
 *    portable atomics layer): the membarrier orders instructions, not the
 *    source.  lf_kfifo_notify() now has a compiler barrier between them.
 *  - the kernel: membarrier_global_expedited() skips a CPU whose runqueue
 *    state lacks MEMBARRIER_STATE_GLOBAL_EXPEDITED.  That state is copied
 *    from the mm at a context switch only when the mm changes
 *    (membarrier_switch_mm(rq, prev->active_mm, next->mm)), and
 *    registration updates only CPUs whose current task uses the mm; a CPU
 *    idle in lazy-TLB mode on our mm at registration keeps the old state
 *    until it next switches to another process.  A publisher running there
 *    gets no IPI.
 * tests/c/kfifo_wait_stress.c "wakebound" publishes without notifying
 * inside a waiter's first sleep and fails if the waiter is not back within
 * 100 ms (an unbounded first sleep fails it); "wakerace" fails above 1 %
 * misses (the mutant without the membarrier misses far more).
 *
 * Cost: ~2 us per sleep, paid only after lf_wait's spin and yield budget.
 * Where membarrier is unavailable (old kernel, seccomp) the process marks
 * the ring (weak_wake) and waiters bound their first sleep to
 * LF_KFIFO_RACE_NS, then re-check: a store buffer drains in nanoseconds, so
 * the worst case is then a wake-up LF_KFIFO_RACE_NS late.
 */
uint32_t lf_kfifo_sleep_prepare(uint32_t *sleeping, uint32_t *seq)
{
	/* Pairs with the publisher's load of the flag in lf_kfifo_notify(),
	 * through the membarrier below. */
	lf_xchg32(sleeping, 1);
	if (lf_read32(&membarrier_state) == 1)
		syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
	/* Pairs with the lf_xadd32 of seq in lf_kfifo_wake(). */
	return lf_load_acquire32(seq);
}

/* -- blocking ------------------------------------------------------------ */

static int peer_dead(struct lf_kfifo *f, uint32_t peer_role)
{
	uint64_t owner = lf_load_acquire64(role_slot(f, peer_role));

	/* No registrant yet is not a death: a peer may still come. */
	return owner != 0 && ((owner >> 32) == 0 ||
			      !lf_pid_alive((uint32_t)(owner >> 32)));
}

/*
 * Wait until cond() is no longer LF_EAGAIN or the deadline passed, with
 * lf_wait's policy (spin -> yield -> sleep); the sleep is on *seq after the
 * handshake (lf_kfifo_sleep_prepare).  Every LF_OWNER_CHECK_NS of waiting,
 * and at the deadline, the peer's liveness is checked: a dead peer ends the
 * wait with LF_EDEAD (after one more look, since it may have died right
 * after its last publish).
 */
int kfifo_wait_on(struct lf_kfifo_handle *h, cond_fn cond, uint32_t idx,
		  uint32_t need, uint32_t *sleeping, uint32_t *seq,
		  uint32_t peer, uint64_t deadline)
{
	struct lf_kfifo *f = h->f;
	struct lf_wait w;
	uint32_t s;
	int r, step, announced = 0;

	lf_wait_init(&w, deadline);
	lf_wait_poll(&w);
	lf_wait_resume(&w, seq);  /* Python's next slice sleeps at once */
	for (;;) {
		r = cond(h, idx, need);
		if (r != LF_EAGAIN || deadline == LF_NOWAIT)
			break;
		if (lf_wait_sleeping(&w)) {
			s = announced ? lf_load_acquire32(seq)
				      : lf_kfifo_sleep_prepare(sleeping, seq);
			r = cond(h, idx, need);
			if (r != LF_EAGAIN)
				break;
			if (!announced++) {
				/* The first sleep is bounded, with or
				 * without the asymmetric barrier: see
				 * lf_kfifo_sleep_prepare() for why. */
				uint64_t end = lf_deadline_in(LF_KFIFO_RACE_NS);

				lf_futex_wait(seq, s, end < deadline ? end
								     : deadline);
				continue;
			}
			lf_wait_sleep_on(&w, seq, s);
		}
		step = lf_wait_step(&w);
		/* Liveness is a system call and a /proc read: not while a
		 * short wait still spins or yields, only once it sleeps (every
		 * LF_OWNER_CHECK_NS) and at the deadline. */
		if (step == LF_WAIT_AGAIN ||
		    (step == LF_WAIT_CHECK && !lf_wait_sleeping(&w)))
			continue;
		r = cond(h, idx, need);
		if (r != LF_EAGAIN)
			break;
		if (peer_dead(f, peer)) {
			r = LF_EDEAD;
			break;
		}
		if (step == LF_WAIT_TIMEOUT)
			break;
	}
	if (announced)
		lf_write32(sleeping, 0);
	return r;
}

int kfifo_readable(struct lf_kfifo_handle *h, uint32_t out, uint32_t need)
{
	/* (A restart may move out: the next get looks at the new one.) */
	int64_t used = cons_used(h, &out, need);

	return used > 0 ? 0 : (int)used;
}

int kfifo_wait_readable(struct lf_kfifo_handle *h, uint64_t deadline)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_CONSUMER);

	if (r)
		return r;
	/* Acquire, as every consumer's first read of out (rec_next()). */
	return kfifo_wait_on(h, kfifo_readable, lf_load_acquire32(&f->out), 1,
			     &f->cons_sleeping, &f->cons_seq,
			     LF_KFIFO_ROLE_PRODUCER, deadline);
}

int kfifo_writable(struct lf_kfifo_handle *h, uint32_t in, uint32_t need)
{
	int64_t free;

	if (lf_read32(&h->f->flags) & LF_KFIFO_F_CLOSED)
		return LF_ECLOSED;
	free = prod_free(h, in, need);
	if (free < 0)
		return (int)free;
	return free >= need ? 0 : LF_EAGAIN;
}

int kfifo_wait_writable(struct lf_kfifo_handle *h, uint32_t need,
			uint64_t deadline)
{
	struct lf_kfifo *f = h->f;
	int r = need_role(h, LF_KFIFO_ROLE_PRODUCER);

	if (r)
		return r;
	if (need > h->size)
		return LF_EMSGSIZE;
	return kfifo_wait_on(h, kfifo_writable, lf_read32(&f->in), need,
			     &f->prod_sleeping, &f->prod_seq,
			     LF_KFIFO_ROLE_CONSUMER, deadline);
}

LF_KFIFO_CALL(int, wait_readable, 1,
	      (struct lf_kfifo_handle *h, uint64_t deadline),
	      (h, deadline))
LF_KFIFO_CALL(int, wait_writable, 0,
	      (struct lf_kfifo_handle *h, uint32_t need, uint64_t deadline),
	      (h, need, deadline))
