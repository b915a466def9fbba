/*
 * What this build is: the atomics implementation, the architecture and the
 * compiler, for lockfree.build_info().  A binding shim: C code has the
 * macros (LF_ATOMICS_IMPL of arch/atomic.h, __VERSION__).  (The FFI floor
 * lf_noop0..3 is a tool: csrc/tools/noop.h.)
 */
#ifndef LF_BUILD_INFO_H
#define LF_BUILD_INFO_H

#include <stdint.h>

/* cffi:begin */
const char *lf_build_atomics(void);   /* "x86-64-asm" or "portable" */
const char *lf_build_arch(void);      /* "x86_64", "aarch64", ... */
const char *lf_build_compiler(void);  /* __VERSION__ of the compiler */
/* cffi:end */

#endif /* LF_BUILD_INFO_H */
