"""Ranking metrics with trec_eval conventions: NDCG@k, MRR@k, Recall@k, MAP, P@k.

Conventions (those of ``trec_eval`` 9.x, which ``pytrec_eval`` and ``ir_measures`` wrap):

* A run is ``{query id: {doc id: score}}``. The stored rank is ignored: each query's documents are
  ordered by score descending, ties broken by doc id in *descending* byte order (trec_eval's
  ``comp_sim_docno``), so equal-score runs evaluate as trec_eval does. (ir_measures computes
  ``RR@k`` with its msmarco provider, which breaks ties by doc id *ascending*: on runs with tied
  scores, e.g. RRF output, its RR@k can differ from trec_eval's order used here.)
* Graded relevance comes from the qrels (``{query id: {doc id: grade}}``). Documents absent from the
  qrels are non-relevant (grade 0).
* nDCG@k (``ndcg_cut``): gain = grade (linear), discount ``1 / log2(rank + 1)``, ideal DCG from *all*
  judged documents of the query (retrieved or not), sorted by grade; grades <= 0 add nothing. It
  ignores the relevance threshold, as trec_eval does.
* Binary measures (RR, R, P, AP) count a document relevant when ``grade >= rel`` (``trec_eval -l``;
  default 1, TREC DL uses 2). P@k divides by k even when fewer than k documents were retrieved.
  AP divides by the number of relevant judged documents, retrieved or not.
* Queries in the qrels that have no results score 0 on every measure (``trec_eval -c``); set
  ``missing="skip"`` to average only over queries with results. Results for queries that are not in
  the qrels are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Evaluation", "Measure", "evaluate", "parse_measure", "rank_documents"]

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

_ALIASES = {
    "ndcg": "nDCG",
    "ndcg_cut": "nDCG",
    "rr": "RR",
    "mrr": "RR",
    "recip_rank": "RR",
    "r": "R",
    "recall": "R",
    "p": "P",
    "precision": "P",
    "ap": "AP",
    "map": "AP",
}
_NEEDS_CUTOFF = {"P"}
_MEASURE_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\(\s*rel\s*=\s*(-?\d+)\s*\))?\s*(?:@\s*(\d+))?\s*$")


@dataclass(frozen=True)
class Measure:
    """One measure: ``name`` in {nDCG, RR, R, P, AP}, optional cutoff ``k``, optional threshold ``rel``.

    ``str(measure)`` gives the ir_measures spelling, e.g. ``RR(rel=2)@10``.
    """

    name: str
    k: int | None = None
    rel: int | None = None

    def __str__(self) -> str:
        rel = f"(rel={self.rel})" if self.rel is not None else ""
        cut = f"@{self.k}" if self.k is not None else ""
        return f"{self.name}{rel}{cut}"


def parse_measure(spec: str | Measure) -> Measure:
    """Parse an ir_measures-style name: ``nDCG@10``, ``RR(rel=2)@10``, ``R@100``, ``AP``, ``P@10``.

    Aliases are accepted case-insensitively: ``NDCG``, ``MRR``, ``Recall``, ``MAP``, ``Precision``.

    Parameters
    ----------
    spec : str or Measure
        The measure name; a :class:`Measure` is returned unchanged.

    Raises
    ------
    ValueError
        Unknown name, a cutoff < 1, ``P`` without a cutoff, or ``rel`` on nDCG (graded measure).
    """
    if isinstance(spec, Measure):
        return spec
    m = _MEASURE_RE.match(str(spec))
    name = _ALIASES.get(m.group(1).lower()) if m else None
    if m is None or name is None:
        raise ValueError(
            f"unknown measure {spec!r}: expected one of nDCG@k, RR@k, R@k, P@k, AP "
            "(optionally with a threshold, e.g. 'RR(rel=2)@10')"
        )
    k = int(m.group(3)) if m.group(3) is not None else None
    rel = int(m.group(2)) if m.group(2) is not None else None
    if k is not None and k < 1:
        raise ValueError(f"measure {spec!r}: the cutoff must be >= 1")
    if name in _NEEDS_CUTOFF and k is None:
        raise ValueError(f"measure {spec!r}: precision needs a cutoff, e.g. 'P@10'")
    if name == "nDCG" and rel is not None:
        raise ValueError(f"measure {spec!r}: nDCG uses graded relevance; drop '(rel=...)'")
    return Measure(name, k, rel)


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    aggregate : dict of str to float
        Measure name -> mean over the evaluated queries.
    per_query : dict of str to dict of str to float
        Measure name -> {query id -> value}.
    num_queries : int
        Number of queries averaged.
    """

    aggregate: dict[str, float] = field(default_factory=dict)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    num_queries: int = 0

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (Python floats only)."""
        return {
            "aggregate": dict(self.aggregate),
            "per_query": {m: dict(v) for m, v in self.per_query.items()},
            "num_queries": self.num_queries,
        }


def rank_documents(docs: Mapping[str, float]) -> list[str]:
    """Return doc ids ordered like trec_eval: score descending, then doc id descending.

    Parameters
    ----------
    docs : mapping of str to float
        Doc id -> score.

    Raises
    ------
    ValueError
        A score is NaN (it has no place in an order).
    TypeError
        A score is not a number.
    """
    if not docs:
        return []
    ids = list(docs)
    try:
        scores = np.fromiter((float(docs[d]) for d in ids), dtype=np.float64, count=len(ids))
    except (TypeError, ValueError):
        bad = next(d for d in ids if not _is_number(docs[d]))
        raise TypeError(f"score of document {bad!r} is {docs[bad]!r}; scores must be numbers") from None
    if np.isnan(scores).any():
        bad = ids[int(np.flatnonzero(np.isnan(scores))[0])]
        raise ValueError(f"score of document {bad!r} is NaN; remove it or give it a number")
    # trec_eval compares doc ids with strcmp (bytes); Python compares str by code point, which
    # orders UTF-8 byte strings identically.
    order = sorted(range(len(ids)), key=ids.__getitem__, reverse=True)
    order_arr = np.asarray(order, dtype=np.int64)
    stable = np.argsort(-scores[order_arr], kind="stable")
    return [ids[i] for i in order_arr[stable]]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _grades(qid: str, judged: Mapping[str, int]) -> np.ndarray:
    """The grades of one query as float64, each checked to be an integer (NaN/None/1.5 refused)."""
    out = np.empty(len(judged), dtype=np.float64)
    for i, (did, g) in enumerate(judged.items()):
        if isinstance(g, (bool, np.bool_)) or not isinstance(g, (int, float, np.integer, np.floating)):
            raise TypeError(f"qrels[{qid!r}][{did!r}] is {g!r}: grades must be integers")
        if not (math.isfinite(g) and float(g).is_integer()):
            raise ValueError(f"qrels[{qid!r}][{did!r}] is {g!r}: grades must be integers")
        out[i] = g
    return out


def _query_values(
    ranked_grades: np.ndarray, judged_grades: np.ndarray, measures: Sequence[Measure], default_rel: int
) -> list[float]:
    """Compute all measures of one query from the grades in ranked order (float64)."""
    out: list[float] = []
    n = ranked_grades.shape[0]
    for m in measures:
        k = n if m.k is None else min(m.k, n)
        if m.name == "nDCG":
            gains = np.maximum(ranked_grades[:k], 0.0)
            disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
            dcg = float(np.dot(gains, disc))
            kk = len(judged_grades) if m.k is None else min(m.k, len(judged_grades))
            ideal = np.sort(np.maximum(judged_grades, 0.0))[::-1][:kk]
            idcg = float(np.dot(ideal, 1.0 / np.log2(np.arange(2, kk + 2, dtype=np.float64))))
            out.append(dcg / idcg if idcg > 0 else 0.0)
            continue
        thr = default_rel if m.rel is None else m.rel
        rel = ranked_grades[:k] >= thr
        num_rel = int(np.count_nonzero(judged_grades >= thr))
        if m.name == "RR":
            hits = np.flatnonzero(rel)
            out.append(1.0 / (hits[0] + 1) if hits.size else 0.0)
        elif m.name == "R":
            out.append(float(np.count_nonzero(rel)) / num_rel if num_rel else 0.0)
        elif m.name == "P":
            out.append(float(np.count_nonzero(rel)) / float(m.k))  # type: ignore[arg-type]
        elif m.name == "AP":
            if num_rel == 0:
                out.append(0.0)
                continue
            cum = np.cumsum(rel)
            ranks = np.arange(1, k + 1, dtype=np.float64)
            out.append(float(np.sum((cum / ranks)[rel])) / num_rel)
        else:  # pragma: no cover - parse_measure guards the names
            raise ValueError(f"unknown measure {m}")
    return out


def evaluate(
    run: Run,
    qrels: Qrels,
    measures: Iterable[str | Measure] = ("nDCG@10", "RR@10", "R@100", "AP", "P@10"),
    *,
    rel_threshold: int = 1,
    missing: Literal["zero", "skip"] = "zero",
) -> Evaluation:
    """Evaluate a run against graded judgements with trec_eval conventions (see module doc).

    Parameters
    ----------
    run : mapping of str to mapping of str to float
        Query id -> {doc id -> score}. Higher scores rank first.
    qrels : mapping of str to mapping of str to int
        Query id -> {doc id -> graded relevance}.
    measures : iterable of str or Measure
        ir_measures-style names (see :func:`parse_measure`).
    rel_threshold : int
        Grade at or above which a document counts as relevant for binary measures, unless the
        measure names its own ``rel`` (``trec_eval -l``; TREC DL uses 2).
    missing : {"zero", "skip"}
        Judged queries without results score 0 (``"zero"``, ``trec_eval -c``) or are left out.

    Returns
    -------
    Evaluation
        Aggregate means and per-query values, keyed by the measure's canonical name.

    Raises
    ------
    ValueError
        Unknown measure, empty qrels, a NaN score, a grade that is NaN or not integral, or a bad
        ``missing``.
    TypeError
        A grade or a score that is not a number (e.g. None).
    """
    parsed = [parse_measure(m) for m in measures]
    if not parsed:
        raise ValueError("no measures given: pass e.g. measures=['nDCG@10']")
    if missing not in ("zero", "skip"):
        raise ValueError(f"missing must be 'zero' or 'skip', got {missing!r}")
    if not qrels:
        raise ValueError("qrels are empty: there is nothing to evaluate against")
    names = [str(m) for m in parsed]
    per_query: dict[str, dict[str, float]] = {n: {} for n in names}
    grades = {qid: _grades(qid, judged) for qid, judged in qrels.items()}  # checked before any work
    for qid, judged in qrels.items():
        docs = run.get(qid)
        if not docs:
            if missing == "skip":
                continue
            for n in names:
                per_query[n][qid] = 0.0
            continue
        ranked = rank_documents(docs)
        ranked_grades = np.fromiter((judged.get(d, 0) for d in ranked), dtype=np.float64, count=len(ranked))
        judged_grades = grades[qid]
        for n, v in zip(
            names, _query_values(ranked_grades, judged_grades, parsed, rel_threshold), strict=True
        ):
            per_query[n][qid] = float(v)
    num = len(next(iter(per_query.values())))
    aggregate = {n: (math.fsum(per_query[n].values()) / num if num else 0.0) for n in names}
    return Evaluation(aggregate=aggregate, per_query=per_query, num_queries=num)
