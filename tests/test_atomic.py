"""AtomicInt: semantics, int64 wrap-around, bad input, the memory it
touches, and the class as users, IDEs and type checkers see it.  Against a
Python model and under real contention: test_atomic_model.py."""

import inspect
import operator
import os
import struct
import threading

import pytest
from hypothesis import strategies as st

from lockfree import AtomicInt
from lockfree.atomic import UpdateResult
from lockfree.region import HEADER

from .conftest import LONG

INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
int64 = st.integers(INT64_MIN, INT64_MAX)


def wrap(v):
    """What C int64_t arithmetic gives on two's-complement hardware."""
    return (v - INT64_MIN) % 2**64 + INT64_MIN


# -- semantics ---------------------------------------------------------------

def test_default_is_zero():
    assert AtomicInt().load() == 0


def test_load_store_exchange():
    a = AtomicInt(5)
    assert a.load() == 5
    assert a.store(7) is None
    assert a.load() == 7
    assert a.exchange(9) == 7
    assert a.load() == 9
    a.value = -3
    assert a.value == -3 and int(a) == -3


def test_fetch_and_fetch_variants():
    a = AtomicInt(10)
    assert a.fetch_add(5) == 10 and a.load() == 15
    assert a.fetch_sub(3) == 15 and a.load() == 12
    assert a.add_fetch(8) == 20 and a.load() == 20
    assert a.sub_fetch(25) == -5 and a.load() == -5


def test_compare_exchange_success_and_failure():
    a = AtomicInt(1)
    assert a.compare_exchange(1, 2) == (True, 1)
    assert a.load() == 2
    assert a.compare_exchange(1, 3) == (False, 2)
    assert a.load() == 2
    assert a.cmpxchg(2, 4) == 2 and a.load() == 4
    assert a.cmpxchg(2, 5) == 4 and a.load() == 4


def test_compare_exchange_under_contention_is_consistent():
    """Threads increment with compare_exchange loops (the total is exact)
    while another flips a second integer between two values: a failure
    never reports the expected value as observed, a success always does."""
    n = 20_000 if LONG else 4_000
    a, flip = AtomicInt(0), AtomicInt(0)
    bad, fails, stop = [], [0], threading.Event()

    def incr():
        cur = a.load()
        for _ in range(n):
            while True:
                ok, seen = a.compare_exchange(cur, cur + 1)
                if ok:
                    if seen != cur:
                        bad.append(("success", cur, seen))
                    cur += 1
                    break
                if seen == cur:
                    bad.append(("failure", cur, seen))
                fails[0] += 1
                cur = seen

    def flipper():
        while not stop.is_set():
            flip.compare_exchange(0, 1)
            flip.compare_exchange(1, 0)

    def watcher():
        while not stop.is_set():
            ok, seen = flip.compare_exchange(0, 0)  # hits and misses
            if ok != (seen == 0):
                bad.append(("flip", ok, seen))
    ts = [threading.Thread(target=incr) for _ in range(2)]
    others = [threading.Thread(target=flipper),
              threading.Thread(target=watcher)]
    for t in ts + others:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    for t in others:
        t.join()
    assert a.load() == 2 * n
    assert not bad, bad[:5]
    print(f"compare_exchange failures while incrementing: {fails[0]}")


def test_update_returns_new_value_and_zero_retries_uncontended():
    a = AtomicInt(3)
    assert a.update(lambda x: x * 7) == (21, 0)
    assert a.load() == 21


def test_update_counts_retries_when_value_moves_underneath():
    a = AtomicInt(0)
    calls = []

    def fn(old):
        calls.append(old)
        if len(calls) < 3:  # another "thread" changes it between load and CAS
            a.fetch_add(100)
        return old + 1

    assert a.update(fn) == (201, 2)
    assert calls == [0, 100, 200]  # each retry starts from the value seen


def test_bit_group():
    a = AtomicInt(0)
    assert a.test_and_set_bit(3) is False
    assert a.test_and_set_bit(3) is True
    assert a.test_bit(3) is True and a.load() == 8
    a.set_bit(63)
    assert a.load() == 8 + INT64_MIN  # bit 63 is the sign bit
    assert a.test_and_clear_bit(63) is True
    assert a.test_and_clear_bit(63) is False
    a.clear_bit(3)
    assert a.load() == 0 and a.test_bit(0) is False


@pytest.mark.parametrize("nr", [-1, 64, 1000])
def test_bit_number_out_of_range(nr):
    a = AtomicInt()
    for op in (a.test_and_set_bit, a.test_and_clear_bit, a.set_bit,
               a.clear_bit, a.test_bit):
        with pytest.raises(ValueError, match="0..63") as exc:
            op(nr)
        # Raised on its own, not while handling the C call's error
        # (a traceback that starts with an IndexError would mislead).
        assert exc.value.__context__ is None
    assert a.load() == 0


class _Index:
    """An index-like object (as numpy's integers): not an int, but
    ``operator.index`` converts it."""

    def __init__(self, n):
        self.n = n

    def __index__(self):
        return self.n


def test_bit_number_types():
    # The bit operations check the range in C (LF_EINVAL above 63; cffi
    # refuses negative numbers and non-integers) and send what failed
    # through operator.index: index-like objects and bools work, floats
    # and strings raise TypeError.
    a = AtomicInt()
    assert a.test_and_set_bit(_Index(5)) is False
    assert a.test_bit(_Index(5)) is True and a.load() == 32
    a.set_bit(True)
    a.clear_bit(_Index(5))
    assert a.load() == 2 and a.test_and_clear_bit(True) is True
    with pytest.raises(ValueError, match="0..63"):
        a.set_bit(_Index(64))
    for op in (a.test_and_set_bit, a.test_and_clear_bit, a.set_bit,
               a.clear_bit, a.test_bit):
        for bad in (1.0, 1.5, "1", None, [1]):
            with pytest.raises(TypeError):
                op(bad)
    assert a.load() == 0


def test_wraps_like_int64():
    a = AtomicInt(INT64_MAX)
    assert a.fetch_add(1) == INT64_MAX
    assert a.load() == INT64_MIN
    assert a.fetch_sub(1) == INT64_MIN
    assert a.load() == INT64_MAX
    assert a.add_fetch(INT64_MAX) == -2
    assert a.sub_fetch(INT64_MIN) == INT64_MAX - 1  # -2 - (-2**63)


def test_delta_one_fast_path_matches_general_path():
    # fetch_add & co. send the int 1 to one-argument C calls (fetch_inc,
    # fetch_dec, inc_return, dec_return) and every other delta to the
    # two-argument ones; both must agree, and wrap alike at the limits.
    class Int(int):
        pass

    for one in (1, True, Int(1)):  # True and Int(1) take the general path
        a = AtomicInt(INT64_MAX - 1)
        assert a.fetch_add(one) == INT64_MAX - 1
        assert a.add_fetch(one) == INT64_MIN
        assert a.sub_fetch(one) == INT64_MAX
        assert a.fetch_sub(one) == INT64_MAX
        assert a.load() == INT64_MAX - 1
    a = AtomicInt(5)
    assert (a.fetch_add(1), a.fetch_add(2), a.add_fetch(1), a.add_fetch(2)) \
        == (5, 6, 9, 11)
    assert (a.fetch_sub(1), a.fetch_sub(2), a.sub_fetch(1), a.sub_fetch(2)) \
        == (11, 10, 7, 5)
    for op in (a.fetch_add, a.fetch_sub, a.add_fetch, a.sub_fetch):
        with pytest.raises(TypeError):
            op(1.0)  # == 1, but not the int 1
        with pytest.raises(TypeError):
            op()
    assert a.load() == 5


# -- bad input ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [1.5, "3", None, [1]])
def test_wrong_types_raise_type_error(bad):
    a = AtomicInt(1)
    for op in (a.store, a.exchange, a.fetch_add, a.fetch_sub, a.add_fetch,
               a.sub_fetch, a.set_bit):
        with pytest.raises(TypeError):
            op(bad)
    with pytest.raises(TypeError):
        a.compare_exchange(bad, 2)
    with pytest.raises(TypeError):
        AtomicInt(bad)
    assert a.load() == 1


@pytest.mark.parametrize("big", [2**63, -2**63 - 1, 2**100])
def test_out_of_int64_range_raises_overflow_error(big):
    a = AtomicInt(1)
    for op in (a.store, a.exchange, a.fetch_add):
        with pytest.raises(OverflowError):
            op(big)
    with pytest.raises(OverflowError):
        a.compare_exchange(1, big)
    assert a.load() == 1


def test_closed_object_raises_value_error():
    a = AtomicInt(4)
    a.close()
    a.close()  # idempotent
    for op, args in [(a.load, ()), (a.store, (1,)), (a.fetch_add, (1,)),
                     (a.compare_exchange, (1, 2)), (a.cmpxchg, (1, 2)),
                     (a.test_bit, (1,)), (a.update, (abs,))]:
        with pytest.raises(ValueError, match="closed AtomicInt"):
            op(*args)
    assert "closed" in repr(a)


def test_context_manager_closes():
    with AtomicInt(2) as a:
        assert a.fetch_add(1) == 2
    assert a.closed


# -- no geometry: nothing outside the counter is ever touched -----------------

def test_ops_touch_only_the_counter_whatever_the_header_says():
    """AtomicInt has no sizes, offsets or indexes: every operation is on the
    8 bytes after the header, bit numbers are checked (0..63) in C.  A
    header scribbled after attach changes nothing; bytes around the
    counter are never written."""
    buf = bytearray(os.urandom(64 + HEADER + 8 + 64))
    a = AtomicInt(0, buffer=buf, offset=64)
    b = AtomicInt.attach(buffer=buf, offset=64)
    buf[64:64 + HEADER] = os.urandom(HEADER)  # the header, after attach
    before = bytes(buf)
    counter = slice(64 + HEADER, 64 + HEADER + 8)
    for x in (a, b):
        x.store(-1)
        x.fetch_add(3)
        x.sub_fetch(1)
        x.exchange(2**62)
        x.cmpxchg(2**62, 7)
        x.compare_exchange(7, 8)
        x.update(lambda v: v * 3)
        for nr in range(64):
            x.test_and_set_bit(nr)
            x.clear_bit(nr)
            x.set_bit(nr)
            x.test_and_clear_bit(nr)
            x.test_bit(nr)
        for nr in (64, -1, 2**32):
            with pytest.raises((ValueError, OverflowError)):
                x.set_bit(nr)
    after = bytes(buf)
    assert after[:counter.start] == before[:counter.start]
    assert after[counter.stop:] == before[counter.stop:]
    assert struct.unpack_from("<q", buf, counter.start) == (b.load(),)
    a.close()
    b.close()


# -- the class as users, IDEs and type checkers see it ------------------------

PUBLIC = ["load", "store", "exchange", "compare_exchange", "cmpxchg",
          "fetch_add", "fetch_sub", "add_fetch", "sub_fetch", "update",
          "test_and_set_bit", "test_and_clear_bit", "set_bit", "clear_bit",
          "test_bit", "close", "unlink", "attach"]


def test_methods_are_defined_once_on_the_class():
    a = AtomicInt(1)
    for name in PUBLIC:
        assert name not in vars(a), name
        assert getattr(AtomicInt, name).__doc__, name
    assert set(vars(a)) <= {"_region", "_state", "_h"}
    a.close()


def test_signatures_show_the_real_parameters():
    a = AtomicInt(1)
    assert str(inspect.signature(a.fetch_add)) == "(delta: 'int') -> 'int'"
    assert str(inspect.signature(a.compare_exchange)) == \
        "(expected: 'int', desired: 'int') -> 'tuple[bool, int]'"
    assert str(inspect.signature(a.load)) == "() -> 'int'"
    assert str(inspect.signature(a.update)) == \
        "(fn: 'Callable[[int], int]') -> 'UpdateResult'"
    assert str(inspect.signature(AtomicInt.attach)).startswith(
        "(name: 'str | None' = None, *, buffer")
    with pytest.raises(TypeError):
        a.fetch_add(1, 2)  # no hidden extra parameters to fill by mistake
    with pytest.raises(TypeError):
        a.load(0)
    assert a.load() == 1
    a.close()


def test_fetch_add_of_a_string_is_a_type_error():
    a = AtomicInt(1)
    for op in (a.fetch_add, a.fetch_sub, a.add_fetch, a.sub_fetch):
        with pytest.raises(TypeError):
            op("one")
    assert a.load() == 1
    a.close()


def test_every_method_saved_before_close_raises_value_error():
    a = AtomicInt(4)
    saved = [(getattr(a, n), args) for n, args in [
        ("load", ()), ("store", (1,)), ("exchange", (1,)),
        ("compare_exchange", (4, 5)), ("cmpxchg", (4, 5)),
        ("fetch_add", (1,)), ("fetch_add", (3,)), ("fetch_sub", (1,)),
        ("add_fetch", (1,)), ("sub_fetch", (2,)), ("update", (abs,)),
        ("test_and_set_bit", (1,)), ("test_and_clear_bit", (1,)),
        ("set_bit", (1,)), ("clear_bit", (1,)), ("test_bit", (1,))]]
    a.close()
    for fn, args in saved:
        with pytest.raises(ValueError, match="closed AtomicInt"):
            fn(*args)
    for op in (int, operator.index):
        with pytest.raises(ValueError, match="closed AtomicInt"):
            op(a)
    with pytest.raises(ValueError, match="closed AtomicInt"):
        a.value  # noqa: B018
    with pytest.raises(ValueError, match="closed AtomicInt"):
        a.unlink()
    assert isinstance(a, AtomicInt) and type(a).__name__ == "AtomicInt"


def test_compare_exchange_failure_retries_only_if_the_load_finds_expected():
    a = AtomicInt(3)
    assert a.compare_exchange(2, 9) == (False, 3)
    result = a.compare_exchange(3, 9)
    assert result == (True, 3) and type(result) is tuple
    assert a.load() == 9


def test_update_result_is_named():
    a = AtomicInt(3)
    r = a.update(lambda v: v + 1)
    assert isinstance(r, UpdateResult)
    assert (r.value, r.retries) == (4, 0) == tuple(r)
    a.close()


def test_operators_read_once_and_refuse_int_comparison():
    a = AtomicInt(5)
    assert repr(a) == "<AtomicInt value=5 private>"
    assert int(a) == 5 and operator.index(a) == 5 and hex(a) == "0x5"
    assert [10, 11, 12, 13, 14, 15][a] == 15
    a.value = 7
    assert a.value == 7
    with pytest.raises(TypeError, match=r"a.load\(\) == 7"):
        a == 7  # noqa: B015
    with pytest.raises(TypeError, match=r"a.load\(\) != 7"):
        a != 7  # noqa: B015
    with pytest.raises(TypeError):
        a += 1  # no arithmetic operators: write a.fetch_add(1)
    with pytest.raises(TypeError):
        a < 8  # noqa: B015
    b = AtomicInt(7)
    assert a == a and a != b and a != "7"  # identity otherwise
    assert len({a, b, a}) == 2  # hashable, by identity
    a.close()
    assert repr(a) == "<AtomicInt closed>"
    b.close()
