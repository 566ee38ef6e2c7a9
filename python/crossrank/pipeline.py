"""The two-stage pipeline: retrievers -> fusion -> reranker (-> rerank fusion) -> top_k, with per-stage timings.

First stages meet :class:`crossrank.types.Retriever` (``search(queries, k=...)`` returning ids and scores
of shape ``[nq, k]``: :class:`crossrank.BM25Index`, :class:`crossrank.retrieve.dense.DenseRetriever`, or
your own). The second stage meets :class:`crossrank.types.Reranker` (``score``, ``score_batch``, ``rank``:
every crossrank reranker, or your own class); :meth:`Pipeline.search_batch` hands all its queries to one
``score_batch`` call, so a cross-encoder packs pairs across queries and an LLM runs queries concurrently.

Rerank scores replace the first-stage scores (documents keep their first-stage order on equal scores),
or, with ``rerank_fusion="rrf"``, the reranked list and the first-stage list are fused by reciprocal rank
(Cormack et al. 2009) with the constant ``rrf_k``. With ``rerank_depth=N`` only the first N candidates
are reranked and the rest follow them in first-stage order (the usual "rerank the top 20 of 100").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._common import check_int, check_text, check_texts
from .retrieve.fusion import fuse
from .types import FusionMethod, Reranker, Retriever

__all__ = ["DocId", "Pipeline", "PipelineResult", "RerankFusion"]

DocId = Hashable
"""A document id as the first stages return it (str, int, ...)."""
RerankFusion = Literal["none", "rrf"]
"""How rerank scores combine with the first-stage ranking (``rerank_fusion=``)."""
Documents = Mapping[DocId, str] | Sequence[str] | Callable[[DocId], str]


@dataclass
class PipelineResult:
    """Ranked documents of one query.

    Attributes
    ----------
    ids : list
        Document ids, best first (at most ``top_k``).
    scores : list of float
        Their scores (rerank scores when a reranker ran, RRF scores with ``rerank_fusion="rrf"``, else
        fused / first-stage scores).
    timings : dict of str to float
        Seconds per stage: ``retrieve:<i>`` per retriever, ``fusion``, ``rerank``, ``total``. For
        :meth:`Pipeline.search_batch` these are the batch's times divided by the number of queries.
    candidates : int
        Number of first-stage candidates that reached the reranker (or the cut).
    """

    ids: list[DocId] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    candidates: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (Python floats)."""
        return {
            "ids": list(self.ids),
            "scores": [float(s) for s in self.scores],
            "timings": dict(self.timings),
        }


def rrf_with_first_stage(rerank_scores: np.ndarray, rrf_k: float) -> np.ndarray:
    """RRF of a candidate list in first-stage order with its reranked order.

    ``score(d) = 1 / (rrf_k + rank_first(d)) + 1 / (rrf_k + rank_rerank(d))``, ranks from 1; the
    reranked order breaks score ties by first-stage position.

    Parameters
    ----------
    rerank_scores : numpy.ndarray
        float ``[n]``, the candidates' rerank scores, in first-stage order.
    rrf_k : float
        The RRF constant.

    Returns
    -------
    numpy.ndarray
        float64 ``[n]`` fused scores, in first-stage order.
    """
    n = rerank_scores.size
    first_rank = np.arange(1, n + 1, dtype=np.float64)
    rerank_rank = np.empty(n, dtype=np.float64)
    rerank_rank[np.argsort(-rerank_scores.astype(np.float64), kind="stable")] = first_rank
    return 1.0 / (rrf_k + first_rank) + 1.0 / (rrf_k + rerank_rank)


class Pipeline:
    """Retrieve with one or more first stages, fuse, rerank, cut to ``top_k``.

    One instance may be shared across threads when its retrievers and reranker may (every crossrank
    retriever and reranker says so in its docstring); the pipeline itself keeps no per-call state.

    Parameters
    ----------
    retrievers : Retriever or sequence of Retriever
        First stages (:class:`crossrank.types.Retriever`); at least one.
    documents : mapping of id to str, sequence of str, or callable, optional
        Text of a document id, needed only with a reranker (a sequence is indexed by int ids).
    fusion : {"rrf", "minmax", "zscore", "sum"}
        How several retrievers' lists are fused (:func:`crossrank.retrieve.fusion.fuse`).
    weights : sequence of float, optional
        One weight per retriever for fusion.
    rrf_k : float
        The RRF constant (60), for ``fusion="rrf"`` and ``rerank_fusion="rrf"``.
    reranker : Reranker, optional
        Second stage (:class:`crossrank.types.Reranker`); None keeps the first-stage order.
    rerank_depth : int, optional
        Rerank only the first N of the ``depth`` candidates (default: all of them). The others keep
        their first-stage order below every reranked one, with scores ``lowest reranked score - 1 -
        i`` for the i-th of them (i from 0), so the list stays sorted by score. With
        ``rerank_fusion="rrf"`` this whole list is what is fused with the first stage.
    rerank_fusion : {"none", "rrf"} or None
        ``"rrf"``: fuse the reranked list with the first-stage list by reciprocal rank (``rrf_k``);
        ``"none"``/None (default): rerank scores decide.
    depth : int
        Candidates taken from each retriever and passed to the reranker.
    top_k : int
        Results returned per query.

    Raises
    ------
    ValueError
        No retrievers, ``depth``/``top_k`` < 1, an unknown ``fusion``/``rerank_fusion``, a reranker
        without ``documents``, ``rerank_fusion`` or ``rerank_depth`` without a reranker, or
        ``rerank_depth`` outside ``1..depth``.
    TypeError
        A retriever that does not meet :class:`~crossrank.types.Retriever`, or a reranker that does not
        meet :class:`~crossrank.types.Reranker`.
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever] | Retriever,
        *,
        documents: Documents | None = None,
        fusion: FusionMethod = "rrf",
        weights: Sequence[float] | None = None,
        rrf_k: float = 60.0,
        reranker: Reranker | None = None,
        rerank_fusion: RerankFusion | None = None,
        depth: int = 100,
        top_k: int = 10,
        rerank_depth: int | None = None,
    ) -> None:
        stages: list[object] = (
            list(retrievers)
            if isinstance(retrievers, Sequence) and not isinstance(retrievers, str)
            else [retrievers]
        )
        if not stages:
            raise ValueError("a Pipeline needs at least one retriever (e.g. a BM25Index)")
        checked: list[Retriever] = []
        for r in stages:
            if not isinstance(r, Retriever) or not callable(getattr(r, "search", None)):
                raise TypeError(f"{type(r).__name__} is not a retriever: it has no search(queries, k=...)")
            checked.append(r)
        for name, v in (("depth", depth), ("top_k", top_k)):
            try:
                check_int(v, name, minimum=1)
            except TypeError:
                raise ValueError(f"{name} must be a positive int, got {v!r}") from None
        if fusion not in ("rrf", "minmax", "zscore", "sum"):
            raise ValueError(f"fusion must be 'rrf', 'minmax', 'zscore' or 'sum', got {fusion!r}")
        if rerank_fusion not in (None, "none", "rrf"):
            raise ValueError(f"rerank_fusion must be 'none', 'rrf' or None, got {rerank_fusion!r}")
        if weights is not None and len(weights) != len(checked):
            raise ValueError(f"got {len(weights)} weights for {len(checked)} retrievers")
        if reranker is not None and not _meets_reranker(reranker):
            raise TypeError(
                f"{type(reranker).__name__} cannot rerank: a reranker meets crossrank.types.Reranker "
                "(score(query, documents) -> Scores, score_batch(queries, documents_per_query) -> "
                "list[Scores], rank(query, documents, top_k=None)); subclass "
                "crossrank.rerank.base.RerankerBase and implement _score_many to get all three"
            )
        if reranker is not None and documents is None:
            raise ValueError("a reranker needs the document texts: pass documents={id: text} (or a list)")
        if rerank_fusion == "rrf" and reranker is None:
            raise ValueError(
                "rerank_fusion='rrf' fuses the reranked list with the first stage: pass a reranker"
            )
        if rerank_depth is not None:
            try:
                check_int(rerank_depth, "rerank_depth", minimum=1)
            except TypeError:
                raise ValueError(f"rerank_depth must be a positive int, got {rerank_depth!r}") from None
            if reranker is None:
                raise ValueError("rerank_depth says how many candidates the reranker scores: pass a reranker")
            if rerank_depth > depth:
                raise ValueError(
                    f"rerank_depth ({rerank_depth}) must not exceed depth ({depth}): only depth candidates "
                    "are retrieved"
                )
        self.retrievers = checked
        self.fusion: FusionMethod = fusion
        self.weights = None if weights is None else [float(w) for w in weights]
        self.rrf_k = float(rrf_k)
        self.reranker = reranker
        self.rerank_fusion: RerankFusion = "none" if rerank_fusion is None else rerank_fusion
        self.documents = documents
        self.depth = depth
        self.top_k = top_k
        self.rerank_depth = rerank_depth

    def __repr__(self) -> str:
        names = ", ".join(type(r).__name__ for r in self.retrievers)
        rr = type(self.reranker).__name__ if self.reranker is not None else None
        return (
            f"Pipeline([{names}], fusion={self.fusion!r}, reranker={rr}, rerank_fusion={self.rerank_fusion!r}, "
            f"depth={self.depth}, rerank_depth={self.rerank_depth}, top_k={self.top_k})"
        )

    def _text(self, doc_id: DocId) -> str:
        docs = self.documents
        if callable(docs):
            return check_text(docs(doc_id), f"documents({doc_id!r})")
        try:
            text = docs[doc_id]  # type: ignore[index, call-overload]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"no text for document id {doc_id!r} in the pipeline's documents") from None
        return check_text(text, f"documents[{doc_id!r}]")

    def _first_stage(
        self, queries: list[str], timings: dict[str, float]
    ) -> list[tuple[list[DocId], np.ndarray]]:
        lists = []
        for i, r in enumerate(self.retrievers):
            t0 = time.perf_counter()
            res = r.search(queries, k=self.depth)
            timings[f"retrieve:{i}"] = time.perf_counter() - t0
            lists.append((np.asarray(res.ids), np.asarray(res.scores, dtype=np.float64)))
        t0 = time.perf_counter()
        out: list[tuple[list[DocId], np.ndarray]] = []
        if len(lists) == 1:
            ids, scores = lists[0]
            for row_ids, row_sc in zip(ids, scores, strict=True):
                keep = np.isfinite(row_sc) & np.array([x is not None for x in row_ids.tolist()], dtype=bool)
                out.append((row_ids[keep].tolist(), row_sc[keep]))
        else:
            fused = fuse(lists, self.fusion, weights=self.weights, top_k=self.depth, rrf_k=self.rrf_k)
            for row_ids, row_sc in zip(fused.ids, fused.scores, strict=True):
                keep = np.isfinite(row_sc)
                out.append((row_ids[keep].tolist(), row_sc[keep]))
        timings["fusion"] = time.perf_counter() - t0
        return out

    def _head(self, ids: list[DocId]) -> list[DocId]:
        """The candidates the reranker scores (the first ``rerank_depth``, or all)."""
        return ids if self.rerank_depth is None else ids[: self.rerank_depth]

    def _reranked(self, ids: list[DocId], first: np.ndarray, rerank: np.ndarray) -> np.ndarray:
        """The scores that order the candidates after reranking (tail appended, rerank fusion applied)."""
        head = len(self._head(ids))
        if rerank.shape != (head,):
            raise RuntimeError(
                f"{type(self.reranker).__name__} returned {rerank.size} scores for {head} documents"
            )
        if head < len(ids):  # the tail: first-stage order, below every reranked score
            low = float(np.min(rerank)) if head else 0.0
            rerank = np.concatenate([rerank, low - 1.0 - np.arange(len(ids) - head, dtype=np.float64)])
        if self.rerank_fusion == "rrf":
            return rrf_with_first_stage(rerank, self.rrf_k)
        return rerank

    def _finish(self, ids: list[DocId], scores: np.ndarray) -> tuple[list[DocId], list[float]]:
        order = np.argsort(-scores, kind="stable")[: self.top_k]
        return [ids[i] for i in order], [float(scores[i]) for i in order]

    def search_batch(self, queries: Sequence[str]) -> list[PipelineResult]:
        """Run the pipeline for many queries: first stages batched, ONE ``score_batch`` for the reranker.

        Parameters
        ----------
        queries : sequence of str
            The queries.

        Returns
        -------
        list of PipelineResult
            One per query, in order; timings are the batch's stage times divided by the number of
            queries (see :meth:`search` for single-query latency).

        Raises
        ------
        TypeError
            ``queries`` is a str or holds a non-str.
        KeyError
            A candidate id has no text in ``documents``.
        """
        if isinstance(queries, str):
            raise TypeError("search_batch takes a list of queries; use search(query) for one")
        qs = check_texts(queries, "queries")
        if not qs:
            return []
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        cands = self._first_stage(qs, timings)
        if self.reranker is None:
            finished = [self._finish(ids, sc) for ids, sc in cands]
        else:
            t0 = time.perf_counter()
            texts = [[self._text(d) for d in self._head(ids)] for ids, _ in cands]
            scored = self.reranker.score_batch(qs, texts)
            if len(scored) != len(qs):
                raise RuntimeError(
                    f"{type(self.reranker).__name__}.score_batch returned {len(scored)} results for {len(qs)} queries"
                )
            finished = [
                self._finish(ids, self._reranked(ids, sc, np.asarray(s.scores, dtype=np.float64)))
                for (ids, sc), s in zip(cands, scored, strict=True)
            ]
            timings["rerank"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        per_query = {k: v / len(qs) for k, v in timings.items()}
        return [
            PipelineResult(ids, sc, dict(per_query), len(cand_ids))
            for (ids, sc), (cand_ids, _) in zip(finished, cands, strict=True)
        ]

    def search(self, query: str) -> PipelineResult:
        """Run the pipeline for one query; ``timings`` are this query's stage latencies.

        Parameters
        ----------
        query : str
            The query.

        Returns
        -------
        PipelineResult

        Raises
        ------
        TypeError
            ``query`` is not a str.
        KeyError
            A candidate id has no text in ``documents``.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}; use search_batch for many")
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        ((ids, scores),) = self._first_stage([query], timings)
        if self.reranker is not None:
            t0 = time.perf_counter()
            texts = [self._text(d) for d in self._head(ids)]
            if texts:
                rerank = np.asarray(self.reranker.score(query, texts).scores, dtype=np.float64)
                scores = self._reranked(ids, scores, rerank)
            timings["rerank"] = time.perf_counter() - t0
        out_ids, out_scores = self._finish(ids, scores)
        timings["total"] = time.perf_counter() - t_start
        return PipelineResult(out_ids, out_scores, timings, len(ids))


def _meets_reranker(obj: object) -> bool:
    """The protocol's three methods are present and callable (``isinstance`` checks presence only)."""
    return isinstance(obj, Reranker) and all(
        callable(getattr(obj, name, None)) for name in ("score", "score_batch", "rank")
    )
