"""Obvious float64 BM25 (Kamphuis et al. 2020, the five variants as bm25s defines them).

Slow on purpose: dictionaries and ``math.log``, one document at a time. The test oracle for
crossrank.BM25Index.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def idf(variant: str, df: int, n: int) -> float:
    if df == 0:
        return 0.0
    if variant == "robertson":
        return math.log(max(1.0, (n - df + 0.5) / (df + 0.5)))
    if variant == "lucene":
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    if variant == "atire":
        return math.log(n / df)
    if variant == "bm25l":
        return math.log((n + 1) / (df + 0.5))
    if variant == "bm25+":
        return math.log((n + 1) / df)
    raise ValueError(variant)


def tfc(variant: str, tf: float, dl: float, avgdl: float, k1: float, b: float, delta: float) -> float:
    norm = 1 - b + b * (dl / avgdl if avgdl > 0 else 1.0)
    if variant in ("robertson", "lucene"):
        return tf / (k1 * norm + tf) if tf else 0.0
    if variant == "atire":
        return tf * (k1 + 1) / (tf + k1 * norm) if tf else 0.0
    if variant == "bm25l":
        # 0/0 cases (an empty document with b = 1; k1 = delta = 0 with tf = 0) count as 0, the
        # convention of bm25.hpp.
        c = tf / norm if norm > 0 else 0.0
        den = k1 + c + delta
        return (k1 + 1) * (c + delta) / den if den > 0 else 0.0
    if variant == "bm25+":
        return ((k1 + 1) * tf / (k1 * norm + tf) if tf else 0.0) + delta
    raise ValueError(variant)


def scores(
    corpus: Sequence[Sequence[str]],
    query: Sequence[str],
    *,
    variant: str = "lucene",
    k1: float = 1.5,
    b: float = 0.75,
    delta: float = 0.5,
) -> list[float]:
    """Score every document of a tokenized corpus for a tokenized query (tokens repeat = count twice)."""
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    df: Counter[str] = Counter()
    for doc in corpus:
        df.update(set(doc))
    out = []
    for doc in corpus:
        tf = Counter(doc)
        s = 0.0
        for term in query:
            if term not in df:
                continue  # out-of-vocabulary query tokens score nothing
            s += idf(variant, df[term], n) * tfc(variant, tf[term], len(doc), avgdl, k1, b, delta)
        out.append(s)
    return out


def top_k(all_scores: Sequence[float], k: int) -> list[int]:
    """Positions of the k best scores: higher score first, then lower position."""
    order = sorted(range(len(all_scores)), key=lambda i: (-all_scores[i], i))
    return order[: min(k, len(all_scores))]
