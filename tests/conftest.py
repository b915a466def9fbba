"""Shared fixtures: multiprocessing start methods and a /dev/shm leak check."""

import multiprocessing as mp
import os

import pytest

SHM_DIR = "/dev/shm"
LONG = os.environ.get("LOCKFREE_LONG") == "1"


def _segments():
    try:
        return {n for n in os.listdir(SHM_DIR) if n.startswith("lf_")}
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return set()


@pytest.fixture(scope="session", autouse=True)
def no_leaked_segments():
    """Fail the session if the suite leaves lockfree segments in /dev/shm."""
    before = _segments()
    yield
    leaked = _segments() - before
    for name in leaked:  # clean up so one failure does not poison the next run
        os.unlink(os.path.join(SHM_DIR, name))
    assert not leaked, f"test suite leaked shared-memory segments: {leaked}"


@pytest.fixture(params=["fork", "spawn"])
def mp_context(request):
    """A multiprocessing context for each start method the platform has."""
    if request.param not in mp.get_all_start_methods():
        pytest.skip(f"start method {request.param} not available")
    return mp.get_context(request.param)
