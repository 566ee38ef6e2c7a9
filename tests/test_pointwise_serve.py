"""``crossrank serve --model pointwise:MODEL``: the cohere SDK gets the in-process order and scores."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("torch")

from server_process import ServerProcess
from test_server_rerankers import check_cohere_matches_in_process


def test_serve_pointwise_spec_matches_in_process_rank(tiny_qwen3_onnx: Path) -> None:
    from crossrank.rerank.spec import load_reranker

    spec = f"pointwise:{tiny_qwen3_onnx}"
    srv = ServerProcess(
        ["--model", spec, "--max-length", "192", "--precision", "fp32", "--max-wait-ms", "20"], startup_s=180
    )
    try:
        reranker = load_reranker(spec, precision="fp32", max_length=192)
        check_cohere_matches_in_process(srv, reranker)
        health = httpx.get(srv.url + "/health").json()
        assert (health["model"], health["max_length"]) == (spec, 192)
    finally:
        assert srv.stop(), srv.logs()
