"""`crossrank index` and `crossrank search` end to end, through a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server_process import CROSSRANK_ROOT

REPO = Path(__file__).resolve().parents[1]


def crossrank(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": CROSSRANK_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "crossrank", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    root.mkdir()
    docs = [
        {"_id": "d1", "title": "Cats", "text": "Cats sleep most of the day."},
        {"_id": "d2", "title": "Dogs", "text": "Dogs bark at the mail carrier."},
        {"_id": "d3", "title": "", "text": "Birds sing in the morning; cats listen."},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    return root


def test_index_then_search(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ix"
    r = crossrank("index", str(dataset), "-o", str(out), "--k1", "0.9", "--b", "0.4", "--no-stem")
    assert r.returncode == 0, r.stderr
    assert "crossrank index" in r.stderr  # the progress bar
    assert (out / "manifest.json").is_file()
    r = crossrank("search", str(out), "cats", "bark", "-k", "2", "--json")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert [x["query"] for x in results] == ["cats", "bark"]
    assert {x["id"] for x in results[0]["results"]} == {"d1", "d3"}
    assert results[1]["results"][0]["id"] == "d2"
    assert isinstance(results[1]["results"][0]["score"], float)
    r = crossrank("search", str(out), "cats", "-k", "1")
    assert r.returncode == 0
    assert "d1" in r.stdout or "d3" in r.stdout


def test_cli_errors(dataset: Path, tmp_path: Path) -> None:
    r = crossrank("index", str(tmp_path / "missing"), "-o", str(tmp_path / "ix"))
    assert r.returncode == 2
    assert "corpus.jsonl not found" in r.stderr
    r = crossrank("index", str(dataset), "-o", str(tmp_path / "ix"), "--b", "2")
    assert r.returncode == 2
    assert "b must be in [0, 1]" in r.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{}")
    r = crossrank("search", str(tmp_path / "junk"), "q")
    assert r.returncode == 2
    assert "not a crossrank BM25 manifest" in r.stderr
    assert "Traceback" not in r.stderr
