/*
 * Stress test of the seqlock (csrc/seqlock.h), classic and latch modes:
 * what a writer that dies and a peer that scribbles over the shared state
 * leave behind.
 * Build: gcc -Icsrc tests/c/seqlock_fault_stress.c csrc/ *.c -lpthread
 * Prints key=value lines; the last is "seqlock_fault_stress: OK" or
 * "seqlock_fault_stress: FAIL <what>"; exit status 0 only if every check
 * held.  LOCKFREE_LONG=1 changes nothing here (it is printed as long=).
 * Torn reads under concurrent writers are seqlock_stress.c's; what the two
 * share is in seqlock_harness.h.
 *
 * Dead writer: a forked child takes the writer lock, starts a write and
 * exits.  Classic mode: a reader gets -(child's owner id) instead of
 * waiting for ever; lf_seq_recover() then restores a consistent record.
 * Latch mode: readers keep reading the last complete record.
 *
 * Scribbled state: a state whose geometry is scribbled after the handle was
 * made (size, offsets, stride, the writer line's copies, wseq) is read and
 * written through the handle: the ASAN build (the state is a heap block of
 * exactly its size) proves every access stays inside it; the record read
 * back is the one written.  A counter left odd with the lock free gives
 * LF_ECORRUPT within the deadline, not a hang, and the next write repairs
 * it; an odd wseq cannot make a write leave the counter odd; a garbage
 * owner word holding the lock gives LF_ECORRUPT to a waiting reader;
 * lf_seq_handle_init() refuses each scribbled geometry field by name.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seqlock_harness.h"

/* -- a writer that dies mid-write ------------------------------------------ */

static void dead_writer(uint32_t flags)
{
	const char *mode = flags & LF_SEQ_LATCH ? "latch" : "classic";
	struct lf_seq_handle *h = make(SMALL, flags, 1);
	lf_seqlock_t *sl = h->sl;
	uint64_t good[SMALL / 8], half[SMALL / 8], buf[SMALL / 8], v;
	uint64_t buf2[SMALL / 8];
	char what[96];

	for (int i = 0; i < SMALL / 8; i++) {
		good[i] = 7;
		half[i] = i < 2 ? 8 : 7;  /* a torn record */
	}
	lf_seq_write(h, good, SMALL);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		/* Die holding the lock, in the middle of a write. */
		lf_spin_lock(&sl->lock);
		if (flags & LF_SEQ_LATCH) {
			lf_seq_copy_in(lf_seq_copy(h, (sl->seq + 1) & 1),
				       half, SMALL);
		} else {
			lf_seq_write_begin(sl);
			lf_seq_copy_in(lf_seq_copy(h, 0), half, SMALL);
		}
		_exit(0);
	}
	while (lf_seq_writer(h) == 0 || lf_owner_pid(lf_seq_writer(h))
	       != (uint32_t)pid)
		lf_cpu_relax();
	/* Let it exit; it stays a zombie (dead) until reaped below. */
	usleep(20000);
	int64_t r = lf_seq_read_until(h, buf, SMALL,
				      lf_now_ns() + 2000000000ull);
	int64_t w = lf_seq_write_until(h, good, SMALL,
				       lf_now_ns() + 2000000000ull);
	int recovered = (int)lf_seq_recover(h, good, SMALL);
	int64_t r2 = lf_seq_read(h, buf2, SMALL);
	int ok2 = r2 >= 0 && check(buf2, SMALL / 8, &v) && v == 7;
	int died = LF_IS_DEAD_OWNER(r) && lf_owner_pid((uint64_t)-r) ==
		   (uint32_t)pid;
	printf("dead_writer_%s read=%s write=%s recover=%d read_after=%s\n",
	       mode, r >= 0 ? "ok" : died ? "owner_died" : "other",
	       LF_IS_DEAD_OWNER(w) ? "owner_died" : "other", recovered,
	       ok2 ? "consistent" : "bad");
	waitpid(pid, NULL, 0);
	snprintf(what, sizeof what, "dead writer (%s) not handled", mode);
	if (flags & LF_SEQ_LATCH) {
		/* Readers never notice: the copy they use is complete. */
		if (r < 0 || !check(buf, SMALL / 8, &v) || v != 7)
			fail(what);
	} else if (!died) {
		fail(what);  /* classic readers must not wait for ever */
	}
	if (!LF_IS_DEAD_OWNER(w) || recovered != 1 || !ok2)
		fail(what);
	munmap(sl, lf_seq_state_size(SMALL, flags, 0));
}

/* -- scribbled state ------------------------------------------------------- */

static void fill(uint64_t *rec, uint64_t size, uint64_t v)
{
	for (uint64_t i = 0; i < size / 8; i++)
		rec[i] = v;
}

/* Write v through h and read it back: 1 if the record read is v. */
static int round_trip(struct lf_seq_handle *h, uint64_t size, uint64_t v)
{
	static uint64_t rec[MAXW], out[MAXW];
	uint64_t got;

	fill(rec, size, v);
	if (lf_seq_write(h, rec, size) != LF_OK)
		return 0;
	return lf_seq_read_until(h, out, size, lf_deadline_in(1000000000ull))
		>= 0 && check(out, size / 8, &got) && got == v;
}

/* The test hook (seqlock.h): a peer that moves the counter (by 2: never
 * odd) between every copy and its retry check, until hook_until; past it
 * the hook stops and says so (a reader that ignored its deadline). */
static uint64_t hook_until;
static uint32_t hook_gave_up;

static void bump_hook(lf_seqlock_t *sl)
{
	if (lf_now_ns() > hook_until) {
		hook_gave_up = 1;
		return;
	}
	lf_write32(&sl->seq, lf_read32(&sl->seq) + 2);
}

static void scribbled(uint32_t flags, uint64_t size)
{
	const char *mode = flags & LF_SEQ_LATCH ? "latch" : "classic";
	struct lf_seq_handle *h = make(size, flags, 0);
	lf_seqlock_t *sl = h->sl;
	const uint64_t bytes = lf_seq_state_size(size, flags, 0);
	uint32_t *fields[] = {&sl->flags, &sl->size, &sl->data_off,
			      &sl->stride, &sl->meta_len, &sl->wflags,
			      &sl->wsize, &sl->wdata_off};
	static const char *names[] = {"flags", "size", "data_off", "stride",
				      "meta_len", "wflags", "wsize",
				      "wdata_off"};
	static const uint32_t junk[] = {0, 1, 63, 64, 1u << 20, 0x10000000u,
					0xFFFFFFF0u, 0xFFFFFFFFu};
	static uint64_t out[MAXW];
	uint64_t k = 0, refused = 0, trips = 0;
	char what[128];

	for (unsigned i = 0; i < sizeof fields / sizeof *fields; i++) {
		for (unsigned j = 0; j < sizeof junk / sizeof *junk; j++) {
			uint32_t saved = lf_read32(fields[i]);
			struct lf_seq_handle h2;
			const char *field = NULL;

			if (junk[j] == saved)
				continue;
			lf_write32(fields[i], junk[j]);
			if (lf_seq_handle_init(&h2, sl, bytes, size, flags, 0,
					       &field) == LF_ECORRUPT &&
			    field && !strcmp(field, names[i]))
				refused++;
			else {
				snprintf(what, sizeof what, "a scribbled %s "
					 "(%s) was not refused by name",
					 names[i], mode);
				fail(what);
			}
			/* The handle made before still reads and writes the
			 * record, inside the state (ASAN checks). */
			trips += round_trip(h, size, ++k);
			lf_write32(fields[i], saved);
		}
	}
	if (trips != refused)
		fail("a write/read through a handle failed after a scribble");

	/* A peer moving the counter under every copy: a reader gives up at
	 * its deadline (LF_EAGAIN), it does not retry for ever. */
	uint64_t t0 = lf_now_ns(), late;
	int64_t r;

	hook_gave_up = 0;
	hook_until = t0 + 2000000000ull;
	__atomic_store_n(&lf_test_seq_copied, bump_hook, __ATOMIC_RELEASE);
	r = lf_seq_read_until(h, out, size, t0 + 20000000ull);
	__atomic_store_n(&lf_test_seq_copied, NULL, __ATOMIC_RELEASE);
	late = lf_now_ns() - t0;
	if (r != LF_EAGAIN || hook_gave_up)
		fail("a reader whose every copy was torn missed its deadline");
	int after = round_trip(h, size, ++k);
	if (!after)
		fail("no round trip after a counter-bumping peer");
	printf("scribbled_%s_%llu refused=%llu round_trips=%llu "
	       "torn_forever_read=%lld ms=%.1f after=%d\n", mode,
	       (unsigned long long)size, (unsigned long long)refused,
	       (unsigned long long)trips, (long long)r, late / 1e6, after);

	if (!(flags & LF_SEQ_LATCH)) {
		/* Odd with the lock free: no write can be in progress. */
		lf_write32(&sl->seq, lf_read32(&sl->seq) | 1);
		t0 = lf_now_ns();
		r = lf_seq_read_until(h, out, size, t0 + 2000000000ull);
		late = lf_now_ns() - t0;
		int corrupt = r == LF_ECORRUPT && late < 1000000000ull;
		int repaired = round_trip(h, size, ++k);
		/* An odd wseq: a write still ends on an even count. */
		lf_write32(&sl->wseq, lf_read32(&sl->wseq) | 1);
		int even = round_trip(h, size, ++k) &&
			   !(lf_read32(&sl->seq) & 1);
		/* A live writer (this thread) holding the lock with the count
		 * odd: readers wait for it until their deadline. */
		int waited = 0;
		if (lf_spin_trylock(&sl->lock)) {
			uint32_t end = lf_seq_write_begin(sl);
			t0 = lf_now_ns();
			r = lf_seq_read_until(h, out, size,
					      t0 + 30000000ull);
			late = lf_now_ns() - t0;
			waited = r == LF_EAGAIN && late >= 30000000ull &&
				 late < 500000000ull;
			lf_seq_write_end(sl, end);
			lf_spin_unlock(&sl->lock);
		}
		/* A garbage owner word (pid above INT32_MAX: no lock wrote
		 * it) holding the lock with the count odd: a waiting reader
		 * gets LF_ECORRUPT at its first owner check, not a hang nor a
		 * dead-owner report; clearing the word lets a write repair. */
		lf_write64(&sl->lock.owner, 0xFFFFFFFF00000001ull);
		lf_write32(&sl->seq, lf_read32(&sl->seq) | 1);
		t0 = lf_now_ns();
		r = lf_seq_read_until(h, out, size, t0 + 2000000000ull);
		late = lf_now_ns() - t0;
		int garbage = r == LF_ECORRUPT && late < 1000000000ull;
		lf_write64(&sl->lock.owner, 0);
		garbage = garbage && round_trip(h, size, ++k);
		printf("odd_counter_%llu lock_free=%s repaired=%d "
		       "odd_wseq_write_even=%d live_writer_deadline=%d "
		       "garbage_owner=%s\n", (unsigned long long)size,
		       corrupt ? "corrupt" : "other", repaired, even, waited,
		       garbage ? "corrupt" : "other");
		if (!corrupt || !repaired || !even || !waited || !garbage)
			fail("odd counter / odd wseq / live writer / garbage "
			     "owner mishandled");
	}
	free(sl);
}

int main(void)
{
	const char *lng = getenv("LOCKFREE_LONG");
	int long_mode = lng && atoi(lng);

	printf("atomics=%s\nlong=%d\n", LF_ATOMICS_IMPL, long_mode);
	dead_writer(0);
	dead_writer(LF_SEQ_LATCH);
	for (int latch = 0; latch < 2; latch++) {
		scribbled(latch ? LF_SEQ_LATCH : 0, SMALL);
		scribbled(latch ? LF_SEQ_LATCH : 0, BIG);
	}
	if (failed) {
		printf("seqlock_fault_stress: FAIL %s\n", fail_what);
		return 1;
	}
	printf("seqlock_fault_stress: OK\n");
	return 0;
}
