"""Fuzz targets (issue 12): run by ``.ci/run`` for a bounded time each, not by the normal test run.

``targets.py`` holds one check per target: it takes a JSON-ready case and fails only on a bug (an
exception other than the documented ones, or a wrong answer). ``fuzz_*.py`` drive those checks with
Hypothesis for ``FUZZ_SECONDS`` each; a failing case is written to ``regressions/<target>/`` and
``tests/test_fuzz_regressions.py`` replays every stored case in the normal test run.
"""
