/*
 * The one error-code set of lockfree.  Every C entry point that can fail
 * returns 0 or a non-negative result on success and one of these negative
 * codes on failure; Python maps them to exceptions in one place
 * (src/lockfree/errors.py, raise_for()).
 *
 * Lock acquires have one more kind of negative result: -(owner id) of a
 * holder that died holding the lock (lockwait.h).  Owner ids are
 * pid << 32 | tid with pid > 0, so those results are <= -2^32 and never
 * collide with the codes here, which all lie in -1..-255
 * (LF_IS_DEAD_OWNER() tells them apart).
 */
#ifndef LF_ERRORS_H
#define LF_ERRORS_H

/* cffi:begin */
#define LF_OK		0
#define LF_EAGAIN	(-1)	/* would block: empty, full, busy, or the
				   deadline passed */
#define LF_EOF		(-2)	/* the producer closed and the ring is
				   drained */
#define LF_EDEAD	(-3)	/* the peer's process is gone */
#define LF_EBUSY	(-4)	/* a role or slot is held by another live
				   handle */
#define LF_EMSGSIZE	(-5)	/* the message can never fit */
#define LF_ECLOSED	(-6)	/* the other side closed (put after close) */
#define LF_ECORRUPT	(-7)	/* the shared state is impossible: a peer
				   wrote garbage into the segment */
#define LF_EBIG		(-8)	/* larger than the caller's buffer */
#define LF_EINVAL	(-9)	/* bad argument, handle, state or mode */
#define LF_EPERM	(-10)	/* not held / not registered by the caller */
#define LF_EDEADLK	(-11)	/* the wait would wait for the caller itself */
#define LF_ENOSPC	(-12)	/* no free slot */
#define LF_ENOMEM	(-13)	/* out of memory */
#define LF_EMISUSE	(-14)	/* a single-owner handle used by two threads
				   at once */
/* cffi:end */

/* Is an acquire's result the -(owner id) of a dead holder? */
#define LF_IS_DEAD_OWNER(r)	((int64_t)(r) <= -((int64_t)1 << 32))

#endif /* LF_ERRORS_H */
