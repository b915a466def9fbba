/*
 * kfifo_stress: one producer thread and one consumer thread move messages
 * through lf_kfifo and the consumer checks every one of them.
 *
 * Contract as every tests/c/<name>_stress.c (see tests/cbuild.py):
 *
 *   usage: kfifo_stress [messages]      (default 100000; 10^7 when
 *                                        LOCKFREE_LONG=1)
 *   stdout: key=value lines, last line "kfifo_stress: OK" or "... FAIL why"
 *   exit status 0 iff every invariant held
 *
 * Phases (each starts with both indexes just below 2^32, so the free-running
 * indexes wrap during the run, and the data area is small, so copies split
 * around its end at every offset):
 *
 *   records   random sizes 0..300 bytes, each message = 8-byte sequence
 *             number + payload derived from it + 4-byte checksum; puts are
 *             non-blocking with a spin, or blocking through
 *             lf_kfifo_wait_writable (every 7th), gets likewise through
 *             lf_kfifo_wait_readable, so the futex sleep/wake path runs;
 *             batches through rec_put_many / rec_get_many every 5th round;
 *             zero-copy puts (zc_reserve + commit, some after an aborted
 *             reservation that must never arrive) and gets (zc_receive, one
 *             contiguous part since records never wrap, + zc_consume);
 *             inside their blocks a nested put/skip is refused.  REC_SIZE is
 *             small, so records are padded to the end of the area often.
 *             The producer ends with lf_kfifo_close_producer(); the
 *             consumer must then see LF_EOF, and must have seen every
 *             sequence number once, in order, untorn.
 *   bytes     a byte stream of a known pseudo-random sequence, written and
 *             read in random partial chunks; the consumer compares every
 *             byte.
 *   elements  12-byte elements (sequence number + its mix) through the
 *             inline lf_kfifo_put_elem / lf_kfifo_get_elem of kfifo.h; 12
 *             does not divide the ring, so elements also wrap and take the
 *             slow path; full/empty waits go through the futex every 5th
 *             time.  Every element once, in order, untorn, then EOF.
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
 *   misuse    two producer threads share one producer handle and two
 *             consumer threads one consumer handle: calls that overlap get
 *             LF_EMISUSE and change nothing, so every message arrives
 *             exactly once and each producer's in order; some LF_EMISUSE
 *             must have been seen on both sides.
 *   resetrace a producer restarting (kfifo_rec.c; LF_KFIFO_HOT is 512
 *             in these builds) against a consumer that resets the ring
 *             every third call and takes messages otherwise: a reset must
 *             never move out back over a restart's move (it would leave
 *             in more than a lap ahead: LF_ECORRUPT on both sides), and
 *             every message taken is whole and later than the previous.
 *   roles     a second producer handle and a second consumer handle in
 *             the same process are refused with LF_EBUSY while the
 *             first ones hold their roles, and accepted after release.
 */
#include "kfifo.h"
#include "shims/kfifo.h"	/* the Python layer's rec_get, rec_get_many */
#include "arch/atomic.h"
#include "lockwait.h"

#include <inttypes.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mode.h"

#define NAME		"kfifo_stress"
#define REC_SIZE	1024u	/* small: many wraps, every split offset */
#define BYTE_SIZE	256u
#define MAX_PAYLOAD	300u
#define START_INDEX	(UINT32_MAX - 700u)
#define SOON		lf_deadline_in(1000000000ull)	/* a blocking wait */

static uint64_t messages;
/* Set by the first failure; every wait loop polls it, so a failing side
 * never leaves the other one waiting forever. */
static uint32_t failed;

static void fail(const char *why, uint64_t a, uint64_t b)
{
	if (!lf_xchg32(&failed, 1))
		printf("first_failure=%s a=%" PRIu64 " b=%" PRIu64 "\n", why, a,
		       b);
}

static struct lf_kfifo *new_ring(uint32_t size, uint32_t mode)
{
	struct lf_kfifo *f = aligned_alloc(64, lf_kfifo_state_size(size));

	memset(f, 0, lf_kfifo_state_size(size));
	lf_kfifo_init(f, size, mode);
	return f;
}

/* xorshift64*: the sizes and payloads, reproducible from the seq number. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t msg_len(uint64_t seq)
{
	return 12 + mix(seq + 1) % (MAX_PAYLOAD - 12 + 1);
}

/* seq (8 bytes), payload, checksum of everything before it (4 bytes). */
static void make_msg(uint64_t seq, unsigned char *buf, uint32_t len)
{
	uint32_t i, sum = 0;

	memcpy(buf, &seq, 8);
	for (i = 8; i < len - 4; i++)
		buf[i] = (unsigned char)(mix(seq ^ i) >> 17);
	for (i = 0; i < len - 4; i++)
		sum = sum * 31 + buf[i];
	memcpy(buf + len - 4, &sum, 4);
}

static void check_msg(uint64_t want, const unsigned char *buf, uint32_t len)
{
	unsigned char ref[MAX_PAYLOAD];
	uint64_t seq;

	if (len < 12) {
		fail("short_message", want, len);
		return;
	}
	memcpy(&seq, buf, 8);
	if (seq != want) {
		fail(seq < want ? "duplicate_or_reorder" : "lost", want, seq);
		return;
	}
	if (len != msg_len(seq)) {
		fail("length", len, msg_len(seq));
		return;
	}
	make_msg(seq, ref, len);
	if (memcmp(ref, buf, len))
		fail("torn_or_corrupt", seq, len);
}

struct side {
	struct lf_kfifo *f;
	uint64_t sleeps;	/* blocking waits that returned 0 */
	uint64_t eof_seen;
};

static void *rec_producer(void *arg)
{
	struct side *s = arg;
	struct lf_kfifo_handle h;
	unsigned char buf[MAX_PAYLOAD * 8];
	uint32_t lens[8];
	uint64_t seq = 0;
	int r;

	lf_kfifo_handle_init(&h, s->f, REC_SIZE, LF_KFIFO_RECORDS);
	while (seq < messages && !lf_read32(&failed)) {
		if (seq % 5 == 0 && seq + 8 <= messages) {
			/* A batch of 8, written back to back. */
			uint32_t k, off = 0;
			int64_t done = 0;

			for (k = 0; k < 8; k++) {
				lens[k] = msg_len(seq + k);
				make_msg(seq + k, buf + off, lens[k]);
				off += lens[k];
			}
			off = 0;
			while (done < 8 && !lf_read32(&failed)) {
				int64_t w = 0;
				uint32_t j;

				for (j = done; j < 8; j++)
					w += lens[j];
				w = lf_kfifo_rec_put_many(&h,
						(char *)buf + off, (uint64_t)w,
						lens + done, 8 - (uint32_t)done);
				if (w < 0) {
					fail("put_many", seq, (uint64_t)-w);
					return NULL;
				}
				for (j = 0; j < (uint32_t)w; j++)
					off += lens[done + j];
				done += w;
				if (done < 8 &&
				    lf_kfifo_wait_writable(&h, lens[done] + 4,
							   lf_deadline_in(SOON)) == 0)
					s->sleeps++;
			}
			seq += 8;
			continue;
		}
		lens[0] = msg_len(seq);
		make_msg(seq, buf, lens[0]);
		if (seq % 3 == 1) {
			/* Zero-copy: reserve, build in place, commit; every
			 * 4th such message first reserves and aborts a
			 * garbage one, which must never arrive. */
			int64_t at;

			if (seq % 4 == 1 &&
			    (at = lf_kfifo_zc_reserve(&h, lens[0])) >= 0) {
				memset(h.data + at, 0xEE, lens[0]);
				lf_kfifo_zc_abort(&h);
			}
			while ((at = lf_kfifo_zc_reserve(&h, lens[0])) ==
			       LF_EAGAIN && !lf_read32(&failed))
				lf_cpu_relax();
			if (at < 0 || h.part_len[0] != lens[0] ||
			    h.data + at != (unsigned char *)h.part[0]) {
				fail("reserve", seq, (uint64_t)-at);
				return NULL;
			}
			if (lf_kfifo_rec_put(&h, (char *)buf, 1) !=
			    LF_EMISUSE)  /* nested put: refused */
				fail("zc_nested_put", seq, 0);
			memcpy(h.data + at, buf, lens[0]);
			/* Now and then the consumer takes everything before
			 * the commit, as one that keeps up does: a record the
			 * reserve placed at offset 0 then restarts there at
			 * commit (csrc/kfifo_rec.c, "Restart"). */
			if (seq % 5 == 1) {
				uint64_t until = SOON;

				while (lf_kfifo_len(&h) != 0 &&
				       lf_now_ns() < until)
					lf_cpu_relax();
			}
			if (lf_kfifo_zc_commit(&h))
				fail("commit", seq, 0);
			seq++;
			continue;
		}
		while ((r = lf_kfifo_rec_put(&h, (char *)buf, lens[0])) ==
		       LF_EAGAIN && !lf_read32(&failed)) {
			if (seq % 7 == 0) {
				if (lf_kfifo_wait_writable(&h, lens[0] + 4,
							   lf_deadline_in(SOON)) == 0)
					s->sleeps++;
			} else {
				lf_cpu_relax();
			}
		}
		if (r) {
			fail("put", seq, (uint64_t)-r);
			return NULL;
		}
		seq++;
	}
	lf_kfifo_close_producer(&h);
	return NULL;
}

static void *rec_consumer(void *arg)
{
	struct side *s = arg;
	struct lf_kfifo_handle h;
	static char scratch[MAX_PAYLOAD * 16];
	static char fmt[16 * LF_KFIFO_FMT_ITEM + 1];
	uint64_t want = 0;
	int64_t n;

	lf_kfifo_handle_init(&h, s->f, REC_SIZE, LF_KFIFO_RECORDS);
	lf_kfifo_handle_scratch(&h, scratch, sizeof(scratch), fmt, 16);
	for (;;) {
		if (want % 3 == 0) {
			/* A batch: parse the struct format back into lengths. */
			n = lf_kfifo_rec_get_many(&h, 16);
			if (n >= 0) {
				const char *p = fmt;
				uint32_t off = 0;

				while (*p) {
					uint32_t len = (uint32_t)strtoul(p,
							(char **)&p, 10);
					p++;	/* 's' */
					check_msg(want++,
						  (unsigned char *)scratch +
						  off, len);
					off += len;
				}
				if (off != (uint64_t)n)
					fail("get_many_total", off, n);
				continue;
			}
		} else if (want % 3 == 2) {
			/* Zero-copy: the message in place (one part: records
			 * never wrap), then consume it. */
			n = lf_kfifo_zc_receive(&h);
			if (n >= 0) {
				uint32_t at = (uint32_t)(n >> 32);

				n &= 0xffffffff;
				if (at + n > REC_SIZE ||
				    h.data + at != (unsigned char *)h.part[0])
					fail("record_wraps", want, n);
				if (lf_kfifo_rec_skip(&h) != LF_EMISUSE)
					fail("zc_nested_skip", want, n);
				check_msg(want++, h.data + at, (uint32_t)n);
				if (lf_kfifo_zc_consume(&h) != n)
					fail("consume", want, n);
				continue;
			}
		} else {
			n = lf_kfifo_rec_get(&h);
			if (n >= 0) {
				check_msg(want++, (unsigned char *)scratch,
					  (uint32_t)n);
				continue;
			}
		}
		if (n == LF_EOF) {
			s->eof_seen = 1;
			break;
		}
		if (n != LF_EAGAIN) {
			fail("get", want, (uint64_t)-n);
			break;
		}
		if (want % 11 == 0) {
			n = lf_kfifo_wait_readable(&h, lf_deadline_in(SOON));
			if (n == 0)
				s->sleeps++;
			else if (n != LF_EAGAIN && n != LF_EOF)
				fail("wait_readable", want, (uint64_t)-n);
		} else {
			lf_cpu_relax();
		}
		if (lf_read32(&failed))
			break;
	}
	if (!lf_read32(&failed) && want != messages)
		fail("count", want, messages);
	return NULL;
}

static uint8_t stream_byte(uint64_t i)
{
	return (uint8_t)(mix(i / 8 + 77) >> (8 * (i % 8)));
}

static void *byte_producer(void *arg)
{
	struct side *s = arg;
	struct lf_kfifo_handle h;
	unsigned char buf[BYTE_SIZE];
	uint64_t pos = 0, total = messages * 16;

	lf_kfifo_handle_init(&h, s->f, BYTE_SIZE, LF_KFIFO_BYTES);
	while (pos < total && !lf_read32(&failed)) {
		uint32_t n = 1 + mix(pos) % BYTE_SIZE, i;
		int64_t w;

		if (n > total - pos)
			n = (uint32_t)(total - pos);
		for (i = 0; i < n; i++)
			buf[i] = stream_byte(pos + i);
		w = lf_kfifo_put(&h, (char *)buf, n);
		if (w < 0) {
			fail("byte_put", pos, (uint64_t)-w);
			return NULL;
		}
		if (w == 0)
			lf_cpu_relax();
		pos += (uint64_t)w;
	}
	lf_kfifo_close_producer(&h);
	return NULL;
}

static void *byte_consumer(void *arg)
{
	struct side *s = arg;
	struct lf_kfifo_handle h;
	unsigned char buf[BYTE_SIZE];
	uint64_t pos = 0;

	lf_kfifo_handle_init(&h, s->f, BYTE_SIZE, LF_KFIFO_BYTES);
	for (;;) {
		uint32_t n = 1 + mix(pos ^ 0x55) % BYTE_SIZE, i;
		int64_t r = lf_kfifo_get(&h, (char *)buf, n);

		if (r == LF_EOF) {
			s->eof_seen = 1;
			break;
		}
		if (r == LF_EAGAIN) {
			if (lf_read32(&failed))
				break;
			if (lf_kfifo_wait_readable(&h, lf_deadline_in(SOON)) == 0)
				s->sleeps++;
			continue;
		}
		if (r <= 0 || r > n) {
			fail("byte_get", pos, (uint64_t)-r);
			break;
		}
		for (i = 0; i < (uint32_t)r; i++)
			if (buf[i] != stream_byte(pos + i)) {
				fail("byte_mismatch", pos + i, buf[i]);
				return NULL;
			}
		pos += (uint64_t)r;
	}
	if (!lf_read32(&failed) && pos != messages * 16)
		fail("byte_count", pos, messages * 16);
	return NULL;
}

#define ELEM_SIZE	12u

struct elem {
	uint64_t seq;
	uint32_t check;
} __attribute__((packed));

static void *elem_producer(void *arg)
{
	struct side *s = arg;
	struct lf_kfifo_handle h;
	struct elem e;
	uint64_t seq = 0, stalls = 0;

	_Static_assert(sizeof(e) == ELEM_SIZE, "packed element");
	lf_kfifo_handle_init(&h, s->f, BYTE_SIZE, LF_KFIFO_BYTES);
	while (seq < messages && !lf_read32(&failed)) {
		int r;

		e.seq = seq;
		e.check = (uint32_t)mix(seq);
		r = lf_kfifo_put_elem(&h, &e, ELEM_SIZE);
		if (r == 1) {
			seq++;
		} else if (r == 0) {
			if (++stalls % 5 == 0) {
				if (lf_kfifo_wait_writable(&h, ELEM_SIZE,
							   lf_deadline_in(SOON)) == 0)
					s->sleeps++;
			} else {
				lf_cpu_relax();
			}
		} else {
			fail("elem_put", seq, (uint64_t)-r);
			return NULL;
		}
	}
	lf_kfifo_close_producer(&h);
	return NULL;
}

static void *elem_consumer(void *arg)
{
	struct side *s = arg;
	struct lf_kfifo_handle h;
	struct elem e;
	uint64_t seq = 0, stalls = 0;

	lf_kfifo_handle_init(&h, s->f, BYTE_SIZE, LF_KFIFO_BYTES);
	for (;;) {
		int r = lf_kfifo_get_elem(&h, &e, ELEM_SIZE);

		if (r == 1) {
			if (e.seq != seq || e.check != (uint32_t)mix(seq)) {
				fail("elem_mismatch", seq, e.seq);
				return NULL;
			}
			seq++;
		} else if (r == 0) {
			if (lf_read32(&failed))
				break;
			if (++stalls % 5 == 0) {
				if (lf_kfifo_wait_readable(&h, lf_deadline_in(SOON)) == 0)
					s->sleeps++;
			} else {
				lf_cpu_relax();
			}
		} else if (r == LF_EOF) {
			s->eof_seen = 1;
			break;
		} else {
			fail("elem_get", seq, (uint64_t)-r);
			return NULL;
		}
	}
	if (!lf_read32(&failed) && seq != messages)
		fail("elem_count", seq, messages);
	return NULL;
}

static void run(void *(*prod)(void *), void *(*cons)(void *),
		struct side *ps, struct side *cs, uint32_t size,
		uint32_t mode)
{
	struct lf_kfifo_handle h;
	pthread_t p, c;

	ps->f = cs->f = new_ring(size, mode);
	lf_kfifo_handle_init(&h, ps->f, size, mode);
	lf_kfifo_debug_set_index(&h, START_INDEX);
	pthread_create(&c, NULL, cons, cs);
	pthread_create(&p, NULL, prod, ps);
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	free(ps->f);
}

/* -- wakeup ----------------------------------------------------------------- */

#define WAKE_ROUNDS	40
#define WAKE_PAUSE_US	2000		/* past the sleeper's first, short sleep */
#define WAKE_TIMEOUT_NS	5000000000LL	/* where a lost wake-up would end */
#define WAKE_LATE_NS	100000000ULL	/* 100 ms */
#define WAKE_SIZE	64u		/* records: 4 of 8 bytes fill it */

static uint64_t mono_ns(void)
{
	return lf_now_ns();
}

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

/* Wait for *word == v; yield now and then (2 cores, other processes). */
static void await32(uint32_t *word, uint32_t v)
{
	uint32_t i;

	for (i = 1; lf_load_acquire32(word) != v; i++) {
		if (lf_read32(&failed))
			return;
		if (i % 256)
			lf_cpu_relax();
		else
			sched_yield();
	}
}

static void pause_n(uint64_t n)
{
	while (n--)
		lf_cpu_relax();
}

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
	 * once; kfifo.c, lf_kfifo_sleep_prepare) and costs at most
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

/* -- misuse --------------------------------------------------------------- */

#define MISUSE_SIZE	256u
#define MISUSE_MSGS	5000u	/* per producer thread */

struct misuse {
	struct lf_kfifo *f;
	struct lf_kfifo_handle prod, cons;	/* each shared by two threads */
	uint32_t prod_next, cons_next;	/* ids 0 and 1 of each kind */
	uint64_t prod_misuse, cons_misuse;
	uint32_t got;				/* messages taken, both */
	uint8_t seen[2][MISUSE_MSGS];
	uint64_t last[2][2];			/* per consumer, producer */
};

static void *misuse_producer(void *arg)
{
	struct misuse *m = arg;
	uint64_t id = lf_xadd32(&m->prod_next, 1), i, v;
	int r;

	for (i = 0; i < MISUSE_MSGS && !lf_read32(&failed); i++) {
		v = id << 32 | i;
		while ((r = lf_kfifo_rec_put(&m->prod, (char *)&v, 8)) != 0) {
			if (r == LF_EMISUSE)
				lf_xadd64(&m->prod_misuse, 1);
			else if (r != LF_EAGAIN)
				fail("misuse_put", i, (uint64_t)-r);
			if (lf_read32(&failed))
				return NULL;
			lf_cpu_relax();
		}
	}
	return NULL;
}

static void *misuse_consumer(void *arg)
{
	struct misuse *m = arg;
	uint64_t me = lf_xadd32(&m->cons_next, 1), v, p, i;
	int64_t r;

	uint64_t idle_since = 0;

	m->last[me][0] = m->last[me][1] = UINT64_MAX;
	while (lf_load_acquire32(&m->got) < 2 * MISUSE_MSGS &&
	       !lf_read32(&failed)) {
		r = lf_kfifo_rec_get_into(&m->cons, (char *)&v, 8);
		if (r == LF_EMISUSE) {
			lf_xadd64(&m->cons_misuse, 1);
			continue;
		}
		if (r == LF_EAGAIN) {
			/* Empty for 2 s with messages missing: lost. */
			if (!idle_since)
				idle_since = lf_now_ns();
			else if (lf_now_ns() - idle_since > 2000000000ull)
				fail("misuse_lost_stalled",
				     lf_load_acquire32(&m->got), 0);
			lf_cpu_relax();
			continue;
		}
		idle_since = 0;
		if (r != 8) {
			fail("misuse_get", r, 0);
			break;
		}
		p = v >> 32;
		i = (uint32_t)v;
		if (p > 1 || i >= MISUSE_MSGS) {
			fail("misuse_garbled", p, i);
			break;
		}
		if (m->seen[p][i]++)
			fail("misuse_duplicate", p, i);
		/* Each consumer sees each producer's messages in order. */
		if (m->last[me][p] != UINT64_MAX && i <= m->last[me][p])
			fail("misuse_reordered", p, i);
		m->last[me][p] = i;
		lf_xadd32(&m->got, 1);
	}
	return NULL;
}

/* One round: every message exactly once; 1 if both sides saw LF_EMISUSE. */
static int misuse_round(uint64_t *prod_misuse, uint64_t *cons_misuse)
{
	static struct misuse m;
	pthread_t t[4];
	uint64_t i, p, lost = 0;

	memset(&m, 0, sizeof(m));
	m.f = new_ring(MISUSE_SIZE, LF_KFIFO_RECORDS);
	lf_kfifo_handle_init(&m.prod, m.f, MISUSE_SIZE, LF_KFIFO_RECORDS);
	lf_kfifo_handle_init(&m.cons, m.f, MISUSE_SIZE, LF_KFIFO_RECORDS);
	pthread_create(&t[0], NULL, misuse_consumer, &m);
	pthread_create(&t[1], NULL, misuse_consumer, &m);
	pthread_create(&t[2], NULL, misuse_producer, &m);
	pthread_create(&t[3], NULL, misuse_producer, &m);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (p = 0; p < 2; p++)
		for (i = 0; i < MISUSE_MSGS; i++)
			lost += !m.seen[p][i];
	if (lost && !lf_read32(&failed))
		fail("misuse_lost", lost, 0);
	free(m.f);
	*prod_misuse += m.prod_misuse;
	*cons_misuse += m.cons_misuse;
	return *prod_misuse && *cons_misuse;
}

static void misuse(void)
{
	uint64_t prod = 0, cons = 0, end = lf_now_ns() + 10000000000ull;
	int rounds = 0;

	while (!lf_read32(&failed)) {
		rounds++;
		if (misuse_round(&prod, &cons) || lf_now_ns() > end)
			break;
	}
	printf("misuse_rounds=%d messages=%u producer_emisuse=%" PRIu64
	       " consumer_emisuse=%" PRIu64 "\n", rounds, 2 * MISUSE_MSGS,
	       prod, cons);
	/* Overlapping calls are certain with four threads hammering two
	 * handles for seconds, even on one core (preemption inside a call). */
	if ((!prod || !cons) && !lf_read32(&failed))
		fail("misuse_never_detected", prod, cons);
}

#define RESET_SIZE	4096u

static struct lf_kfifo *reset_ring;
static uint32_t reset_stop;

/* resetrace's messages, cheap to make so that the producer restarts often:
 * 100..279 bytes, the sequence number, then its low byte repeated. */
static uint32_t reset_len(uint64_t seq)
{
	return 100 + (uint32_t)(seq * 37 % 180);
}

static void *reset_producer(void *arg)
{
	struct lf_kfifo_handle h;
	unsigned char buf[MAX_PAYLOAD];
	uint64_t seq = 0;
	int r;

	(void)arg;
	lf_kfifo_handle_init(&h, reset_ring, RESET_SIZE, LF_KFIFO_RECORDS);
	while (!lf_read32(&reset_stop) && !lf_read32(&failed)) {
		memset(buf, (int)(seq & 0xff), reset_len(seq));
		memcpy(buf, &seq, 8);
		r = lf_kfifo_rec_put(&h, (char *)buf, reset_len(seq));
		if (r == 0)
			seq++;
		else if (r != LF_EAGAIN)
			fail("resetrace_put", seq, (uint64_t)-r);
	}
	lf_kfifo_release(&h);
	return NULL;
}

static void resetrace(uint64_t calls)
{
	struct lf_kfifo_handle h;
	unsigned char buf[MAX_PAYLOAD];
	uint64_t i, seq, taken = 0, resets = 0, last = 0;
	pthread_t t;
	int64_t r, k;

	reset_ring = new_ring(RESET_SIZE, LF_KFIFO_RECORDS);
	lf_kfifo_handle_init(&h, reset_ring, RESET_SIZE, LF_KFIFO_RECORDS);
	lf_write32(&reset_stop, 0);
	pthread_create(&t, NULL, reset_producer, NULL);
	for (i = 0; i < calls && !lf_read32(&failed); i++) {
		if (i % 3 == 0) {
			r = lf_kfifo_reset(&h);
			if (r < 0)
				fail("resetrace_reset", i, (uint64_t)-r);
			resets++;
			continue;
		}
		r = lf_kfifo_rec_get_into(&h, (char *)buf, sizeof(buf));
		if (r == LF_EAGAIN)
			continue;
		if (r < 8) {
			fail("resetrace_get", i, (uint64_t)-r);
			break;
		}
		memcpy(&seq, buf, 8);
		if (taken && seq <= last)
			fail("resetrace_order", last, seq);
		if ((uint64_t)r != reset_len(seq))
			fail("resetrace_length", seq, (uint64_t)r);
		for (k = 8; k < r; k++)
			if (buf[k] != (unsigned char)(seq & 0xff))
				fail("resetrace_torn", seq, (uint64_t)k);
		last = seq;
		taken++;
	}
	lf_write32(&reset_stop, 1);
	pthread_join(t, NULL);
	printf("resetrace_calls=%" PRIu64 " resets=%" PRIu64 " taken=%" PRIu64
	       "\n", i, resets, taken);
	if (!taken && !lf_read32(&failed))
		fail("resetrace_nothing_taken", i, resets);
	lf_kfifo_release(&h);
	free(reset_ring);
}

static void roles(void)
{
	struct lf_kfifo *f = new_ring(64, LF_KFIFO_RECORDS);
	struct lf_kfifo_handle a, b;
	char x = 'x';

	lf_kfifo_handle_init(&a, f, 64, LF_KFIFO_RECORDS);
	lf_kfifo_handle_init(&b, f, 64, LF_KFIFO_RECORDS);
	if (lf_kfifo_rec_put(&a, &x, 1) != 0)
		fail("roles_first_put", 0, 0);
	if (lf_kfifo_rec_put(&b, &x, 1) != LF_EBUSY)
		fail("roles_second_producer_accepted", 0, 0);
	if (lf_kfifo_rec_skip(&a) != 1)
		fail("roles_first_consumer", 0, 0);
	if (lf_kfifo_rec_skip(&b) != LF_EBUSY)
		fail("roles_second_consumer_accepted", 0, 0);
	lf_kfifo_release(&a);
	f->prod_sleeping = 1;	/* as if the last producer died asleep */
	if (lf_kfifo_rec_put(&b, &x, 1) != 0)
		fail("roles_takeover_after_release", 0, 0);
	if (f->prod_sleeping)
		fail("roles_stale_sleeping_flag_kept", 0, 0);
	if (lf_kfifo_rec_put(&a, &x, 1) != LF_EBUSY)
		fail("roles_released_handle_still_producer", 0, 0);
	printf("roles=ok\n");
	free(f);
}

int main(int argc, char **argv)
{
	struct side p1 = { 0 }, c1 = { 0 }, p2 = { 0 }, c2 = { 0 };
	struct side p3 = { 0 }, c3 = { 0 };

	messages = long_mode() ? 10000000ULL : emulated() ? 10000ULL : 100000ULL;
	if (argc > 1)
		messages = strtoull(argv[1], NULL, 10);
	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	printf("messages=%" PRIu64 "\n", messages);
	run(rec_producer, rec_consumer, &p1, &c1, REC_SIZE, LF_KFIFO_RECORDS);
	printf("records_eof=%" PRIu64 " producer_sleeps=%" PRIu64
	       " consumer_sleeps=%" PRIu64 "\n", c1.eof_seen, p1.sleeps,
	       c1.sleeps);
	if (!c1.eof_seen && !lf_read32(&failed))
		fail("records_no_eof", 0, 0);
	run(byte_producer, byte_consumer, &p2, &c2, BYTE_SIZE,
	    LF_KFIFO_BYTES);
	printf("bytes_total=%" PRIu64 " bytes_eof=%" PRIu64 "\n",
	       messages * 16, c2.eof_seen);
	if (!c2.eof_seen && !lf_read32(&failed))
		fail("bytes_no_eof", 0, 0);
	run(elem_producer, elem_consumer, &p3, &c3, BYTE_SIZE,
	    LF_KFIFO_BYTES);
	printf("elements=%" PRIu64 " elements_eof=%" PRIu64
	       " producer_sleeps=%" PRIu64 " consumer_sleeps=%" PRIu64 "\n",
	       messages, c3.eof_seen, p3.sleeps, c3.sleeps);
	if (!c3.eof_seen && !lf_read32(&failed))
		fail("elements_no_eof", 0, 0);
	wakeup(0);
	wakeup(1);
	if (long_mode())
		wakerace(1000000, 60000000000ull);
	else
		wakerace(emulated() ? 2000 : 20000, 5000000000ull);
	wakebound();
	misuse();
	resetrace((emulated() ? 100000ull : 3000000ull) *
		  (long_mode() ? 10 : 1));
	roles();
	if (lf_read32(&failed)) {
		printf(NAME ": FAIL see first_failure\n");
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
