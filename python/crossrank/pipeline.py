"""The two-stage pipeline: retrievers -> fusion -> reranker -> top_k, with per-stage timings.

Retrievers are anything with ``search(queries, k=...)`` returning an object with ``.ids`` and
``.scores`` arrays of shape ``[nq, k]`` (:class:`crossrank.BM25Index`,
:class:`crossrank.retrieve.dense.DenseRetriever`). Rerankers are duck-typed too, tried in this order:

1. ``score_batch(queries, documents_per_query) -> list of arrays`` (used by :meth:`Pipeline.search_batch`),
2. ``score(query, documents) -> array`` (:class:`crossrank.rerank.dense.DenseReranker`),
3. ``rank(query, documents, top_k=None) -> [{"corpus_id", "score"}, ...]`` (cross-encoder, LLM),
4. ``predict([(query, document), ...]) -> array`` (sentence-transformers ``CrossEncoder`` style).

Rerank scores replace the first-stage scores; documents keep their fused order on equal scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .retrieve.fusion import fuse

__all__ = ["Pipeline", "PipelineResult"]

FusionMethod = Literal["rrf", "minmax", "zscore", "sum"]


@dataclass
class PipelineResult:
    """Ranked documents of one query.

    Attributes
    ----------
    ids : list
        Document ids, best first (at most ``top_k``).
    scores : list of float
        Their scores (rerank scores when a reranker ran, else fused / first-stage scores).
    timings : dict of str to float
        Seconds per stage: ``retrieve:<i>`` per retriever, ``fusion``, ``rerank``, ``total``. For
        :meth:`Pipeline.search_batch` these are the batch's times divided by the number of queries.
    candidates : int
        Number of first-stage candidates that reached the reranker (or the cut).
    """

    ids: list[Any] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    candidates: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (Python floats)."""
        return {
            "ids": list(self.ids),
            "scores": [float(s) for s in self.scores],
            "timings": dict(self.timings),
        }


def _reranker_kind(reranker: Any) -> str:
    for name in ("score", "rank", "predict"):
        if callable(getattr(reranker, name, None)):
            return name
    raise TypeError(
        f"{type(reranker).__name__} cannot rerank: expected an object with score(query, documents), "
        "rank(query, documents, top_k=None) or predict(pairs)"
    )


class Pipeline:
    """Retrieve with one or more first stages, fuse, rerank, cut to ``top_k``.

    Parameters
    ----------
    retrievers : sequence
        First stages (see the module doc); at least one.
    documents : mapping of id to str, sequence of str, or callable, optional
        Text of a document id, needed only with a reranker (a sequence is indexed by int ids).
    fusion : {"rrf", "minmax", "zscore", "sum"}
        How several retrievers' lists are fused (:func:`crossrank.retrieve.fusion.fuse`).
    weights : sequence of float, optional
        One weight per retriever for fusion.
    rrf_k : float
        RRF constant (60).
    reranker : object, optional
        Second stage (see the module doc); None keeps the first-stage order.
    depth : int
        Candidates taken from each retriever and passed to the reranker.
    top_k : int
        Results returned per query.

    Raises
    ------
    ValueError
        No retrievers, ``depth``/``top_k`` < 1, a reranker without ``documents``.
    TypeError
        A retriever without ``search`` or a reranker without a known method.
    """

    def __init__(
        self,
        retrievers: Sequence[Any],
        *,
        documents: Mapping[Any, str] | Sequence[str] | Callable[[Any], str] | None = None,
        fusion: FusionMethod = "rrf",
        weights: Sequence[float] | None = None,
        rrf_k: float = 60.0,
        reranker: Any = None,
        depth: int = 100,
        top_k: int = 10,
    ) -> None:
        if not isinstance(retrievers, Sequence) or isinstance(retrievers, str):
            retrievers = [retrievers]
        if not retrievers:
            raise ValueError("a Pipeline needs at least one retriever (e.g. a BM25Index)")
        for r in retrievers:
            if not callable(getattr(r, "search", None)):
                raise TypeError(f"{type(r).__name__} is not a retriever: it has no search(queries, k=...)")
        for name, v in (("depth", depth), ("top_k", top_k)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if fusion not in ("rrf", "minmax", "zscore", "sum"):
            raise ValueError(f"fusion must be 'rrf', 'minmax', 'zscore' or 'sum', got {fusion!r}")
        if weights is not None and len(weights) != len(retrievers):
            raise ValueError(f"got {len(weights)} weights for {len(retrievers)} retrievers")
        self.retrievers = list(retrievers)
        self.fusion: FusionMethod = fusion
        self.weights = None if weights is None else [float(w) for w in weights]
        self.rrf_k = rrf_k
        self.reranker = reranker
        self._rerank_kind = None if reranker is None else _reranker_kind(reranker)
        if reranker is not None and documents is None:
            raise ValueError("a reranker needs the document texts: pass documents={id: text} (or a list)")
        self.documents = documents
        self.depth = depth
        self.top_k = top_k

    def __repr__(self) -> str:
        names = ", ".join(type(r).__name__ for r in self.retrievers)
        rr = type(self.reranker).__name__ if self.reranker is not None else None
        return f"Pipeline([{names}], fusion={self.fusion!r}, reranker={rr}, depth={self.depth}, top_k={self.top_k})"

    def _text(self, doc_id: Any) -> str:
        docs = self.documents
        if callable(docs):
            return docs(doc_id)
        try:
            return docs[doc_id]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"no text for document id {doc_id!r} in the pipeline's documents") from None

    def _first_stage(
        self, queries: list[str], timings: dict[str, float]
    ) -> list[tuple[list[Any], np.ndarray]]:
        lists = []
        for i, r in enumerate(self.retrievers):
            t0 = time.perf_counter()
            res = r.search(queries, k=self.depth)
            timings[f"retrieve:{i}"] = time.perf_counter() - t0
            lists.append((np.asarray(res.ids), np.asarray(res.scores, dtype=np.float64)))
        t0 = time.perf_counter()
        if len(lists) == 1:
            ids, scores = lists[0]
            out = []
            for row_ids, row_sc in zip(ids, scores, strict=True):
                keep = np.isfinite(row_sc) & np.array([x is not None for x in row_ids.tolist()], dtype=bool)
                out.append((row_ids[keep].tolist(), row_sc[keep]))
        else:
            fused = fuse(lists, self.fusion, weights=self.weights, top_k=self.depth, k=self.rrf_k)
            out = []
            for row_ids, row_sc in zip(fused.ids, fused.scores, strict=True):
                keep = np.isfinite(row_sc)
                out.append((row_ids[keep].tolist(), row_sc[keep]))
        timings["fusion"] = time.perf_counter() - t0
        return out

    def _rerank_one(self, query: str, ids: list[Any], texts: list[str]) -> np.ndarray:
        rr, kind = self.reranker, self._rerank_kind
        if not texts:
            return np.zeros(0)
        if kind == "score":
            return np.asarray(rr.score(query, texts), dtype=np.float64)
        if kind == "rank":
            ranked = rr.rank(query, texts, top_k=None)
            scores = np.full(len(texts), -np.inf)
            for pos, item in enumerate(ranked):
                # A listwise reranker may return an order without scores: rank position decides.
                score = item.get("score") if isinstance(item, Mapping) else None
                scores[int(item["corpus_id"])] = float(score) if score is not None else -float(pos)
            return scores
        return np.asarray(rr.predict([(query, t) for t in texts]), dtype=np.float64)

    def _finish(self, ids: list[Any], scores: np.ndarray) -> tuple[list[Any], list[float]]:
        order = np.argsort(-scores, kind="stable")[: self.top_k]
        return [ids[i] for i in order], [float(scores[i]) for i in order]

    def search_batch(self, queries: Sequence[str]) -> list[PipelineResult]:
        """Run the pipeline for many queries; first stages and batch-capable rerankers run batched.

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
        qs = list(queries)
        for i, q in enumerate(qs):
            if not isinstance(q, str):
                raise TypeError(f"queries[{i}] is {type(q).__name__}, expected str")
        if not qs:
            return []
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        cands = self._first_stage(qs, timings)
        results = []
        if self.reranker is None:
            finished = [self._finish(ids, sc) for ids, sc in cands]
        else:
            t0 = time.perf_counter()
            texts = [[self._text(d) for d in ids] for ids, _ in cands]
            batch = getattr(self.reranker, "score_batch", None)
            if callable(batch):
                rr_scores = [np.asarray(s, dtype=np.float64) for s in batch(qs, texts)]
            else:
                rr_scores = [
                    self._rerank_one(q, ids, t) for q, (ids, _), t in zip(qs, cands, texts, strict=True)
                ]
            finished = [self._finish(ids, s) for (ids, _), s in zip(cands, rr_scores, strict=True)]
            timings["rerank"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        per_query = {k: v / len(qs) for k, v in timings.items()}
        for (ids, sc), (cand_ids, _) in zip(finished, cands, strict=True):
            results.append(PipelineResult(ids, sc, dict(per_query), len(cand_ids)))
        return results

    def search(self, query: str) -> PipelineResult:
        """Run the pipeline for one query; ``timings`` are this query's stage latencies.

        Raises
        ------
        TypeError
            ``query`` is not a str.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}; use search_batch for many")
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        ((ids, scores),) = self._first_stage([query], timings)
        if self.reranker is not None:
            t0 = time.perf_counter()
            scores = self._rerank_one(query, ids, [self._text(d) for d in ids])
            timings["rerank"] = time.perf_counter() - t0
        out_ids, out_scores = self._finish(ids, scores)
        timings["total"] = time.perf_counter() - t_start
        return PipelineResult(out_ids, out_scores, timings, len(ids))
