#include "rwlock.h"  /* csrc/shims/rwlock.h */

bool lf_rwlock_read_try_acquire(lf_rwlock_t *l)
{
	return lf_rwlock_read_trylock(l);
}

int64_t lf_rwlock_read_acquire_until(lf_rwlock_t *l, uint64_t deadline)
{
	return lf_rwlock_read_lock_until(l, deadline);
}

int lf_rwlock_read_release(lf_rwlock_t *l) { return lf_rwlock_read_unlock(l); }

bool lf_rwlock_write_try_acquire(lf_rwlock_t *l)
{
	return lf_rwlock_write_trylock(l);
}

int64_t lf_rwlock_write_acquire_until(lf_rwlock_t *l, uint64_t deadline)
{
	return lf_rwlock_write_lock_until(l, deadline);
}

int lf_rwlock_write_release(lf_rwlock_t *l)
{
	return lf_rwlock_write_unlock(l);
}
