/*
 * Binding shims of the seqlock (csrc/seqlock.h): entry points that take
 * one struct lf_seq_handle for what would be several arguments, so the
 * Python hot path makes cheap cffi calls (the handle carries the buffer,
 * its size and its owning thread).  C code calls lf_seq_try_read,
 * lf_seq_read_until and lf_seq_write_until.
 * Not part of the core (no core file calls a shim); the C stress programs
 * link csrc/shims/ with the core (tests/cbuild.py).
 */
#ifndef LF_SHIMS_SEQLOCK_H
#define LF_SHIMS_SEQLOCK_H

#include "../seqlock.h"

/* cffi:begin */
/* Read into h->buf (h->size bytes) without waiting: as lf_seq_try_read,
 * or LF_EBUSY (another thread of this process owns the handle).  The
 * bindings wait, if they must, with lf_seq_fetch_until and their own
 * deadline.  h->retries: the result. */
int64_t lf_seq_fetch(struct lf_seq_handle *h);
int64_t lf_seq_fetch_until(struct lf_seq_handle *h, uint64_t deadline);
/* lf_seq_write of h->size bytes if the writer lock is free (LF_OK), else
 * LF_EAGAIN at once (the caller waits with lf_seq_write_until). */
int64_t lf_seq_store(const struct lf_seq_handle *h, const void *src);
/* cffi:end */

#endif /* LF_SHIMS_SEQLOCK_H */
