"""The teaching demos run, say what they are about, and are right."""

import subprocess
import sys

import pytest

from lockfree.__main__ import main
from lockfree.demos import DEMOS, aba, cas_retry, lost_update


def test_listing(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for name in DEMOS:
        assert name in out


def test_lost_update_atomic_is_exact():
    plain, atomic = lost_update.measure(4, 200_000)
    assert atomic == 800_000
    assert 0 < plain <= 800_000


def test_lost_update_rejects_bad_arguments():
    with pytest.raises(OSError):
        lost_update.measure(0, 10)
    with pytest.raises(OSError):
        lost_update.measure(1000, 10)


def test_cas_retry_c_threads_histogram_accounts_for_every_increment():
    hist, attempts, final = cas_retry.c_threads(2, 50_000)
    assert final == 100_000
    assert sum(hist) == 100_000
    assert attempts >= 100_000
    one_hist, one_attempts, _ = cas_retry.c_threads(1, 10_000)
    assert one_hist[0] == 10_000 and one_attempts == 10_000  # no contention


def test_cas_retry_python_processes_exact():
    hist, attempts, final = cas_retry.py_processes(2, 2_000)
    assert final == 4_000 and sum(hist) == 4_000 and attempts >= 4_000


def test_aba_script_is_deterministic():
    lines = []
    plain = aba.script(tagged=False, say=lines.append)
    assert plain["corrupt"]
    assert plain["stack"] == ["B", "C"] and plain["t2"] == ["B"]
    tagged = aba.script(tagged=True, say=lines.append)
    assert not tagged["corrupt"]
    assert tagged["stack"] == ["C"] and tagged["t1"] == "A"
    assert any("CORRUPTED" in line for line in lines)


@pytest.mark.parametrize("name", list(DEMOS))
def test_each_demo_runs_from_the_cli(name):
    args = [sys.executable, "-m", "lockfree", "demo", name]
    iterations = {"aba": None, "rcu": None, "once": "30",
                  "spin-vs-mutex": "100"}.get(name, "20000")
    if iterations:
        args += ["--iterations", iterations]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) > 5


def test_demo_usage_errors():
    for bad in (["demo", "nope"], ["demo", "lost-update", "--threads", "0"],
                ["demo", "cas-retry", "--iterations", "x"]):
        proc = subprocess.run([sys.executable, "-m", "lockfree", *bad],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, bad
        assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_spin_vs_mutex_counts_are_exact():
    from lockfree.demos import spin_vs_mutex
    res = spin_vs_mutex.measure(0.05)
    assert all(r["ok"] for r in res.values())
    assert set(res) == {(p, t, cs) for t, cs in spin_vs_mutex.CASES
                        for p in spin_vs_mutex.PRIMS}


def test_rcu_timeline_frees_v1_only_after_its_readers_left():
    from lockfree.demos import rcu
    events = rcu.timeline(hold=0.05, say=lambda line: None)
    who = [w for w, _ in events]
    freed = who.index("reclaimer")
    leaves = [i for i, (w, what) in enumerate(events) if "leaves" in what]
    assert len(leaves) == 2 and freed > max(leaves)
    assert ("reader 3", "enters after the publish, sees v2") in events


def test_kfifo_walkthrough_wraps_and_splits():
    from lockfree.demos import kfifo
    lines = []
    assert kfifo.script(say=lines.append) == [b"ABC", b"DEFGHIJ", b"WXYZ"]
    text = "\n".join(lines)
    assert "two copies: [5..7] then wrap to [0..1]" in text
    assert "in=1 out=4294967293 len=in-out=4" in text  # unsigned wrap


@pytest.mark.parametrize("name,extra", [("cas-retry", ["--iterations",
                                                       "5000"]),
                                        ("spin-vs-mutex", ["--iterations",
                                                           "50"])])
def test_demo_plot_writes_png(name, extra, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    proc = subprocess.run([sys.executable, "-m", "lockfree", "demo", name,
                           *extra, "--plot", str(png)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_plot_rejects_plot_option():
    proc = subprocess.run([sys.executable, "-m", "lockfree", "demo", "aba",
                           "--plot", "x.png"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "has no --plot" in proc.stderr
