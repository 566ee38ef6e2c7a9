"""Where the test collections and models live (configurable by environment), as fixtures shared by
tests/ and bench/. Both skip when the data is absent; CI turns such skips into failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CROSSRANK_DATASETS", REPO.parent / "shared" / "datasets"))
MODELS = Path(os.environ.get("CROSSRANK_MODELS", REPO.parent / "shared" / "models"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"test collections not found at {DATASETS} (set CROSSRANK_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    path = MODELS / "all-MiniLM-L6-v2"
    if not path.is_dir():
        pytest.skip(f"all-MiniLM-L6-v2 not found at {path} (set CROSSRANK_MODELS)")
    return path
