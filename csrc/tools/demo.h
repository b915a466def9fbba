/*
 * C workloads behind `python -m lockfree demo`: threads run in C with the
 * GIL released, so the demos show the hardware, not the interpreter.
 */
#ifndef LF_DEMO_H
#define LF_DEMO_H

#include <stdint.h>

/* cffi:begin */
/* threads x iters increments of a plain (racy, volatile) counter and of an
 * atomic one; out[0] = plain total, out[1] = atomic total.  0 or -errno. */
int lf_demo_lost_update(int threads, int64_t iters, int64_t *out);

/* threads x iters CAS-loop increments of one counter.  hist[k] counts the
 * increments that needed k retries (the last bin: nbins-1 or more);
 * out[0] = final counter, out[1] = total CAS attempts.  0 or -errno. */
int lf_demo_cas_retry(int threads, int64_t iters, int64_t *hist, int nbins,
		      int64_t *out);
/* cffi:end */

#endif /* LF_DEMO_H */
