"""The reranking workload the cross-encoder benches share: a BEIR test split's first queries with BM25's top
candidates as texts.

Imports stay inside the function so a bench that runs in a peers-only environment (``ce_peers_onnx.py``)
loads nothing else of crossrank at import time.
"""

from __future__ import annotations

from pathlib import Path

Work = list[tuple[str, list[str]]]  # (query text, candidate document texts in BM25 order)


def bm25_candidates(dataset: Path, n_queries: int, depth: int) -> tuple[list[str], Work]:
    """The first ``n_queries`` test queries (by numeric id) and BM25's top ``depth`` documents for each.

    Returns
    -------
    qids : list of str
        The query ids, in the order of ``work``.
    work : list of (str, list of str)
        Query text and candidate texts.
    """
    from crossrank.eval.datasets import load_beir
    from crossrank.retrieve.bm25 import BM25Index

    ds = load_beir(dataset, split="test")
    docs = ds.documents()
    qids = sorted(ds.queries, key=int)[:n_queries]
    index = BM25Index.build(docs, show_progress=False)
    hits = index.search([ds.queries[q] for q in qids], k=depth)
    return qids, [(ds.queries[q], [docs[int(i)] for i in row]) for q, row in zip(qids, hits.ids, strict=True)]
