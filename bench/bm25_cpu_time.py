"""CPU-time ratios of the BM25 benchmarks (robust on a shared, overloaded machine).

Wall-clock benchmarks (test_bench_bm25.py) are the reference; when other jobs share the cores, the
process CPU time of single-threaded runs is a steadier measure of the work each library does.
Run: PYTHONPATH=python:bench python bench/bm25_cpu_time.py
"""

from __future__ import annotations

import time

import bm25s
import numpy as np
import rank_bm25
import Stemmer

from crossrank import BM25Index
from test_bench_bm25 import (
    K1,
    RANK_BM25_QUERIES,
    B,
    K,
    bm25s_index,
    bm25s_retrieve,
    crossrank_tokens_index,
    scifact,
)


def cpu(fn, repeats: int = 15) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    docs, _queries, doc_tokens, query_tokens = scifact()
    qt = [q for q in query_tokens if q]
    ix = crossrank_tokens_index()
    numba_r = bm25s_index("numba")
    bm25s_retrieve(numba_r, qt[:2])
    okapi = rank_bm25.BM25Okapi(doc_tokens, k1=K1, b=B)
    sub = qt[:RANK_BM25_QUERIES]
    per_query = {
        "crossrank": cpu(lambda: ix.search_tokens(qt, k=K, num_threads=1)) / len(qt),
        "bm25s-numba": cpu(lambda: bm25s_retrieve(numba_r, qt)) / len(qt),
        "rank_bm25": cpu(lambda: [np.argsort(-okapi.get_scores(q))[:K] for q in sub], 3) / len(sub),
    }
    for name, sec in per_query.items():
        print(
            f"query top-{K} {name:12s} {sec * 1e6:10.1f} us CPU/query  (crossrank x{sec / per_query['crossrank']:.1f})"
        )
    stemmer = Stemmer.Stemmer("english")

    def bm25s_build():
        tokens = bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False)
        bm25s.BM25(method="lucene", k1=K1, b=B).index(tokens, show_progress=False)

    ours = cpu(lambda: BM25Index.build(docs, variant="lucene", k1=K1, b=B, num_threads=1), 5)
    theirs = cpu(bm25s_build, 3)
    print(
        f"index SciFact crossrank {ours * 1e3:.0f} ms CPU, bm25s {theirs * 1e3:.0f} ms CPU (x{theirs / ours:.1f})"
    )


if __name__ == "__main__":
    main()
