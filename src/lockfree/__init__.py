"""lockfree: lock-free concurrency primitives on x86-64 atomics, via cffi.

Primitives work between threads, between processes over shared memory
(``shared=True`` / ``name=`` / ``buffer=``), and on free-threaded CPython.
"""

from ._ffi import ffi, lib
from ._version import __version__
from .atomic import AtomicInt
from .errors import ConcurrentUseError, CorruptStateError
from .kfifo import (
    ConsumerDied,
    Kfifo,
    KfifoBytes,
    KfifoQueue,
    ModeError,
    PeerDied,
    ProducerDied,
    RoleError,
)
from .once import Once, call_once
from .rcu import (
    RcuBuffer,
    RcuCell,
    RcuDeadlockError,
    RcuDomain,
    RcuError,
    RcuNotRegisteredError,
    RcuRegistryFullError,
)
from .seqlock import SeqBytes, SeqRecord
from .spinlock import (
    LockStats,
    OwnerDiedError,
    RWSpinLock,
    SpinLock,
    TicketLock,
)

__all__ = ["AtomicInt", "SpinLock", "TicketLock", "RWSpinLock",
           "OwnerDiedError", "CorruptStateError", "ConcurrentUseError",
           "LockStats", "Once", "call_once",
           "SeqRecord", "SeqBytes",
           "RcuDomain", "RcuCell", "RcuBuffer", "RcuError",
           "RcuRegistryFullError", "RcuNotRegisteredError",
           "RcuDeadlockError",
           "Kfifo", "KfifoBytes", "KfifoQueue", "RoleError", "PeerDied",
           "ProducerDied", "ConsumerDied",
           "ModeError", "build_info", "__version__"]


def build_info() -> dict[str, str]:
    """How this copy of lockfree was built (atomics layer, arch, compiler)."""
    import cffi

    return {
        "version": __version__,
        "atomics": ffi.string(lib.lf_build_atomics()).decode(),
        "arch": ffi.string(lib.lf_build_arch()).decode(),
        "compiler": ffi.string(lib.lf_build_compiler()).decode(),
        "cffi": str(cffi.__version__),
    }
