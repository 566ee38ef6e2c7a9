"""Embedding throughput: crossrank Embedder vs sentence-transformers ``encode`` on the SciFact corpus.

Same model (all-MiniLM-L6-v2), same thread count, same texts (title + text). Run:

    PYTHONPATH=python CROSSRANK_DATASETS=../shared/datasets CROSSRANK_MODELS=../shared/models \
        python -m pytest bench/test_bench_dense.py --benchmark-group-by=group -q

``CROSSRANK_BENCH_DOCS`` (default 512; 0 = the whole corpus of 5,183) limits the documents and
``CROSSRANK_BENCH_THREADS`` (default 2) sets the threads of both implementations.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATASETS = Path(
    os.environ.get("CROSSRANK_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)
MODELS = Path(os.environ.get("CROSSRANK_MODELS", Path(__file__).resolve().parents[2] / "shared" / "models"))
N_DOCS = int(os.environ.get("CROSSRANK_BENCH_DOCS", "512"))
THREADS = int(os.environ.get("CROSSRANK_BENCH_THREADS", "2"))
MODEL = MODELS / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def texts():
    from crossrank.eval.datasets import load_beir

    if not (DATASETS / "scifact").is_dir() or not MODEL.is_dir():
        pytest.skip("SciFact or all-MiniLM-L6-v2 not found (set CROSSRANK_DATASETS / CROSSRANK_MODELS)")
    docs = load_beir(DATASETS / "scifact").documents()
    return docs[:N_DOCS] if N_DOCS > 0 else docs


def _crossrank(precision, backend):
    from crossrank.models.embedder import Embedder

    emb = Embedder(MODEL, precision=precision, backend=backend, num_threads=THREADS)
    return emb.encode


def _sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    model = st.SentenceTransformer(str(MODEL), device="cpu")
    return lambda xs: model.encode(xs, batch_size=32, convert_to_numpy=True)


IMPLS = {
    "sentence-transformers-torch-fp32": _sentence_transformers,
    "crossrank-onnxruntime-fp32": lambda: _crossrank("fp32", "onnxruntime"),
    "crossrank-auto": lambda: _crossrank("auto", "auto"),
}


@pytest.mark.parametrize("impl", list(IMPLS))
def test_embed_scifact_corpus(benchmark, texts, impl):
    encode = IMPLS[impl]()
    encode(texts[:32])  # warm-up: load, first shapes
    benchmark.group = f"embed scifact ({len(texts)} docs, {THREADS} threads)"
    benchmark.extra_info["docs"] = len(texts)
    benchmark.extra_info["threads"] = THREADS
    out = benchmark.pedantic(encode, args=(texts,), rounds=1, iterations=1)
    assert out.shape[0] == len(texts)
    assert np.isfinite(out).all()
    benchmark.extra_info["docs_per_s"] = len(texts) / benchmark.stats.stats.mean
