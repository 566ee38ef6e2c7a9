"""`crossrank eval`'s corpus-embedding cache: keyed by the model's content, never its path or mtime.

Embedding a corpus takes minutes; a model folder that is copied or re-provisioned (new mtime, new path)
must reuse its vectors, and a model whose weights or tokenizer changed must not.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from crossrank.cli.eval import _corpus_vectors
from crossrank.models.embedder import Embedder

TEXTS = ["the cat sat on the mat", "dogs bark at night", "", "a quick brown fox"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"


def _embed(folder):
    return _corpus_vectors(Embedder(folder, precision="fp32", num_threads=1), TEXTS, True)


def test_cache_hit_survives_copy_and_new_mtime(tiny_bert_embedding_onnx, tmp_path, cache):
    vecs, _, cached = _embed(tiny_bert_embedding_onnx)
    assert not cached
    assert len(list(cache.glob("*.npy"))) == 1
    copy = shutil.copytree(tiny_bert_embedding_onnx, tmp_path / "copy")
    for f in copy.rglob("*"):
        os.utime(f, ns=(1, 1))  # as a re-provisioned folder: other path, other mtimes
    again, _, cached = _embed(copy)
    assert cached
    np.testing.assert_array_equal(again, vecs)


def test_cache_misses_when_weights_or_tokenizer_change(tiny_bert_embedding_onnx, tmp_path, cache):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    vecs, _, _ = _embed(tiny_bert_embedding_onnx)
    # Other weights at the same path layout: one float initializer nudged.
    changed = shutil.copytree(tiny_bert_embedding_onnx, tmp_path / "weights")
    graph_path = next(changed.rglob("model.onnx"))
    graph = onnx.load(str(graph_path))
    init = max(graph.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)  # a weight matrix
    w = numpy_helper.to_array(init)
    noise = np.random.default_rng(0).normal(0, 0.1, w.shape).astype(w.dtype)
    init.CopyFrom(numpy_helper.from_array(w + noise, init.name))
    onnx.save(graph, str(graph_path))
    other, _, cached = _embed(changed)
    assert not cached
    assert not np.allclose(other, vecs)
    # The tokenizer is part of the key too (a changed vocabulary changes the vectors).
    tok_copy = shutil.copytree(tiny_bert_embedding_onnx, tmp_path / "tokenizer")
    tok = tok_copy / "tokenizer.json"
    tok.write_text(tok.read_text() + " ")
    _, _, cached = _embed(tok_copy)
    assert not cached
    assert len(list(cache.glob("*.npy"))) == 3


def test_damaged_cache_file_is_recomputed(tiny_bert_embedding_onnx, cache):
    vecs, _, _ = _embed(tiny_bert_embedding_onnx)
    (entry,) = cache.glob("*.npy")
    entry.write_bytes(b"not a numpy file")
    again, _, cached = _embed(tiny_bert_embedding_onnx)
    assert not cached
    np.testing.assert_allclose(again, vecs, atol=1e-6)
    _, _, cached = _embed(tiny_bert_embedding_onnx)
    assert cached  # rewritten


def test_no_cache_writes_nothing(tiny_bert_embedding_onnx, cache):
    _, _, cached = _corpus_vectors(
        Embedder(tiny_bert_embedding_onnx, precision="fp32", num_threads=1), TEXTS, False
    )
    assert not cached
    assert not cache.exists()
