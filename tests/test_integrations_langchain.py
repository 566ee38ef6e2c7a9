"""LangChainReranker inside LangChain's own ContextualCompressionRetriever (real langchain installed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crossrank.types import Reranker
from model_fixtures import tiny_texts
from test_integrations_common import spy_async

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_classic")

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

from crossrank.integrations import LangChainReranker

TEXTS = tiny_texts(12, seed=21, min_words=3, max_words=25)
QUERIES = [" ".join(TEXTS[i].split()[:2]) for i in (0, 5, 9)]


@pytest.fixture(scope="module")
def ce(tiny_bert_onnx: Path) -> Reranker:
    from crossrank import CrossEncoder

    return CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none")


@pytest.fixture(scope="module")
def base():  # a plain LangChain vector-store retriever returning every document
    docs = [Document(t, metadata={"n": i, "tags": ["syllables"]}) for i, t in enumerate(TEXTS)]
    store = InMemoryVectorStore.from_documents(docs, DeterministicFakeEmbedding(size=16))
    return store.as_retriever(search_kwargs={"k": len(docs)})


def expected(ce: Reranker, base, query: str, top_n: int | None) -> list[tuple[str, dict, float]]:
    cands = base.invoke(query)
    ranked = ce.rank(query, [d.page_content for d in cands], top_n)
    return [(cands[r["corpus_id"]].page_content, cands[r["corpus_id"]].metadata, r["score"]) for r in ranked]


def as_rows(docs) -> list[tuple[str, dict, float]]:
    rows = []
    for d in docs:
        meta = dict(d.metadata)
        rows.append(
            (
                d.page_content,
                {k: v for k, v in meta.items() if k != "relevance_score"},
                meta["relevance_score"],
            )
        )
    return rows


def test_compression_retriever_matches_in_process_rank(ce: Reranker, base) -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=LangChainReranker(ce, top_n=4), base_retriever=base
    )
    for q in QUERIES:
        got = retriever.invoke(q)
        assert len(got) == 4
        assert as_rows(got) == expected(ce, base, q, 4)
        assert all(type(d.metadata["relevance_score"]) is float for d in got)
        scores = [d.metadata["relevance_score"] for d in got]
        assert scores == sorted(scores, reverse=True)
        assert len({s for s in scores}) > 1  # the tiny model separates them: the order is informative
    # the store's own documents were copied, not modified
    assert all("relevance_score" not in d.metadata for d in base.invoke(QUERIES[0]))


def test_async_retriever_and_abatch_match_sync(ce: Reranker, base, monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=LangChainReranker(ce, top_n=3), base_retriever=base
    )
    sync = [as_rows(retriever.invoke(q)) for q in QUERIES]

    async def main():
        one = await retriever.ainvoke(QUERIES[0])
        many = await retriever.abatch(QUERIES)
        return one, many

    seen = spy_async(monkeypatch, "crossrank.integrations.langchain")
    one, many = asyncio.run(main())
    assert sorted(seen) == sorted([QUERIES[0], *QUERIES])  # ainvoke and abatch took the async path
    assert as_rows(one) == sync[0]
    assert [as_rows(m) for m in many] == sync


def test_top_n_none_keeps_all_and_ids_survive(ce: Reranker) -> None:
    docs = [Document(t, id=f"doc-{i}", metadata={"nested": {"i": i}}) for i, t in enumerate(TEXTS[:6])]
    out = LangChainReranker(ce, top_n=None).compress_documents(docs, QUERIES[1])
    assert sorted(d.id for d in out) == sorted(d.id for d in docs)
    ranked = ce.rank(QUERIES[1], [d.page_content for d in docs])
    assert [d.id for d in out] == [f"doc-{r['corpus_id']}" for r in ranked]
    out[0].metadata["nested"]["i"] = -1  # a deep copy: the caller's metadata is untouched
    assert all(d.metadata["nested"]["i"] >= 0 for d in docs)
    assert LangChainReranker(ce).top_n == 3  # CohereRerank's default


def test_bad_input(ce: Reranker) -> None:
    c = LangChainReranker(ce, top_n=2)
    assert c.compress_documents([], "q") == []
    assert asyncio.run(c.acompress_documents([], "q")) == []
    with pytest.raises(TypeError, match=r"documents\[1\] must be a Document, got str"):
        c.compress_documents([Document("a"), "b"], "q")  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a str"):
        c.compress_documents([Document("a")], 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="documents must be a list of documents"):
        asyncio.run(c.acompress_documents("abc", "q"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        LangChainReranker(ce, top_n=0)
    with pytest.raises(TypeError, match="top_n must be an int"):
        LangChainReranker(ce, top_n=True)
    with pytest.raises(TypeError, match="must be a crossrank reranker"):
        LangChainReranker(object())
    c.top_n = -1  # set after construction: refused at call time
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        c.compress_documents([Document("a")], "q")


def test_concurrent_acompress_calls_share_one_score_batch(ce: Reranker) -> None:
    class Recording:
        """Delegates to the cross-encoder, recording each score_batch call's queries."""

        def __init__(self) -> None:
            self.calls: list[list[str]] = []
            self.score, self.rank = ce.score, ce.rank

        def score_batch(self, queries, documents_per_query):
            self.calls.append(list(queries))
            return ce.score_batch(queries, documents_per_query)

    rec = Recording()
    c = LangChainReranker(rec, top_n=3)
    docs = [Document(t) for t in TEXTS]

    async def main():
        return await asyncio.gather(*(c.acompress_documents(docs, q) for q in QUERIES))

    got = asyncio.run(main())
    assert rec.calls == [QUERIES]  # the three queries' pairs went to the model together
    assert [as_rows(g) for g in got] == [as_rows(c.compress_documents(docs, q)) for q in QUERIES]
