/*
 * kfifo_wait_stress: the sleeper handshake and the blocking waits of
 * lf_kfifo (csrc/kfifo_wait.c): wake-ups that are needed, the handshake
 * raced litmus style, and the bound on a missed one.  What it shares with
 * kfifo_stress.c and kfifo_rec_stress.c is in kfifo_harness.h.
 *
 * Contract as every tests/c/<name>_stress.c (see tests/cbuild.py):
 *
 *   usage: kfifo_wait_stress            (no arguments; wakerace runs at
 *                                        least 20000 rounds, 2000 when
 *                                        emulated, 10^6 when
 *                                        LOCKFREE_LONG=1)
 *   stdout: key=value lines, last line "kfifo_wait_stress: OK" or "... FAIL
 *           why"
 *   exit status 0 iff every invariant held
 *
 * Phases:
 *
 *   wakeup    the futex wake-up is needed, not just exercised: one side
 *             pauses 2 ms before each message (or before each get from a
 *             full ring), so the other is in its long FUTEX_WAIT, with a
 *             5 s timeout, when the message (the space) comes.  A wait
 *             that lasts 100 ms or more is a lost wake-up.  Both ways:
 *             consumer asleep on empty, producer asleep on full.
 *   wakerace  the sleeper handshake itself, litmus style: in each round
 *             the consumer announces its sleep (lf_kfifo_sleep_prepare, the
 *             one helper) and re-checks the index while the producer
 *             publishes one byte (lf_kfifo_put: store-release of in, then
 *             lf_kfifo_notify), both at random moments within ~a
 *             microsecond of each other.  A round where the re-check missed
 *             the byte and the producer did not bump the futex word is a
 *             missed handshake (without the bounded first sleep the
 *             consumer would sleep to its deadline).  Up to 1 % of the
 *             racing rounds allowed (the bound below covers them); with the
 *             membarrier of lf_kfifo_sleep_prepare removed this phase fails
 *             (the store->load reordering of the publisher shows up within
 *             the quick run's rounds).
 *   wakebound the bound on a missed handshake (LF_KFIFO_RACE_NS): the
 *             producer publishes without notifying, inside the consumer's
 *             first sleep; the consumer must be back within 100 ms, not at
 *             its 5 s deadline.
 */
#include "kfifo_harness.h"

#include <unistd.h>

#define NAME		"kfifo_wait_stress"

/* -- wakeup ---------------------------------------------------------------- */

#define WAKE_ROUNDS	40
#define WAKE_PAUSE_US	2000		/* past the sleeper's first, short sleep */
#define WAKE_TIMEOUT_NS	5000000000LL	/* where a lost wake-up would end */
#define WAKE_LATE_NS	100000000ULL	/* 100 ms */
#define WAKE_SIZE	64u		/* records: 4 of 8 bytes fill it */

struct wake {
	struct lf_kfifo *f;
	int producer_sleeps;	/* which side pauses: 1 = the consumer does */
	uint64_t waits, max_ns;
};

/* One timed blocking wait; fails if it took WAKE_LATE_NS or more. */
static void timed_wait(struct wake *w, struct lf_kfifo_handle *h,
		       int writable, uint64_t i)
{
	uint64_t t0 = mono_ns(), dt;
	uint64_t end = lf_deadline_in(WAKE_TIMEOUT_NS);
	int r = writable ? lf_kfifo_wait_writable(h, 12, end)
			 : lf_kfifo_wait_readable(h, end);

	dt = mono_ns() - t0;
	w->waits++;
	if (dt > w->max_ns)
		w->max_ns = dt;
	if (r)
		fail(writable ? "wake_writable" : "wake_readable", i,
		     (uint64_t)-r);
	else if (dt >= WAKE_LATE_NS && !emulated())
		fail(writable ? "lost_wakeup_producer" : "lost_wakeup_consumer",
		     i, dt);
}

static void *wake_producer(void *arg)
{
	struct wake *w = arg;
	struct lf_kfifo_handle h;
	uint64_t i;
	int r;

	lf_kfifo_handle_init(&h, w->f, WAKE_SIZE, LF_KFIFO_RECORDS);
	for (i = 0; i < WAKE_ROUNDS && !lf_read32(&failed); i++) {
		if (!w->producer_sleeps)
			usleep(WAKE_PAUSE_US);
		while ((r = lf_kfifo_rec_put(&h, (char *)&i, 8)) ==
		       LF_EAGAIN && !lf_read32(&failed))
			timed_wait(w, &h, 1, i);
		if (r && !lf_read32(&failed))
			fail("wake_put", i, (uint64_t)-r);
	}
	return NULL;
}

static void *wake_consumer(void *arg)
{
	struct wake *w = arg;
	struct lf_kfifo_handle h;
	uint64_t i, v;
	int64_t r;

	lf_kfifo_handle_init(&h, w->f, WAKE_SIZE, LF_KFIFO_RECORDS);
	for (i = 0; i < WAKE_ROUNDS && !lf_read32(&failed); i++) {
		if (w->producer_sleeps)
			usleep(WAKE_PAUSE_US);
		while ((r = lf_kfifo_rec_get_into(&h, (char *)&v, 8)) ==
		       LF_EAGAIN && !lf_read32(&failed))
			timed_wait(w, &h, 0, i);
		if (lf_read32(&failed))
			break;
		if (r != 8 || v != i)
			fail("wake_get", i, r == 8 ? v : (uint64_t)-r);
	}
	return NULL;
}

static void wakeup(int producer_sleeps)
{
	struct wake w = { .f = new_ring(WAKE_SIZE, LF_KFIFO_RECORDS),
			  .producer_sleeps = producer_sleeps };
	pthread_t p, c;

	pthread_create(&c, NULL, wake_consumer, &w);
	pthread_create(&p, NULL, wake_producer, &w);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	printf("wakeup_%s_waits=%" PRIu64 " max_wait_us=%" PRIu64 "\n",
	       producer_sleeps ? "producer" : "consumer", w.waits,
	       w.max_ns / 1000);
	if (!w.waits && !lf_read32(&failed))
		fail(producer_sleeps ? "wakeup_producer_never_waited"
				     : "wakeup_consumer_never_waited", 0, 0);
	free(w.f);
}

/* -- wakerace ----------------------------------------------------------- */

#define RACE_BOTH	1000u	/* rounds in the window: both saw it */

struct race {
	struct lf_kfifo *f;
	uint64_t rounds;	/* at least; then until RACE_BOTH rounds fell
				   in the window (or max_ns passed) */
	uint64_t max_ns;
	uint32_t stop;
	uint32_t go;		/* round number, set by the consumer */
	uint32_t pdone;		/* the producer published round pdone */
	uint32_t plead;		/* the producer's extra pause this round */
	uint64_t saw, woke, both, missed;
};

static void *race_producer(void *arg)
{
	struct race *rc = arg;
	struct lf_kfifo_handle h;
	uint64_t r, x = 0x9E3779B97F4A7C15ULL;
	char b = 'b';

	lf_kfifo_handle_init(&h, rc->f, BYTE_SIZE, LF_KFIFO_BYTES);
	for (r = 1; !lf_read32(&failed); r++) {
		await32(&rc->go, (uint32_t)r);
		if (lf_read32(&rc->stop))
			break;
		x = mix(x);
		pause_n(lf_read32(&rc->plead) + x % 16);
		if (lf_kfifo_put(&h, &b, 1) != 1)
			fail("race_put", r, 0);
		lf_store_release32(&rc->pdone, (uint32_t)r);
	}
	return NULL;
}

static void *race_consumer(void *arg)
{
	struct race *rc = arg;
	struct lf_kfifo *f = rc->f;
	struct lf_kfifo_handle h;
	uint64_t r, x = 12345, end;
	int64_t lead = 0;
	uint32_t s, base, saw;
	char b;

	lf_kfifo_handle_init(&h, f, BYTE_SIZE, LF_KFIFO_BYTES);
	lf_kfifo_register(&h, LF_KFIFO_ROLE_CONSUMER);
	base = lf_load_acquire32(&f->in);
	end = lf_now_ns() + rc->max_ns;
	for (r = 1; !lf_read32(&failed); r++) {
		if (r > rc->rounds && (rc->both >= RACE_BOTH ||
				       lf_now_ns() > end))
			break;
		lf_write32(&f->cons_sleeping, 0);
		/* lead: feedback that keeps the two sides' moments on the
		 * boundary between "the re-check saw the byte" and "the
		 * producer saw the flag", where a lost wake-up would be:
		 * > 0 delays the consumer, < 0 the producer. */
		lf_write32(&rc->plead, lead < 0 ? (uint32_t)-lead : 0);
		lf_store_release32(&rc->go, (uint32_t)r);
		x = mix(x);
		pause_n((lead > 0 ? (uint64_t)lead : 0) + x % 16);
		/* The waiter half, exactly as wait_on() runs it. */
		s = lf_kfifo_sleep_prepare(&f->cons_sleeping, &f->cons_seq);
		saw = lf_load_acquire32(&f->in) - base >= r;
		await32(&rc->pdone, (uint32_t)r);
		if (saw) {
			rc->saw++;
			lead -= lead > -65536;	/* consumer late: sooner */
		}
		if (lf_load_acquire32(&f->cons_seq) != s) {
			rc->woke++;
			rc->both += saw;
			lead += lead < 65536;	/* early: later */
		}
		else if (!saw)
			rc->missed++;	/* would sleep with the byte there */
		if (lf_kfifo_get(&h, &b, 1) != 1)
			fail("race_get", r, 0);
	}
	rc->rounds = r - 1;
	lf_write32(&rc->stop, 1);
	lf_store_release32(&rc->go, (uint32_t)r);
	lf_write32(&f->cons_sleeping, 0);
	return NULL;
}

static void wakerace(uint64_t rounds, uint64_t max_ns)
{
	struct race rc = { .f = new_ring(BYTE_SIZE, LF_KFIFO_BYTES),
			   .rounds = rounds, .max_ns = max_ns };
	pthread_t p, c;

	pthread_create(&c, NULL, race_consumer, &rc);
	pthread_create(&p, NULL, race_producer, &rc);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	printf("wakerace_rounds=%" PRIu64 " saw=%" PRIu64 " woke=%" PRIu64
	       " both=%" PRIu64 " missed=%" PRIu64 "\n", rc.rounds, rc.saw,
	       rc.woke, rc.both, rc.missed);
	/* With the asymmetric barrier a miss is rare (4 in 20,000 rounds
	 * once; kfifo_wait.c, lf_kfifo_sleep_prepare) and costs at most
	 * LF_KFIFO_RACE_NS of latency (the "wakebound" phase checks that).
	 * Without it, misses run to percents of the racing rounds. */
	if (rc.missed * 100 > rc.both)
		fail("lost_wakeup_race", rc.missed, rc.rounds);
	/* Too few rounds in the window means the two threads seldom ran at
	 * the same time (a loaded machine): the run proves less, said here,
	 * but nothing failed. */
	printf("wakerace_window_%s=%" PRIu64 "\n",
	       rc.both >= RACE_BOTH ? "reached" : "short", rc.both);
	free(rc.f);
}

/* -- wakebound ------------------------------------------------------------ */

/*
 * The stated bound on a missed wake-up (LF_KFIFO_RACE_NS, kfifo.h): a
 * publisher whose flag load ran before the waiter's flag store does not
 * wake it; its index store, made before that load, is visible to the
 * waiter's re-check at the end of its bounded first sleep.  Here the
 * producer plays that publisher on purpose: it waits until the consumer
 * announced its sleep, then publishes a byte WITHOUT lf_kfifo_notify, a few
 * microseconds later (after the consumer's re-check, inside its first
 * sleep).  The consumer, in lf_kfifo_wait_readable with a 5 s deadline,
 * must return within WAKE_LATE_NS.  Rounds where the producer itself was
 * held up past half the bound (preempted) publish normally and do not
 * count.  Mutant checked: an unbounded first sleep fails here.
 */
#define BOUND_ROUNDS	20

struct bound {
	struct lf_kfifo *f;
	uint32_t round;		/* consumer: waiting in round n */
	uint32_t done;		/* producer: published round n */
	uint64_t t_pub;		/* when the producer published */
	uint64_t counted, max_ns;
};

static void *bound_consumer(void *arg)
{
	struct bound *b = arg;
	struct lf_kfifo_handle h;
	uint64_t dt;
	uint32_t r;
	char c;
	int w;

	lf_kfifo_handle_init(&h, b->f, BYTE_SIZE, LF_KFIFO_BYTES);
	lf_kfifo_register(&h, LF_KFIFO_ROLE_CONSUMER);
	for (r = 1; r <= BOUND_ROUNDS && !lf_read32(&failed); r++) {
		lf_store_release32(&b->round, r);
		w = lf_kfifo_wait_readable(&h, lf_deadline_in(WAKE_TIMEOUT_NS));
		/* From the publish (t_pub is stored before in, and in was
		 * load-acquired by the wait) to the wait's return. */
		dt = lf_now_ns() - lf_read64(&b->t_pub);
		if (w != 0)
			fail("bound_wait", r, (uint64_t)-w);
		else if (dt >= WAKE_LATE_NS && !emulated())
			fail("lost_wakeup_past_bound", r, dt);
		await32(&b->done, r);
		if (dt > b->max_ns)
			b->max_ns = dt;
		if (lf_kfifo_get(&h, &c, 1) != 1)
			fail("bound_get", r, 0);
	}
	return NULL;
}

static void wakebound(void)
{
	struct bound b = { .f = new_ring(BYTE_SIZE, LF_KFIFO_BYTES) };
	struct lf_kfifo_handle h;
	struct lf_kfifo *f = b.f;
	pthread_t c;
	uint32_t r, in;
	uint64_t t0, t1;
	int gap;

	lf_kfifo_handle_init(&h, f, BYTE_SIZE, LF_KFIFO_BYTES);
	lf_kfifo_register(&h, LF_KFIFO_ROLE_PRODUCER);
	pthread_create(&c, NULL, bound_consumer, &b);
	for (r = 1; r <= BOUND_ROUNDS && !lf_read32(&failed); r++) {
		await32(&b.round, r);
		/* The consumer spins, yields, then announces its sleep: poll
		 * for that; a gap between two polls means this thread was not
		 * running and may have seen the flag late (not counted). */
		/* The flag was set after the last poll that saw it clear
		 * (started at t1): late by t0 - t1 at most. */
		t1 = 0;
		for (;;) {
			t0 = lf_now_ns();
			if (lf_load_acquire32(&f->cons_sleeping) ||
			    lf_read32(&failed))
				break;
			t1 = t0;
			lf_cpu_relax();
		}
		t0 = lf_now_ns();
		gap = !t1 || t0 - t1 > LF_KFIFO_RACE_NS / 10;
		while (lf_now_ns() - t0 < LF_KFIFO_RACE_NS / 2)
			lf_cpu_relax();	/* past its re-check: asleep */
		in = lf_read32(&f->in);
		f->data[in & f->mask] = 'b';
		lf_write64(&b.t_pub, lf_now_ns());
		if (!gap && lf_now_ns() - t0 < LF_KFIFO_RACE_NS * 4 / 5) {
			/* The publish whose flag load came too early. */
			lf_store_release32(&f->in, in + 1);
			b.counted++;
		} else if (lf_kfifo_put(&h, "b", 1) != 1) {
			fail("bound_put", r, 0);
		}
		lf_store_release32(&b.done, r);
	}
	pthread_join(c, NULL);
	printf("wakebound_rounds=%d counted=%" PRIu64 " max_late_us=%" PRIu64
	       "\n", BOUND_ROUNDS, b.counted, b.max_ns / 1000);
	free(f);
}

int main(void)
{
	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	wakeup(0);
	wakeup(1);
	if (long_mode())
		wakerace(1000000, 60000000000ull);
	else
		wakerace(emulated() ? 2000 : 20000, 5000000000ull);
	wakebound();
	if (lf_read32(&failed)) {
		printf(NAME ": FAIL see first_failure\n");
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
