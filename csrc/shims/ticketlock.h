/*
 * Binding shims of the ticket lock (csrc/ticketlock.h): out-of-line copies
 * of its static inline fast paths, which cffi (or any FFI) cannot call.  C
 * code calls the inlines (lf_ticket_lock_until, lf_ticket_unlock).
 * Not part of the core (no core file calls a shim); the C stress programs
 * link csrc/shims/ with the core (tests/cbuild.py).
 */
#ifndef LF_SHIMS_TICKETLOCK_H
#define LF_SHIMS_TICKETLOCK_H

#include "../ticketlock.h"

/* cffi:begin */
int64_t lf_ticket_acquire_until(lf_ticketlock_t *l, uint64_t deadline);
int lf_ticket_release(lf_ticketlock_t *l);
/* cffi:end */

#endif /* LF_SHIMS_TICKETLOCK_H */
