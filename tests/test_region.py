"""The region mechanism: placement, header checks, lifetime, pickling."""

import errno
import gc
import os
import pickle
import struct
from multiprocessing import shared_memory

import pytest

from lockfree import AtomicInt, CorruptStateError, lib
from lockfree.region import HEADER, Region

from .conftest import SESSION_PREFIX, SHM_DIR


def seg_exists(name):
    return os.path.exists(os.path.join(SHM_DIR, name))


# -- header and attach checks -------------------------------------------------

def test_header_layout():
    buf = bytearray(AtomicInt.region_size())
    assert len(buf) == HEADER + 8 == 72
    AtomicInt(-2, buffer=buf).close()
    magic, version, kind, size = struct.unpack_from("<QIIQ", buf)
    assert magic == int.from_bytes(b"FLREGION", "little")
    assert (version, kind, size) == (lib.LF_LAYOUT_VERSION,
                                     lib.LF_KIND_ATOMIC, 72)
    assert struct.unpack_from("<q", buf, HEADER) == (-2,)


def _attach_fails(buf, match, offset=0):
    before = bytes(buf)
    with pytest.raises(ValueError, match=match):
        AtomicInt.attach(buffer=buf, offset=offset)
    assert bytes(buf) == before, "a failed attach must not write"


def test_attach_rejects_garbage_and_zeroes():
    _attach_fails(bytearray(100), "bad magic")
    _attach_fails(bytearray(os.urandom(100)), "bad magic")
    _attach_fails(bytearray(10), "needs 64 bytes")


def test_attach_rejects_wrong_version_kind_size():
    good = bytearray(80)
    AtomicInt(1, buffer=good).close()
    v = bytearray(good)
    struct.pack_into("<I", v, 8, 99)
    _attach_fails(v, "layout version 99")
    k = bytearray(good)
    struct.pack_into("<I", k, 12, lib.LF_KIND_KFIFO)
    _attach_fails(k, "holds a Kfifo, expected an AtomicInt")
    s = bytearray(good)
    struct.pack_into("<Q", s, 16, 4096)
    _attach_fails(s, "4096 bytes")
    small = bytearray(good)
    struct.pack_into("<Q", small, 16, 70)  # fits the buffer, wrong for kind
    _attach_fails(small, "size is 70 bytes, expected 72")


def test_attach_rejects_nonzero_reserved_and_unused_params():
    good = bytearray(80)
    AtomicInt(1, buffer=good).close()
    r = bytearray(good)
    struct.pack_into("<Q", r, 56, 1)  # reserved
    _attach_fails(r, "corrupt: header.reserved")
    for i in range(4):  # an AtomicInt has no parameters
        p = bytearray(good)
        struct.pack_into("<Q", p, 24 + 8 * i, 1 << 40)
        _attach_fails(p, r"corrupt: header.param\[0:\]")
    with pytest.raises(CorruptStateError) as info:
        AtomicInt.attach(buffer=r)
    assert info.value.field == "header.reserved"


def test_header_is_read_once_at_attach():
    """Writes into the header after attach change nothing this process
    believes (a peer must not move the geometry under a live handle)."""
    buf = bytearray(80)
    AtomicInt(5, buffer=buf).close()
    a = AtomicInt.attach(buffer=buf)
    region = a._region
    struct.pack_into("<QQQQQQ", buf, 16, 1 << 40, 1, 2, 3, 4, 5)
    struct.pack_into("<II", buf, 8, 99, lib.LF_KIND_KFIFO)
    assert region.size == 72 and region.params == (0, 0, 0, 0)
    assert a.fetch_add(1) == 5 and struct.unpack_from("<q", buf, 64) == (6,)
    a.close()
    with pytest.raises(ValueError, match="layout version 99"):
        AtomicInt.attach(buffer=buf)


def test_attach_to_another_kind_via_region_layer():
    buf = bytearray(80)
    AtomicInt(buffer=buf).close()
    with pytest.raises(ValueError, match="expected a SpinLock"):
        Region.attach(lib.LF_KIND_SPINLOCK, buffer=buf)


def test_buffer_offset_and_alignment_checks():
    buf = bytearray(256)
    for offset, exc, match in [(4, ValueError, "8-byte aligned"),
                               (250, ValueError, "needs 72 bytes"),
                               (-8, ValueError, ">= 0"),
                               (8.0, TypeError, "offset must be an int"),
                               ("8", TypeError, "offset must be an int")]:
        with pytest.raises(exc, match=match):
            AtomicInt(buffer=buf, offset=offset)
    assert buf == bytearray(256)
    with pytest.raises(TypeError, match="writable"):
        AtomicInt(buffer=bytes(256))
    with pytest.raises(TypeError, match="C-contiguous"):
        AtomicInt(buffer=memoryview(buf)[::2])
    with pytest.raises(TypeError, match="buffer protocol"):
        AtomicInt(buffer=42)
    with pytest.raises(ValueError, match="not both"):
        AtomicInt(buffer=buf, shared=True)
    with pytest.raises(ValueError, match="offset"):
        AtomicInt(offset=8)


def test_caller_buffer_is_shared_memory_and_release():
    buf = bytearray(256)
    a = AtomicInt(5, buffer=buf, offset=128)
    b = AtomicInt.attach(buffer=memoryview(buf), offset=128)
    b.fetch_add(2)
    assert a.load() == 7
    assert struct.unpack_from("<q", buf, 128 + HEADER) == (7,)
    with pytest.raises(BufferError):
        buf.extend(b"x")  # exported while the objects are open
    a.close()
    b.close()
    buf.extend(b"x")  # released


def test_mmap_buffer():
    import mmap
    m = mmap.mmap(-1, 4096)
    with AtomicInt(11, buffer=m, offset=8) as a:
        assert a.add_fetch(1) == 12
    m.close()  # would raise BufferError if the export leaked


# -- named segments and lifetime ---------------------------------------------

def test_shared_true_owner_unlinks_on_close():
    a = AtomicInt(3, shared=True)
    name = a.name
    assert name.startswith("lf_") and seg_exists(name)
    b = AtomicInt.attach(name)
    assert b.fetch_add(1) == 3
    b.close()
    assert seg_exists(name), "an attacher never unlinks"
    a.close()
    assert not seg_exists(name)


def test_shared_true_owner_unlinks_when_collected():
    a = AtomicInt(shared=True)
    name = a.name
    del a
    gc.collect()
    assert not seg_exists(name)


def test_named_segment_is_unlinked_explicitly():
    name = SESSION_PREFIX + "named"
    a = AtomicInt(9, name=name)
    assert a.name == name
    a.close()
    assert seg_exists(name), "name= segments outlive close()"
    b = AtomicInt.attach(name)
    assert b.load() == 9
    b.unlink()
    assert not seg_exists(name)
    assert b.fetch_add(1) == 9  # the mapping stays valid after unlink
    b.close()
    with pytest.raises(FileNotFoundError):
        AtomicInt.attach(name)


def test_named_segment_exists_already():
    with AtomicInt(shared=True) as a, pytest.raises(FileExistsError):
        AtomicInt(name=a.name)


def test_attach_bad_name_types():
    with pytest.raises(TypeError, match="name must be a str"):
        AtomicInt.attach(42)
    with pytest.raises(TypeError, match="needs a segment name"):
        AtomicInt.attach()


def test_attach_to_foreign_segment_raises_without_writing():
    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        shm.buf[:8] = b"notlfrgn"
        with pytest.raises(ValueError, match="bad magic"):
            AtomicInt.attach(shm.name)
        assert bytes(shm.buf[:8]) == b"notlfrgn"
        assert bytes(shm.buf[8:]) == bytes(4088)
    finally:
        shm.close()
        shm.unlink()


def test_shared_memory_instance_as_buffer_closes_cleanly():
    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        a = AtomicInt(1, buffer=shm, offset=64)
        b = pickle.loads(pickle.dumps(a))  # attaches by name + offset
        assert b.name == shm.name and b.fetch_add(1) == 1
        assert a.load() == 2
        a.close()
        b.close()
    finally:
        shm.close()  # BufferError here if close() leaked the export
        shm.unlink()


def test_saved_bound_method_raises_after_close_without_crashing():
    a = AtomicInt(1, shared=True)
    name = a.name
    fetch_add = a.fetch_add
    a.close()
    assert not seg_exists(name)
    with pytest.raises(ValueError, match="closed AtomicInt"):
        a.fetch_add(1)
    with pytest.raises(ValueError, match="closed AtomicInt"):
        fetch_add(1)  # a plain bound method: it reads a._h, now closed


def test_attach_or_unpickle_of_a_gone_segment_names_the_object():
    a = AtomicInt(1, shared=True)
    name = a.name
    data = pickle.dumps(a)
    a.close()  # the owner unlinks the name
    with pytest.raises(FileNotFoundError,
                       match=f"no shared-memory segment '{name}' for this "
                             "AtomicInt: its creator closed it") as exc:
        pickle.loads(data)
    assert exc.value.errno == errno.ENOENT
    assert "cannot unpickle an AtomicInt" in str(exc.value)
    with pytest.raises(FileNotFoundError,
                       match=f"'{name}' for this AtomicInt") as exc:
        AtomicInt.attach(name)
    assert exc.value.errno == errno.ENOENT


def test_pickling_private_or_closed_fails_clearly():
    with pytest.raises(TypeError, match="shared=True"):
        pickle.dumps(AtomicInt())
    with pytest.raises(TypeError, match="shared=True"):
        pickle.dumps(AtomicInt(buffer=bytearray(80)))
    a = AtomicInt(shared=True)
    a.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(a)


# -- multiprocessing workers --------------------------------------------------

def _child_adds(a, n):
    for _ in range(n):
        a.fetch_add(1)
    a.close()  # an attacher's close never unlinks


def test_pickled_to_worker_reattaches(mp_context):
    with AtomicInt(shared=True) as a:
        p = mp_context.Process(target=_child_adds, args=(a, 1000))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert a.load() == 1000
        assert seg_exists(a.name)


def _child_closes_inherited_owner(a):
    a.close()


def test_forked_child_never_unlinks_parents_segment():
    import multiprocessing as mp
    mp_context = mp.get_context("fork")  # inheritance without pickling
    a = AtomicInt(shared=True)
    try:
        p = mp_context.Process(target=_child_closes_inherited_owner, args=(a,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert seg_exists(a.name)
    finally:
        a.close()


def _pool_task(args):
    a, n = args
    for _ in range(n):
        a.fetch_add(1)
    return os.getpid()


def test_pool_workers(mp_context):
    with AtomicInt(shared=True) as a:
        with mp_context.Pool(2) as pool:
            pool.map(_pool_task, [(a, 500)] * 8)
        assert a.load() == 4000


def test_auto_names_use_the_environment_prefix(monkeypatch):
    monkeypatch.setenv("LOCKFREE_SHM_PREFIX", SESSION_PREFIX + "pfx_")
    with AtomicInt(shared=True) as a:
        name = a.name
        assert name.startswith(SESSION_PREFIX + "pfx_") and seg_exists(name)
    assert not seg_exists(name)
