/*
 * What this build is: the atomics implementation and the FFI floor.
 *
 * lf_noop0..3 do nothing.  They exist so benchmarks can measure a bare cffi
 * call of the same arity as a real operation: the floor that no wrapper can
 * go below, because every cffi call releases and retakes the GIL and saves
 * errno.
 */
#ifndef LF_BUILD_INFO_H
#define LF_BUILD_INFO_H

#include <stdint.h>

const char *lf_build_atomics(void);   /* "x86-64-asm" or "portable" */
const char *lf_build_arch(void);      /* "x86_64", "aarch64", ... */
const char *lf_build_compiler(void);  /* __VERSION__ of the compiler */

void lf_noop0(void);
int64_t lf_noop1(void *p);
int64_t lf_noop2(void *p, int64_t a);
int64_t lf_noop3(void *p, int64_t a, int64_t b);

#endif /* LF_BUILD_INFO_H */
