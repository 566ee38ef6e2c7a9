"""Shared benchmark setup: data locations, the exported MiniLM-L6 cross-encoder, machine facts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # reuse tests/reference and the test fixtures' helpers

from model_fixtures import _crossrank_cache, minilm_ce_checkpoint, minilm_ce_onnx  # noqa: E402

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


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what makes a figure comparable: build, SIMD path, threads, kernel."""
    import platform

    import crossrank

    machine_info["crossrank"] = crossrank.build_info()
    machine_info["kernel"] = platform.release()
    machine_info["cpu_count"] = os.cpu_count()


__all__ = ["_crossrank_cache", "datasets_dir", "minilm_ce_checkpoint", "minilm_ce_onnx", "minilm_dir"]
