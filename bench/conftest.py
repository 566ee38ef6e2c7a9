"""Shared benchmark setup: data locations, the exported MiniLM-L6 cross-encoder, machine facts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # reuse tests/reference and the test fixtures' helpers

from data_fixtures import datasets_dir, minilm_dir  # noqa: E402
from model_fixtures import _crossrank_cache, minilm_ce_checkpoint, minilm_ce_onnx  # noqa: E402


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what makes a figure comparable: build, SIMD path, threads, kernel."""
    import platform

    import crossrank

    machine_info["crossrank"] = crossrank.build_info()
    machine_info["kernel"] = platform.release()
    machine_info["cpu_count"] = os.cpu_count()


__all__ = ["_crossrank_cache", "datasets_dir", "minilm_ce_checkpoint", "minilm_ce_onnx", "minilm_dir"]
