/*
 * kfifo_stress: one producer thread and one consumer thread move bytes and
 * elements through lf_kfifo's byte mode (csrc/kfifo.c, kfifo_bytes.c) and
 * the consumer checks every one of them; then the handles' roles.  The
 * record ring has its own program (kfifo_rec_stress.c), and so have the
 * sleeper handshake and blocking waits (kfifo_wait_stress.c); what the
 * three share is in kfifo_harness.h.
 *
 * Contract as every tests/c/<name>_stress.c (see tests/cbuild.py):
 *
 *   usage: kfifo_stress [messages]      (default 100000; 10^7 when
 *                                        LOCKFREE_LONG=1)
 *   stdout: key=value lines, last line "kfifo_stress: OK" or "... FAIL why"
 *   exit status 0 iff every invariant held
 *
 * Phases (bytes and elements start with both indexes just below 2^32, so
 * the free-running indexes wrap during the run, and the data area is small,
 * so copies split around its end at every offset):
 *
 *   bytes     a byte stream of a known pseudo-random sequence, written and
 *             read in random partial chunks; the consumer compares every
 *             byte.
 *   elements  12-byte elements (sequence number + its mix) through the
 *             inline lf_kfifo_put_elem / lf_kfifo_get_elem of kfifo.h; 12
 *             does not divide the ring, so elements also wrap and take the
 *             slow path; full/empty waits go through the futex every 5th
 *             time.  Every element once, in order, untorn, then EOF.
 *   misuse    two producer threads share one producer handle and two
 *             consumer threads one consumer handle: calls that overlap get
 *             LF_EMISUSE and change nothing, so every message arrives
 *             exactly once and each producer's in order; some LF_EMISUSE
 *             must have been seen on both sides.
 *   roles     a second producer handle and a second consumer handle in
 *             the same process are refused with LF_EBUSY while the
 *             first ones hold their roles, and accepted after release.
 */
#include "kfifo_harness.h"

#define NAME		"kfifo_stress"

static uint64_t messages;

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
	struct side p2 = { 0 }, c2 = { 0 }, p3 = { 0 }, c3 = { 0 };

	messages = long_mode() ? 10000000ULL : emulated() ? 10000ULL : 100000ULL;
	if (argc > 1)
		messages = strtoull(argv[1], NULL, 10);
	printf("atomics=%s\n", LF_ATOMICS_IMPL);
	printf("messages=%" PRIu64 "\n", messages);
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
	misuse();
	roles();
	if (lf_read32(&failed)) {
		printf(NAME ": FAIL see first_failure\n");
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
