/*
 * kfifo_rec_stress: the records (message) ring, csrc/kfifo_rec.c with the
 * zero-copy blocks of kfifo_zc.c: one producer thread and one consumer
 * thread move messages through lf_kfifo in records mode and the consumer
 * checks every one of them; then a restarting producer against a
 * resetting consumer.  What it shares with kfifo_stress.c and
 * kfifo_wait_stress.c is in kfifo_harness.h.
 *
 * Contract as every tests/c/<name>_stress.c (see tests/cbuild.py):
 *
 *   usage: kfifo_rec_stress [messages]    (default 100000; 10^7 when
 *                                          LOCKFREE_LONG=1)
 *   stdout: key=value lines, last line "kfifo_rec_stress: OK" or "... FAIL
 *           why"
 *   exit status 0 iff every invariant held
 *
 * Phases (records starts with both indexes just below 2^32, so the
 * free-running indexes wrap during the run, and the data area is small, so
 * copies split around its end at every offset):
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
 *   resetrace a producer restarting (kfifo_rec.c; LF_KFIFO_HOT is 512
 *             in these builds) against a consumer that resets the ring
 *             every third call and takes messages otherwise: a reset must
 *             never move out back over a restart's move (it would leave
 *             in more than a lap ahead: LF_ECORRUPT on both sides), and
 *             every message taken is whole and later than the previous.
 */
#include "kfifo_harness.h"
#include "shims/kfifo.h"	/* the Python layer's rec_get, rec_get_many */

#define NAME		"kfifo_rec_stress"
#define REC_SIZE	1024u	/* small: many wraps, every split offset */
#define MAX_PAYLOAD	300u

static uint64_t messages;

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

int main(int argc, char **argv)
{
	struct side p1 = { 0 }, c1 = { 0 };

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
	resetrace((emulated() ? 100000ull : 3000000ull) *
		  (long_mode() ? 10 : 1));
	if (lf_read32(&failed)) {
		printf(NAME ": FAIL see first_failure\n");
		return 1;
	}
	printf(NAME ": OK\n");
	return 0;
}
