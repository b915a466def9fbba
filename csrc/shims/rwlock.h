/*
 * Binding shims of the reader-writer lock (csrc/rwlock.h): out-of-line
 * copies of its static inline fast paths, which cffi (or any FFI) cannot
 * call.  C code calls the inlines (lf_rwlock_read_trylock,
 * lf_rwlock_read_lock_until, lf_rwlock_read_unlock and their write twins).
 * Not part of the core (no core file calls a shim); the C stress programs
 * link csrc/shims/ with the core (tests/cbuild.py).
 */
#ifndef LF_SHIMS_RWLOCK_H
#define LF_SHIMS_RWLOCK_H

#include "../rwlock.h"

/* cffi:begin */
bool lf_rwlock_read_try_acquire(lf_rwlock_t *l);
int64_t lf_rwlock_read_acquire_until(lf_rwlock_t *l, uint64_t deadline);
int lf_rwlock_read_release(lf_rwlock_t *l);
bool lf_rwlock_write_try_acquire(lf_rwlock_t *l);
int64_t lf_rwlock_write_acquire_until(lf_rwlock_t *l, uint64_t deadline);
int lf_rwlock_write_release(lf_rwlock_t *l);
/* cffi:end */

#endif /* LF_SHIMS_RWLOCK_H */
