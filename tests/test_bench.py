"""The lock benchmark: the C harness's counter check proves mutual exclusion
for every primitive (and catches its absence), the CLI runs end to end and
writes valid JSON and a PNG, and bad options are usage errors."""

import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import lockfree
from lockfree.__main__ import main
from lockfree._tools import lib as tlib
from lockfree.bench import ck, harness, machine, matrix, progress, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCKS = [p for p in harness.PRIMITIVES if p != "none"]
TWO_CPUS = len(os.sched_getaffinity(0)) >= 2
CK_HEADERS = ck.probe(ck.compiler()) is not None


@pytest.fixture(scope="session")
def ck_cache(tmp_path_factory):
    """One cache directory for the on-demand CK harness for the session:
    it is built at most once, and never into the user's ~/.cache."""
    return str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(autouse=True)
def _cache_home(ck_cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", ck_cache)  # subprocesses inherit it


@pytest.fixture
def ck_loaded(ck_cache):
    """The CK-enabled harness, loaded into this process (built on demand)."""
    if not CK_HEADERS:
        pytest.skip("<ck_spinlock.h> not found: apt-get install libck-dev")
    notes = []
    why = harness.use_ck(list(ck.NAMES), notes.append)
    assert why is None, why
    return notes


def _cpus(threads):
    return machine.pin_plan("cores", threads)[0]


@pytest.mark.parametrize("prim", LOCKS)
def test_counter_check_proves_exclusion(prim, request):
    if prim.startswith("ck-"):
        request.getfixturevalue("ck_loaded")
    assert harness.available(prim)
    # 3 threads on a 2-core machine: holders get preempted inside the lock.
    r = harness.run(prim, 3, 0.05, cs_ns=200, lines=2, cpus=_cpus(3))
    assert r["acquisitions"] > 0
    assert r["writes"] > 0
    assert r["counter"] == r["writes"], r
    assert r["torn"] == 0 and r["ok"]
    assert sum(r["per_thread"]) == r["acquisitions"]
    assert 0 < r["lat_p50_ns"] <= r["lat_p99_ns"] <= r["lat_p999_ns"] \
        <= r["lat_max_ns"] * 1.07 + 1  # bucket midpoints: <= 6% over
    assert sum(r["lat_hist"].values()) == r["acquisitions"]


def test_latency_sampling_times_one_in_n():
    r = harness.run("lf-ttas", 1, 0.03, lat_every=8)
    assert r["ok"] and r["timed"] == sum(r["lat_hist"].values())
    assert r["acquisitions"] // 8 <= r["timed"] <= r["acquisitions"] // 8 + 1
    with pytest.raises(ValueError):
        harness.run("lf-ttas", 1, 0.01, lat_every=3)


def test_rw_mixed_readers_see_consistent_lines():
    r = harness.run("lf-rw-mixed", 3, 0.05, cs_ns=300, lines=4, read_pct=80,
                    cpus=_cpus(3))
    assert r["reads"] > 0 and r["writes"] > 0
    assert r["torn"] == 0 and r["counter"] == r["writes"] and r["ok"]


@pytest.mark.skipif(not TWO_CPUS, reason="needs 2 CPUs to race")
def test_counter_check_catches_a_missing_lock():
    # No lock: the read-modify-write of the protected line races and loses
    # updates.  A few tries in case the machine serialises one run.
    for _ in range(5):
        r = harness.run("none", 2, 0.1, cpus=_cpus(2))
        if not r["ok"]:
            break
    assert not r["ok"] and r["counter"] < r["writes"]


def test_bad_configurations_are_value_errors():
    with pytest.raises(ValueError, match="unknown primitive"):
        harness.run("nope", 1, 0.01)
    for kwargs in ({"threads": 0}, {"threads": harness.MAX_THREADS + 1},
                   {"lines": 0}, {"lines": harness.MAX_LINES + 1},
                   {"read_pct": 101}, {"cs_ns": 2 * 10**9}):
        args = {"threads": 1, "lines": 1, "read_pct": 90, "cs_ns": 0,
                **kwargs}
        with pytest.raises(ValueError):
            harness.run("lf-tas", args["threads"], 0.01, args["cs_ns"],
                        lines=args["lines"], read_pct=args["read_pct"])


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_builds_and_reports_not_available_without_ck(tmp_path):
    """LF_BENCH_NO_CK builds the harness as if <ck_spinlock.h> were absent:
    it compiles, the lockfree and pthread locks run, CK says ENOTSUP."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    csrc = os.path.join(root, "csrc")
    tools = os.path.join(csrc, "tools")
    prog = tmp_path / "nock.c"
    prog.write_text(r"""
#include <errno.h>
#include <stdio.h>
#include "bench.h"
int main(void)
{
	struct lf_bench_config c = {.prim = LF_BENCH_CK_FAS, .threads = 1,
		.duration_ns = 1000000, .cs_lines = 1, .cpu = {-1}};
	static struct lf_bench_result r;
	int ck = lf_bench_available(LF_BENCH_CK_MCS), e1 = lf_bench_run(&c, &r);
	c.prim = LF_BENCH_PTHREAD_SPIN;
	int e2 = lf_bench_run(&c, &r);
	printf("%d %d %d %d\n", ck, e1 == -ENOTSUP, e2, r.ok);
	return 0;
}
""")
    exe = tmp_path / "nock"
    srcs = sorted(os.path.join(d, f) for d in (csrc, tools)
                  for f in os.listdir(d) if f.endswith(".c"))
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-Wall", "-Wextra",
                    "-Werror", "-DLF_BENCH_NO_CK", "-I" + csrc, "-I" + tools,
                    str(prog), *srcs, "-pthread", "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", "1", "0", "1"]


def test_wheel_harness_has_no_concurrency_kit():
    """lockfree._tools is built with LF_BENCH_NO_CK wherever it is built:
    the wheel does not depend on the build machine's optional headers."""
    for name in ck.NAMES:
        assert not tlib.lf_bench_available(harness.PRIMITIVES.index(name))
    assert tlib.lf_bench_available(harness.PRIMITIVES.index("lf-tas"))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_probe_finds_the_header_only_where_it_is():
    """The availability probe asks the compiler: with no include path at
    all (-nostdinc) it finds nothing, with the default one it finds CK
    exactly when libck-dev is installed."""
    assert ck.probe(["gcc", "-nostdinc"]) is None
    found = ck.probe(ck.compiler())
    if os.path.exists("/usr/include/ck_spinlock.h"):
        assert found is not None
    if found is not None:
        assert "ck_spinlock_fas_lock" in found


def test_cli_without_ck_headers_says_how_to_get_them(monkeypatch, capsys):
    """No <ck_spinlock.h>: one line on standard error names the missing
    anchors and the package; the rest runs."""
    monkeypatch.setattr(harness, "CK", None)
    monkeypatch.setattr(ck, "probe", lambda cc: None)
    assert main(["bench", "--primitives", "ck-fas,ck-ticket,ck-mcs,lf-tas",
                 "--threads", "1", "--cs-ns", "0", "--duration", "0.01"]) == 0
    cap = capsys.readouterr()
    lines = [x for x in cap.err.splitlines() if "ck-" in x]
    assert lines == ["ck-fas, ck-ticket, ck-mcs: install libck-dev to "
                     "compare against Concurrency Kit"], cap.err
    assert "lf-tas" in cap.out and "ck-fas" not in cap.out
    with pytest.raises(harness.NotAvailable, match="use_ck"):
        harness.run("ck-mcs", 1, 0.01)


def test_ck_harness_is_built_once_and_cached(ck_loaded, ck_cache,
                                             tmp_path):
    built = list(ck.cache_dir().glob("_lockfree_ck_*"))
    assert len(built) == 1 and str(built[0]).startswith(ck_cache)
    assert harness.CK.__file__ == str(built[0])
    again = []
    mod = ck.load(ck.NAMES, again.append)  # from the cache: no build note
    assert again == [] and mod.__file__ == str(built[0])
    # An installed (not editable) lockfree builds from the sources it
    # carries, lockfree/_csrc: they suffice, or the load above failed.
    shipped = pathlib.Path(lockfree.__file__).parent / "_csrc"
    assert ck.csrc_dir() == (shipped if shipped.is_dir() else
                             pathlib.Path(ROOT) / "csrc")
    # The key covers the sources: an edited bench.c is another module.
    cc, header = ck.compiler(), ck.probe(ck.compiler())
    copy = tmp_path / "csrc"
    shutil.copytree(ck.csrc_dir(), copy)
    key = ck._key(copy, cc, header, False)
    (copy / "tools" / "bench.c").write_text(
        (copy / "tools" / "bench.c").read_text() + "\n")
    assert ck._key(copy, cc, header, False) != key


@pytest.mark.skipif(not CK_HEADERS, reason="<ck_spinlock.h> not found: "
                    "apt-get install libck-dev")
def test_cli_runs_ck_anchors_from_the_on_demand_build():
    proc = _cli("--primitives", "ck-fas,ck-mcs,lf-tas", "--threads", "1",
                "--cs-ns", "0", "--duration", "0.02", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [r["primitive"] for r in data["results"]] == \
        ["ck-fas", "ck-mcs", "lf-tas"]
    assert all(r["ok"] for r in data["results"])
    assert data["unavailable"] == []
    assert os.path.basename(data["machine"]["ck_harness"]).startswith(
        "_lockfree_ck_")
    assert "install libck-dev" not in proc.stderr


def test_pin_plans():
    smt = [[0, 2], [1, 3]]
    assert machine.pin_plan("cores", 4, smt)[:2] == ([0, 1, 2, 3], "cores")
    assert machine.pin_plan("siblings", 3, smt)[:2] == ([0, 2, 1],
                                                        "siblings")
    assert machine.pin_plan("none", 2, smt)[0] == [-1, -1]
    cpus, policy, note = machine.pin_plan("siblings", 3, [[0], [1]])
    assert cpus == [0, 1, 0] and policy == "cores" and "no SMT" in note
    with pytest.raises(ValueError):
        machine.pin_plan("smt", 1, smt)
    cores = machine.topology()
    assert sorted(c for core in cores for c in core) == \
        sorted(os.sched_getaffinity(0))


def _record(prim, threads, cs, mops):
    keys = dict.fromkeys(matrix.MEDIAN_KEYS, 1.0)
    return {"primitive": prim, "threads": threads, "cs_ns": cs, "ncs_ns": 0,
            "lines": 1, "read_pct": 0, "ok": True,
            "median": {**keys, "mops": mops}}


def test_claims_and_table():
    recs = [_record("pthread-mutex", 2, 0, 1.0),
            _record("pthread-spin", 2, 0, 2.5),
            _record("lf-ttas", 2, 0, 12.0),
            _record("pthread-mutex", 2, 5000, 1.0),
            _record("pthread-spin", 2, 5000, 0.9)]
    c = report.claims(recs)
    first = c["spin_vs_mutex"][0]
    assert first["best"] == "lf-ttas" and first["holds"]
    assert [x["holds"] for x in c["pthread_spin_vs_mutex"]] == [True, False]
    assert not c["spin_vs_mutex"][1]["holds"]
    assert "does not hold" in report.claims_text(c)
    out = io.StringIO()
    report.render(report.sections(recs), "HEAD", stream=out)
    text = out.getvalue()
    assert text.startswith("HEAD") and "12.00" in text and "ok" in text


def test_plain_progress_on_a_pipe_is_short():
    out = io.StringIO()
    bar = progress.Plain(100, out)
    for i in range(100):
        bar(f"step {i}")
    bar.close()
    assert 5 <= len(out.getvalue().splitlines()) <= 11


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "lockfree", "bench", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_cli_json_to_stdout():
    """--json - writes the JSON alone to standard output (the table goes to
    standard error) and creates no file named '-'."""
    proc = _cli("--quick", "--primitives", "lf-tas", "--threads", "1",
                "--cs-ns", "0", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "lockfree-bench/1"
    assert [r["primitive"] for r in data["results"]] == ["lf-tas"]
    assert "Claims of" in proc.stderr and not os.path.exists("-")


def test_cli_quick_writes_json_and_png(tmp_path):
    try:
        import matplotlib  # noqa: F401
        plot = True
    except ImportError:
        plot = False
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    proc = _cli("--quick", "--json", str(js),
                *(["--plot", str(png)] if plot else []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ('Claims of "Lock-free programming through the Linux kernel"'
            in proc.stdout)
    assert f"wrote {js}" in proc.stderr and "wrote" not in proc.stdout
    data = json.loads(js.read_text())
    m = data["machine"]
    for key in ("cpu_model", "physical_cores", "smt_summary", "smt_siblings",
                "kernel", "python"):
        assert m[key] not in (None, "")
    assert m["lockfree"]["atomics"] in ("x86-64-asm", "portable")
    settings = matrix.Settings(**data["settings"])
    assert len(data["results"]) == len(settings.configs())
    for rec in data["results"]:
        assert rec["ok"] and rec["repeats"][0]["counter"] == \
            rec["repeats"][0]["writes"]
        assert rec["median"]["mops"] > 0
    if not plot:
        pytest.skip("matplotlib not installed: PNG part not tested")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_python_mode(tmp_path):
    js = tmp_path / "p.json"
    proc = _cli("--python", "--threads", "1,2", "--duration", "0.05",
                "--json", str(js))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(js.read_text())
    impls = {r["implementation"] for r in data["results"]}
    assert {"cffi floor: 2x lf_noop1", "lockfree.SpinLock", "threading.Lock",
            "multiprocessing.Lock"} <= impls
    modes = {r["mode"] for r in data["results"]}
    assert modes == {"threads", "processes"}
    for r in data["results"]:
        assert r["ok"] in (True, None)  # None: the floor has no lock


def test_cli_exit_status_reports_a_failed_check():
    proc = _cli("--primitives", "none", "--threads", "2", "--cs-ns", "0",
                "--duration", "0.1")
    if "FAIL" not in proc.stdout:  # the race did not show in 0.1 s
        pytest.skip("no lost update this time")
    assert proc.returncode == 1
    assert "counter check FAILED for: none" in proc.stdout


BAD = [
    ["--threads", "0"], ["--threads", "x"], ["--threads", "65"],
    ["--cs-ns", "-1"], ["--primitives", "nope"], ["--duration", "0"],
    ["--duration", "abc"], ["--repeat", "0"], ["--pin", "smt"],
    ["--lines", "65"], ["--lat-every", "3"], ["--read-pct", "101"],
    ["--ncs-ns", "1,2"],
    ["--json", "/nonexistent-dir/x.json"], ["--python", "--plot", "x.png"],
]


@pytest.mark.parametrize("argv", BAD, ids=" ".join)
def test_option_errors_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m lockfree bench" in err


def test_option_error_has_no_traceback():
    proc = _cli("--threads", "0")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys,
                                                  tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--quick", "--plot", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    assert "needs matplotlib" in capsys.readouterr().err
