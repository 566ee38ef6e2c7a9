"""Parity with the peer libraries on the same tokens: bm25s (all five variants) and rank_bm25.

rank_bm25 mapping (checked below):
- ``BM25Plus`` == our ``bm25+`` (same IDF, same delta for documents that lack a term).
- ``BM25L`` is not Lv & Zhai's BM25L: it multiplies each term's contribution by the term frequency,
  so documents lacking a term get 0 instead of the non-occurrence score and repeated terms weigh
  tf times more. Our ``bm25l`` follows bm25s / Kamphuis et al.; the test pins the exact relation.
- ``BM25Okapi`` uses the Robertson IDF ``log((N - df + .5)/(df + .5))`` with the ATIRE tf part
  ``tf (k1 + 1)/(tf + k1 norm)``, and replaces negative IDFs by ``epsilon * mean IDF``. So where no
  term is in more than half of the documents, ``BM25Okapi == (k1 + 1) * robertson``; beyond that its
  epsilon floor has no counterpart in the variants of Kamphuis et al. (robertson floors at 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from crossrank import BM25Index
from crossrank.eval.datasets import load_beir

bm25s = pytest.importorskip("bm25s")
rank_bm25 = pytest.importorskip("rank_bm25")

VARIANTS = ["robertson", "lucene", "atire", "bm25l", "bm25+"]


def random_corpus(seed: int, n_docs: int = 300, n_words: int = 200, max_len: int = 60, zipf: bool = True):
    rng = np.random.default_rng(seed)
    words = np.array([f"t{i}" for i in range(n_words)])
    p = 1.0 / np.arange(1, n_words + 1) if zipf else np.ones(n_words)
    p /= p.sum()
    docs = [list(rng.choice(words, size=rng.integers(1, max_len), p=p)) for _ in range(n_docs)]
    queries = [list(rng.choice(words, size=rng.integers(1, 7))) for _ in range(40)]
    return docs, queries


def bm25s_index(docs, variant, k1, b, delta):
    retriever = bm25s.BM25(method=variant, k1=k1, b=b, delta=delta)
    retriever.index(docs, show_progress=False)
    return retriever


@pytest.mark.parametrize("variant", VARIANTS)
def test_bm25s_same_scores_random(variant: str) -> None:
    docs, queries = random_corpus(3)
    ours = BM25Index.from_tokens(docs, variant=variant, k1=1.3, b=0.7, delta=0.6)
    theirs = bm25s_index(docs, variant, 1.3, 0.7, 0.6)
    for q in queries:
        np.testing.assert_allclose(ours.get_scores_tokens(q), theirs.get_scores(q), rtol=1e-5, atol=1e-5)


def test_rank_bm25_bm25plus() -> None:
    docs, queries = random_corpus(4)
    ours = BM25Index.from_tokens(docs, variant="bm25+", k1=1.5, b=0.75, delta=1.0)
    theirs = rank_bm25.BM25Plus(docs, k1=1.5, b=0.75, delta=1.0)
    for q in queries:
        np.testing.assert_allclose(ours.get_scores_tokens(q), theirs.get_scores(q), rtol=1e-5, atol=1e-5)


def test_rank_bm25_bm25l_is_tf_weighted() -> None:
    """rank_bm25's BM25L = sum over query tokens of idf * tf * tfc_bm25l(tf) (0 where tf = 0)."""
    from collections import Counter

    from reference import bm25_ref

    docs, queries = random_corpus(6, n_docs=60)
    theirs = rank_bm25.BM25L(docs, k1=1.5, b=0.75, delta=0.5)
    ours = BM25Index.from_tokens(docs, variant="bm25l", k1=1.5, b=0.75, delta=0.5)
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    df = Counter(t for d in docs for t in set(d))
    for q in queries[:10]:
        expected = []
        for d in docs:
            tf = Counter(d)
            expected.append(
                sum(
                    bm25_ref.idf("bm25l", df[t], n)
                    * tf[t]
                    * bm25_ref.tfc("bm25l", tf[t], len(d), avgdl, 1.5, 0.75, 0.5)
                    for t in q
                    if t in df
                )
            )
        np.testing.assert_allclose(theirs.get_scores(q), expected, rtol=1e-9)
    assert not all(np.allclose(ours.get_scores_tokens(q), theirs.get_scores(q)) for q in queries)


def test_rank_bm25_okapi_is_scaled_robertson_without_common_terms() -> None:
    docs, queries = random_corpus(5, zipf=False, max_len=20)  # uniform: every df well below N/2
    okapi = rank_bm25.BM25Okapi(docs, k1=1.2, b=0.75)
    assert min(okapi.idf.values()) > 0
    ours = BM25Index.from_tokens(docs, variant="robertson", k1=1.2, b=0.75)
    for q in queries:
        np.testing.assert_allclose(2.2 * ours.get_scores_tokens(q), okapi.get_scores(q), rtol=1e-5, atol=1e-5)


def test_rank_bm25_okapi_differs_on_common_terms() -> None:
    """Documents the one difference: the epsilon IDF floor for terms in most documents."""
    docs = [["common", "x"], ["common", "y"], ["common"], ["z"]]
    okapi = rank_bm25.BM25Okapi(docs, k1=1.2, b=0.75)
    ours = BM25Index.from_tokens(docs, variant="robertson", k1=1.2, b=0.75)
    assert np.all(ours.get_scores_tokens(["common"]) == 0)  # Robertson IDF floored at 0
    assert np.any(okapi.get_scores(["common"]) > 0)  # rank_bm25: epsilon * mean IDF


def beir_tokens(datasets_dir, name: str):
    import Stemmer

    ds = load_beir(datasets_dir / name)
    stemmer = Stemmer.Stemmer("english")
    docs = bm25s.tokenize(
        ds.documents(), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    queries = bm25s.tokenize(
        list(ds.queries.values()), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    return docs, queries


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scifact", "cacm"])
def test_bm25s_same_scores_on_beir(datasets_dir, name: str) -> None:
    """|ours - bm25s| <= 1e-5 * max(1, |score|): absolute 1e-5 below 1; above it float32 itself
    cannot resolve 1e-5 (one ulp at 128 is 1.5e-5), so the bound is relative there."""
    docs, queries = beir_tokens(datasets_dir, name)
    queries = [q for q in queries if q][:60]
    for variant in VARIANTS:
        ours = BM25Index.from_tokens(docs, variant=variant, k1=1.2, b=0.75, delta=0.5)
        theirs = bm25s_index(docs, variant, 1.2, 0.75, 0.5)
        worst = 0.0
        for q in queries:
            a, b = ours.get_scores_tokens(q).astype(np.float64), theirs.get_scores(q).astype(np.float64)
            worst = max(worst, float((np.abs(a - b) / np.maximum(1.0, np.abs(b))).max()))
        assert worst <= 1e-5, f"{name} {variant}: max |ours - bm25s| / max(1, |bm25s|) = {worst:.3g}"


@pytest.mark.slow
def test_float64_reference_on_cacm(datasets_dir) -> None:
    from reference import bm25_ref

    docs, queries = beir_tokens(datasets_dir, "cacm")
    for variant in VARIANTS:
        ours = BM25Index.from_tokens(docs, variant=variant, k1=1.2, b=0.75, delta=0.5)
        for q in [q for q in queries if q][:4]:
            ref = np.array(bm25_ref.scores(docs, q, variant=variant, k1=1.2, b=0.75, delta=0.5))
            np.testing.assert_allclose(ours.get_scores_tokens(q), ref, rtol=1e-6, atol=1e-6)
