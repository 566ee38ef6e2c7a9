"""Tokenize + pack cost of a cross-encoder rerank: crossrank's packer vs Hugging Face pair encoding.

Workload: 50 SciFact test queries x 100 candidate documents each (seeded sample of the corpus, about the
length mix of BM25 top-100 lists), MiniLM tokenizer, max_length 256, batches of <= 8192 tokens.

Groups (each round processes all 50 queries; divide by 50 for the per-query figure):
- ``tokenize+pack``: text in, padded int64 batches out.
  ``crossrank``: tokenizers ids without specials (query + documents), then plan + materialize.
  ``hf-pairs``: what sentence-transformers' CrossEncoder does per batch of 32: ``encode_batch`` of
  (query, doc) pairs with truncation and batch-longest padding, then to NumPy.
- ``pack``: document ids already cached (the rerank steady state): crossrank tokenizes only the query
  and packs; hf-pairs has no cache, so it is not in this group.

Run: ``PYTHONPATH=python python -m pytest bench/test_bench_packing.py -q --benchmark-group-by=group``
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from crossrank.text.packing import PairTemplate, plan_pairs

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("pytest_benchmark")

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CROSSRANK_DATASETS", REPO.parent / "shared" / "datasets"))
MODELS = Path(os.environ.get("CROSSRANK_MODELS", REPO.parent / "shared" / "models"))
N_QUERIES, N_CANDIDATES, MAX_LENGTH, MAX_BATCH_TOKENS = 50, 100, 256, 8192


@pytest.fixture(scope="module")
def workload():
    root, model = DATASETS / "scifact", MODELS / "all-MiniLM-L6-v2"
    if not root.is_dir() or not model.is_dir():
        pytest.skip("scifact or all-MiniLM-L6-v2 not found (set CROSSRANK_DATASETS / CROSSRANK_MODELS)")
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][:N_QUERIES]
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        corpus = [(d.get("title", "") + " " + d["text"]).strip() for d in map(json.loads, f)]
    rng = np.random.default_rng(0)
    candidates = [[corpus[i] for i in rng.choice(len(corpus), N_CANDIDATES, replace=False)] for _ in queries]
    tok = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    template = PairTemplate.from_tokenizer(tok)
    hf = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json"))
    hf.enable_truncation(MAX_LENGTH, strategy="longest_first")
    hf.enable_padding(pad_id=template.pad_id)
    cached = [
        [np.asarray(e.ids, dtype=np.int32) for e in tok.encode_batch(docs, add_special_tokens=False)]
        for docs in candidates
    ]
    return queries, candidates, tok, hf, template, cached


def _pack(template, q_ids, d_ids):
    plan = plan_pairs(
        [q_ids], d_ids, template, max_length=MAX_LENGTH, max_batch_tokens=MAX_BATCH_TOKENS, max_batch_size=256
    )
    for _batch in plan:
        pass
    return plan


def _crossrank_tokenize_pack(workload):
    queries, candidates, tok, _, template, _ = workload
    total = 0
    for q, docs in zip(queries, candidates, strict=True):
        q_ids = tok.encode(q, add_special_tokens=False).ids
        d_ids = [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]
        total += _pack(template, q_ids, d_ids).n_rows
    return total


def _hf_pairs(workload):
    queries, candidates, _, hf, _, _ = workload
    total = 0
    for q, docs in zip(queries, candidates, strict=True):
        order = np.argsort([-len(d) for d in docs], kind="stable")  # sentence-transformers sorts by chars
        for start in range(0, len(docs), 32):
            encs = hf.encode_batch([(q, docs[i]) for i in order[start : start + 32]])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            np.array([e.attention_mask for e in encs], dtype=np.int64)
            np.array([e.type_ids for e in encs], dtype=np.int64)
            total += ids.shape[0]
    return total


def _crossrank_pack_cached(workload):
    queries, _, tok, _, template, cached = workload
    total = 0
    for q, d_ids in zip(queries, cached, strict=True):
        total += _pack(template, tok.encode(q, add_special_tokens=False).ids, d_ids).n_rows
    return total


@pytest.mark.benchmark(group="tokenize+pack: 50 queries x 100 SciFact candidates")
@pytest.mark.parametrize("impl", ["crossrank", "hf-pairs"])
def test_tokenize_and_pack(benchmark, workload, impl):
    fn = {"crossrank": _crossrank_tokenize_pack, "hf-pairs": _hf_pairs}[impl]
    assert benchmark(fn, workload) == N_QUERIES * N_CANDIDATES


@pytest.mark.benchmark(group="pack (doc ids cached): 50 queries x 100 SciFact candidates")
@pytest.mark.parametrize("impl", ["crossrank"])
def test_pack_cached_docs(benchmark, workload, impl):
    assert benchmark(_crossrank_pack_cached, workload) == N_QUERIES * N_CANDIDATES
