"""pytest side of the benchmarks (see _report.py and README.md).

A benchmark file parametrizes one test over its ``CASES`` and calls the
``bench_case`` fixture; the best and median ns/op land in one registry,
printed as the ratio table at the end of the session.  ``TARGETS`` in the
file, if any, marks missed targets.
"""

import pytest
from _report import OPS, Results, environment

_results = Results()


def pytest_collect_file(file_path, parent):
    # bench_*.py do not match pytest's test_*.py: collect them when pytest
    # walks this directory (a file named on the command line is collected
    # by pytest itself).
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def bench_case(benchmark, request):
    """``bench_case(case)``: time ``case.loop()`` and record ns/op."""
    targets = getattr(request.module, "TARGETS", None)

    def run(case):
        try:
            loop = case.loop()
        except ImportError as exc:
            _results.add(case, None, targets, note="not installed")
            pytest.skip(f"{case.impl} not installed ({exc})")
        benchmark.group = case.group
        benchmark.extra_info.update(role=case.role, impl=case.impl,
                                    call=case.label, ops_per_round=OPS)
        loop()  # warm up (specialise the bytecode)
        benchmark(loop)
        if benchmark.enabled:
            stats = benchmark.stats.stats
            ns, med = stats.min / OPS * 1e9, stats.median / OPS * 1e9
            benchmark.extra_info["best_ns_per_op"] = round(ns, 2)
            benchmark.extra_info["median_ns_per_op"] = round(med, 2)
            _results.add(case, ns, targets, median=med)
    return run


@pytest.fixture
def bench_record():
    """``bench_record(case, ns, targets=None)``: add a row measured some
    other way (e.g. across processes) to the ratio table."""
    return _results.add


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter):
    if _results:
        title = (f"{environment()}\nbest and median ns/op over "
                 f"pytest-benchmark rounds of {OPS} calls")
        terminalreporter.write_sep("=", "ns/op and ratios")
        terminalreporter.write_line(_results.format(title))
