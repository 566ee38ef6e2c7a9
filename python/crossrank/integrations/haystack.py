"""Haystack 2.x: a crossrank reranker as a ranker ``@component`` (``pip install "crossrank[haystack]"``).

>>> from haystack import Pipeline                                                  # doctest: +SKIP
>>> from crossrank.integrations import HaystackRanker                              # doctest: +SKIP
>>> p = Pipeline(); p.add_component("bm25", InMemoryBM25Retriever(store))          # doctest: +SKIP
>>> p.add_component("rerank", HaystackRanker("cross-encoder/ms-marco-MiniLM-L-6-v2", top_k=5))  # doctest: +SKIP
>>> p.connect("bm25.documents", "rerank.documents"); p.run({"bm25": {"query": q}, "rerank": {"query": q}})  # doctest: +SKIP
"""

# No ``from __future__ import annotations`` here: Haystack reads ``run``'s annotations at class
# creation to build the component's sockets and needs real types, not strings.

import dataclasses
import threading
from typing import Any

from .._common import check_text
from ..errors import missing_extra
from ..types import Reranker
from ._core import arank_texts, check_top_n, rank_texts, resolve_target, texts_of

try:
    from haystack import Document, component, default_from_dict, default_to_dict
    from haystack.core.errors import SerializationError
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise missing_extra("haystack-ai", "haystack") from e

__all__ = ["HaystackRanker"]


@component
class HaystackRanker:
    """Rank Haystack ``Document`` objects by a query with any crossrank reranker.

    Returns the best ``top_k`` documents, best first, each a copy of the input (same ``id``,
    ``content``, ``meta``, embeddings) with ``score`` set to the rerank score; the inputs are not
    modified. Order and scores are exactly those of the reranker's ``rank(query, [d.content ...],
    top_k)``.

    Built from a reranker spec string, the model loads in :meth:`warm_up` (Haystack's pipelines call
    it; :meth:`run` calls it too when needed), and :meth:`to_dict` / :meth:`from_dict` serialise the
    spec and its options, so a pipeline holding this ranker round-trips through ``Pipeline.dumps`` /
    ``loads``. Built from a reranker object it works the same but cannot be serialised. Haystack 3
    loads classes only from allowed modules: ``Pipeline.loads(text,
    allowed_modules=["crossrank.integrations.haystack"])``.

    :meth:`run_async` (used by Haystack's ``AsyncPipeline``) merges the calls waiting on one event loop
    into one ``score_batch`` step on the loop's default executor (crossrank's rerankers are
    synchronous, CPU-bound and release the GIL during inference) or awaits a reranker's own coroutine
    ``ascore_batch``; see :mod:`crossrank.integrations._core`.

    One instance may be shared across threads when the reranker may (every crossrank reranker may):
    loading is guarded by a lock and no per-call state is kept.

    Parameters
    ----------
    model : str, Reranker or Pipeline
        A reranker spec (``MODEL``, ``dense:MODEL``, ``colbert:MODEL``, ``llm:BASE_URL@MODEL``; see
        :mod:`crossrank.rerank.spec`), a protocol reranker, or a :class:`crossrank.Pipeline` with a
        reranker (its ``rerank_fusion`` applies; the incoming order is the first stage).
    top_k : int or None
        Documents returned (an int >= 1; None returns all); :meth:`run` may override it. 10, as
        Haystack's rankers.
    model_options : dict, optional
        With a spec: keyword arguments of :func:`crossrank.rerank.spec.load_reranker` (``precision``,
        ``num_threads``, ``max_length``, the reranker's own options); serialised with the spec, so keep
        them JSON-like.

    Raises
    ------
    TypeError
        ``model`` is not a spec, reranker or Pipeline; ``top_k`` is not an int; ``model_options`` is
        not a dict.
    ValueError
        ``top_k`` < 1, a Pipeline without a reranker, a malformed spec, or ``model_options`` with an
        object.
    """

    def __init__(
        self, model: Any, *, top_k: int | None = 10, model_options: dict[str, Any] | None = None
    ) -> None:
        check_top_n(top_k, "top_k")
        if model_options is not None and not isinstance(model_options, dict):
            raise TypeError(f"model_options must be a dict or None, got {type(model_options).__name__}")
        self.model = model
        self.top_k = top_k
        self.model_options = dict(model_options or {})
        self._lock = threading.Lock()
        self._target: Any = None
        if isinstance(model, str):
            from ..rerank.spec import parse_reranker_spec

            parse_reranker_spec(model)  # a malformed spec fails here, not at warm_up
        else:
            self._target = resolve_target(model, "model", **self.model_options)

    def warm_up(self) -> None:
        """Load the model a spec names (once; a no-op for a reranker object)."""
        with self._lock:
            if self._target is None:
                self._target = resolve_target(self.model, "model", **self.model_options)

    @property
    def reranker(self) -> Reranker | None:
        """The loaded reranker (a Pipeline's reranker), or None before :meth:`warm_up`."""
        from ._core import scorer_of

        return None if self._target is None else scorer_of(self._target)

    def to_dict(self) -> dict[str, Any]:
        """Serialise the spec, ``top_k`` and ``model_options``.

        Returns
        -------
        dict
            Haystack's ``{"type", "init_parameters"}`` form.

        Raises
        ------
        haystack.core.errors.SerializationError
            The ranker was built from a reranker object, which has no spec to write.
        """
        if not isinstance(self.model, str):
            raise SerializationError(
                f"a HaystackRanker built from a {type(self.model).__name__} object cannot be serialised; "
                "build it from a reranker spec string (e.g. HaystackRanker('cross-encoder/ms-marco-"
                "MiniLM-L-6-v2', model_options={...})) to save the pipeline"
            )
        return default_to_dict(self, model=self.model, top_k=self.top_k, model_options=self.model_options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HaystackRanker":
        """Rebuild a ranker from :meth:`to_dict`'s output (the model loads at :meth:`warm_up`).

        Parameters
        ----------
        data : dict
            ``{"type", "init_parameters": {"model", "top_k", "model_options"}}``.

        Returns
        -------
        HaystackRanker
        """
        return default_from_dict(cls, data)

    def _prepare(
        self, query: str, documents: list[Document], top_k: int | None
    ) -> tuple[list[str], int | None]:
        check_text(query, "query")
        texts = texts_of(documents, Document, lambda d: d.content)
        k = check_top_n(top_k, "top_k")
        if self._target is None:
            self.warm_up()
        return texts, self.top_k if k is None else k

    @staticmethod
    def _scored(documents: list[Document], ranked: list[tuple[int, float]]) -> dict[str, list[Document]]:
        return {"documents": [dataclasses.replace(documents[i], score=score) for i, score in ranked]}

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """Rank ``documents`` by ``query`` and return the best ``top_k``.

        Parameters
        ----------
        query : str
            The query.
        documents : list of Document
            Candidates (e.g. a retriever's output, in its order); an empty list gives no documents.
        top_k : int, optional
            Overrides the ranker's ``top_k`` for this call (an int >= 1).

        Returns
        -------
        dict
            ``{"documents": [...]}``: copies with ``score`` set, best first.

        Raises
        ------
        TypeError
            ``query`` is not a str, a document is not a ``Document`` or has no text content, or
            ``top_k`` is not an int.
        ValueError
            ``top_k`` < 1.
        """
        texts, k = self._prepare(query, documents, top_k)
        return self._scored(documents, rank_texts(self._target, query, texts, k))

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: coalesced with concurrent calls, never blocking the event loop.

        Parameters
        ----------
        query : str
            The query.
        documents : list of Document
            Candidates, in the retriever's order.
        top_k : int, optional
            Overrides the ranker's ``top_k`` for this call.

        Returns
        -------
        dict
            As :meth:`run` (the same order and scores).
        """
        texts, k = self._prepare(query, documents, top_k)
        return self._scored(documents, await arank_texts(self._target, query, texts, k))
