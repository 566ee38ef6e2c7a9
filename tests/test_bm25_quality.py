"""Retrieval quality bar: SciFact test queries, title + text, English stopwords + Snowball stemmer,
lucene k1=0.9 b=0.4 -> NDCG@10 >= 0.67 (Anserini's flat BM25: 0.679)."""

from __future__ import annotations

from crossrank import BM25Index
from crossrank.eval.datasets import load_beir
from reference.ndcg_ref import ndcg_at_k


def test_scifact_ndcg_at_10(datasets_dir) -> None:
    ds = load_beir(datasets_dir / "scifact")
    index = BM25Index.build(ds.documents(), ids=ds.doc_ids, variant="lucene", k1=0.9, b=0.4)
    qids = list(ds.queries)
    res = index.search([ds.queries[q] for q in qids], k=10)
    run = {q: res.ids[i].tolist() for i, q in enumerate(qids)}
    score = ndcg_at_k(run, ds.qrels, k=10)
    print(f"SciFact NDCG@10 = {score:.4f}")
    assert score >= 0.67


def test_ndcg_reference_against_pytrec_eval() -> None:
    import pytest

    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"x": 1}}
    run = {"q1": ["c", "b", "a", "z"], "q2": ["y", "x"]}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
    trec = ev.evaluate({q: {d: float(len(ds) - i) for i, d in enumerate(ds)} for q, ds in run.items()})
    expected = sum(v["ndcg_cut_10"] for v in trec.values()) / len(trec)
    assert abs(ndcg_at_k(run, qrels) - expected) < 1e-12
