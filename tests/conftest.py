"""Shared fixtures (data locations, exported models) and CI's strict-skip rule."""

from __future__ import annotations

import os

import pytest

from data_fixtures import datasets_dir, minilm_dir

# Seeded tiny BERTs and MiniLM-L6 exported with crossrank's exporter (cross-encoder, embedding): see
# tests/model_fixtures.py. Imported here so every test file (and bench/ through its conftest) can use them.
from model_fixtures import (
    _crossrank_cache,
    minilm_ce_checkpoint,
    minilm_ce_onnx,
    tiny_bert_checkpoint,
    tiny_bert_embedding_onnx,
    tiny_bert_multilabel_checkpoint,
    tiny_bert_multilabel_onnx,
    tiny_bert_onnx,
)
from pointwise_fixtures import tiny_qwen3_checkpoint, tiny_qwen3_onnx  # LLM reranker (test_pointwise*)
from ray_fixtures import ray_local

__all__ = [
    "_crossrank_cache",
    "datasets_dir",
    "minilm_ce_checkpoint",
    "minilm_ce_onnx",
    "minilm_dir",
    "ray_local",
    "tiny_bert_checkpoint",
    "tiny_bert_embedding_onnx",
    "tiny_bert_multilabel_checkpoint",
    "tiny_bert_multilabel_onnx",
    "tiny_bert_onnx",
    "tiny_qwen3_checkpoint",
    "tiny_qwen3_onnx",
]


# CI runs with CROSSRANK_STRICT_SKIPS=1: a test skipped because a dependency, data set or model is
# missing would hide a broken install step, so there it fails instead. Skips that need hardware this
# machine does not have (a GPU, a CPU feature) stay skips.
_HARDWARE_SKIP_WORDS = ("gpu", "cuda", "cpu lacks", "not available here", "avx", "bf16 units", "neon")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("CROSSRANK_STRICT_SKIPS") == "1"):
        return
    if hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(word in reason.lower() for word in _HARDWARE_SKIP_WORDS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CROSSRANK_STRICT_SKIPS=1 (fix the install or the data path): {reason}"
