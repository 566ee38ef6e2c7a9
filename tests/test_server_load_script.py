"""The load-test script runs end to end (fake model, a few requests) and stops by itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("psutil")

from server_process import REPO


def test_load_test_script_reports_and_stops(datasets_dir, tmp_path):
    out = tmp_path / "report.json"
    argv = [
        sys.executable,
        str(REPO / "bench" / "load_test_server.py"),
        "--model",
        "py:server_fakes:make_model",
        "--dataset",
        str(datasets_dir / "scifact"),
        "--docs",
        "20",
        "--distinct",
        "8",
        "--phases",
        "4x3,2x3",
        "--max-seconds",
        "60",
        "--json",
        str(out),
    ]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(out.read_text())
    assert [ph["requests_ok"] for ph in report["phases"]] == [12, 6]
    assert all(ph["failed"] == 0 for ph in report["phases"])
    assert report["in_process"]["pairs"] == 8 * 20
    assert report["phases"][0]["p50_ms"] <= report["phases"][0]["p99_ms"]
    assert report["rss_end_mb"] > 0
