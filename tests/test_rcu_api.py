"""RCU's Python API as ordinary typed classes (issue 17): real signatures,
methods defined once on the class, ValueError after close (also through a
method saved before), and the annotations type checkers read."""

import inspect
import threading
import typing

import pytest

from lockfree import RcuBuffer, RcuCell, RcuDomain
from lockfree.rcu import BufferRead, CellRead, ReadSection

_RCU_MODULES = {"lockfree.rcu", "lockfree.rcu_buffer", "lockfree._rcu_core"}


def _public_methods(obj):
    return [n for n in dir(type(obj)) if not n.startswith("_")
            and callable(getattr(type(obj), n))
            and not isinstance(getattr(type(obj), n), type)]


def _objects():
    d = RcuDomain(4)
    return [d, RcuCell([1], domain=d), RcuBuffer(16, b"abc")], d


def test_methods_are_defined_once_on_the_class():
    objs, d = _objects()
    try:
        for obj in objs:
            with obj.read():  # the first section makes the per-thread state
                pass
            for name in _public_methods(obj):
                assert name not in vars(obj), (type(obj).__name__, name)
                method = getattr(obj, name)
                if inspect.ismethod(method):
                    assert method.__func__ is getattr(type(obj), name) \
                        or isinstance(inspect.getattr_static(type(obj), name),
                                      classmethod), name
            assert "read" in _public_methods(obj)
    finally:
        objs[2].close()
        d.close()


def test_signatures_are_real():
    objs, d = _objects()
    cell, buf = objs[1], objs[2]
    try:
        assert list(inspect.signature(cell.read).parameters) == []
        assert list(inspect.signature(cell.update).parameters) == [
            "fn", "callback"]
        assert list(inspect.signature(cell.retire).parameters) == [
            "old", "callback"]
        assert list(inspect.signature(d.synchronize).parameters) == [
            "timeout"]
        assert list(inspect.signature(d.call_rcu).parameters) == ["fn", "obj"]
        assert list(inspect.signature(buf.publish).parameters) == [
            "data", "timeout"]
        assert list(inspect.signature(buf.read).parameters) == []
        for obj in objs:
            for name in _public_methods(obj):
                sig = inspect.signature(getattr(obj, name))
                fn = getattr(type(obj), name)
                assert fn.__doc__, name
                if fn.__module__ not in _RCU_MODULES:
                    continue  # Primitive's attach/close/unlink: region.py
                assert sig.return_annotation is not inspect.Signature.empty, \
                    (type(obj).__name__, name)
    finally:
        buf.close()
        d.close()


def test_read_annotations_for_type_checkers():
    # `with cell.read() as v:` types v as T only if __enter__ says so.
    T = typing.get_type_hints(RcuCell.get)["return"]
    assert typing.get_type_hints(CellRead.__enter__)["return"] is T
    assert typing.get_type_hints(RcuCell.read)["return"] == CellRead[T]
    assert typing.get_type_hints(BufferRead.__enter__)["return"] is memoryview
    assert typing.get_type_hints(RcuBuffer.read)["return"] is BufferRead
    assert typing.get_type_hints(RcuDomain.read)["return"] is ReadSection
    assert RcuCell[list[str]].__origin__ is RcuCell


def test_use_after_close_raises_value_error():
    d = RcuDomain(4)
    cell = RcuCell("v", domain=d)
    buf = RcuBuffer(16, b"abc")
    with cell.read(), buf.read(), d.read():
        pass
    saved = [d.synchronize, d.start_poll, d.read, d.register_thread,
             d.barrier, cell.read, buf.read, buf.synchronize, buf.start_poll,
             buf.register_thread]
    saved_publish = buf.publish
    d.close()
    buf.close()
    for fn in saved:
        # read() may hand out its section; entering raises
        with pytest.raises(ValueError), fn():
            pass
    for fn, args in [(saved_publish, (b"x",)), (d.poll_state, (0,)),
                     (d.call_rcu, (print, 1)), (cell.retire, (1, print)),
                     (buf.publish, (b"x",)), (d.unregister_thread, ()),
                     (buf.poll_state, (0,))]:
        with pytest.raises(ValueError):
            fn(*args)
    for get in (lambda: buf.version, lambda: buf.stats, lambda: d.stats):
        with pytest.raises(ValueError):
            get()
    with pytest.raises(ValueError):
        buf.read()  # the closed buffer hands out no section at all

    def other_thread():  # a thread that never read before the close
        for fn in (d.read, cell.read, buf.read):
            try:
                fn()
            except ValueError:
                errors.append(fn)
    errors = []
    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert len(errors) == 3
    assert "closed" in repr(d) and "closed" in repr(buf)
