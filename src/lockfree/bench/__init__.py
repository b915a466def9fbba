"""Lock benchmarks: ``python -m lockfree bench``.

The timed loop is C (``csrc/tools/bench.c`` in ``lockfree._tools``, one
cffi call per run with the GIL released); Python only configures, repeats,
and reports:

* :mod:`.harness` -- one run of the C harness as a dict of raw figures;
* :mod:`.ck` -- the Concurrency Kit anchors' harness, built on demand;
* :mod:`.machine` -- CPU model, SMT topology, pinning policies;
* :mod:`.matrix` -- primitives x threads x critical-section lengths,
  interleaved repeats, medians;
* :mod:`.report` -- the table and the two claims of "Lock-free programming
  through the Linux kernel";
* :mod:`.plot` -- the PNG (matplotlib, optional);
* :mod:`.pylevel` -- the same idea with Python threads and processes;
* :mod:`.cli` -- the ``bench`` subcommand.
"""

from .harness import PRIMITIVES, available, run, use_ck

__all__ = ["PRIMITIVES", "available", "run", "use_ck"]
