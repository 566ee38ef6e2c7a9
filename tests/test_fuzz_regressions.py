"""Replay every case the fuzz targets stored in ``tests/fuzz/regressions/<target>/`` (issue 12).

The fuzz targets themselves run only in ``.ci/run``'s bounded fuzz step; the cases they found (and the
hand-made seeds beside them) run here, in the normal test run, through the same checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz.targets import CHECKS

REGRESSIONS = Path(__file__).parent / "fuzz" / "regressions"
CASES = sorted(REGRESSIONS.glob("*/*.json"))


def test_every_target_has_stored_cases() -> None:
    assert {p.parent.name for p in CASES} == set(CHECKS)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_stored_fuzz_case(path: Path) -> None:
    if path.parent.name == "server":
        pytest.importorskip("fastapi")
    CHECKS[path.parent.name](json.loads(path.read_text(encoding="utf-8")))
