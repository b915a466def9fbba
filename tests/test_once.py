"""Once / call_once: exactly one initialiser, across threads and processes."""

import os
import pickle
import random
import signal
import threading
import time

import pytest

from lockfree import AtomicInt, Once, call_once
from lockfree.demos import once as once_demo


def test_runs_once_and_reports_who_ran():
    calls = []
    with Once() as once:
        assert not once.done
        assert once.call_once(calls.append, 1) is True
        assert once.call_once(calls.append, 2) is False
        assert call_once(once, calls.append, 3) is False
        assert once.done and calls == [1]
        assert "done" in repr(once)
    assert "closed" in repr(once)


def test_exception_leaves_it_undone_for_the_next_caller():
    def boom():
        raise KeyError("x")

    with Once() as once:
        with pytest.raises(KeyError):
            once.call_once(boom)
        assert not once.done
        assert once.call_once(lambda: None) is True
        assert once.done


def test_threads_race_many_fresh_onces():
    for _ in range(50):
        with Once() as once, AtomicInt() as runs:
            start = threading.Barrier(4)
            winners = AtomicInt()

            def worker(once=once, runs=runs, start=start, winners=winners):
                start.wait()
                if once.call_once(runs.fetch_add, 1):
                    winners.fetch_add(1)

            ts = [threading.Thread(target=worker) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert runs.load() == 1 and winners.load() == 1


def _slow_init(runs):
    runs.fetch_add(1)
    time.sleep(0.05)  # the others arrive while it runs: they must wait


def _proc_worker(once, runs, start):
    start.wait()
    once.call_once(_slow_init, runs)


def test_processes_race_on_a_shared_once(mp_context):
    for _ in range(3):
        with Once(shared=True) as once, AtomicInt(shared=True) as runs:
            start = mp_context.Barrier(3)
            procs = [mp_context.Process(target=_proc_worker,
                                        args=(once, runs, start))
                     for _ in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(60)
                assert p.exitcode == 0
            assert runs.load() == 1 and once.done


def test_private_once_refuses_to_pickle():
    with Once() as once, pytest.raises(TypeError, match="shared=True"):
        pickle.dumps(once)


def test_demo_scripted_interleaving_is_deterministic():
    lines = []
    assert once_demo.scripted(second_check=False, say=lines.append) == 2
    assert once_demo.scripted(second_check=True, say=lines.append) == 1
    assert once_demo.race(True, 20) == 0


# -- a process killed inside the initialiser ----------------------------------

LONG = os.environ.get("LOCKFREE_LONG") == "1"


def _init_spin(started, runs, spin_s):
    runs.fetch_add(1)
    started.store(1)
    end = time.monotonic() + spin_s
    while time.monotonic() < end:
        pass


def test_killed_initialiser_is_run_again_by_the_next_caller():
    """SIGKILL the process running the initialiser (inside it, or while it
    takes or releases the lock): the next caller never gets stuck or an
    error; it runs the initialiser again unless the killed one completed
    (a robust mutex's EOWNERDEAD path)."""
    rng = random.Random("once-kill")
    runs_n = 200 if LONG else 20
    reran = skipped = 0
    for _ in range(runs_n):
        with Once(shared=True) as once, \
                AtomicInt(shared=True) as started, \
                AtomicInt(shared=True) as runs:
            spin = rng.uniform(0, 0.01)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - killed, or exits at once
                try:
                    once.call_once(_init_spin, started, runs, spin)
                finally:
                    os._exit(0)
            try:
                deadline = time.monotonic() + 30
                while not started.load() and time.monotonic() < deadline:
                    time.sleep(0.0002)
                time.sleep(rng.uniform(0, 0.008))
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            done_before = once.done
            ran = once.call_once(lambda: runs.fetch_add(1))  # never raises
            assert once.done
            assert ran is (not done_before)
            assert runs.load() == 1 + ran
            reran += ran
            skipped += not ran
            # And it stays usable: fast path from now on.
            assert once.call_once(lambda: 1 / 0) is False
    print(f"once kill: {runs_n} runs, re-ran {reran}, already done "
          f"{skipped}, stuck 0")
    assert reran > 0


def test_dead_thread_initialiser_is_run_again():
    """The same when the initialiser's thread ends without returning (here:
    it exits holding the lock, which a dying thread does)."""
    with Once() as once:
        lock = once._lock
        t = threading.Thread(target=lock.acquire)  # an initialiser that died
        t.start()
        t.join()
        calls = []
        assert once.call_once(calls.append, 1) is True
        assert calls == [1] and once.done


def test_typed_api_and_real_signature():
    import inspect

    once = Once()
    params = inspect.signature(once.call_once).parameters
    assert list(params) == ["fn", "args", "kwargs"]
    assert params["fn"].kind is params["fn"].POSITIONAL_ONLY
    assert inspect.signature(Once.call_once).return_annotation in (
        "bool", bool)
    assert "call_once" not in vars(once) and Once.call_once.__doc__
    got = []
    # fn is positional-only: a keyword argument named fn reaches fn
    assert once.call_once(lambda **kw: got.append(kw), fn=1, once=2)
    assert got == [{"fn": 1, "once": 2}]
    assert inspect.signature(call_once).parameters["fn"].kind is \
        params["fn"].POSITIONAL_ONLY
    once.close()


def test_closed_once_raises_value_error():
    once = Once()
    saved = once.call_once
    once.close()
    assert once.closed
    for fn in (saved, once.call_once):
        with pytest.raises(ValueError, match="closed Once"):
            fn(lambda: None)
    with pytest.raises(ValueError, match="closed Once"):
        once.done  # noqa: B018
    with pytest.raises(ValueError, match="closed Once"), once:
        pass
    once.close()  # idempotent
    assert repr(once) == "<Once closed>"
