"""Free-threaded CPython (3.14t): what can be checked on any build.

cffi >= 2 marks the extension as not needing the GIL, so on a free-threaded
interpreter any number of threads run lockfree's C code, and its Python
code, at once.  Three checks:

1. **C globals.**  A global that was safe only because the GIL serialised
   its users would be a data race there.  Every writable object in the
   built extension (its ``.data``, ``.bss``, ``.tdata`` and ``.tbss``
   symbols, from ``objdump -t``) is checked against a list that says why it
   is safe, and the sources are checked to keep to that reason (an "atomic"
   global is touched only through the atomics layer, a once-control only
   through ``pthread_once``).  A new global fails here until it is reviewed
   and listed.  cffi's own tables (``_cffi_*``), the toolchain's
   (crtstuff) and a sanitizer build's instrumentation are not ours and are
   left out.
2. **Python-level interleavings.**  The thread stress tests of every
   primitive run again here with a 1 µs switch interval, so the GIL changes
   hands between almost any two bytecodes, not only around the C calls
   (which release it anyway): an approximation of free threading's
   schedules on a GIL build, not a proof.
3. **On a free-threaded build** (skipped elsewhere): importing lockfree
   leaves the GIL disabled, i.e. the extension declares it does not need it
   (CPython re-enables the GIL, with a warning, for modules that do not).
"""

import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

import lockfree._lockfree
import lockfree._tools

# (2) The thread stress tests of each primitive (and the fixtures they
# use), collected again in this module so that they run a second time under
# switch_often below.
from .test_atomic_model import (
    test_threads_fetch_add_and_cas_update_exact,  # noqa: F401
)
from .test_kfifo_blocking import (
    test_blocked_producer_is_woken_and_blocking_put_writes_all,  # noqa: F401,E501
)
from .test_once import test_threads_race_many_fresh_onces  # noqa: F401
from .test_rcu import (
    test_retire_callbacks_never_see_readers,  # noqa: F401
    test_update_loses_nothing,  # noqa: F401
)
from .test_rwlock import test_rw_readers_overlap_writers_exclude  # noqa: F401
from .test_seqlock_procs import (  # noqa: F401
    test_threads_big_value_no_torn_snapshots,  # noqa: F401,E501
    test_threads_share_one_object_no_torn_snapshots,
)
from .test_spinlock import (
    make,  # noqa: F401
    test_threads_keep_plain_counter_exact,  # noqa: F401
)

OBJDUMP = shutil.which("objdump")
CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"

needs_objdump = pytest.mark.skipif(OBJDUMP is None,
                                   reason="objdump not installed")


@pytest.fixture(autouse=True)
def switch_often():
    """The GIL changes hands every microsecond instead of every 5 ms."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)

# symbol: (how it is kept safe, where it lives)
ALLOWED = {
    # Thread-local: each thread has its own.
    "lf_owner_self_cache": ("tls", "lockwait.c"),
    "wait_stop_word": ("tls", "shims/kfifo.c"),  # the asyncio waits' stop word
    # lf_wait_resume's memory of this thread's last slice that ended asleep
    "resume_key": ("tls", "lockwait.c"),
    "resume_at": ("tls", "lockwait.c"),
    "resume_sleep_ns": ("tls", "lockwait.c"),
    # Read and written only with the atomics layer's operations.
    "lf_kfifo_fork_gen": ("atomic", "kfifo.c"),
    "next_handle_id": ("atomic", "kfifo.c"),
    "membarrier_state": ("atomic", "kfifo_wait.c"),
    # pthread_once controls.
    "lf_atfork_once": ("once", "lockwait.c"),
    "calib_once": ("once", "tools/bench.c"),
    # Written only by the function that calib_once runs once; read after
    # pthread_once returned (which orders the writes before the reads).
    "calib": ("once-init", "tools/bench.c"),
    "calib_sink": ("once-init", "tools/bench.c"),
}

TOOLCHAIN = {"completed.0", "__dso_handle", "__TMC_END__"}
# cffi's tables; a sanitizer build's instrumentation (ASAN's ODR indicators)
NOT_OURS = ("_cffi_", "__odr_asan", "__asan", "__ubsan", "__tsan")
WRITABLE = (".data", ".bss", ".tdata", ".tbss")


def _writable_symbols() -> dict[str, str]:
    """{symbol: section} of both extensions' writable data objects."""
    out = "".join(
        subprocess.run([OBJDUMP, "-t", so], capture_output=True, text=True,
                       check=True).stdout
        for so in (lockfree._lockfree.__file__, lockfree._tools.__file__))
    found = {}
    for line in out.splitlines():
        parts = line.split()
        # value flags... section size name; the section is the field
        # before the size (flags may be one or two fields).
        if len(parts) < 4 or parts[-3] not in WRITABLE:
            continue
        name, section = parts[-1], parts[-3]
        if name.startswith(NOT_OURS) or name in TOOLCHAIN:
            continue
        found[name] = section
    return found


def _uses(name: str, source: str) -> list[str]:
    """The lines of csrc/source naming the symbol (comments stripped)."""
    text = (CSRC / source).read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return [line.strip() for line in text.splitlines()
            if re.search(rf"\b{re.escape(name)}\b", line)]


@needs_objdump
def test_every_writable_global_is_reviewed():
    found = _writable_symbols()
    assert found, "objdump listed no writable symbols at all"
    unknown = sorted(set(found) - set(ALLOWED))
    assert not unknown, (
        f"unreviewed mutable C globals {unknown}: on free-threaded CPython "
        "threads run the extension's C code at once; make them thread-local,"
        " atomic, const or once-initialised and add them to ALLOWED")


@needs_objdump
def test_thread_locals_are_thread_local():
    found = _writable_symbols()
    for name, (how, _) in ALLOWED.items():
        if how == "tls" and name in found:
            assert found[name] in (".tdata", ".tbss"), (name, found[name])


@needs_objdump
@pytest.mark.parametrize("name", sorted(
    n for n, (how, _) in ALLOWED.items() if how in ("atomic", "once")))
def test_sources_keep_to_the_reason(name):
    how, source = ALLOWED[name]
    uses = _uses(name, source)
    assert uses, f"{name} not found in csrc/{source}"
    if how == "atomic":
        ok = re.compile(rf"^(extern |static )?uint(32|64)_t {name};$|"
                        rf"\blf_\w+\(&{name}\b")
    else:
        ok = re.compile(rf"pthread_once_t {name} = PTHREAD_ONCE_INIT;$|"
                        rf"\bpthread_once\(&{name},")
    bad = [u for u in uses if not ok.search(u)]
    assert not bad, f"{name} ({how}) used otherwise in csrc/{source}: {bad}"
    # and nowhere else in csrc except a header's declaration
    for path in sorted(CSRC.rglob("*.[ch]")):
        if str(path.relative_to(CSRC)) == source:
            continue
        for u in _uses(name, str(path.relative_to(CSRC))):
            assert ok.search(u), f"{name} used in {path.name}: {u}"


# -- (3) ----------------------------------------------------------------------

@pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                    reason="not a free-threaded (GIL-disabled) build")
def test_import_leaves_the_gil_disabled():
    code = ("import sys, warnings; warnings.simplefilter('error'); "
            "import lockfree, lockfree._lockfree, lockfree._tools; "
            "assert not sys._is_gil_enabled(), 'GIL re-enabled'")
    subprocess.run([sys.executable, "-c", code], check=True)
