/*
 * Binding shims of the spinlock (csrc/spinlock.h): out-of-line copies of its
 * static inline fast paths, which cffi (or any FFI) cannot call.  C code
 * calls the inlines (lf_spin_trylock, lf_spin_lock_until, lf_spin_unlock).
 * Not part of the core (no core file calls a shim); the C stress programs
 * link csrc/shims/ with the core (tests/cbuild.py).
 */
#ifndef LF_SHIMS_SPINLOCK_H
#define LF_SHIMS_SPINLOCK_H

#include "../spinlock.h"

/* cffi:begin */
bool lf_spin_try_acquire(lf_spinlock_t *l);
int64_t lf_spin_acquire_until(lf_spinlock_t *l, uint64_t deadline);
int lf_spin_release(lf_spinlock_t *l);
/* cffi:end */

#endif /* LF_SHIMS_SPINLOCK_H */
