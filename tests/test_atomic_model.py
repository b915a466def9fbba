"""AtomicInt against a model of the counter: random operation sequences
(hypothesis) sequentially, then exact totals under real contention of
threads and processes."""

import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lockfree import AtomicInt

from .conftest import LONG

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
int64 = st.integers(INT64_MIN, INT64_MAX)


def wrap(v):
    """What C int64_t arithmetic gives on two's-complement hardware."""
    return (v - INT64_MIN) % 2**64 + INT64_MIN


# -- hypothesis: operations against a Python model ----------------------------

class AtomicModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.a = AtomicInt()
        self.model = 0

    @rule(v=int64)
    def store(self, v):
        self.a.store(v)
        self.model = v

    @rule(v=int64)
    def exchange(self, v):
        assert self.a.exchange(v) == self.model
        self.model = v

    @rule(v=int64)
    def fetch_add(self, v):
        assert self.a.fetch_add(v) == self.model
        self.model = wrap(self.model + v)

    @rule(v=int64)
    def fetch_sub(self, v):
        assert self.a.fetch_sub(v) == self.model
        self.model = wrap(self.model - v)

    @rule(v=int64)
    def add_fetch(self, v):
        self.model = wrap(self.model + v)
        assert self.a.add_fetch(v) == self.model

    @rule(v=int64)
    def sub_fetch(self, v):
        self.model = wrap(self.model - v)
        assert self.a.sub_fetch(v) == self.model

    @rule(hit=st.booleans(), expected=int64, desired=int64)
    def compare_exchange(self, hit, expected, desired):
        if hit:
            expected = self.model
        ok, seen = self.a.compare_exchange(expected, desired)
        assert seen == self.model
        assert ok == (expected == self.model)
        if ok:
            self.model = desired

    @rule(nr=st.integers(0, 63))
    def test_and_set_bit(self, nr):
        assert self.a.test_and_set_bit(nr) == bool(self.model >> nr & 1)
        self.model = wrap(self.model | 1 << nr)

    @rule(nr=st.integers(0, 63))
    def test_and_clear_bit(self, nr):
        assert self.a.test_and_clear_bit(nr) == bool(self.model >> nr & 1)
        self.model = wrap(self.model & ~(1 << nr))

    @rule(k=st.integers(-3, 3))
    def update(self, k):
        new, retries = self.a.update(lambda x: wrap(x * k + 1))
        self.model = wrap(self.model * k + 1)
        assert (new, retries) == (self.model, 0)

    @invariant()
    def load_matches(self):
        assert self.a.load() == self.model

    def teardown(self):
        self.a.close()


TestAtomicModel = AtomicModel.TestCase
TestAtomicModel.settings = settings(max_examples=200 if not LONG else 2000,
                                    stateful_step_count=40, deadline=None)


@given(st.lists(int64, max_size=50))
def test_fetch_add_sequence_wraps(values):
    a = AtomicInt()
    total = 0
    for v in values:
        assert a.fetch_add(v) == total
        total = wrap(total + v)
    assert a.load() == total


# -- real contention ----------------------------------------------------------

N_ADD = 10**6 if not LONG else 10**7
N_CAS = 10**5 if not LONG else 10**6


def _hammer_fetch_add(a, start, n):
    start.wait()
    f = a.fetch_add
    for _ in range(n):
        f(1)


def _hammer_update(a, start, n, out):
    start.wait()
    retries = 0
    for _ in range(n):
        retries += a.update(lambda x: x + 1)[1]
    out.fetch_add(retries)


def test_two_processes_fetch_add_exact(mp_context):
    with AtomicInt(shared=True) as a:
        start = mp_context.Barrier(2)
        procs = [mp_context.Process(target=_hammer_fetch_add,
                                    args=(a, start, N_ADD))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
            assert p.exitcode == 0
        assert a.load() == 2 * N_ADD


def test_two_processes_cas_update_retries_and_exact(mp_context):
    with AtomicInt(shared=True) as a, AtomicInt(shared=True) as retries:
        start = mp_context.Barrier(2)
        procs = [mp_context.Process(target=_hammer_update,
                                    args=(a, start, N_CAS, retries))
                 for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
            assert p.exitcode == 0
        assert a.load() == 2 * N_CAS
        print(f"2 processes x {N_CAS} CAS updates: {retries.load()} retries")
        assert retries.load() > 0


def test_threads_fetch_add_and_cas_update_exact():
    a = AtomicInt()
    retries = AtomicInt()
    n_threads, n = 4, N_CAS
    start = threading.Barrier(n_threads * 2)
    threads = [threading.Thread(target=_hammer_fetch_add, args=(a, start, n))
               for _ in range(n_threads)]
    b = AtomicInt()
    threads += [threading.Thread(target=_hammer_update,
                                 args=(b, start, n, retries))
                for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.load() == n_threads * n
    assert b.load() == n_threads * n
    print(f"{n_threads} threads x {n} CAS updates: {retries.load()} retries")
    assert retries.load() > 0
