"""Run a Hypothesis property for a wall-clock budget, storing the (shrunk) failing case."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

REGRESSIONS = Path(__file__).parent / "regressions"


def budget() -> float:
    """Seconds per target: ``FUZZ_SECONDS`` (CI sets it), else a short local default."""
    return float(os.environ.get("FUZZ_SECONDS", "5"))


def save_case(target: str, case: Any) -> Path:
    """Write ``case`` to ``regressions/<target>/<digest>.json`` (replayed by the normal tests)."""
    text = json.dumps(case, sort_keys=True, ensure_ascii=True)
    path = REGRESSIONS / target / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def fuzz(target: str, cases: st.SearchStrategy[Any], check: Callable[[Any], None]) -> int:
    """Feed ``check`` cases drawn from ``cases`` until the budget is spent; return how many ran.

    On a failure Hypothesis shrinks the case and replays the smallest one last; that case is saved
    under ``regressions/`` and the failure is raised.
    """
    last: dict[str, Any] = {}
    count = [0]
    # A case that kills the process (a signal, not an exception) is left in this file.
    pending = REGRESSIONS / target / "crashed-on.json"
    pending.parent.mkdir(parents=True, exist_ok=True)
    stop = time.monotonic() + budget()
    failed = [False]

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: cases are small by construction, and time stays bounded
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def prop(case: Any) -> None:
        # Past the budget the rest of the round only draws cases (cheap); once a check has failed,
        # every case runs, so that Hypothesis shrinks and replays the failure faithfully.
        if time.monotonic() > stop and not failed[0]:
            return
        last["case"] = case
        count[0] += 1
        pending.write_text(json.dumps(case, sort_keys=True, ensure_ascii=True) + "\n", encoding="utf-8")
        try:
            check(case)
        except BaseException:
            failed[0] = True
            raise

    while time.monotonic() < stop:
        try:
            prop()
        except Exception:
            pending.unlink(missing_ok=True)  # an exception, not a crash: the shrunk case is saved
            if "case" in last:
                print(f"\n{target}: failing case saved to {save_case(target, last['case'])}")
            raise
    pending.unlink(missing_ok=True)
    print(f"\n{target}: {count[0]} cases in {budget():.0f} s, no failure")
    return count[0]
