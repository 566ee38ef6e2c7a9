"""LlamaIndexReranker as a node postprocessor of LlamaIndex's own query engine over an in-memory index."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crossrank.types import Reranker
from model_fixtures import tiny_texts
from test_integrations_common import spy_async

pytest.importorskip("llama_index.core")

from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from crossrank.integrations import LlamaIndexReranker

TEXTS = tiny_texts(10, seed=31, min_words=3, max_words=25)
QUERIES = [" ".join(TEXTS[i].split()[:2]) for i in (1, 4, 8)]


@pytest.fixture(scope="module")
def ce(tiny_bert_onnx: Path) -> Reranker:
    from crossrank import CrossEncoder

    return CrossEncoder(tiny_bert_onnx, precision="fp32", activation="none")


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    # metadata excluded from the embed text by one key, included by the other
    nodes = [
        TextNode(
            text=t, id_=f"n{i}", metadata={"n": i, "secret": "x"}, excluded_embed_metadata_keys=["secret"]
        )
        for i, t in enumerate(TEXTS)
    ]
    return VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))  # no network, no model


def expected(ce: Reranker, index: VectorStoreIndex, query: str, top_n: int | None, mode: MetadataMode):
    cands = index.as_retriever(similarity_top_k=len(TEXTS)).retrieve(query)
    ranked = ce.rank(query, [c.node.get_content(metadata_mode=mode) for c in cands], top_n)
    return [(cands[r["corpus_id"]].node.node_id, r["score"]) for r in ranked]


def rows(nodes: list[NodeWithScore]) -> list[tuple[str, float | None]]:
    return [(n.node.node_id, n.score) for n in nodes]


def test_query_engine_postprocessor_matches_in_process_rank(
    ce: Reranker, index: VectorStoreIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    rerank = LlamaIndexReranker(ce, top_n=4)
    engine = RetrieverQueryEngine(
        index.as_retriever(similarity_top_k=len(TEXTS)),
        response_synthesizer=NoText(llm=MockLLM()),  # sources only: no LLM call, no network
        node_postprocessors=[rerank],
    )
    for q in QUERIES:
        got = engine.query(q).source_nodes
        want = expected(ce, index, q, 4, MetadataMode.EMBED)
        assert rows(got) == want
        assert len({s for _, s in want}) > 1
        # the same node objects, metadata and all
        assert all(n.node.metadata["n"] == int(n.node.node_id[1:]) for n in got)
    # the async engine path (apostprocess_nodes) gives the same
    seen = spy_async(monkeypatch, "crossrank.integrations.llamaindex")
    got = asyncio.run(engine.aquery(QUERIES[0])).source_nodes
    assert seen == [QUERIES[0]]
    assert rows(got) == expected(ce, index, QUERIES[0], 4, MetadataMode.EMBED)


def test_retriever_metadata_mode_and_concurrent_async(ce: Reranker, index: VectorStoreIndex) -> None:
    rerank = LlamaIndexReranker(ce, top_n=None, metadata_mode="none")
    retriever = index.as_retriever(similarity_top_k=len(TEXTS))
    for q in QUERIES:
        got = rerank.postprocess_nodes(retriever.retrieve(q), query_str=q)
        assert rows(got) == expected(ce, index, q, None, MetadataMode.NONE)
        assert len(got) == len(TEXTS)

    async def main():
        return await asyncio.gather(
            *(rerank.apostprocess_nodes(retriever.retrieve(q), QueryBundle(q)) for q in QUERIES)
        )

    assert [rows(g) for g in asyncio.run(main())] == [
        expected(ce, index, q, None, MetadataMode.NONE) for q in QUERIES
    ]
    assert LlamaIndexReranker(ce).top_n == 2  # LlamaIndex rerankers' default


def test_bad_input(ce: Reranker) -> None:
    r = LlamaIndexReranker(ce, top_n=2)
    assert r.postprocess_nodes([], query_str="q") == []
    with pytest.raises(ValueError, match="needs the query"):
        r.postprocess_nodes([NodeWithScore(node=TextNode(text="a"))])
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore, got TextNode"):
        r.postprocess_nodes([TextNode(text="a")], query_str="q")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        LlamaIndexReranker(ce, top_n=0)
    with pytest.raises(TypeError, match="top_n must be an int"):
        LlamaIndexReranker(ce, top_n=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metadata_mode must be one of"):
        LlamaIndexReranker(ce, metadata_mode="some")
    with pytest.raises(TypeError, match="must be a crossrank reranker"):
        LlamaIndexReranker(["not", "a", "spec"])
