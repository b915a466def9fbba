"""Shared fixtures: multiprocessing start methods and a /dev/shm leak check."""

import multiprocessing as mp
import os

import pytest

SHM_DIR = "/dev/shm"
LONG = os.environ.get("LOCKFREE_LONG") == "1"


# Segments this session creates carry its pid, so the leak check neither
# blames nor deletes the segments of other test runs on the same machine.
# Set in the environment so that worker processes (spawn or fork) and the
# CLI subprocesses the tests start use it too.
SESSION_PREFIX = f"lf_t{os.getpid()}_"
os.environ["LOCKFREE_SHM_PREFIX"] = SESSION_PREFIX


def _segments():
    try:
        return {n for n in os.listdir(SHM_DIR)
                if n.startswith(SESSION_PREFIX)}
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return set()


@pytest.fixture(autouse=True)
def no_leaked_segments():
    """Fail a test that leaves this session's segments in /dev/shm.

    Only segments carrying the session prefix count (auto-named ones, in
    this process and its children, and tests that pick names use
    ``SESSION_PREFIX``), so other test runs are neither blamed nor touched.
    """
    before = _segments()
    yield
    leaked = _segments() - before
    for name in leaked:  # clean up so one failure does not poison the rest
        os.unlink(os.path.join(SHM_DIR, name))
    assert not leaked, f"test leaked shared-memory segments: {leaked}"


@pytest.fixture(params=["fork", "spawn"])
def mp_context(request):
    """A multiprocessing context for each start method the platform has."""
    if request.param not in mp.get_all_start_methods():
        pytest.skip(f"start method {request.param} not available")
    return mp.get_context(request.param)


@pytest.fixture
def domain():
    """A private RCU domain with 16 reader slots, closed afterwards (the
    RCU tests share it; imported here so that loading this file needs no
    lockfree)."""
    from lockfree import RcuDomain

    d = RcuDomain(16)
    yield d
    d.close()
