/*
 * Binding shims of the kfifo (csrc/kfifo.h): calls that exist only for
 * cffi (or any FFI), where each call is a crossing and a result comes back
 * as one integer.
 *  - The scratch buffer: lf_kfifo_handle_scratch() gives the handle a
 *    process-private buffer, and lf_kfifo_get_scratch() and
 *    lf_kfifo_rec_get() copy into it, so Python passes only the handle and
 *    reads the bytes with one slice of one ffi.buffer.
 *  - A Python struct format string built in C: lf_kfifo_rec_get_many()
 *    copies a batch into the scratch and describes it in h->fmt
 *    ("64s12s0s"), which struct.Struct(fmt).unpack() splits in one C loop.
 *  - Results left on the handle: rec_get, rec_get_many and rec_parts (and
 *    the *_wait forms) return with the consumer's in-use word still claimed
 *    (LF_KFIFO_CALL_KEEP, shims/kfifo.c) until the caller has copied the
 *    result and gives it back with lf_kfifo_unhold(); lf_kfifo_hold() and
 *    lf_kfifo_unhold() keep a role's claim across the Python layer's
 *    multi-call slow paths.
 *  - One slice of blocking: rec_put_wait, rec_get_wait, rec_get_many_wait
 *    wait LF_SLICE_NS at most, so Python loops between slices and notices
 *    signals and its deadline.
 *  - The asyncio waiter (src/lockfree/kfifo_async.py): the waits
 *    lf_kfifo_wait_readable_or/writable_or, which another thread ends with
 *    lf_kfifo_wait_stop().
 * C code calls the core instead (lf_kfifo_rec_get_into, lf_kfifo_zc_receive,
 * lf_kfifo_wait_readable/writable with its own deadline).  The C stress
 * programs link the shims too (tests/cbuild.py), so they also run under
 * ThreadSanitizer and AddressSanitizer.
 */
#ifndef LF_SHIMS_KFIFO_H
#define LF_SHIMS_KFIFO_H

#include "../kfifo.h"

/* cffi:begin */
#define LF_KFIFO_FMT_ITEM	11u		/* "4294967295s" */

/* The scratch buffer (scratch_size bytes) and the batch format (room for
 * fmt_items * LF_KFIFO_FMT_ITEM + 1 bytes) of a handle. */
void lf_kfifo_handle_scratch(struct lf_kfifo_handle *h, char *scratch,
			     uint32_t scratch_size, char *fmt,
			     uint32_t fmt_items);
/* Claim a role's in-use word for this thread across several calls (0, or
 * LF_EMISUSE if another thread is inside a call on it), and give it back. */
int lf_kfifo_hold(struct lf_kfifo_handle *h, uint32_t role);
void lf_kfifo_unhold(struct lf_kfifo_handle *h, uint32_t role);

/* Byte mode: lf_kfifo_get into the scratch buffer. */
int64_t lf_kfifo_get_scratch(struct lf_kfifo_handle *h, uint32_t n);

/* Record mode, results left on the handle (the claim kept on success). */
int64_t lf_kfifo_rec_get(struct lf_kfifo_handle *h);
int64_t lf_kfifo_rec_get_many(struct lf_kfifo_handle *h, uint32_t max_items);
int64_t lf_kfifo_rec_parts(struct lf_kfifo_handle *h);

/* Blocking for one slice (LF_SLICE_NS at most): the operation, and if it
 * would block, a wait then one more try.  LF_EAGAIN after a slice; callers
 * loop (and so notice signals and deadlines). */
int lf_kfifo_rec_put_wait(struct lf_kfifo_handle *h, const char *p,
			  uint32_t n);
int64_t lf_kfifo_rec_get_wait(struct lf_kfifo_handle *h);
int64_t lf_kfifo_rec_get_many_wait(struct lf_kfifo_handle *h,
				   uint32_t max_items);

/* lf_kfifo_wait_readable/writable, ended early (return 1) once *stop is
 * non-zero, which lf_kfifo_wait_stop() sets from another thread (the
 * asyncio waiter of src/lockfree/kfifo_async.py). */
int lf_kfifo_wait_readable_or(struct lf_kfifo_handle *h, uint64_t deadline,
			      const uint32_t *stop);
int lf_kfifo_wait_writable_or(struct lf_kfifo_handle *h, uint32_t need,
			      uint64_t deadline, const uint32_t *stop);
int lf_kfifo_wait_stop(struct lf_kfifo_handle *h, uint32_t role,
		       uint32_t *stop);
/* cffi:end */

#endif /* LF_SHIMS_KFIFO_H */
