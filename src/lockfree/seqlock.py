"""Seqlocks: consistent snapshots of a value without blocking its writer.

The Linux kernel's ``seqlock_t``: a sequence counter plus a writer lock.
Readers copy the value optimistically and retry if a write overlapped their
copy; they never take a lock, so they never block the writer, and any number
of them (threads or processes) read in parallel.  Writers take the writer
lock (a :class:`~lockfree.SpinLock`, across processes too), so one writes
at a time.

* :class:`SeqRecord` ``(fmt)``: a record described by a :mod:`struct`
  format; ``read()`` returns a tuple snapshot, ``write(*values)`` replaces
  it.
* :class:`SeqBytes` ``(size)``: ``size`` raw bytes; ``read()`` returns
  ``bytes``, ``read_into(buffer)`` fills yours, ``write(bytes_like)``.

``latch=True`` keeps two copies (the kernel's ``raw_write_seqcount_latch``):
readers copy the one the writer is not writing and never wait for a write in
progress.  Values only: formats with pointers (``P``) are refused.

Each read is one C call that copies a consistent snapshot into a scratch
buffer of this object (in this process), then one ``unpack_from``.  Threads
may share an object: the first thread that reads owns that buffer; the
others read through buffers of their own (one more C call and a
thread-local lookup per read).  See docs/seqlock.md.

The shared state is input from other processes: each object reads it
through a private handle whose geometry was checked once, at creation or
attach (``CorruptStateError``, a ``ValueError``, names a bad field).  A
process scribbling over the state later can make reads return wrong bytes
or raise ``CorruptStateError``, never touch memory outside the region.
``read``, ``read_into`` and ``write`` take ``timeout=`` (seconds; then
``TimeoutError``); without one they wait in slices, so Ctrl-C works.
``read`` and ``write`` look at (and check) their timeout only when they
have to wait: their uncontended path is one C call that never waits.

Modules: this one is the public import path; the classes live in
``lockfree.seq_record`` and ``lockfree.seq_bytes``, over what they share
(handles, slow paths) in ``lockfree._seq_core``.
"""

from __future__ import annotations

from .errors import CorruptStateError, OwnerDiedError
from .seq_bytes import SeqBytes
from .seq_record import SeqRecord

__all__ = ["SeqRecord", "SeqBytes", "OwnerDiedError", "CorruptStateError"]
