"""HaystackRanker in a Haystack Pipeline fed by the in-memory BM25 retriever; serialisation round trip."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from crossrank.types import Reranker
from model_fixtures import tiny_texts
from test_integrations_common import spy_async

pytest.importorskip("haystack")

import haystack
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.core.errors import SerializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore

from crossrank.integrations import HaystackRanker

TEXTS = tiny_texts(14, seed=41, min_words=3, max_words=25)
# first words of four documents each: BM25 finds at least those four
QUERIES = [" ".join(TEXTS[i].split()[0] for i in ids) for ids in ((2, 6, 11, 0), (1, 3, 5, 7), (4, 8, 9, 13))]
OPTIONS = {"precision": "fp32", "activation": "none"}
LOADS_PARAMS = inspect.signature(Pipeline.loads).parameters


@pytest.fixture(scope="module")
def ce(tiny_bert_onnx: Path) -> Reranker:
    from crossrank import CrossEncoder

    return CrossEncoder(tiny_bert_onnx, **OPTIONS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store() -> InMemoryDocumentStore:
    s = InMemoryDocumentStore()
    s.write_documents([Document(content=t, meta={"n": i}) for i, t in enumerate(TEXTS)])
    return s


def build(store: InMemoryDocumentStore, ranker: HaystackRanker, cls: type = Pipeline) -> Pipeline:
    p = cls()
    p.add_component("retriever", InMemoryBM25Retriever(store, top_k=len(TEXTS)))
    p.add_component("ranker", ranker)
    p.connect("retriever.documents", "ranker.documents")
    return p


def expected(ce: Reranker, store: InMemoryDocumentStore, query: str, top_k: int | None):
    cands = InMemoryBM25Retriever(store, top_k=len(TEXTS)).run(query=query)["documents"]
    ranked = ce.rank(query, [d.content for d in cands], top_k)
    return [(cands[r["corpus_id"]].id, cands[r["corpus_id"]].meta, r["score"]) for r in ranked]


def rows(docs: list[Document]):
    return [(d.id, d.meta, d.score) for d in docs]


def test_pipeline_matches_in_process_rank_and_round_trips(
    ce: Reranker, store: InMemoryDocumentStore, tiny_bert_onnx: Path
) -> None:
    ranker = HaystackRanker(str(tiny_bert_onnx), top_k=5, model_options=OPTIONS)
    assert ranker.reranker is None  # a spec loads at warm_up
    pipe = build(store, ranker)
    results = {}
    for q in QUERIES:
        out = pipe.run({"retriever": {"query": q}, "ranker": {"query": q}})["ranker"]["documents"]
        want = expected(ce, store, q, 5)
        assert len(want) == 5  # BM25 found more candidates: the reranker had work to do
        assert rows(out) == want
        assert all(type(d.score) is float for d in out)
        results[q] = rows(out)
    assert ranker.reranker is not None

    data = pipe.to_dict()
    params = data["components"]["ranker"]["init_parameters"]
    assert data["components"]["ranker"]["type"] == "crossrank.integrations.haystack.HaystackRanker"
    assert params == {"model": str(tiny_bert_onnx), "top_k": 5, "model_options": OPTIONS}
    # YAML text and back: a fresh ranker built from the spec. Haystack 3 loads classes only from
    # modules its caller allows (the allowlist Haystack 2 did not have).
    trust = {"allowed_modules": [HaystackRanker.__module__]} if "allowed_modules" in LOADS_PARAMS else {}
    again = Pipeline.loads(pipe.dumps(), **trust)
    for q in QUERIES:
        out = again.run({"retriever": {"query": q}, "ranker": {"query": q}})["ranker"]["documents"]
        assert rows(out) == results[q]
    # run's top_k overrides the component's
    out = again.run({"retriever": {"query": QUERIES[0]}, "ranker": {"query": QUERIES[0], "top_k": 2}})
    assert rows(out["ranker"]["documents"]) == results[QUERIES[0]][:2]


def test_async_pipeline_and_object_ranker(
    ce: Reranker, store: InMemoryDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = spy_async(monkeypatch, "crossrank.integrations.haystack")
    ranker = HaystackRanker(ce, top_k=None)  # an object: works, but cannot be serialised
    # Haystack 3's Pipeline has run_async; Haystack 2 has a separate AsyncPipeline
    pipe = build(store, ranker, getattr(haystack, "AsyncPipeline", Pipeline))

    async def main():
        return await asyncio.gather(
            *(pipe.run_async({"retriever": {"query": q}, "ranker": {"query": q}}) for q in QUERIES)
        )

    for q, out in zip(QUERIES, asyncio.run(main()), strict=True):
        assert rows(out["ranker"]["documents"]) == expected(ce, store, q, None)
    assert sorted(seen) == sorted(QUERIES)  # the pipeline ran the component's run_async
    with pytest.raises(SerializationError, match="build it from a reranker spec string"):
        pipe.dumps()


def test_documents_are_copies(ce: Reranker) -> None:
    docs = [
        Document(content=t, meta={"nested": {"i": i}}, embedding=[float(i)]) for i, t in enumerate(TEXTS[:5])
    ]
    out = HaystackRanker(ce, top_k=None).run(QUERIES[0], docs)["documents"]
    assert sorted(d.id for d in out) == sorted(d.id for d in docs)
    assert all(d.score is None for d in docs)  # inputs untouched
    by_id = {d.id: d for d in docs}
    assert all(d.embedding == by_id[d.id].embedding and d.meta == by_id[d.id].meta for d in out)


def test_bad_input(ce: Reranker) -> None:
    r = HaystackRanker(ce, top_k=3)
    assert r.run("q", []) == {"documents": []}
    with pytest.raises(TypeError, match=r"documents\[1\] has no text to rerank"):
        r.run("q", [Document(content="a"), Document(content=None, meta={"blob": True})])
    with pytest.raises(TypeError, match=r"documents\[0\] must be a Document, got str"):
        r.run("q", ["a"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a str"):
        r.run(None, [Document(content="a")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        r.run("q", [Document(content="a")], top_k=0)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        HaystackRanker(ce, top_k=-1)
    with pytest.raises(TypeError, match="top_k must be an int"):
        HaystackRanker(ce, top_k="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown reranker kind"):
        HaystackRanker("dens:some-model")
    with pytest.raises(TypeError, match="model_options must be a dict"):
        HaystackRanker("some-model", model_options=["fp32"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only when model is a spec string"):
        HaystackRanker(ce, model_options={"precision": "fp32"})
