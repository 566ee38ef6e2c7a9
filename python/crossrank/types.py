"""The protocols every first stage and every reranker meets, their result types and option vocabulary.

Every reranker (:class:`~crossrank.CrossEncoder`, :class:`~crossrank.DenseReranker`,
:class:`~crossrank.ColBERTReranker`, :class:`~crossrank.LLMReranker`, or your own class) has three
methods with the same shapes, results and errors (see :class:`Reranker`):

>>> s = reranker.score("what is bm25?", docs)            # doctest: +SKIP
>>> s.scores, s.truncated                                 # float32 [n], bool [n]   # doctest: +SKIP
>>> reranker.score_batch(queries, docs_per_query)         # list[Scores], work packed across queries  # doctest: +SKIP
>>> reranker.rank("what is bm25?", docs, 5)               # [{"corpus_id", "score", "truncated", ...}]  # doctest: +SKIP

Rules shared by all of them:

- ``query`` not a str, ``documents`` a lone str or holding a non-str: ``TypeError`` naming the argument;
- ``top_k``: None returns every document; else an int >= 1 (capped at the number of documents);
  0, negatives and bools are refused (``ValueError`` / ``TypeError``);
- an empty ``documents`` gives empty scores and ``[]``;
- ranking is by score, highest first, ties in input order; scores in :class:`RankedDoc` are Python floats;
- per-call statistics travel with the result (:attr:`Scores.stats`), never on the instance, so one
  instance can serve several threads without mixing their numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, TypedDict, runtime_checkable

import numpy as np

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

__all__ = [
    "Aggregation",
    "Backend",
    "FusionMethod",
    "Hits",
    "Precision",
    "RankedDoc",
    "Reranker",
    "Retriever",
    "Scores",
    "Window",
]

Aggregation = Literal["max", "mean", "first", "topk_mean"]
"""How window scores become a document score (``aggregate=`` on every windowing reranker)."""
Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
Backend = Literal["auto", "onnxruntime", "openvino"]
FusionMethod = Literal["rrf", "minmax", "zscore", "sum"]


class Window(TypedDict):
    """The winning token window of a long document (token range and character range)."""

    index: int
    start_token: int
    end_token: int
    start_char: int
    end_char: int


class RankedDoc(TypedDict):
    """One ranked document: ``documents[corpus_id]`` scored ``score`` (a Python float)."""

    corpus_id: int
    score: float
    truncated: bool
    window: NotRequired[Window]
    text: NotRequired[str]


@dataclass(frozen=True)
class Scores:
    """Scores of one query's documents, in input order (immutable: safe to share across threads).

    Attributes
    ----------
    scores : numpy.ndarray
        float32 ``[n]``; higher is more relevant.
    truncated : numpy.ndarray
        bool ``[n]``: some of the document (or query) did not reach the model.
    windows : list of Window or None, optional
        Per document, the winning window when the reranker scored token windows; else None.
    stats : mapping of str to float
        This call's counters and timings (``pairs``, ``batches``, ``total_s``, ...; reranker specific).
        Work packed across queries cannot be split per query: the Scores of one ``score_batch`` call
        all carry that call's stats (with ``queries``, the number of queries it scored).
    """

    scores: np.ndarray
    truncated: np.ndarray
    windows: Sequence[Window | None] | None = None
    stats: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scores = np.ascontiguousarray(self.scores, dtype=np.float32).reshape(-1)
        truncated = np.ascontiguousarray(self.truncated, dtype=bool).reshape(-1)
        if truncated.shape != scores.shape:
            raise ValueError(f"truncated has {truncated.size} flags for {scores.size} scores")
        if self.windows is not None and len(self.windows) != scores.size:
            raise ValueError(f"windows has {len(self.windows)} entries for {scores.size} scores")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "truncated", truncated)

    def __len__(self) -> int:
        return int(self.scores.size)

    def __getitem__(self, i: int) -> np.float32:
        """``s[i]`` is document ``i``'s score (so a :class:`Scores` indexes like the array it wraps)."""
        return self.scores[i]

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        """``np.asarray(scores)`` gives the float32 scores."""
        return self.scores if dtype is None else self.scores.astype(dtype)  # type: ignore[call-overload]

    @classmethod
    def empty(cls) -> Scores:
        """Scores of no documents."""
        return cls(np.zeros(0, np.float32), np.zeros(0, bool))


class Hits(NamedTuple):
    """Top-k hits of a batch of queries (every first stage returns this shape).

    Attributes
    ----------
    ids : numpy.ndarray, shape [nq, k]
        The caller's document ids, best first.
    scores : numpy.ndarray of float32, shape [nq, k]
    """

    ids: np.ndarray
    scores: np.ndarray


@runtime_checkable
class Reranker(Protocol):
    """What :class:`~crossrank.Pipeline`, ``crossrank serve`` and ``crossrank eval`` accept as a second stage."""

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
            float32 scores ``[len(documents)]``, truncation flags, winning windows and the call's stats.
        """
        ...

    def score_batch(
        self, queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
    ) -> list[Scores]:
        """Score several queries' documents at once, packing the work across queries.

        Parameters
        ----------
        queries : sequence of str
            The queries.
        documents_per_query : sequence of sequence of str
            ``documents_per_query[i]`` are the candidates of ``queries[i]`` (same length as
            ``queries``; a list may be empty).

        Returns
        -------
        list of Scores
            One per query, in order.
        """
        ...

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        return_documents: bool = False,
    ) -> list[RankedDoc]:
        """Rank ``documents`` for ``query``, best first, at most ``top_k``.

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            Candidate texts; an empty sequence gives ``[]``.
        top_k : int, optional
            Keep the best ``top_k`` (an int >= 1, capped at ``len(documents)``); None keeps all.
        return_documents : bool
            Add each document's ``"text"``.

        Returns
        -------
        list of RankedDoc
            Highest score first, ties in input order; ``corpus_id`` indexes ``documents``.
        """
        ...


@runtime_checkable
class Retriever(Protocol):
    """A first stage: the ``k`` best document ids and scores of each query."""

    def search(self, queries: Sequence[str], *, k: int = 10) -> Hits:
        """Return :class:`Hits` of shape ``[len(queries), k]``.

        Parameters
        ----------
        queries : sequence of str
            The queries (BM25 and dense text retrievers also take a single str as a batch of one).
        k : int
            Hits per query, >= 1; a collection of fewer than ``k`` documents gives that many columns.

        Returns
        -------
        Hits
            ``ids`` [len(queries), k] (the caller's document ids) and ``scores`` float32
            [len(queries), k], best first.
        """
        ...
