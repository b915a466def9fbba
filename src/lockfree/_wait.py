"""Time and deadlines, the Python half of ``csrc/lockwait.h``.

One clock (CLOCK_MONOTONIC: ``time.monotonic_ns()`` reads the clock the C
side reads), one deadline representation (absolute nanoseconds), two named
extremes (:data:`NOWAIT`: one attempt; :data:`FOREVER`: never expires), one
validation of user timeouts, and one loop (:func:`wait`) that waits in C in
slices of :data:`SLICE_NS` so that Ctrl-C and other signal handlers run
between slices.

Two argument conventions exist because users know both from the standard
library, and both land on the same deadline:

* ``threading``: ``acquire(blocking=True, timeout=-1)`` ->
  :func:`lock_deadline`
* ``queue``: ``get(block=True, timeout=None)`` -> :func:`queue_deadline`
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ._ffi import lib

__all__ = ["FOREVER", "NOWAIT", "SLICE_NS", "now_ns", "seconds",
           "deadline_in", "lock_deadline", "queue_deadline", "slice_end",
           "wait"]

FOREVER: int = lib.LF_FOREVER    # a deadline that never expires
NOWAIT: int = lib.LF_NOWAIT      # a deadline already past: one attempt
SLICE_NS: int = lib.LF_SLICE_NS  # longest single wait in C (50 ms)
EAGAIN: int = lib.LF_EAGAIN
now_ns = time.monotonic_ns


def seconds(timeout: object, name: str = "timeout") -> float:
    """``timeout`` as a float number of seconds >= 0 (``inf`` allowed).

    ``TypeError`` for a non-number (``None``, ``str``, ``bool``...),
    ``ValueError`` for NaN or a negative number."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        if isinstance(timeout, bool) or not hasattr(type(timeout),
                                                    "__float__"):
            raise TypeError(f"{name} must be a number of seconds, not "
                            f"{type(timeout).__name__}")
        timeout = float(timeout)  # type: ignore[arg-type]
    if math.isnan(timeout):
        raise ValueError(f"{name} must be a number of seconds, not NaN")
    if timeout < 0:
        raise ValueError(f"{name} must be >= 0, got {timeout}")
    return float(timeout)


def deadline_in(timeout: float | None) -> int:
    """The deadline ``timeout`` seconds from now: ``None`` (or ``inf``) is
    :data:`FOREVER`; 0 is :data:`NOWAIT`."""
    if timeout is None:
        return FOREVER
    t = seconds(timeout)
    if t == 0:
        return NOWAIT
    if math.isinf(t) or t > threading.TIMEOUT_MAX:
        return FOREVER
    return now_ns() + max(1, int(t * 1e9))


def lock_deadline(blocking: bool, timeout: float) -> int:
    """``threading.Lock.acquire`` arguments -> a deadline, with its checks
    and its exceptions (``timeout=-1`` waits forever; a timeout with
    ``blocking=False`` is a ``ValueError``)."""
    if timeout == -1 and not isinstance(timeout, bool):
        return FOREVER if blocking else NOWAIT
    if not blocking:
        seconds(timeout)  # type errors first, as threading does
        raise ValueError("can't specify a timeout for a non-blocking call")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) \
            and timeout < 0 and not math.isnan(timeout):
        raise ValueError("timeout value must be a non-negative number "
                         "(or -1 to wait forever)")
    t = seconds(timeout)
    if t > threading.TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")
    return deadline_in(t)


def queue_deadline(block: bool, timeout: float | None) -> int:
    """``queue.Queue.get``/``put`` arguments -> a deadline: ``block=False``
    is one attempt (the timeout is ignored, as in ``queue``), ``None``
    waits forever, a negative number or NaN is a ``ValueError``."""
    if not block:
        return NOWAIT
    if timeout is None:
        return FOREVER
    if seconds(timeout) == 0:
        return NOWAIT
    return deadline_in(timeout)


def slice_end(deadline: int) -> int:
    """The end of the next wait slice: at most :data:`SLICE_NS` from now."""
    end = now_ns() + SLICE_NS
    return deadline if deadline < end else end


def wait(call: Callable[[int], int], deadline: int) -> int:
    """Call ``call(slice_deadline)`` (a C wait that returns ``LF_EAGAIN``
    when its slice ends) until it returns anything else, or ``deadline``
    passes: then ``LF_EAGAIN``.  Signal handlers run between slices."""
    while True:
        end = slice_end(deadline)
        r = call(end)
        if r != EAGAIN or end == deadline:
            return r
