"""A small NDCG@k (graded gains, log2 discount, ideal from the qrels) for the BM25 quality check.

The evaluation module proper lives in crossrank; this obvious version keeps the BM25 bar self-contained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10) -> float:
    """Mean NDCG@k over the queries in qrels (a query missing from run scores 0).

    gain = relevance grade (as trec_eval's ndcg_cut), discount = 1 / log2(rank + 1).
    """
    total = 0.0
    for qid, judged in qrels.items():
        ranked = list(run.get(qid, []))[:k]
        dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked) if judged.get(d, 0) > 0)
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        total += dcg / idcg if idcg > 0 else 0.0
    return total / len(qrels) if qrels else 0.0
