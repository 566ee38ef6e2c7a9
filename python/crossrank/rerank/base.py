"""The shared half of every reranker: argument checks, ``rank`` from ``score``, a ``score_batch`` default.

A reranker subclasses :class:`RerankerBase` and implements :meth:`RerankerBase._score_many` (all queries
at once, so it can pack work across them); ``score``, ``score_batch`` and ``rank`` then follow the
protocol in :mod:`crossrank.types` with one set of rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._common import check_bool, check_text, check_texts, check_top_k
from ..types import RankedDoc, Scores

__all__ = ["RerankerBase", "check_batch", "ranked_from_scores"]


def check_batch(
    queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Check a batch of queries with one document list each; return them as lists.

    Parameters
    ----------
    queries : sequence of str
        The queries.
    documents_per_query : sequence of sequence of str
        ``documents_per_query[i]`` are the candidates of ``queries[i]`` (an empty list is allowed).

    Returns
    -------
    tuple of (list of str, list of list of str)
        The queries and each query's documents, copied into lists.

    Raises
    ------
    TypeError
        A non-str query or document (the message names its index), or a lone str for either argument.
    ValueError
        ``queries`` and ``documents_per_query`` differ in length.
    """
    qs = check_texts(queries, "queries")
    if isinstance(documents_per_query, (str, bytes)):
        raise TypeError("documents_per_query must be a sequence of document lists, got a single str")
    dpq = list(documents_per_query)
    if len(dpq) != len(qs):
        raise ValueError(f"got {len(qs)} queries but {len(dpq)} document lists; pass one list per query")
    docs = [
        check_texts(d, f"documents_per_query[{i}]" if len(qs) > 1 else "documents") for i, d in enumerate(dpq)
    ]
    return qs, docs


def ranked_from_scores(
    scores: Scores, documents: Sequence[str], top_k: int | None, *, return_documents: bool = False
) -> list[RankedDoc]:
    """Turn :class:`Scores` into ranked rows: highest score first, ties in input order.

    Parameters
    ----------
    scores : Scores
        One query's scores (float32 ``[n]``), flags and optional windows, aligned with ``documents``.
    documents : sequence of str
        The scored texts; read only when ``return_documents`` is True.
    top_k : int, optional
        Keep the best ``top_k`` (an int >= 1, capped at ``n``); None keeps all.
    return_documents : bool
        Add each document's ``"text"``.

    Returns
    -------
    list of RankedDoc
        ``{"corpus_id", "score", "truncated"[, "window"][, "text"]}``; scores are Python floats.

    Raises
    ------
    TypeError, ValueError
        ``top_k`` is not an int, or < 1.
    """
    n = len(scores)
    k = check_top_k(top_k, n)
    order = np.argsort(-scores.scores.astype(np.float64), kind="stable")[:k]
    out: list[RankedDoc] = []
    for i in order.tolist():
        row: RankedDoc = {
            "corpus_id": i,
            "score": float(scores.scores[i]),
            "truncated": bool(scores.truncated[i]),
        }
        if scores.windows is not None:
            w = scores.windows[i]
            if w is not None:
                row["window"] = w
        if return_documents:
            row["text"] = documents[i]
        out.append(row)
    return out


class RerankerBase:
    """Implements the :class:`~crossrank.types.Reranker` protocol on top of :meth:`_score_many`.

    The base keeps no state, so whether an instance may be shared across threads is up to the
    subclass's :meth:`_score_many` (every crossrank reranker says so in its docstring).
    """

    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        """Score every query's documents (inputs already checked; no query has zero documents)."""
        raise NotImplementedError

    def score(self, query: str, documents: Sequence[str]) -> Scores:
        """Score ``documents`` for ``query``, in input order.

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidate texts; an empty sequence gives empty scores.

        Returns
        -------
        Scores
            float32 scores ``[n]``, truncation flags ``[n]``, winning windows and this call's stats.

        Raises
        ------
        TypeError
            ``query`` is not a str, or ``documents`` is a lone str or holds a non-str.
        """
        return self.score_batch([check_text(query, "query")], [documents])[0]

    def score_batch(
        self, queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
    ) -> list[Scores]:
        """Score several queries' documents at once, packing the work across queries.

        Parameters
        ----------
        queries : sequence of str
            The queries.
        documents_per_query : sequence of sequence of str
            ``documents_per_query[i]`` are the candidates of ``queries[i]``.

        Returns
        -------
        list of Scores
            One per query, in order.

        Raises
        ------
        TypeError
            A non-str query or document (the message names its index).
        ValueError
            ``queries`` and ``documents_per_query`` differ in length.
        """
        qs, docs = check_batch(queries, documents_per_query)
        live = [i for i, d in enumerate(docs) if d]
        out = [Scores.empty() for _ in qs]
        if live:
            for i, s in zip(
                live, self._score_many([qs[i] for i in live], [docs[i] for i in live]), strict=True
            ):
                if len(s) != len(docs[i]):
                    raise RuntimeError(
                        f"{type(self).__name__} returned {len(s)} scores for {len(docs[i])} documents"
                    )
                out[i] = s
        return out

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        return_documents: bool = False,
    ) -> list[RankedDoc]:
        """Rank ``documents`` for ``query``, best first.

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidate texts; an empty sequence gives ``[]``.
        top_k : int, optional
            Keep the best ``top_k`` (an int >= 1); None keeps all.
        return_documents : bool
            Add each document's ``"text"``.

        Returns
        -------
        list of RankedDoc
            ``{"corpus_id", "score", "truncated"[, "window"][, "text"]}``, highest score first, ties in
            input order; scores are Python floats.

        Raises
        ------
        TypeError
            A non-str query or document, a non-int ``top_k`` or a non-bool ``return_documents``.
        ValueError
            ``top_k`` < 1.
        """
        check_bool(return_documents, "return_documents")
        docs = check_texts(documents, "documents")
        check_top_k(top_k, len(docs))  # refuse a bad top_k before any work
        return ranked_from_scores(self.score(query, docs), docs, top_k, return_documents=return_documents)
