"""Hostile peers: a process scribbling over a live segment, or a mutated
region, must never crash or hang the process using it.

The worst another process mapping a segment may cause is wrong data inside
the segment or a clear error (``CorruptStateError`` and the errors each
method documents, see ``tests/hostile_steps.py``): never a crash (a death by
signal), never a hang.  Two tests per primitive (the machinery, and a
command line to reproduce one seed, are in ``tests/hostile.py`` and
``tests/hostile_attach.py``):

* ``test_scribbled_segment``: victim processes keep operating on a shared
  object (every primitive and mode; a Kfifo's producer and consumer each in
  a process of their own) while this process writes random 1/2/4/8-byte
  values at random offsets over its whole segment, header included.  Each
  run's victims report how many operations they completed; a victim that
  did nothing fails the run.
* ``test_mutated_attach``: valid regions of every kind (with some history)
  get random bytes and words flipped or overwritten, header and state; the
  attach must raise ``ValueError`` or give an object whose operations work
  or raise documented errors.  The region ends where an inaccessible page
  begins, so a read or write past its end crashes the worker.

Quick mode (default): 6 scribble runs per case and 100 mutated attaches
per kind, under a minute on two cores when nothing hangs (a hang costs
``hostile.HANG`` = 10 s and stops its case).  ``LOCKFREE_LONG=1``: 800
scribble runs per case (>= 10^4 in all) and 3,000 mutated attaches per
kind.  Each session draws a base seed (printed with the summary and in
every failure); ``LOCKFREE_HOSTILE_SEED`` fixes it, ``LOCKFREE_HOSTILE_RUNS``
/ ``LOCKFREE_HOSTILE_TRIALS`` set the counts and
``LOCKFREE_HOSTILE_MAX_HANGS`` the hangs after which a case stops (1; 3 in
long mode).  Runs and crashes per primitive are printed at the end of the
module.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from . import hostile, hostile_attach
from .conftest import LONG
from .hostile_cases import CASES

BASE = int(os.environ.get("LOCKFREE_HOSTILE_SEED",
                          random.SystemRandom().randrange(2**32)))
RUNS = int(os.environ.get("LOCKFREE_HOSTILE_RUNS", 800 if LONG else 6))
TRIALS = int(os.environ.get("LOCKFREE_HOSTILE_TRIALS",
                            3000 if LONG else 100))
# A hang costs HANG seconds: stop the case after this many.
MAX_HANGS = int(os.environ.get("LOCKFREE_HOSTILE_MAX_HANGS",
                               3 if LONG else 1))
ROWS: dict = {}


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    """Print runs and crashes per primitive when the module is done."""
    yield
    plugins = request.config.pluginmanager
    tr = plugins.getplugin("terminalreporter")
    if tr is None or not ROWS:
        return
    capture = plugins.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown if all passed too
        _table(tr)


def _table(tr):
    tr.write_line("")
    tr.write_line(f"hostile peers (base seed {BASE}): runs / victims "
                  "that died by a signal / hung / raised unexpected errors "
                  "/ ops completed")
    for name in sorted(ROWS):
        tr.write_line(f"  {name:32} " + ROWS[name])


def _row(key, text):
    ROWS[key] = text
    print(f"{key}: {text}")


def _first(failures):
    """The first two failures of each kind ((kind, text) pairs)."""
    seen, shown = {}, []
    for kind, text in failures:
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= 2:
            shown.append(text)
    return "\n\n".join(shown)


def _describe(name, seed, role, m):
    head = (f"{name} role {role} seed {seed} (base {BASE}; reproduce: "
            f"python -m tests.hostile run {name} {seed})")
    if m["outcome"] in ("died", "hang"):
        how = "hang" if m["outcome"] == "hang" else \
            f"died by signal {-m['rc']}" if m["rc"] < 0 else \
            f"exited with {m['rc']}"
        return (f"{head}: {how}; victim's runs {m['seeds']}\n"
                f"{m['stderr']}")
    if m["outcome"] == "bad":
        return (f"{head}: {m['n_unexpected']} unexpected results\n"
                + "\n".join(m["unexpected"]))
    return f"{head}: {m['outcome']}"


@pytest.mark.parametrize("name", list(CASES))
def test_scribbled_segment(name, tmp_path):
    case = CASES[name]
    victims = {}
    counts = dict(runs=0, crashes=0, hangs=0, bad=0, ops=0, writes=0)
    failures = []
    t0 = time.monotonic()
    try:
        for i in range(RUNS):
            seed = hostile.derive(BASE, name, i)
            r = hostile.one_run(case, seed, victims, str(tmp_path))
            counts["runs"] += 1
            counts["writes"] += r["writes"]
            for role, m in r["roles"].items():
                out = m["outcome"]
                if out == "ok" and (m["warm_ok"] < 1 or m["ops"] < 1):
                    out = m["outcome"] = "did nothing"
                if out == "died" and m["rc"] < 0:
                    counts["crashes"] += 1
                elif out == "hang":
                    counts["hangs"] += 1
                elif out != "ok":
                    counts["bad"] += 1
                counts["ops"] += m.get("ok", 0)
                if out != "ok":
                    failures.append((out, _describe(name, seed, role, m)))
            if counts["hangs"] >= MAX_HANGS:
                break
    finally:
        hostile.close_victims(victims)
    per = "" if len(case.roles) == 1 else \
        f" ({counts['runs'] * len(case.roles)} victims)"
    text = (f"{counts['runs']} runs{per} / {counts['crashes']} crashes / "
            f"{counts['hangs']} hangs / {counts['bad']} unexpected / "
            f"{counts['ops']} ops ({counts['writes']} writes, "
            f"{time.monotonic() - t0:.1f} s)")
    _row(f"scribble {name}", text)
    if failures:
        pytest.fail(f"{name}: {text}\n\n" + _first(failures), pytrace=False)
    assert counts["runs"] == RUNS and counts["writes"] > 0
    assert counts["ops"] >= 10 * RUNS * len(case.roles), \
        f"the victims did almost nothing: {text}"


@pytest.mark.parametrize("kind", hostile_attach.ATTACH_KINDS)
def test_mutated_attach(kind):
    t0 = time.monotonic()
    r = hostile_attach.run_attach(kind, BASE, TRIALS)
    errors = sorted(r["errors"].items(), key=lambda kv: -kv[1])[:6]
    text = (f"{r['trials']} trials / {len(r['crashes'])} crashes / "
            f"{len(r['hangs'])} hangs / {r['bad']} unexpected"
            f" / {r['attached']} attached ({time.monotonic() - t0:.1f} s)")
    if r["exits"]:
        text += f" ({len(r['exits'])} harness errors)"
    _row(f"attach {kind}", text)

    def _what(what, w):
        return "hang" if what == "hangs" else f"exit code {w['rc']}"

    failures = [(what, f"trial {w['trial']} seed {w['seed']} ("
                 f"{_what(what, w)}"
                 f"; reproduce: python -m tests.hostile attach {kind} "
                 f"{w['seed']})\n{w['stderr']}")
                for what in ("crashes", "hangs", "exits") for w in r[what]]
    failures += [("unexpected", t) for t in r["unexpected"]]
    if failures:
        pytest.fail(f"{kind} (base seed {BASE}): {text}\nerrors: {errors}"
                    "\n\n" + _first(failures), pytrace=False)
    assert r["trials"] == TRIALS
    # The mutations must leave some regions attachable (else only the
    # header check is tested) and refuse others.
    assert 0 < r["attached"] < TRIALS, text


def test_hostile_harness_detects_failures(tmp_path):
    """The suite can fail: a victim that dies by a signal, hangs or raises
    an unexpected exception once the scribbling starts is reported as
    such, with its seed; and an attach worker that crashes is restarted
    after the crashing trial and the others still run."""
    from .hostile_cases import SELFTEST
    want = {"selftest-crash": "died", "selftest-hang": "hang",
            "selftest-unexpected": "bad"}
    for name, outcome in want.items():
        victims = {}
        try:
            r = hostile.one_run(SELFTEST[name], 7, victims, str(tmp_path),
                                hang=2.0)
        finally:
            hostile.close_victims(victims)
        m = r["roles"]["main"]
        assert m["outcome"] == outcome, (name, m)
        assert r["writes"] > 0
        if outcome == "died":
            assert m["rc"] == -11 and "Segmentation fault" in m["stderr"]
        if outcome == "hang":
            # SIGABRT first: faulthandler shows where the victim hung
            assert "Aborted" in m["stderr"] and "hostile_cases.py" in \
                m["stderr"], m["stderr"]
        if outcome == "bad":
            assert "boom raised KeyError" in m["unexpected"][0]
    r = hostile_attach.run_attach("selftest-crash", 0, 6)
    crashed = [w["trial"] for w in r["crashes"]]
    assert crashed == [i for i in range(6)
                       if hostile.derive(0, "selftest-crash", i) % 3 == 0]
    assert crashed and r["trials"] == 6 and not r["hangs"]
