"""Kfifo: a single-producer single-consumer ring buffer (the kernel's kfifo).

One producer and one consumer, in two threads or two processes, move bytes
or whole messages through a power-of-two ring in a lockfree region:

- :class:`KfifoBytes` (``kfifo_bytes.py``): a byte stream, the kernel's
  byte kfifo (``kfifo_in``/``kfifo_out``, partial puts and gets);
- :class:`KfifoQueue` (``kfifo_queue.py``): a message queue, the kernel's
  record kfifo (length-prefixed, all or nothing), with the ``queue``
  module's interface.

Both derive from :class:`Kfifo` (``_kfifo_core.py``);
``Kfifo(capacity, mode="bytes"|"records")`` returns the one of that mode and
``Kfifo.attach(name)`` the one of the ring it finds.  See ``docs/kfifo.md``.

Roles are registered in the shared state on first use: the first object (in
any process) that puts becomes the producer, the first that gets becomes the
consumer; a second live one gets ``RoleError``.  A role whose process died is
taken over by the next object that asks for it.

Blocking calls (``block=True`` is the default in both classes) wait in C
with the GIL released (spin, yield, then sleep on a futex:
csrc/lockwait.h's policy), in slices of at most ``lockfree._wait.SLICE_NS``,
so Ctrl-C works and a dead peer is noticed; ``timeout`` raises
``queue.Full`` / ``queue.Empty``.

One thread at a time per role of an object: a producer (or consumer) call
made while another thread is inside a producer (consumer) call of the same
object raises ``ConcurrentUseError`` and changes nothing.
"""

from __future__ import annotations

import inspect

from ._kfifo_args import MAX_BATCH, MAX_CAPACITY, MODES, REC_HDR
from ._kfifo_core import Kfifo
from .errors import (
                     ConcurrentUseError,
                     ConsumerDied,
                     ModeError,
                     PeerDied,
                     ProducerDied,
                     RoleError,
)
from .kfifo_bytes import KfifoBytes
from .kfifo_queue import KfifoQueue

# help(Kfifo) / inspect.signature(Kfifo): the constructor's real parameters
# (its __new__ takes what attach passes too).
Kfifo.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    KfifoBytes.__init__).replace(parameters=list(inspect.signature(
        KfifoBytes.__init__).parameters.values())[1:])

__all__ = ["Kfifo", "KfifoBytes", "KfifoQueue", "RoleError", "PeerDied",
           "ProducerDied", "ConsumerDied", "ModeError", "ConcurrentUseError",
           "MAX_BATCH", "MAX_CAPACITY", "MODES", "REC_HDR"]
