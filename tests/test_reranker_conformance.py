"""Every reranker meets the one protocol of crossrank.types.Reranker with the same results, rules and errors.

Parametrized over the crossrank rerankers (tiny seeded models; the LLM behind a fake OpenAI server; the
pointwise LLM reranker on a tiny seeded Qwen3), their long-document (windowed) forms, and a toy reranker
defined here that subclasses nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from crossrank._common import check_bool, check_text, check_texts, check_top_k
from crossrank.rerank.base import ranked_from_scores
from crossrank.types import RankedDoc, Reranker, Scores
from fake_openai_server import FakeOpenAIServer
from model_fixtures import tiny_texts

WINDOW_KEYS = {"index", "start_token", "end_token", "start_char", "end_char"}
ROW_KEYS = {"corpus_id", "score", "truncated"}
# Names of per-call state that must not live on an instance (concurrent callers would read each other's).
PER_CALL_ATTRS = ("last_stats", "timings", "cache_hits", "cache_misses", "last_result")


class ToyReranker:
    """Meets the protocol without crossrank's base class: score = shared words with the query."""

    def score(self, query: str, documents: Sequence[str]) -> Scores:
        check_text(query, "query")
        docs = check_texts(documents, "documents")
        words = set(query.split())
        scores = np.array([len(words & set(d.split())) for d in docs], dtype=np.float32)
        return Scores(scores, np.zeros(len(docs), bool), None, {"documents": float(len(docs))})

    def score_batch(
        self, queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
    ) -> list[Scores]:
        qs = check_texts(queries, "queries")
        if len(documents_per_query) != len(qs):
            raise ValueError(f"got {len(qs)} queries but {len(documents_per_query)} document lists")
        return [self.score(q, d) for q, d in zip(qs, documents_per_query, strict=True)]

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        return_documents: bool = False,
    ) -> list[RankedDoc]:
        check_bool(return_documents, "return_documents")
        docs = check_texts(documents, "documents")
        check_top_k(top_k, len(docs))
        return ranked_from_scores(self.score(query, docs), docs, top_k, return_documents=return_documents)


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(lifetime_s=600) as srv:
        yield srv


KINDS = [
    "cross-encoder",
    "cross-encoder-windows",
    "dense",
    "dense-windows",
    "colbert",
    "colbert-windows",
    "llm",
    "pointwise",
    "pointwise-windows",
    "toy",
]


@pytest.fixture(scope="module", params=KINDS)
def reranker(
    request: pytest.FixtureRequest,
    tiny_bert_onnx: Path,
    tiny_bert_embedding_onnx: Path,
    llm_server: FakeOpenAIServer,
) -> Reranker:
    kind = request.param
    if kind.startswith("pointwise"):
        from crossrank import LLMPointwiseReranker

        onnx_dir = request.getfixturevalue("tiny_qwen3_onnx")  # only built when these kinds run
        windows = {"window_stride": 16} if kind.endswith("windows") else {}
        return LLMPointwiseReranker(onnx_dir, precision="fp32", max_length=160, **windows)
    if kind.startswith("cross-encoder"):
        from crossrank import CrossEncoder

        windows = {"window_stride": 32} if kind.endswith("windows") else {}
        return CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none", **windows)
    if kind.startswith("dense"):
        from crossrank.rerank.dense import DenseReranker

        windows = {"window_size": 32, "window_stride": 16} if kind.endswith("windows") else {}
        return DenseReranker(tiny_bert_embedding_onnx, precision="fp32", **windows)
    if kind.startswith("colbert"):
        from crossrank.rerank.colbert import ColBERTReranker

        windows = {"window_size": 24, "window_stride": 12} if kind.endswith("windows") else {}
        return ColBERTReranker(
            tiny_bert_embedding_onnx,
            dtype="fp32",
            doc_maxlen=64,
            query_marker="",
            doc_marker="",
            local_files_only=True,
            **windows,
        )
    if kind == "llm":
        from crossrank.rerank.llm import LLMReranker

        return LLMReranker(
            llm_server.base_url, "fake-model", window=4, step=2, max_passage_tokens=40, tokenizer="whitespace"
        )
    return ToyReranker()


def _docs() -> list[str]:
    docs = tiny_texts(7, seed=5, min_words=3, max_words=30)
    docs.append(docs[2])  # a duplicate: equal scores, input order decides
    docs.append("")
    docs.append(tiny_texts(1, seed=6, min_words=200, max_words=200)[0])  # past every model's limit
    return docs


DOCS = _docs()
QUERY = " ".join(DOCS[0].split()[:2] + DOCS[4].split()[:1])


def test_is_a_reranker(reranker: Reranker) -> None:
    assert isinstance(reranker, Reranker)


def test_score_types_and_shapes(reranker: Reranker) -> None:
    s = reranker.score(QUERY, DOCS)
    assert isinstance(s, Scores)
    assert s.scores.dtype == np.float32
    assert s.scores.shape == (len(DOCS),)
    assert s.truncated.dtype == np.bool_
    assert s.truncated.shape == (len(DOCS),)
    assert np.isfinite(s.scores).all()
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in s.stats.items())
    if s.windows is not None:
        assert len(s.windows) == len(DOCS)
        for doc, w in zip(DOCS, s.windows, strict=True):
            assert w is not None
            assert set(w) == WINDOW_KEYS
            assert all(type(v) is int for v in w.values())
            assert 0 <= w["start_char"] <= w["end_char"] <= len(doc)
            assert 0 <= w["start_token"] <= w["end_token"]


def test_truncation_flags(reranker: Reranker) -> None:
    s = reranker.score(QUERY, DOCS)
    if isinstance(reranker, ToyReranker) or s.windows is not None:
        assert not s.truncated.any()  # windows cover every token
    else:
        assert s.truncated[-1]  # 200 words: past each model's (and the LLM's 40-token) limit
        assert not s.truncated[-2]  # the empty document


def test_rank_rows_follow_scores(reranker: Reranker) -> None:
    s = reranker.score(QUERY, DOCS)
    rows = reranker.rank(QUERY, DOCS)
    assert isinstance(rows, list)
    assert len(rows) == len(DOCS)
    for r in rows:
        assert ROW_KEYS <= set(r) <= ROW_KEYS | {"window", "text"}
        assert type(r["corpus_id"]) is int
        assert type(r["score"]) is float
        assert type(r["truncated"]) is bool
        assert r["score"] == pytest.approx(float(s.scores[r["corpus_id"]]), abs=1e-5)
        assert r["truncated"] == bool(s.truncated[r["corpus_id"]])
        assert ("window" in r) == (s.windows is not None)
    assert [r["corpus_id"] for r in rows] == np.argsort(-s.scores.astype(np.float64), kind="stable").tolist()
    # Highest first; equal scores in input order (the duplicate of document 2 comes after it).
    for a, b in itertools.pairwise(rows):
        assert a["score"] > b["score"] or (a["score"] == b["score"] and a["corpus_id"] < b["corpus_id"])
    if type(reranker).__name__ != "LLMReranker":  # a listwise order has no ties
        ids = [r["corpus_id"] for r in rows]
        assert s.scores[2] == s.scores[7]  # the same text scores the same
        assert ids.index(2) < ids.index(7)


def test_top_k_rule(reranker: Reranker) -> None:
    full = [r["corpus_id"] for r in reranker.rank(QUERY, DOCS)]
    assert [r["corpus_id"] for r in reranker.rank(QUERY, DOCS, 3)] == full[:3]  # positional
    assert [r["corpus_id"] for r in reranker.rank(QUERY, DOCS, top_k=1)] == full[:1]
    assert len(reranker.rank(QUERY, DOCS, top_k=len(DOCS) + 5)) == len(DOCS)
    assert len(reranker.rank(QUERY, DOCS, top_k=np.int64(2))) == 2
    for bad in (0, -1):
        with pytest.raises(ValueError, match="top_k"):
            reranker.rank(QUERY, DOCS, top_k=bad)
    for bad_type in (True, 1.5, "2"):
        with pytest.raises(TypeError, match="top_k"):
            reranker.rank(QUERY, DOCS, top_k=bad_type)  # type: ignore[arg-type]


def test_empty_documents(reranker: Reranker) -> None:
    s = reranker.score(QUERY, [])
    assert len(s) == 0
    assert s.scores.dtype == np.float32
    assert reranker.rank(QUERY, []) == []
    assert reranker.rank(QUERY, [], top_k=3) == []
    batch = reranker.score_batch([QUERY, QUERY], [[], DOCS[:2]])
    assert [len(b) for b in batch] == [0, 2]
    assert reranker.score_batch([], []) == []


def test_non_str_input_is_a_type_error(reranker: Reranker) -> None:
    with pytest.raises(TypeError, match="query"):
        reranker.score(None, DOCS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query"):
        reranker.rank(b"q", DOCS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="documents"):
        reranker.score(QUERY, "one string")
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        reranker.rank(QUERY, ["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"documents\[0\]"):
        reranker.score(QUERY, [None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="queries"):
        reranker.score_batch([QUERY, 1], [DOCS, DOCS])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="queries"):
        reranker.score_batch([QUERY, QUERY], [DOCS])
    with pytest.raises(TypeError, match="return_documents"):
        reranker.rank(QUERY, DOCS, return_documents="yes")  # type: ignore[arg-type]


def test_return_documents(reranker: Reranker) -> None:
    rows = reranker.rank(QUERY, DOCS, 4, return_documents=True)
    assert len(rows) == 4
    for r in rows:
        assert r["text"] == DOCS[r["corpus_id"]]
    assert all("text" not in r for r in reranker.rank(QUERY, DOCS, 4))


def test_score_batch_equals_score_per_query(reranker: Reranker) -> None:
    queries = [QUERY, " ".join(DOCS[1].split()[:3]), DOCS[5]]
    lists = [DOCS, DOCS[1:6], DOCS[3:]]
    batch = reranker.score_batch(queries, lists)
    assert len(batch) == 3
    for q, docs, b in zip(queries, lists, batch, strict=True):
        one = reranker.score(q, docs)
        assert isinstance(b, Scores)
        np.testing.assert_allclose(b.scores, one.scores, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(b.truncated, one.truncated)
        assert (b.windows is None) == (one.windows is None)
        if b.windows is not None:
            assert list(b.windows) == list(one.windows or [])


def test_stats_on_the_result_not_the_instance(reranker: Reranker) -> None:
    s = reranker.score(QUERY, DOCS)
    if not isinstance(reranker, ToyReranker):
        assert s.stats, "crossrank rerankers report per-call stats"
    for name in PER_CALL_ATTRS:
        assert not hasattr(reranker, name), name
    before = dict(vars(reranker)) if hasattr(reranker, "__dict__") else {}
    reranker.score(QUERY, DOCS[:3])
    after = dict(vars(reranker)) if hasattr(reranker, "__dict__") else {}
    assert set(after) == set(before)  # no attribute appears after a call
