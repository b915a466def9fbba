"""SeqRecord / SeqBytes: snapshots, errors, the class API (signatures,
close), placement, attach, pickling."""

import gc
import inspect
import pickle
import struct
import typing
from multiprocessing import shared_memory

import pytest

from lockfree import AtomicInt, SeqBytes, SeqRecord, seq_record
from lockfree.errors import CorruptStateError

from .seqlock_cases import MAKERS, put, value


@pytest.fixture(params=list(MAKERS))
def make(request):
    return MAKERS[request.param]


# -- basics -----------------------------------------------------------------

def test_initial_zero_read_write_sequence(make):
    with make() as obj:
        zero = (0, 0, 0, 0.0) if isinstance(obj, SeqRecord) else bytes(32)
        assert obj.read() == zero
        assert obj.last_retries == 0
        step = 1 if obj.latch else 2
        s0 = obj.sequence
        for k in range(1, 5):
            put(obj, k)
            assert obj.read() == value(obj, k)
        assert obj.sequence == s0 + 4 * step
        assert obj.writer is None
        assert obj.size == 32
        assert "closed" not in repr(obj)


def test_initial_values():
    with SeqRecord("2qd", (1, 2, 3.5)) as r:
        assert r.read() == (1, 2, 3.5)
        assert r.format == "2qd"
    with SeqBytes(3, b"abc", latch=True) as b:
        assert b.read() == b"abc" and b.latch
        assert "latch" in repr(b)


def test_odd_sizes_and_large_record():
    with SeqRecord("b3sh") as r:  # 6 bytes: not a multiple of 8
        r.write(-5, b"xyz", 300)
        assert r.read() == (-5, b"xyz", 300)
    with SeqBytes(5000) as b:
        data = bytes(range(256)) * 19 + bytes(136)
        b.write(bytearray(data))
        assert b.read() == data


def test_read_into():
    with SeqBytes(8, b"12345678") as b:
        buf = bytearray(10)
        assert b.read_into(buf) == 8
        assert buf == b"12345678\0\0"
        mv = memoryview(bytearray(8))
        b.read_into(mv)
        assert mv.tobytes() == b"12345678"
        with pytest.raises(ValueError, match="need 8"):
            b.read_into(bytearray(7))
        with pytest.raises(TypeError):
            b.read_into(b"12345678")  # not writable
        with pytest.raises(TypeError):
            b.read_into(42)


# -- argument errors ----------------------------------------------------------

@pytest.mark.parametrize("fmt, exc, msg", [
    (42, TypeError, "str"),
    (b"qq", TypeError, "str"),
    ("", ValueError, "packs 0 bytes"),
    ("qz", ValueError, "bad struct format"),
    ("qP", ValueError, "pointer"),
    ("é", ValueError, "ASCII"),
])
def test_bad_formats(fmt, exc, msg):
    with pytest.raises(exc, match=msg):
        SeqRecord(fmt)


def test_bad_values():
    with SeqRecord("qb") as r:
        with pytest.raises(ValueError, match="values do not fit"):
            r.write(1)
        with pytest.raises(TypeError):
            r.write("x", 1)
        with pytest.raises(OverflowError):
            r.write(1, 1000)
        with pytest.raises(OverflowError):
            r.write(2**63, 1)
        assert r.read() == (0, 0)  # nothing was written
        with pytest.raises(ValueError):
            SeqRecord("qb", (1,))


def test_bad_sizes_and_flags():
    for size, exc in ((0, ValueError), (-1, ValueError), (1 << 40, ValueError),
                      (2.0, TypeError), ("8", TypeError)):
        with pytest.raises(exc):
            SeqBytes(size)
    with pytest.raises(TypeError, match="latch"):
        SeqBytes(8, latch=1)
    with SeqBytes(8) as b:
        for bad in (b"1234567", bytearray(9), memoryview(b"")):
            with pytest.raises(ValueError, match="exactly 8"):
                b.write(bad)
        with pytest.raises(TypeError):
            b.write("12345678")
        assert b.read() == bytes(8)


PUBLIC = {
    SeqRecord: ["read", "write", "recover", "close", "unlink", "attach",
                "region_size", "format", "latch", "size", "sequence",
                "writer", "last_retries", "closed", "name"],
    SeqBytes: ["read", "read_into", "write", "recover", "close", "unlink",
               "attach", "region_size", "latch", "size", "sequence",
               "writer", "last_retries", "closed", "name"],
}


def _call_all(obj, read, write, v):
    """Every public operation of obj, each a thunk."""
    args = v if isinstance(obj, SeqRecord) else (v,)
    calls = [obj.read, lambda: obj.write(*args), lambda: obj.recover(*args),
             lambda: obj.read(timeout=1), lambda: obj.write(*args, timeout=1),
             lambda: obj.latch, lambda: obj.size, lambda: obj.sequence,
             lambda: obj.writer, lambda: obj.last_retries, read,
             lambda: write(*args)]
    if isinstance(obj, SeqRecord):
        calls.append(lambda: obj.format)
    else:
        calls.append(lambda: obj.read_into(bytearray(32)))
    return calls


def test_closed_raises_even_through_saved_methods(make):
    """After close() every operation raises ValueError naming the class,
    including bound methods saved before (none reaches C: the closed
    stand-in class's _h raises)."""
    obj = make()
    read, write, v = obj.read, obj.write, value(obj, 3)
    calls = _call_all(obj, read, write, v)
    for call in calls:  # all work while open
        call()
    obj.close()
    obj.close()  # idempotent
    assert obj.closed and "closed" in repr(obj)
    gc.collect()
    name = type(obj).__name__
    # bad arguments too: "closed" comes first
    calls += [lambda: obj.write(b""), lambda: obj.recover(b""),
              lambda: write(b"")]
    if isinstance(obj, SeqBytes):
        calls.append(lambda: obj.read_into(b""))
    for call in calls:
        with pytest.raises(ValueError, match=f"closed {name}"):
            call()
    assert isinstance(obj, (SeqRecord, SeqBytes))


def test_methods_are_defined_on_the_class(make):
    """No per-instance method installation: every public name is found on
    the class, none in the instance __dict__, and the bound method's
    function is the class's."""
    with make() as obj:
        cls = type(obj)
        for attr in PUBLIC[cls]:
            assert attr not in vars(obj), attr
            assert any(attr in vars(k) for k in cls.__mro__), attr
        for attr in ("read", "write", "recover"):
            assert getattr(obj, attr).__func__ is getattr(cls, attr)
        assert not any(callable(v) and not k.startswith("_")
                       for k, v in vars(obj).items())


def test_signatures_and_docs():
    """inspect.signature shows the real parameters (no C prototype, no
    private defaults), and every public method has a docstring."""
    sig = inspect.signature
    with SeqRecord("qq") as r, SeqBytes(8) as b:
        assert str(sig(r.read)) == \
            "(timeout: 'float | None' = None) -> 'tuple[Any, ...]'"
        assert str(sig(r.write)) == \
            "(*values: 'Any', timeout: 'float | None' = None) -> 'None'"
        assert str(sig(r.recover)) == "(*values: 'Any') -> 'bool'"
        assert str(sig(b.read)) == \
            "(timeout: 'float | None' = None) -> 'bytes'"
        assert list(sig(b.write).parameters) == ["data", "timeout"]
        assert list(sig(b.read_into).parameters) == ["buffer", "timeout"]
        assert list(sig(SeqRecord.attach).parameters) == \
            ["name", "fmt", "buffer", "offset"]
        assert list(sig(SeqBytes.attach).parameters) == \
            ["name", "size", "buffer", "offset"]
        for cls in (SeqRecord, SeqBytes):
            for attr in PUBLIC[cls]:
                assert getattr(cls, attr).__doc__, (cls, attr)
    hints = typing.get_type_hints(SeqRecord.read, vars(seq_record))
    assert hints["return"] == tuple[typing.Any, ...]


# -- placement, attach, pickling ----------------------------------------------

def test_caller_buffer_and_region_size():
    need = SeqRecord.region_size("qqqd", latch=True)
    assert need == 64 + 128 + 64 + 2 * 64
    # classic values of <= 40 bytes live in line 0, beside the counter
    assert SeqBytes.region_size(40) == 64 + 128
    assert SeqBytes.region_size(41) == 64 + 128 + 64
    assert SeqBytes.region_size(40, latch=True) == 64 + 128 + 2 * 64
    buf = bytearray(need + 8)
    with SeqRecord("qqqd", latch=True, buffer=buf, offset=8) as r:
        r.write(1, 2, 3, 4.0)
        with SeqRecord.attach(buffer=buf, offset=8) as again:
            assert again.read() == (1, 2, 3, 4.0)
            assert again.format == "qqqd" and again.latch
    with pytest.raises(ValueError, match="needs"):
        SeqRecord("qqqd", latch=True, buffer=bytearray(need - 1))
    with pytest.raises(ValueError, match="aligned"):
        SeqRecord("q", buffer=bytearray(512), offset=4)


def test_attach_recovers_and_checks_format():
    with SeqRecord("qqd", (1, 2, 3.0), shared=True) as r:
        with SeqRecord.attach(r.name) as a:
            assert a.format == "qqd" and a.read() == (1, 2, 3.0)
        with SeqRecord.attach(r.name, "qqd") as a:
            assert a.read() == (1, 2, 3.0)
        with pytest.raises(ValueError, match="format 'qqd', not 'qqq'"):
            SeqRecord.attach(r.name, "qqq")
        with pytest.raises(ValueError, match="is a SeqRecord, not a SeqBytes"):
            SeqBytes.attach(r.name)
    with SeqBytes(16, shared=True) as b:
        with pytest.raises(ValueError, match="is a SeqBytes"):
            SeqRecord.attach(b.name)
        with pytest.raises(ValueError, match="holds 16 bytes, not 8"):
            SeqBytes.attach(b.name, 8)
        with SeqBytes.attach(b.name, 16) as a:
            assert a.size == 16
    with AtomicInt(shared=True) as other, \
            pytest.raises(ValueError, match="AtomicInt, expected a seqlock"):
        SeqRecord.attach(other.name)


def test_corrupt_format_in_region_detected():
    buf = bytearray(SeqRecord.region_size("qq"))
    SeqRecord("qq", buffer=buf).close()
    buf[64 + 128] = ord("d")  # "dq": still 16 bytes -> accepted
    with SeqRecord.attach(buffer=buf) as r:
        assert r.format == "dq"
    buf[64 + 128] = ord("b")  # "bq" packs 16 bytes with native alignment
    buf[64 + 128 + 1] = ord("b")  # "bb" packs 2 bytes: mismatch
    with pytest.raises(CorruptStateError, match="corrupt") as e:
        SeqRecord.attach(buffer=buf)
    assert e.value.field == "format"


@pytest.mark.parametrize("field,offset", [
    ("size", 8), ("data_off", 12), ("stride", 16), ("meta_len", 20),
    ("wflags", 64 + 52), ("wsize", 64 + 56), ("wdata_off", 64 + 60)])
@pytest.mark.parametrize("latch", [False, True])
def test_corrupt_geometry_refused_without_writing(field, offset, latch):
    """A state whose geometry (reader line or writer line) disagrees with
    the header would send copies outside the region: attach refuses it and
    writes nothing."""
    buf = bytearray(SeqBytes.region_size(16, latch=latch))
    SeqBytes(16, latch=latch, buffer=buf).close()
    with SeqBytes.attach(buffer=buf) as ok:
        ok.write(b"x" * 16)
    struct.pack_into("<I", buf, 64 + offset, 1 << 20)
    before = bytes(buf)
    with pytest.raises(CorruptStateError, match="SeqBytes is corrupt") as e:
        SeqBytes.attach(buffer=buf)
    assert e.value.field == field
    assert isinstance(e.value, ValueError)
    assert bytes(buf) == before


def test_odd_writer_count_refused():
    buf = bytearray(SeqBytes.region_size(8))
    SeqBytes(8, buffer=buf).close()
    struct.pack_into("<I", buf, 64 + 64 + 48, 3)  # wseq is always even
    with pytest.raises(CorruptStateError) as e:
        SeqBytes.attach(buffer=buf)
    assert e.value.field == "wseq"


def test_private_not_picklable():
    with SeqRecord("q") as r, pytest.raises(TypeError, match="shared=True"):
        pickle.dumps(r)


def _child_read_write(obj, out):
    out.put(obj.read())
    if isinstance(obj, SeqRecord):
        obj.write(7, 8, 9, 1.5)
    else:
        obj.write(b"z" * obj.size)
    obj.close()


@pytest.mark.parametrize("latch", [False, True])
def test_pickled_to_worker(mp_context, latch):
    with SeqRecord("qqqd", (1, 2, 3, 0.5), latch=latch, shared=True) as r:
        out = mp_context.Queue()
        p = mp_context.Process(target=_child_read_write, args=(r, out))
        p.start()
        assert out.get(timeout=60) == (1, 2, 3, 0.5)
        p.join(60)
        assert p.exitcode == 0
        assert r.read() == (7, 8, 9, 1.5)


def test_sharedmemory_buffer_pickles(mp_context):
    shm = shared_memory.SharedMemory(create=True,
                                     size=SeqBytes.region_size(64))
    try:
        b = SeqBytes(64, b"a" * 64, buffer=shm)
        out = mp_context.Queue()
        p = mp_context.Process(target=_child_read_write, args=(b, out))
        p.start()
        assert out.get(timeout=60) == b"a" * 64
        p.join(60)
        assert p.exitcode == 0
        assert b.read() == b"z" * 64
        b.close()
    finally:
        shm.close()
        shm.unlink()
