#include "ticketlock.h"  /* csrc/shims/ticketlock.h */

int64_t lf_ticket_acquire_until(lf_ticketlock_t *l, uint64_t deadline)
{
	return lf_ticket_lock_until(l, deadline);
}

int lf_ticket_release(lf_ticketlock_t *l) { return lf_ticket_unlock(l); }
