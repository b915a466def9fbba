"""What a victim of the hostile-peer suite does with each primitive: one
random operation (a *step*) at a time, each call checked.

Every call goes through :meth:`Ctx.call` with the exceptions that call may
raise on a segment another process scribbled over: ``CorruptStateError``
always (the one "shared state is corrupt" error), plus what the method
documents for a state a live peer could also have made (a dead owner, a
timeout, an empty or full ring...).  Anything else is *unexpected* and fails
the test, as does a result no valid state could give (a read longer than
the value, a message longer than the ring).
"""

from __future__ import annotations

import queue
import traceback

from lockfree import (
    CorruptStateError,
    OwnerDiedError,
    PeerDied,
    RcuCell,
    RcuDomain,
    RcuError,
    RoleError,
    SeqRecord,
)


class Exact:
    """An allowed exception matched by exact type (not its subclasses)."""

    def __init__(self, cls):
        self.cls = cls


def _allowed(exc, allowed) -> bool:
    for a in allowed:
        if isinstance(a, Exact):
            if type(exc) is a.cls:
                return True
        elif isinstance(exc, a):
            return True
    return False


C = (CorruptStateError,)                 # state reads: corrupt or fine
LOCK = C + (OwnerDiedError,)             # acquire; then recover()
RELEASE = C + (Exact(RuntimeError),)     # "does not hold": owner scribbled
# seqlock read/write/recover: a live-looking writer (a scribbled lock word
# naming a live process) is waited for until the timeout the victim passes.
SEQ = C + (OwnerDiedError, TimeoutError)
RCU = C + (RcuError,)                    # read sections, registration
RCU_WAIT = RCU + (TimeoutError,)         # synchronize/barrier/publish
# Kfifo: a scribbled owner pid reads as a dead peer or another live role; a
# scribbled closed flag ends the stream (EOFError) or refuses puts (the
# documented ValueError today, BrokenPipeError in the core error set).
PUT = C + (queue.Full, PeerDied, RoleError, BrokenPipeError,
           Exact(ValueError))
GET = C + (queue.Empty, EOFError, PeerDied, RoleError)
ATTACH = (ValueError,)                   # attach: any documented refusal
FAILED = object()                        # Ctx.call's result on an exception
MAX_REPORTED = 5                         # unexpected errors kept per run


class Ctx:
    """Counts and checks a victim's calls."""

    def __init__(self, rng):
        self.rng = rng
        self.phase = "warm"  # "run" once the scribbling may have begun
        self.ok = 0
        self.errors = {}
        self.unexpected = []
        self.n_unexpected = 0
        self.last_exc = None

    def bad(self, text):
        self.n_unexpected += 1
        if len(self.unexpected) < MAX_REPORTED:
            self.unexpected.append(text)

    def call(self, what, fn, allowed, *args, check=None, **kw):
        """``fn(*args, **kw)``; FAILED (and counted) on an allowed error."""
        self.last_exc = None
        try:
            r = fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - classified right here
            self.last_exc = exc
            if _allowed(exc, allowed):
                key = f"{what}:{type(exc).__name__}"
                self.errors[key] = self.errors.get(key, 0) + 1
            else:
                self.bad(f"{what} raised {type(exc).__name__}: {exc}\n"
                         + "".join(traceback.format_exc(limit=6)))
            return FAILED
        if check is not None:
            msg = check(r)
            if msg:
                self.bad(f"{what} returned {r!r:.200}: {msg}")
                return FAILED
        self.ok += 1
        return r


def _int64(v):
    if type(v) is not int or not -2**63 <= v < 2**63:
        return "not an int64"
    return None


def _bool(v):
    return None if type(v) is bool else "not a bool"


def _upto(n):
    return lambda v: None if 0 <= len(v) <= n else f"longer than {n}"


def _count(n):
    return lambda v: None if type(v) is int and 0 <= v <= n else \
        f"not in 0..{n}"


def _is(n):
    return lambda v: None if len(v) == n else f"length is not {n}"


# -- AtomicInt ----------------------------------------------------------------

def atomic_step(a, c):
    r = c.rng
    v = r.randrange(-2**63, 2**63)
    op = r.randrange(9)
    if op == 0:
        c.call("load", a.load, C, check=_int64)
    elif op == 1:
        c.call("store", a.store, C, v)
    elif op == 2:
        c.call("fetch_add", a.fetch_add, C, r.choice((1, -1, v)),
               check=_int64)
    elif op == 3:
        c.call("sub_fetch", a.sub_fetch, C, r.choice((1, v)), check=_int64)
    elif op == 4:
        c.call("exchange", a.exchange, C, v, check=_int64)
    elif op == 5:
        c.call("cmpxchg", a.cmpxchg, C, a.load(), v, check=_int64)
    elif op == 6:
        c.call("compare_exchange", a.compare_exchange, C, v, v ^ 1,
               check=lambda t: None if t[0] in (True, False) and
               _int64(t[1]) is None else "bad tuple")
    elif op == 7:
        c.call("update", a.update, C, lambda x: x ^ 0x5a5a)
    else:
        nr = r.randrange(64)
        fn = r.choice((a.test_and_set_bit, a.test_and_clear_bit,
                       a.test_bit))
        c.call(fn.__name__, fn, C, nr, check=_bool)


# -- locks --------------------------------------------------------------------

def _after_owner_died(lock, c, release):
    """A dead owner was reported: recover, and release if that took it."""
    if isinstance(c.last_exc, OwnerDiedError):
        got = c.call("recover", lock.recover, C, check=_bool)
        if got is True:
            c.call("release", release, RELEASE)


def lock_step(lock, c, acquire, release):
    r = c.rng
    op = r.randrange(6)
    if op <= 2:  # never a blocking acquire without a timeout
        if op == 0:
            got = c.call("acquire", acquire, LOCK, False, check=_bool)
        else:
            got = c.call("acquire", acquire, LOCK, timeout=0.01 * op,
                         check=_bool)
        if got is True:
            if r.random() < 0.3:
                c.call("locked", lock.locked, C, check=_bool)
            c.call("release", release, RELEASE)
        elif got is FAILED:
            _after_owner_died(lock, c, lock.release)
    elif op == 3:
        c.call("locked", lock.locked, C, check=_bool)
    elif op == 4:
        c.call("owner", lambda: lock.owner, C)
    else:
        c.call("stats", lambda: lock.stats, C)


def _lock_steps(read=False):
    def step(lock, c):
        if read:
            lock_step(lock, c, lock.acquire_read, lock.release_read)
            if c.rng.random() < 0.1:
                c.call("readers", lambda: lock.readers, C)
        else:
            lock_step(lock, c, lock.acquire, lock.release)
    return step


# -- Once ---------------------------------------------------------------------

class Boom(Exception):
    """An initialiser's own failure (call_once propagates it)."""


def once_step(once, c):
    r = c.rng
    if r.random() < 0.2:
        c.call("done", lambda: once.done, C, check=_bool)
        return

    def init():
        if r.random() < 0.7:  # fail mostly, so later calls take the lock
            raise Boom()

    got = c.call("call_once", once.call_once, C + (OwnerDiedError, Boom),
                 init)
    if got is FAILED and isinstance(c.last_exc, OwnerDiedError) and \
            hasattr(once, "recover"):
        c.call("recover", once.recover, C)


# -- seqlocks -----------------------------------------------------------------

FMT = "qd16sI"


def _rec(r):
    return (r.randrange(-2**63, 2**63), r.random(), r.randbytes(16),
            r.randrange(2**32))


SEQ_WAIT = 0.05  # seconds a seqlock call may wait for a live-looking writer


def seq_open(s, role, rng):
    """The value's size, read once before anyone scribbles."""
    return s, s.size


def seq_step(st, c):
    s, size = st
    r = c.rng
    record = isinstance(s, SeqRecord)
    new = _rec(r) if record else r.randbytes(size)
    op = r.randrange(8)
    if op <= 2:
        c.call("read", s.read, SEQ, timeout=SEQ_WAIT,
               check=_is(4 if record else size))
    elif op == 3 and not record:
        buf = bytearray(size + 8)
        c.call("read_into", s.read_into, SEQ, buf, timeout=SEQ_WAIT,
               check=lambda v: None if v == size else "not size")
    elif op <= 5:
        c.call("write", s.write, SEQ, *(new if record else (new,)),
               timeout=SEQ_WAIT)
    elif op == 6:
        c.call("sequence", lambda: s.sequence, C, check=_count(2**64))
    else:
        c.call("writer", lambda: s.writer, C)
        c.call("last_retries", lambda: s.last_retries, C)
    if isinstance(c.last_exc, OwnerDiedError):
        c.call("recover", s.recover, SEQ, *(new if record else (new,)),
               check=_bool)


# -- RCU ----------------------------------------------------------------------

def rcu_open(dom, role, rng):
    return dom, RcuCell(0, domain=dom)


def rcu_step(st, c):
    dom, cell = st
    r = c.rng
    op = r.randrange(10)
    if op <= 2:
        def section():
            with cell.read() as v:
                if r.random() < 0.3:
                    with dom.read():
                        cell.get()
                return v
        c.call("cell.read", section, RCU, check=lambda v: None
               if type(v) is int else "not the published int")
    elif op == 3:
        c.call("update", cell.update, RCU, lambda x: x + 1)
    elif op == 4:
        c.call("synchronize", cell.synchronize, RCU_WAIT, timeout=0.02)
    elif op == 5:
        old = cell.publish(r.randrange(1000))
        c.call("retire", cell.retire, RCU, old, lambda o: None)
    elif op == 6:
        c.call("barrier", dom.barrier, RCU_WAIT, timeout=0.02)
    elif op == 7:
        cookie = c.call("start_poll", dom.start_poll, C)
        if cookie is not FAILED:
            c.call("poll_state", dom.poll_state, C, cookie, check=_bool)
    elif op == 8:
        c.call("stats", lambda: dom.stats, C)
    else:
        fn = r.choice((dom.register_thread, dom.unregister_thread))
        c.call(fn.__name__, fn, RCU)


def rcu_close(dom, c, leaked):
    """Close an RCU object; a domain whose callbacks cannot run (a grace
    period blocked by a slot that looks like a live reader) is kept, as
    its ``close()`` would wait for them (documented)."""
    if isinstance(dom, RcuDomain) and \
            c.call("barrier", dom.barrier, RCU_WAIT, timeout=0.5) is FAILED:
        leaked.append(dom)
        return
    c.call("close", dom.close, RCU)


def rcubuf_step(b, c):
    r = c.rng
    op = r.randrange(8)
    if op <= 3:
        def section():
            with b.read() as view:
                n = len(view)
                bytes(view[:8]), bytes(view[-8:])
                return n
        c.call("read", section, RCU, check=_count(b.size))
    elif op <= 5:
        data = r.randbytes(r.randrange(b.size + 1))
        c.call("publish", b.publish, RCU_WAIT, data, timeout=0.02,
               check=_count(2**64))
    elif op == 6:
        c.call("synchronize", b.synchronize, RCU_WAIT, timeout=0.02)
    else:
        c.call("version", lambda: b.version, C, check=_count(2**64))
        c.call("stats", lambda: b.stats, C)


# -- Kfifo --------------------------------------------------------------------

def kfifo_step(q, c, role):
    r = c.rng
    op = r.randrange(8)
    if op == 0:
        c.call("len", len, C, q, check=lambda v: None if 0 <= v <=
               q.capacity else "len beyond capacity")
        return
    if op == 1:
        c.call("free", lambda: q.free, C, check=_count(q.capacity))
        return
    cap = q.capacity
    if q.mode == "bytes":
        n = r.randrange(1, cap + 1)
        if role == "producer":
            data = r.randbytes(n)
            if op <= 4:
                c.call("put", q.put, PUT, data, False, check=_count(n))
            else:
                c.call("put", q.put, PUT, data, True, 0.01, check=_count(n))
        elif op == 2:
            c.call("get", q.get, GET, n, True, 0.01, check=_upto(n))
        elif op == 3:
            c.call("get", q.get, GET, n, False, check=_upto(n))
        elif op == 4:
            buf = bytearray(n)
            c.call("get_into", q.get_into, GET, buf, False,
                   check=_count(n))
        elif op == 5:
            c.call("peek", q.peek, GET, n, check=_upto(n))
        elif op == 6:
            c.call("skip", q.skip, GET, n, check=_count(n))
        else:
            def view():
                v = q.linear_view()
                k = len(v)
                v.release()
                q.skip(k)
                return k
            c.call("linear_view", view, GET, check=_count(cap))
        return
    most = q.max_message
    msg = r.randbytes(r.randrange(min(most, 200) + 1))
    if role == "producer":
        if op <= 4:
            c.call("put_message", q.put_message, PUT, msg, True, 0.01)
        elif op == 5 and r.randrange(2):
            c.call("put_message", q.put_message, PUT, msg, False)
        elif op == 5:
            def reserve():
                with q.reserve(len(msg), timeout=0.01) as buf:
                    buf[:] = msg
                return len(msg)
            c.call("reserve", reserve, PUT, check=_count(most))
        else:
            items = [msg] * r.randrange(1, 6)
            c.call("put_many", q.put_many, PUT, items, True, 0.01,
                   check=_count(len(items)))
    elif op == 2:
        c.call("get_message", q.get_message, GET, True, 0.01,
               check=_upto(most))
    elif op == 3:
        buf = bytearray(most)
        c.call("get_message_into", q.get_message_into, GET, buf, False,
               check=_count(most))
    elif op == 4:
        c.call("peek_len", q.peek_len, GET, check=lambda v: None
               if v is None or 0 <= v <= most else "beyond max_message")
    elif op == 5:
        c.call("skip_message", q.skip_message, GET, check=_count(most))
    elif op == 6 and r.randrange(2):
        def receive():
            with q.receive(timeout=0.01) as view:
                return len(view)
        c.call("receive", receive, GET, check=_count(most))
    elif op == 6:
        def views():
            vs = q.message_views()
            n = sum(len(v) for v in vs)
            for v in vs:
                v.release()
            return n
        c.call("message_views", views, GET, check=lambda n: None
               if 0 <= n <= most else "beyond max_message")
    else:
        c.call("get_many", q.get_many, GET, 16, True, 0.01,
               check=lambda v: None if 1 <= len(v) <= 16 and
               all(len(m) <= most for m in v) else "bad batch")
