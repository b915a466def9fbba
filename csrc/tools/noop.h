/*
 * The FFI floor: lf_noop0..3 do nothing.  They exist so benchmarks can
 * measure a bare cffi call of the same arity as a real operation: the floor
 * that no wrapper can go below, because every cffi call releases and
 * retakes the GIL and saves errno.  A tool (lockfree._tools), not library.
 */
#ifndef LF_NOOP_H
#define LF_NOOP_H

#include <stdint.h>

/* cffi:begin */
void lf_noop0(void);
int64_t lf_noop1(void *p);
int64_t lf_noop2(void *p, int64_t a);
int64_t lf_noop3(void *p, int64_t a, int64_t b);
/* cffi:end */

#endif /* LF_NOOP_H */
