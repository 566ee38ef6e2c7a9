"""Pipeline: retrievers -> fusion -> reranker -> top_k, against hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank import BM25Index
from crossrank.pipeline import Pipeline
from crossrank.retrieve.fusion import reciprocal_rank_fusion

DOCS = {
    "d1": "the cat sat on the mat",
    "d2": "dogs chase cats in the park",
    "d3": "a quantum computer uses qubits",
    "d4": "cats and dogs are pets",
    "d5": "the stock market fell today",
}


class FakeResults:
    def __init__(self, ids, scores):
        self.ids, self.scores = ids, scores


class LengthRetriever:
    """A stand-in dense retriever: scores documents by -|len(doc) - len(query)|."""

    def search(self, queries, k=10):
        ids = np.full((len(queries), k), None, dtype=object)
        sc = np.full((len(queries), k), -np.inf)
        for r, q in enumerate(queries):
            ranked = sorted(DOCS, key=lambda d: (abs(len(DOCS[d]) - len(q)), d))[:k]
            for c, d in enumerate(ranked):
                ids[r, c], sc[r, c] = d, -abs(len(DOCS[d]) - len(q))
        return FakeResults(ids, sc)


class ScoreReranker:  # score(query, documents): number of shared words
    def score(self, query, documents):
        qw = set(query.split())
        return np.array([len(qw & set(d.split())) + len(d) * 1e-3 for d in documents])


class RankReranker(ScoreReranker):
    score = None  # only rank()

    def rank(self, query, documents, top_k=None):
        s = ScoreReranker.score(self, query, documents)
        return [{"corpus_id": int(i), "score": float(s[i])} for i in np.argsort(-s)][:top_k]


class OrderOnlyReranker:  # rank() without scores, like a listwise LLM: the order decides
    def rank(self, query, documents, top_k=None):
        s = ScoreReranker().score(query, documents)
        return [{"corpus_id": int(i)} for i in np.argsort(-s)][:top_k]


class PredictReranker:
    def predict(self, pairs):
        return ScoreReranker().score(pairs[0][0], [d for _, d in pairs]) if pairs else []


@pytest.fixture(scope="module")
def bm25():
    return BM25Index.build(list(DOCS.values()), ids=list(DOCS))


def test_single_retriever_is_its_own_ranking(bm25):
    res = Pipeline([bm25], top_k=3, depth=5).search("cats dogs")
    ref = bm25.search(["cats dogs"], k=5)
    assert res.ids == ref.ids[0][:3].tolist()
    np.testing.assert_allclose(res.scores, ref.scores[0][:3])
    assert set(res.timings) == {"retrieve:0", "fusion", "total"}


def test_hybrid_equals_rrf_of_the_lists(bm25):
    dense = LengthRetriever()
    pipe = Pipeline([bm25, dense], fusion="rrf", depth=4, top_k=4)
    res = pipe.search("cats and dogs")
    a, b = bm25.search(["cats and dogs"], k=4), dense.search(["cats and dogs"], k=4)
    ref = reciprocal_rank_fusion([(a.ids, a.scores), (b.ids, b.scores)], top_k=4)
    assert res.ids == [x for x in ref.ids[0] if x is not None]


@pytest.mark.parametrize(
    "reranker", [ScoreReranker(), RankReranker(), OrderOnlyReranker(), PredictReranker()]
)
def test_rerankers_of_every_shape(bm25, reranker):
    pipe = Pipeline([bm25, LengthRetriever()], documents=DOCS, reranker=reranker, depth=5, top_k=2)
    q = "dogs chase cats"
    res = pipe.search(q)
    cands = pipe.search_batch([q])[0]
    ref = ScoreReranker().score(q, [DOCS[d] for d in DOCS])
    expected = [list(DOCS)[i] for i in np.argsort(-ref)[:2]]
    assert res.ids == expected
    assert cands.ids == expected
    assert "rerank" in res.timings


def test_search_batch_matches_search(bm25):
    pipe = Pipeline([bm25, LengthRetriever()], documents=list(DOCS.values()), depth=5, top_k=3)
    qs = ["cats", "quantum qubits", "market"]
    batch = pipe.search_batch(qs)
    for q, r in zip(qs, batch, strict=True):
        assert r.ids == pipe.search(q).ids
    assert pipe.search_batch([]) == []


def test_documents_as_list_and_callable(bm25):
    texts = list(DOCS.values())
    idx = BM25Index.build(texts)  # int ids
    for docs in (texts, lambda i: texts[i]):
        res = Pipeline([idx], documents=docs, reranker=ScoreReranker(), depth=5, top_k=1).search("quantum")
        assert res.ids == [2]


def test_bad_configuration(bm25):
    with pytest.raises(ValueError, match="at least one retriever"):
        Pipeline([])
    with pytest.raises(TypeError, match="not a retriever"):
        Pipeline([object()])
    with pytest.raises(ValueError, match="depth"):
        Pipeline([bm25], depth=0)
    with pytest.raises(ValueError, match="fusion"):
        Pipeline([bm25], fusion="borda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="document texts"):
        Pipeline([bm25], reranker=ScoreReranker())
    with pytest.raises(TypeError, match="cannot rerank"):
        Pipeline([bm25], reranker=object(), documents=DOCS)
    with pytest.raises(ValueError, match="weights"):
        Pipeline([bm25], weights=[1.0, 2.0])
    pipe = Pipeline([bm25], documents={"d1": "x"}, reranker=ScoreReranker())
    with pytest.raises(KeyError, match="no text for document"):
        pipe.search("cats")
    with pytest.raises(TypeError):
        pipe.search(["cats"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pipe.search_batch("cats")
