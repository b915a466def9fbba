#include "spinlock.h"  /* csrc/shims/spinlock.h */

bool lf_spin_try_acquire(lf_spinlock_t *l) { return lf_spin_trylock(l); }

int64_t lf_spin_acquire_until(lf_spinlock_t *l, uint64_t deadline)
{
	return lf_spin_lock_until(l, deadline);
}

int lf_spin_release(lf_spinlock_t *l) { return lf_spin_unlock(l); }
