/*
 * kfifo: a single-producer single-consumer ring buffer (lf_kfifo_*).
 *
 * The kernel's kfifo (lib/kfifo.c): a power-of-two data area, free-running
 * unsigned indexes in/out masked by size-1, copies in two parts around the
 * end of the data area, and a write barrier between copying the data and
 * publishing the index.  Improved the way rigtorp's SPSCQueue is: in and out
 * live on separate cache lines, and each side keeps a cached copy of the
 * other side's index, re-read only when the ring looks full (producer) or
 * empty (consumer), so in the steady state a side touches the other side's
 * line once per "lap" instead of once per operation.
 *
 * Index arithmetic: in and out are free-running uint32_t.  in - out is the
 * number of bytes used, correct across the wrap at 2^32 because unsigned
 * subtraction is modulo 2^32 and the size is at most 2^31 (the kernel's
 * kfifo.h relies on the same).  (idx & mask) is the offset in the data area.
 *
 * Two modes, fixed at creation:
 *
 *   LF_KFIFO_BYTES    a byte stream: put/get/peek/skip are partial, like the
 *                     kernel's kfifo_in/kfifo_out.
 *   LF_KFIFO_RECORDS  length-prefixed messages: a 4-byte native-endian
 *                     length, then the payload; a put is all or nothing and
 *                     a get takes one whole message.  Records never wrap
 *                     (a bip buffer's rule): a record (header + payload)
 *                     that does not fit before the end of the data area
 *                     starts at offset 0 of the next lap, and the rest of
 *                     the area is padding: a header LF_KFIFO_REC_PAD, or
 *                     nothing when fewer than 4 bytes are left (a reader
 *                     at such an offset skips to the next lap).  So every
 *                     message is one contiguous range of the data area
 *                     (zero-copy reserve/receive).  The padding is bytes
 *                     used: it counts in len() and free until the consumer
 *                     passes it.
 *
 * Roles: exactly one producer and one consumer.  A process uses the ring
 * through a handle (struct lf_kfifo_handle, private to the process, never in
 * shared memory); the first producer operation of a handle registers it in
 * the producer slot of the shared state with a compare-and-swap, the first
 * consumer operation in the consumer slot.  A second live handle gets
 * LF_EBUSY.  A slot whose registrant's process is gone (or a zombie) is
 * taken over, so a new producer or consumer can attach after a crash.
 *
 * One thread at a time per role of a handle: every out-of-line call claims
 * the role's in-use word (struct lf_kfifo_handle's user[]) with one
 * compare-and-swap of the calling thread's owner id and clears it on return,
 * so a second thread using the same producer (or consumer) handle at the
 * same time gets LF_EMISUSE and touches nothing, while handing a handle over
 * from one thread to another (one after the other) just works.  The
 * binding shims (csrc/shims/kfifo.h) add lf_kfifo_hold()/lf_kfifo_unhold(),
 * which keep the claim across several calls, and the records-mode calls
 * that leave their result in the handle and keep the consumer claim when
 * they succeed.  The inline element fast paths below are not checked: C
 * code that uses them owns its handle.
 *
 * Blocking: lf_kfifo_wait_readable/writable wait with lockwait's policy
 * (lf_wait: spin -> yield -> futex sleep) until an absolute CLOCK_MONOTONIC
 * deadline (lf_now_ns(); LF_NOWAIT, LF_FOREVER); the sleeper handshake is
 * lf_kfifo_sleep_prepare() (waiter) and lf_kfifo_notify() (publisher).
 *
 * Return values: >= 0 is a result (bytes, a length, a count); negative is
 * one of the LF_E* codes of errors.h.
 */
#ifndef LF_KFIFO_H
#define LF_KFIFO_H

#include <stdint.h>
#include <string.h>

#include "arch/atomic.h"
#include "errors.h"
#include "lockwait.h"

/* cffi:begin */
#define LF_KFIFO_BYTES		0
#define LF_KFIFO_RECORDS	1

#define LF_KFIFO_MIN_SIZE	2u
#define LF_KFIFO_MAX_SIZE	0x80000000u	/* 2^31: in - out must fit */
#define LF_KFIFO_REC_HDR	4u		/* record length prefix */
#define LF_KFIFO_REC_PAD	0xFFFFFFFFu	/* header of padding to the end */

#define LF_KFIFO_ROLE_PRODUCER	1u
#define LF_KFIFO_ROLE_CONSUMER	2u

#define LF_KFIFO_F_CLOSED	1u	/* flags: the producer closed */

#define LF_KFIFO_RSV_FIXED	0x80000000u	/* lf_kfifo_zc_reserve: the
						   message never moves */

/*
 * The shared state (follows the region header).  Three cache lines, then
 * the data area.  Offsets are fixed (the layout version covers them).
 */
struct lf_kfifo {
	/* Producer line: written by the producer only. */
	uint32_t in;		/* free-running write index */
	uint32_t out_cache;	/* producer's last view of out */
	uint64_t prod_owner;	/* registration: pid << 32 | handle id */
	uint64_t prod_pad[6];

	/* Consumer line: written by the consumer (and, records mode, by the
	 * producer's one cmpxchg when it restarts: kfifo_rec.c). */
	uint32_t out;		/* free-running read index */
	uint32_t in_cache;	/* consumer's last view of in */
	uint64_t cons_owner;
	uint64_t cons_pad[6];

	/* Control line: read on every operation, written rarely (creation,
	 * close, and around sleeping), so it stays shared in both caches. */
	uint32_t size;		/* data bytes, a power of two */
	uint32_t mask;		/* size - 1 */
	uint32_t mode;		/* LF_KFIFO_BYTES or LF_KFIFO_RECORDS */
	uint32_t flags;		/* LF_KFIFO_F_CLOSED */
	uint32_t cons_sleeping;	/* consumer is (about to be) in futex_wait */
	uint32_t cons_seq;	/* futex word the consumer sleeps on */
	uint32_t prod_sleeping;
	uint32_t prod_seq;	/* futex word the producer sleeps on */
	uint32_t weak_wake;	/* a process that could not register for
				   membarrier uses this ring: waiters bound
				   their first sleep (lf_kfifo_sleep_prepare) */
	uint32_t ctl_pad32;
	uint64_t ctl_pad[3];

	unsigned char data[];	/* size bytes, 64-byte aligned in the state */
};

/*
 * Per-process view of one ring: never shared.  The size, mask and mode are
 * copied from the shared state once, after validation, so a corrupted state
 * cannot make an operation touch memory outside the data area.
 */
struct lf_kfifo_handle {
	struct lf_kfifo *f;
	unsigned char *data;
	uint32_t size;
	uint32_t mask;
	uint32_t mode;
	uint32_t roles;		/* LF_KFIFO_ROLE_* this handle holds */
	uint32_t fork_gen;	/* lf_kfifo fork generation when registered */
	uint32_t id;		/* unique in this process */
	/* The binding shims' buffers (shims/kfifo.h): */
	char *scratch;		/* get_message / get_many copy here */
	uint32_t scratch_size;
	uint32_t fmt_items;	/* get_many: most messages per call */
	char *fmt;		/* get_many: struct format of the messages,
				   "12s0s64s", NUL-terminated; room for
				   fmt_items * LF_KFIFO_FMT_ITEM + 1 bytes */
	uint32_t msg_len;	/* EBIG: the length of the pending message */
	uint32_t part_len[2];	/* lf_kfifo_parts / rec_parts results */
	char *part[2];
	/* Records: an open reservation (lf_kfifo_zc_reserve) that ends at
	 * index rsv_end; while open, other producer calls get LF_EMISUSE. */
	uint32_t rsv_open;
	uint32_t rsv_end;
	/* Records, the producer's restart (kfifo_rec.c): the open reservation
	 * was placed at offset 0 and ends the padding that starts at rsv_from
	 * (rsv_restart), decided at commit; and no restart is tried while the
	 * write index is in the HOT / 4 bytes below hot_next. */
	uint32_t rsv_restart;
	uint32_t rsv_from;
	uint32_t hot_next;
	/* In-use words, [0] producer, [1] consumer: the owner id
	 * (lf_owner_self()) of the thread inside a call on that role, 0 when
	 * none; a line each, so a producer thread and a consumer thread sharing
	 * one handle do not bounce a line between them. */
	struct lf_kfifo_inuse {
		uint64_t word;
		uint64_t pad[7];
	} user[2];
};

/* Creation and handles. */
void lf_kfifo_init(struct lf_kfifo *f, uint32_t size, uint32_t mode);
uint64_t lf_kfifo_state_size(uint32_t size);
int lf_kfifo_handle_init(struct lf_kfifo_handle *h, struct lf_kfifo *f,
			 uint32_t size, uint32_t mode);
int lf_kfifo_register(struct lf_kfifo_handle *h, uint32_t role);
void lf_kfifo_release(struct lf_kfifo_handle *h);
int lf_kfifo_owner_pid(struct lf_kfifo_handle *h, uint32_t role);

/* State, either side (racy snapshots, exact for the side asking). */
int64_t lf_kfifo_len(struct lf_kfifo_handle *h);
int64_t lf_kfifo_avail(struct lf_kfifo_handle *h);
int lf_kfifo_is_closed(struct lf_kfifo_handle *h);

/* Byte mode. */
int64_t lf_kfifo_put(struct lf_kfifo_handle *h, const char *p, uint32_t n);
int64_t lf_kfifo_get(struct lf_kfifo_handle *h, char *p, uint32_t n);
int64_t lf_kfifo_peek(struct lf_kfifo_handle *h, char *p, uint32_t n);
int64_t lf_kfifo_skip(struct lf_kfifo_handle *h, uint32_t n);
int64_t lf_kfifo_parts(struct lf_kfifo_handle *h, uint32_t n);

/* Record mode. */
int lf_kfifo_rec_put(struct lf_kfifo_handle *h, const char *p, uint32_t n);
int64_t lf_kfifo_rec_put_many(struct lf_kfifo_handle *h, const char *buf,
			      uint64_t buf_len, const uint32_t *lens,
			      uint32_t count);
int64_t lf_kfifo_rec_get_into(struct lf_kfifo_handle *h, char *p, uint32_t n);
int64_t lf_kfifo_rec_peek_len(struct lf_kfifo_handle *h);
int64_t lf_kfifo_rec_count(struct lf_kfifo_handle *h);
int64_t lf_kfifo_rec_any(struct lf_kfifo_handle *h);
int64_t lf_kfifo_rec_skip(struct lf_kfifo_handle *h);

/* Zero-copy records (KfifoQueue.reserve() and receive()).  A block holds
 * its role exclusively from the call that opens it to the call that ends
 * it, against every other call of every thread, the holder's own included
 * (LF_EMISUSE), so no nested put or get can touch the message being written
 * or read in place.  One call to open, one to end: each is a cffi call.
 * Producer: lf_kfifo_zc_reserve(h, n) reserves room for a message of n
 * bytes at h->data + the returned offset (>= 0) and opens the block; an
 * error (LF_EAGAIN: no room yet, LF_EMSGSIZE, LF_EMISUSE...) opens
 * nothing.  lf_kfifo_zc_commit() publishes the message (one store-release
 * of in) and ends the block, lf_kfifo_zc_abort() ends it publishing
 * nothing.  The commit may copy the message to another offset (the
 * restart, kfifo_rec.c); n | LF_KFIFO_RSV_FIXED asks for a message that
 * stays where it was written (its contents are aligned relative to its
 * address: KfifoQueue.reserve_array).  Consumer: lf_kfifo_zc_receive()
 * opens the block on the next message and returns offset << 32 | length
 * (records never wrap: the message is the contiguous range h->data +
 * offset, both below 2^31); a negative error (LF_EAGAIN: empty,
 * LF_EOF...) opens nothing.
 * lf_kfifo_zc_consume() consumes it and ends the block (the length),
 * lf_kfifo_zc_leave() ends it leaving the message in the ring.  Ending a
 * block this process has not open (a fork child's copy of its parent's):
 * LF_EMISUSE; any thread of the opener's process may end it.  The caller
 * waits for room or data (lf_kfifo_wait_*) between attempts, outside any
 * block.
 * lf_kfifo_zc_held(): is a block open on either role, by this process? */
int64_t lf_kfifo_zc_reserve(struct lf_kfifo_handle *h, uint32_t n);
int lf_kfifo_zc_commit(struct lf_kfifo_handle *h);
int lf_kfifo_zc_abort(struct lf_kfifo_handle *h);
int64_t lf_kfifo_zc_receive(struct lf_kfifo_handle *h);
int64_t lf_kfifo_zc_consume(struct lf_kfifo_handle *h);
int lf_kfifo_zc_leave(struct lf_kfifo_handle *h);
int lf_kfifo_zc_held(struct lf_kfifo_handle *h);

/* Blocking until an absolute lf_now_ns() deadline, end of stream, reset. */
int lf_kfifo_wait_readable(struct lf_kfifo_handle *h, uint64_t deadline);
int lf_kfifo_wait_writable(struct lf_kfifo_handle *h, uint32_t need,
			   uint64_t deadline);
int lf_kfifo_close_producer(struct lf_kfifo_handle *h);
int64_t lf_kfifo_reset(struct lf_kfifo_handle *h);
/* cffi:end */

/*
 * Elements: the kernel's kfifo_put()/kfifo_get() for a typed fifo, in C
 * only.  Moves one element of esize bytes (a compile-time constant in the
 * caller, so the copy is a register move), all or nothing, byte mode only.
 * Returns 1 (moved), 0 (full / empty: try again) or a negative LF_E*
 * code (EOF once the producer closed and the ring is drained).
 *
 * Static inline, as Concurrency Kit's ck_ring is: the fast path is a few
 * loads and stores compiled into the caller's loop.  It needs the handle's
 * role already registered, a cached view of the peer's index that shows
 * room / an element, and no wrap inside the element (never when esize
 * divides the size); anything else (first use, ring looks full/empty,
 * wrap, closed, errors) goes to the out-of-line *_slow function, which is
 * lf_kfifo_put/lf_kfifo_get made all or nothing.  The barriers are those of
 * kfifo_impl.h (see its header comment): the same protocol, inlined.
 */
extern uint32_t lf_kfifo_fork_gen;
void lf_kfifo_wake(uint32_t *seq);
int lf_kfifo_put_elem_slow(struct lf_kfifo_handle *h, const void *p,
			   uint32_t esize);
int lf_kfifo_get_elem_slow(struct lf_kfifo_handle *h, void *p,
			   uint32_t esize);

/*
 * The sleeper handshake (its invariant is stated at
 * lf_kfifo_sleep_prepare() in kfifo_wait.c).  Waiter: s = sleep_prepare();
 * re-check the condition; sleep on *seq while it still holds s.  Publisher,
 * after the store-release of its index: lf_kfifo_notify() reads the
 * waiter's flag and, if it is set, bumps *seq and wakes it.  No barrier here: the
 * waiter's asymmetric barrier (membarrier) stands in for it.
 */
uint32_t lf_kfifo_sleep_prepare(uint32_t *sleeping, uint32_t *seq);

/* A waiter's first sleep lasts at most this long, then it re-checks: the
 * bound on a wake-up the handshake missed (lf_kfifo_sleep_prepare()). */
#define LF_KFIFO_RACE_NS 50000ull

static inline void lf_kfifo_notify(uint32_t *sleeping, uint32_t *seq)
{
	/* Compiler barrier only: the index store stays before the flag load
	 * in the instruction stream, which is what the waiter's membarrier
	 * orders (an IPI lands between two instructions).  Without it the
	 * portable layer's relaxed load could be hoisted above the
	 * store-release by the compiler, where no membarrier can help. */
	lf_barrier();
	if (__builtin_expect(lf_read32(sleeping) != 0, 0))
		lf_kfifo_wake(seq);
}

/* This handle holds role in this process (not a copy in a forked child). */
static inline int lf_kfifo_ready(const struct lf_kfifo_handle *h,
				 uint32_t role)
{
	return (h->roles & role) &&
	       h->fork_gen == lf_read32(&lf_kfifo_fork_gen);
}

static inline int lf_kfifo_put_elem(struct lf_kfifo_handle *h, const void *p,
				    uint32_t esize)
{
	struct lf_kfifo *f = h->f;
	uint32_t in, used, off;

	if (__builtin_expect(!lf_kfifo_ready(h, LF_KFIFO_ROLE_PRODUCER) ||
			     h->mode != LF_KFIFO_BYTES ||
			     (lf_read32(&f->flags) & LF_KFIFO_F_CLOSED), 0))
		return lf_kfifo_put_elem_slow(h, p, esize);
	in = lf_read32(&f->in);
	used = in - lf_read32(&f->out_cache);
	off = in & h->mask;
	if (__builtin_expect(used > h->size || h->size - used < esize ||
			     h->size - off < esize, 0))
		return lf_kfifo_put_elem_slow(h, p, esize);
	memcpy(h->data + off, p, esize);
	/* The data before the index (kfifo_in's smp_wmb); pairs with the
	 * load-acquire of in in cons_used() (kfifo_impl.h). */
	lf_store_release32(&f->in, in + esize);
	lf_kfifo_notify(&f->cons_sleeping, &f->cons_seq);
	return 1;
}

static inline int lf_kfifo_get_elem(struct lf_kfifo_handle *h, void *p,
				    uint32_t esize)
{
	struct lf_kfifo *f = h->f;
	uint32_t out, used, off;

	if (__builtin_expect(!lf_kfifo_ready(h, LF_KFIFO_ROLE_CONSUMER) ||
			     h->mode != LF_KFIFO_BYTES, 0))
		return lf_kfifo_get_elem_slow(h, p, esize);
	out = lf_read32(&f->out);
	/* in_cache was set from a load-acquire of in (cons_used() in
	 * kfifo_impl.h), so the bytes below it are visible to this thread. */
	used = lf_read32(&f->in_cache) - out;
	off = out & h->mask;
	if (__builtin_expect(used < esize || used > h->size ||
			     h->size - off < esize, 0))
		return lf_kfifo_get_elem_slow(h, p, esize);
	memcpy(p, h->data + off, esize);
	/* The copy before the index (kfifo_out's smp_mb); pairs with the
	 * load-acquire of out in prod_free() (kfifo_impl.h). */
	lf_store_release32(&f->out, out + esize);
	lf_kfifo_notify(&f->prod_sleeping, &f->prod_seq);
	return 1;
}

/* Tests only: move both indexes (empty ring) to idx, e.g. just below 2^32. */
#ifdef LF_TEST_HOOKS  /* the C stress programs only */
int lf_kfifo_debug_set_index(struct lf_kfifo_handle *h, uint32_t idx);
#endif

#endif /* LF_KFIFO_H */
