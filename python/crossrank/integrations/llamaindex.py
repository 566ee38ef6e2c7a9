"""LlamaIndex: a crossrank reranker as a ``BaseNodePostprocessor`` (``pip install "crossrank[llamaindex]"``).

>>> from crossrank.integrations import LlamaIndexReranker                      # doctest: +SKIP
>>> rerank = LlamaIndexReranker("cross-encoder/ms-marco-MiniLM-L-6-v2", top_n=5)  # doctest: +SKIP
>>> engine = index.as_query_engine(similarity_top_k=50, node_postprocessors=[rerank])  # doctest: +SKIP
>>> engine.query("what is bm25?").source_nodes   # NodeWithScore, score = rerank score  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..errors import missing_extra
from ._core import arank_texts, check_top_n, rank_texts, resolve_target, texts_of

try:
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
    from pydantic import ConfigDict, Field
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise missing_extra("llama-index-core", "llamaindex") from e

__all__ = ["LlamaIndexReranker"]


class LlamaIndexReranker(BaseNodePostprocessor):
    """Rerank LlamaIndex nodes with any crossrank reranker (a node postprocessor, like ``CohereRerank``).

    The query is the ``QueryBundle``'s ``query_str``; each node's text is
    ``node.get_content(metadata_mode=metadata_mode)``. Returns the best ``top_n`` as new
    ``NodeWithScore`` objects holding the *same* node objects (id, metadata and relationships
    untouched) with ``score`` set to the rerank score; order and scores are exactly those of the
    wrapped reranker's ``rank(query, texts, top_n)``.

    The async path (``apostprocess_nodes``) merges the calls waiting on one event loop into one
    ``score_batch`` step on the loop's default executor (crossrank's rerankers are synchronous,
    CPU-bound and release the GIL during inference) or awaits a reranker's own coroutine
    ``ascore_batch``; see :mod:`crossrank.integrations._core`.

    One instance may be shared across threads and tasks when the wrapped reranker may (every crossrank
    reranker may): the adapter keeps no per-call state.

    Parameters
    ----------
    reranker : Reranker, Pipeline or str
        A protocol reranker (:class:`crossrank.types.Reranker`), a :class:`crossrank.Pipeline` with a
        reranker (its ``rerank_fusion`` applies; the incoming order is the first stage), or a reranker
        spec such as ``"cross-encoder/ms-marco-MiniLM-L-6-v2"``.
    top_n : int or None
        Nodes kept (an int >= 1; None keeps all). 2, as LlamaIndex's rerankers.
    metadata_mode : MetadataMode or str
        Which metadata joins the text that is scored: ``"embed"`` (LlamaIndex's rerankers' choice,
        honouring ``excluded_embed_metadata_keys``), ``"none"`` (the text alone), ``"llm"`` or ``"all"``.
    **options
        With a spec string: passed to :func:`crossrank.rerank.spec.load_reranker`.

    Raises
    ------
    TypeError
        ``reranker`` is not a reranker, Pipeline or str; ``top_n`` is not an int.
    ValueError
        ``top_n`` < 1, an unknown ``metadata_mode``, a Pipeline without a reranker, or options with a
        reranker object.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reranker: Any = Field(exclude=True)
    """The wrapped reranker or Pipeline (not serialised: it holds a model)."""
    top_n: int | None = 2
    """Nodes kept (None: all)."""
    metadata_mode: MetadataMode = MetadataMode.EMBED
    """Which metadata joins the scored text."""

    def __init__(
        self,
        reranker: Any,
        *,
        top_n: int | None = 2,
        metadata_mode: MetadataMode | str = MetadataMode.EMBED,
        **options: Any,
    ) -> None:
        check_top_n(top_n)
        try:
            mode = MetadataMode(metadata_mode)
        except ValueError:
            modes = ", ".join(repr(m.value) for m in MetadataMode)
            raise ValueError(f"metadata_mode must be one of {modes}, got {metadata_mode!r}") from None
        super().__init__(reranker=resolve_target(reranker, **options), top_n=top_n, metadata_mode=mode)  # type: ignore[call-arg]

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex records for this component."""
        return "CrossrankReranker"

    def _prepare(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[str], int | None]:
        if query_bundle is None:
            raise ValueError(
                "LlamaIndexReranker needs the query: call postprocess_nodes(nodes, query_str=...) or "
                "pass a QueryBundle (query engines and retrievers do)"
            )
        if not isinstance(query_bundle, QueryBundle):
            raise TypeError(f"query_bundle must be a QueryBundle, got {type(query_bundle).__name__}")
        texts = texts_of(
            nodes, NodeWithScore, lambda n: n.node.get_content(metadata_mode=self.metadata_mode), "nodes"
        )
        return query_bundle.query_str, texts, check_top_n(self.top_n)

    def _finish(self, nodes: list[NodeWithScore], ranked: list[tuple[int, float]]) -> list[NodeWithScore]:
        return [NodeWithScore(node=nodes[i].node, score=score) for i, score in ranked]

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Rerank ``nodes`` for the bundle's query and keep the best ``top_n``.

        Parameters
        ----------
        nodes : list of NodeWithScore
            The retrieved nodes, in the retriever's order (an empty list gives ``[]``).
        query_bundle : QueryBundle
            The query (required).

        Returns
        -------
        list of NodeWithScore
            The same nodes, best first, with ``score`` = rerank score.

        Raises
        ------
        ValueError
            No query bundle, or ``top_n`` was set to an int < 1.
        TypeError
            A node is not a ``NodeWithScore``, its content is not text, or ``query_bundle`` is not a
            ``QueryBundle``.
        """
        query, texts, top_n = self._prepare(nodes, query_bundle)
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.QUERY_STR: query,
                EventPayload.TOP_K: top_n,
            },
        ) as event:
            out = self._finish(nodes, rank_texts(self.reranker, query, texts, top_n))
            event.on_end(payload={EventPayload.NODES: out})
        return out

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Async :meth:`_postprocess_nodes`: coalesced with concurrent calls, never blocking the loop.

        Parameters
        ----------
        nodes : list of NodeWithScore
            The retrieved nodes, in the retriever's order.
        query_bundle : QueryBundle
            The query (required).

        Returns
        -------
        list of NodeWithScore
            As :meth:`_postprocess_nodes` (the same order and scores).
        """
        query, texts, top_n = self._prepare(nodes, query_bundle)
        return self._finish(nodes, await arank_texts(self.reranker, query, texts, top_n))
