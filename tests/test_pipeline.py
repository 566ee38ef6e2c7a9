"""Pipeline: retrievers -> fusion -> reranker -> top_k, against hand-computed references."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank import BM25Index
from crossrank.pipeline import Pipeline
from crossrank.rerank.base import RerankerBase, ranked_from_scores
from crossrank.retrieve.fusion import reciprocal_rank_fusion
from crossrank.types import Reranker, Scores

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


def shared_words(query, documents):
    qw = set(query.split())
    return np.array([len(qw & set(d.split())) + len(d) * 1e-3 for d in documents], dtype=np.float32)


class ScoreReranker(RerankerBase):  # the protocol through the base class: number of shared words
    def __init__(self):
        self.batch_calls = 0

    def _score_many(self, queries, documents_per_query):
        self.batch_calls += 1
        return [
            Scores(shared_words(q, d), np.zeros(len(d), bool))
            for q, d in zip(queries, documents_per_query, strict=True)
        ]


class PlainReranker:  # the protocol without the base class
    def score(self, query, documents):
        return Scores(shared_words(query, documents), np.zeros(len(documents), bool))

    def score_batch(self, queries, documents_per_query):
        return [self.score(q, d) for q, d in zip(queries, documents_per_query, strict=True)]

    def rank(self, query, documents, top_k=None, *, return_documents=False):
        return ranked_from_scores(
            self.score(query, documents), documents, top_k, return_documents=return_documents
        )


class OnlyScore:  # the old duck-typed shapes are refused now
    def score(self, query, documents):
        return shared_words(query, documents)


class OnlyPredict:
    def predict(self, pairs):
        return shared_words(pairs[0][0], [d for _, d in pairs])


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


@pytest.mark.parametrize("reranker", [ScoreReranker(), PlainReranker()])
def test_any_protocol_reranker(bm25, reranker):
    assert isinstance(reranker, Reranker)
    pipe = Pipeline([bm25, LengthRetriever()], documents=DOCS, reranker=reranker, depth=5, top_k=2)
    q = "dogs chase cats"
    res = pipe.search(q)
    cands = pipe.search_batch([q])[0]
    ref = shared_words(q, [DOCS[d] for d in DOCS])
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
    for bad in (object(), OnlyScore(), OnlyPredict()):
        with pytest.raises(TypeError, match="cannot rerank"):
            Pipeline([bm25], reranker=bad, documents=DOCS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rerank_fusion"):
        Pipeline([bm25], reranker=ScoreReranker(), documents=DOCS, rerank_fusion="borda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass a reranker"):
        Pipeline([bm25], rerank_fusion="rrf")
    with pytest.raises(ValueError, match="weights"):
        Pipeline([bm25], weights=[1.0, 2.0])
    pipe = Pipeline([bm25], documents={"d1": "x"}, reranker=ScoreReranker())
    with pytest.raises(KeyError, match="no text for document"):
        pipe.search("cats")
    with pytest.raises(TypeError):
        pipe.search(["cats"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pipe.search_batch("cats")


def test_search_batch_calls_score_batch_once(bm25):
    rr = ScoreReranker()
    pipe = Pipeline([bm25, LengthRetriever()], documents=DOCS, reranker=rr, depth=5, top_k=3)
    qs = ["cats", "quantum qubits", "market", "dogs chase cats"]
    batch = pipe.search_batch(qs)
    assert rr.batch_calls == 1
    for q, r in zip(qs, batch, strict=True):
        one = pipe.search(q)
        assert r.ids == one.ids
        np.testing.assert_allclose(r.scores, one.scores, rtol=1e-6)


def test_rerank_fusion_rrf_equals_rrf_of_the_two_lists(bm25):
    q = "dogs chase cats"
    base = Pipeline([bm25], depth=5, top_k=5)
    first = base.search(q)
    pipe = Pipeline(
        [bm25], documents=DOCS, reranker=ScoreReranker(), rerank_fusion="rrf", rrf_k=10, depth=5, top_k=5
    )
    got = pipe.search(q)
    rer = shared_words(q, [DOCS[d] for d in first.ids])
    reranked = [first.ids[i] for i in np.argsort(-rer, kind="stable")]
    runs = [
        {"q": {d: 1.0 / (i + 1) for i, d in enumerate(first.ids)}},
        {"q": {d: 1.0 / (i + 1) for i, d in enumerate(reranked)}},
    ]
    ref = reciprocal_rank_fusion(runs, rrf_k=10)["q"]
    want = sorted(ref, key=lambda d: -ref[d])
    assert got.ids == want
    np.testing.assert_allclose(got.scores, [ref[d] for d in want], rtol=1e-12)
    assert pipe.search_batch([q])[0].ids == want
    plain = Pipeline([bm25], documents=DOCS, reranker=ScoreReranker(), rerank_fusion="none", depth=5, top_k=5)
    assert plain.search(q).ids == reranked


class RecordingReranker(ScoreReranker):
    """Counts the documents it is asked to score."""

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def _score_many(self, queries, documents_per_query):
        self.seen.extend(len(d) for d in documents_per_query)
        return super()._score_many(queries, documents_per_query)


@pytest.mark.parametrize("fusion", ["none", "rrf"])
@pytest.mark.parametrize("rerank_depth", [1, 2, 4, 5])
def test_rerank_depth_reranks_the_head_and_keeps_the_tail_in_first_stage_order(bm25, rerank_depth, fusion):
    q = "dogs chase cats"
    first = Pipeline([bm25, LengthRetriever()], depth=5, top_k=5).search(q)
    assert len(first.ids) == 5
    rr = RecordingReranker()
    pipe = Pipeline(
        [bm25, LengthRetriever()], documents=DOCS, reranker=rr, rerank_fusion=fusion, rrf_k=10, depth=5, top_k=5,
        rerank_depth=rerank_depth,
    )  # fmt: skip
    got = pipe.search(q)
    assert rr.seen == [rerank_depth]  # only the head is scored
    # Reference, written out: head by rerank score (ties: first-stage order), then the tail as it came.
    head, tail = first.ids[:rerank_depth], first.ids[rerank_depth:]
    rer = shared_words(q, [DOCS[d] for d in head])
    reranked = [head[i] for i in np.argsort(-rer, kind="stable")] + tail
    if fusion == "none":
        want = reranked
        low = float(rer.min())
        np.testing.assert_allclose(got.scores[:rerank_depth], np.sort(rer)[::-1], rtol=1e-6)
        np.testing.assert_allclose(got.scores[rerank_depth:], [low - 1 - i for i in range(len(tail))])
    else:
        runs = [
            {"q": {d: 1.0 / (i + 1) for i, d in enumerate(first.ids)}},
            {"q": {d: 1.0 / (i + 1) for i, d in enumerate(reranked)}},
        ]
        ref = reciprocal_rank_fusion(runs, rrf_k=10)["q"]
        want = sorted(ref, key=lambda d: -ref[d])
        np.testing.assert_allclose(got.scores, [ref[d] for d in want], rtol=1e-12)
    assert got.ids == want
    assert got.candidates == 5
    batch = pipe.search_batch([q, "quantum qubits"])
    assert batch[0].ids == want
    assert rr.seen == [rerank_depth, rerank_depth, rerank_depth]
    if rerank_depth == 5:  # the whole list: the same as no rerank_depth
        full = Pipeline([bm25, LengthRetriever()], documents=DOCS, reranker=ScoreReranker(), rerank_fusion=fusion,
                        rrf_k=10, depth=5, top_k=5).search(q)  # fmt: skip
        assert full.ids == got.ids
        assert full.scores == got.scores


def test_rerank_depth_is_checked(bm25):
    kw = {"documents": DOCS, "reranker": ScoreReranker(), "depth": 5}
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError, match="rerank_depth must be"):
            Pipeline([bm25], rerank_depth=bad, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rerank_depth \(6\) must not exceed depth \(5\)"):
        Pipeline([bm25], rerank_depth=6, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass a reranker"):
        Pipeline([bm25], rerank_depth=3)


class FixedRetriever:
    """``n`` candidates per query drawn from a seeded permutation of the corpus (scores descending)."""

    def __init__(self, n_docs: int, n: int):
        self.n_docs, self.n = n_docs, n

    def search(self, queries, *, k=10):
        # Seeded by the query text, so search(q) and search_batch([..., q, ...]) see the same candidates.
        rows = [
            np.random.default_rng(sum(map(ord, q))).permutation(self.n_docs)[: min(k, self.n)]
            for q in queries
        ]
        ids = np.stack(rows)
        scores = np.tile(-np.arange(ids.shape[1], dtype=np.float64), (len(queries), 1))
        return FakeResults(ids, scores)


def test_search_batch_packs_cross_encoder_pairs_across_queries(tiny_bert_onnx, monkeypatch):
    from crossrank import CrossEncoder
    from model_fixtures import tiny_texts

    ce = CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none", max_batch_size=64)
    corpus = tiny_texts(400, seed=17, min_words=5, max_words=40)
    queries = tiny_texts(8, seed=18, min_words=2, max_words=6)
    runs = [0]
    real_run = ce.backend.run

    def counting_run(feeds):
        runs[0] += 1
        return real_run(feeds)

    monkeypatch.setattr(ce.backend, "run", counting_run)
    pipe = Pipeline([FixedRetriever(len(corpus), 50)], documents=corpus, reranker=ce, depth=50, top_k=50)
    separate = [pipe.search(q) for q in queries]
    separate_runs, runs[0] = runs[0], 0
    batch = pipe.search_batch(queries)
    batch_runs = runs[0]
    assert all(r.candidates == 50 for r in batch)
    assert batch_runs < separate_runs, (batch_runs, separate_runs)
    for one, b in zip(separate, batch, strict=True):
        assert b.ids == one.ids
        np.testing.assert_allclose(b.scores, one.scores, atol=1e-5, rtol=0)
