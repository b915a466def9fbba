"""What the lock test modules share: the lock makers they parametrize
over, and helpers of the dead-owner tests."""

import os
import threading
import time

from lockfree import RWSpinLock, SpinLock, TicketLock

MAKERS = {
    "tas": lambda **kw: SpinLock("tas", **kw),
    "ttas": lambda **kw: SpinLock("ttas", **kw),
    "ticket": lambda **kw: TicketLock(**kw),
    "rw": lambda **kw: RWSpinLock(**kw),
}



def hold_and_wait(lock, ready):
    """In a child process: take the lock, say so, and wait to be killed."""
    lock.acquire()
    ready.set()
    time.sleep(600)


def check_recovered(lock):
    """After a successful recover(): this thread holds it, nothing is left
    to recover, and the lock works again."""
    assert lock.owner == (os.getpid(), threading.get_native_id())
    assert lock.recover() is False  # nothing left to recover
    lock.release()
    assert lock.acquire(timeout=1)
    lock.release()
