"""KfifoQueue's consumer claim (issue #16, point 8, without a Python lock).

The C calls that leave their result in the handle (rec_get, rec_get_wait,
rec_get_many, rec_get_many_wait, rec_parts) return with the consumer's
in-use word still claimed; KfifoQueue copies the result, then gives the
word back (``_release[0] = 0``; ``lf_kfifo_unhold`` on an exception).  So a
second thread is refused from the C call until the copy out of the scratch
buffer is done, and a consumer object can still be handed from one thread
to another.
"""

import queue
import threading

import pytest

from lockfree import Kfifo
from lockfree._ffi import lib
from lockfree.errors import ConcurrentUseError

CONSUMER = lib.LF_KFIFO_ROLE_CONSUMER


def _in_thread(fn):
    out = []

    def run():
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out.append(exc)
    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert not t.is_alive()
    return out[0]


@pytest.mark.parametrize("call", ["rec_get", "rec_get_wait", "rec_get_many",
                                  "rec_get_many_wait", "rec_parts"])
def test_a_call_leaving_its_result_in_the_handle_keeps_the_claim(call):
    """Mutant checked: LF_KFIFO_CALL_KEEP releasing like LF_KFIFO_CALL
    (the other thread's get_message then succeeds: this test fails)."""
    q = Kfifo(256, "records")
    q.put_message(b"one")
    q.put_message(b"two")
    fn = getattr(lib, "lf_kfifo_" + call)
    args = (q._h, 1) if "many" in call else (q._h,)
    assert fn(*args) >= 0          # this thread now holds the claim
    got = _in_thread(lambda: q.get_message(timeout=1))
    assert isinstance(got, ConcurrentUseError)
    q._release[0] = 0              # what KfifoQueue does after its copy
    assert _in_thread(lambda: q.get_message(timeout=1)) in (b"one", b"two")
    q.close()


def test_a_failed_call_does_not_keep_the_claim():
    q = Kfifo(64, "records")
    assert lib.lf_kfifo_rec_get(q._h) == lib.LF_EAGAIN      # empty
    q.put_message(b"x")
    assert _in_thread(lambda: q.get_message(timeout=1)) == b"x"
    q.close()


@pytest.mark.parametrize("how", ["get_message", "get_nowait", "timeout",
                                 "get_many", "big", "views"])
def test_every_consumer_path_gives_the_claim_back(how):
    """After each way of taking a message another thread can take the
    next one (the claim was given back).  Mutant checked: removing the
    release from get_message/get_many/_get_big fails the matching case."""
    q = Kfifo(1 << 20, "records")       # scratch 256 KiB: 300 KB is big
    msg = b"m" * (300_000 if how == "big" else 10)
    for _ in range(2):
        q.put_message(msg)
    if how == "get_message":
        assert q.get_message() == msg
    elif how == "get_nowait":
        assert q.get_nowait() == msg
    elif how == "timeout":
        assert q.get_message(timeout=1) == msg
    elif how == "get_many":
        assert q.get_many(1) == [msg]
    elif how == "big":
        assert q.get_message() == msg
    else:
        views = q.message_views()
        assert b"".join(views) == msg
        del views
        assert q.skip_message() == len(msg)
    assert _in_thread(lambda: q.get_message(timeout=1)) == msg
    q.close()


def test_an_exception_after_the_call_gives_the_claim_back():
    """The claim is given back by lf_kfifo_unhold when the copy fails; the
    message is gone (consumed), the object stays usable from any thread."""
    q = Kfifo(256, "records")
    q.put_message(b"lost")
    q.put_message(b"next")

    class Boom:
        def __getitem__(self, key):
            raise MemoryError("copy failed")
    out = q._out
    q._out = Boom()
    with pytest.raises(MemoryError):
        q.get_message()
    q._out = out
    assert _in_thread(lambda: q.get_message(timeout=1)) == b"next"
    q.close()


def test_refused_consumer_does_not_release_the_holders_claim():
    """A call refused with ConcurrentUseError must not give back the claim
    of the thread that holds it (lf_kfifo_unhold checks the owner)."""
    q = Kfifo(256, "records")
    q.put_message(b"a")
    q.put_message(b"b")
    assert lib.lf_kfifo_rec_get(q._h) == 1           # held here
    for _ in range(2):
        got = _in_thread(lambda: q.get_message(block=False))
        assert isinstance(got, ConcurrentUseError)
    q._release[0] = 0
    assert _in_thread(lambda: q.get_nowait()) == b"b"
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.close()
