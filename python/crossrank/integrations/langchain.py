"""LangChain: a crossrank reranker as a ``BaseDocumentCompressor`` (``pip install "crossrank[langchain]"``).

>>> from langchain_classic.retrievers import ContextualCompressionRetriever   # doctest: +SKIP
>>> from crossrank.integrations import LangChainReranker                      # doctest: +SKIP
>>> compressor = LangChainReranker("cross-encoder/ms-marco-MiniLM-L-6-v2", top_n=5)  # doctest: +SKIP
>>> retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)  # doctest: +SKIP
>>> retriever.invoke("what is bm25?")    # Documents, metadata["relevance_score"]   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

from .._common import check_text
from ..errors import missing_extra
from ._core import arank_texts, check_top_n, rank_texts, resolve_target, texts_of

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise missing_extra("langchain-core", "langchain") from e

__all__ = ["LangChainReranker"]


class LangChainReranker(BaseDocumentCompressor):
    """Rerank LangChain ``Document`` objects with any crossrank reranker, like ``CohereRerank`` does.

    Returns the best ``top_n`` documents, best first, each a copy of the input document (same
    ``page_content``, ``id`` and a deep copy of its ``metadata``) with ``metadata["relevance_score"]``
    set to its score (a float). The inputs are not modified. Order and scores are exactly those of the
    wrapped reranker's ``rank(query, [d.page_content ...], top_n)``.

    :meth:`acompress_documents` is natively async rather than one thread per call: the calls waiting
    on one event loop are merged into one ``score_batch`` step (a cross-encoder packs all their pairs
    into shared batches), which runs on the loop's default executor because crossrank's rerankers are
    synchronous and CPU-bound and release the GIL during inference, so the loop is never blocked; a
    reranker with a coroutine ``ascore_batch`` is awaited directly (see
    :mod:`crossrank.integrations._core`).

    One instance may be shared across threads and tasks when the wrapped reranker may (every crossrank
    reranker may): the adapter keeps no per-call state.

    Parameters
    ----------
    reranker : Reranker, Pipeline or str
        A protocol reranker (:class:`crossrank.types.Reranker`), a :class:`crossrank.Pipeline` with a
        reranker (its ``rerank_fusion`` applies; the incoming order is the first stage), or a reranker
        spec such as ``"cross-encoder/ms-marco-MiniLM-L-6-v2"`` or ``"dense:MODEL"``.
    top_n : int or None
        Documents kept (an int >= 1; None keeps all). 3, as ``CohereRerank``.
    **options
        With a spec string: passed to :func:`crossrank.rerank.spec.load_reranker` (``precision``,
        ``num_threads``, ``max_length``, ...).

    Raises
    ------
    TypeError
        ``reranker`` is not a reranker, Pipeline or str; ``top_n`` is not an int.
    ValueError
        ``top_n`` < 1, a Pipeline without a reranker, or options with a reranker object.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reranker: Any
    """The wrapped reranker or Pipeline."""
    top_n: int | None = 3
    """Documents kept (None: all)."""

    def __init__(self, reranker: Any, *, top_n: int | None = 3, **options: Any) -> None:
        check_top_n(top_n)
        super().__init__(reranker=resolve_target(reranker, **options), top_n=top_n)  # type: ignore[call-arg]

    def _prepare(self, documents: Sequence[Document], query: str) -> tuple[list[str], int | None]:
        check_text(query, "query")
        texts = texts_of(documents, Document, lambda d: d.page_content)
        return texts, check_top_n(self.top_n)

    @staticmethod
    def _scored(documents: Sequence[Document], ranked: list[tuple[int, float]]) -> list[Document]:
        out = []
        for i, score in ranked:
            doc = documents[i]
            metadata = deepcopy(doc.metadata)
            metadata["relevance_score"] = score
            out.append(doc.model_copy(update={"metadata": metadata}))
        return out

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` for ``query`` and keep the best ``top_n``.

        Parameters
        ----------
        documents : sequence of Document
            The retrieved documents, in the retriever's order (an empty sequence gives ``[]``).
        query : str
            The query.
        callbacks : Callbacks, optional
            Accepted for LangChain's interface; unused.

        Returns
        -------
        list of Document
            Copies with ``metadata["relevance_score"]``, best first.

        Raises
        ------
        TypeError
            ``query`` is not a str, ``documents`` is not a sequence of ``Document``, or ``top_n`` was
            set to a non-int.
        ValueError
            ``top_n`` was set to an int < 1.
        """
        texts, top_n = self._prepare(documents, query)
        return self._scored(documents, rank_texts(self.reranker, query, texts, top_n))

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: coalesced with concurrent calls, never blocking the loop.

        Parameters
        ----------
        documents : sequence of Document
            The retrieved documents, in the retriever's order (an empty sequence gives ``[]``).
        query : str
            The query.
        callbacks : Callbacks, optional
            Accepted for LangChain's interface; unused.

        Returns
        -------
        list of Document
            As :meth:`compress_documents` (the same order and scores).

        Raises
        ------
        TypeError, ValueError
            As :meth:`compress_documents`, raised before any work is queued.
        """
        texts, top_n = self._prepare(documents, query)
        return self._scored(documents, await arank_texts(self.reranker, query, texts, top_n))
