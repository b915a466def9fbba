/*
 * Binding shim of the owner ids (csrc/lockwait.h): lf_owner_self() is a
 * static inline thread-local load, which cffi (or any FFI) cannot call.
 * Not part of the core (no core file calls a shim); the C stress programs
 * link csrc/shims/ with the core (tests/cbuild.py).
 */
#ifndef LF_SHIMS_LOCKWAIT_H
#define LF_SHIMS_LOCKWAIT_H

#include "../lockwait.h"

/* cffi:begin */
uint64_t lf_owner_self_id(void);  /* lf_owner_self() */
/* cffi:end */

#endif /* LF_SHIMS_LOCKWAIT_H */
