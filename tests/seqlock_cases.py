"""Shared by the seqlock tests (test_seqlock*.py): makers, values, a live
writer thread, a fresh-interpreter runner."""

import os
import struct
import subprocess
import sys
import textwrap
import threading

from lockfree import SeqBytes, SeqRecord, ffi, lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAKERS = {
    "record": lambda **kw: SeqRecord("qqqd", **kw),
    "record-latch": lambda **kw: SeqRecord("qqqd", latch=True, **kw),
    "bytes": lambda **kw: SeqBytes(32, **kw),
    "bytes-latch": lambda **kw: SeqBytes(32, latch=True, **kw),
}


def value(obj, k):
    """A value for obj whose fields all derive from k."""
    if isinstance(obj, SeqRecord):
        return (k, k, k, float(k))
    return struct.pack("4q", k, k, k, k)


def put(obj, k):
    v = value(obj, k)
    obj.write(*v) if isinstance(obj, SeqRecord) else obj.write(v)


class LiveWriter(threading.Thread):
    """A thread that takes the writer lock and starts a classic write, then
    stays alive until end() finishes the write: what a slow live writer (or
    a live peer that scribbled the counter) looks like to readers."""

    def __init__(self, obj):
        super().__init__(daemon=True)
        self.obj, self.holding, self.done = obj, threading.Event(), \
            threading.Event()
        self.start()
        assert self.holding.wait(10)

    def run(self):
        st = self.obj._state
        assert lib.lf_spin_try_acquire(ffi.addressof(st, "lock"))
        st.seq |= 1
        self.holding.set()
        self.done.wait()
        st.seq += 1
        assert lib.lf_spin_release(ffi.addressof(st, "lock")) == 0

    def end(self):
        self.done.set()
        self.join(10)



def run_python(code, timeout=60):
    """Run code in a fresh interpreter: (returncode, stdout + stderr); a
    negative returncode is the signal that killed it."""
    cp = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                        capture_output=True, text=True, timeout=timeout,
                        cwd=ROOT)
    return cp.returncode, cp.stdout + cp.stderr

