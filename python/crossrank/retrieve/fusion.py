"""Fuse several ranked result lists into one: reciprocal rank fusion and normalised score fusion.

Each input list may be

* a run ``{query id: {doc id: score}}`` (the output is a run),
* a pair ``(ids, scores)`` or an object with ``.ids`` / ``.scores`` (e.g. the
  :class:`~crossrank.types.Hits` of ``BM25Index.search``) holding arrays of shape ``[nq, k]`` (the
  output is a :class:`FusedResults` of shape ``[nq, width]``) or ``[k]`` for a single query
  (output ``[n]``),
* a single query's ``{doc id: score}``.

Within each list, documents are ranked by score descending, ties kept in input order. Padding
entries (score ``-inf``, or id ``None`` / ``-1``, as a top-k search pads rows with fewer hits) are
dropped. The fused order is deterministic: fused score descending, then best rank over the lists,
then the first list that holds the document, then its position there.

Ids keep their type: fixed-width string ids come out as wide as the widest input (never cut
short), integer ids as their common integer type. Ids are all integers or all strings across
the lists; a mix (``1`` in one list, ``"1"`` in another) is a ``TypeError``, as they would never
match.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, overload

import numpy as np
import numpy.typing as npt

from .._common import check_int

__all__ = ["FusedResults", "fuse", "reciprocal_rank_fusion", "score_fusion"]

Normalization = Literal["minmax", "zscore", "none"]
Missing = Literal["zero", "min"]
Method = Literal["rrf", "minmax", "zscore", "sum"]

Run = Mapping[str, Mapping[str, float]]
"""A TREC-style run: query id -> {doc id -> score}."""
DocScores = Mapping[str, float] | Mapping[int, float]
"""One query's list: doc id -> score."""


class ScoredIds(Protocol):
    """Anything with ``ids`` and ``scores`` arrays of one shape (e.g. :class:`crossrank.types.Hits`)."""

    @property
    def ids(self) -> npt.ArrayLike: ...

    @property
    def scores(self) -> npt.ArrayLike: ...


ResultList = DocScores | ScoredIds | tuple[npt.ArrayLike, npt.ArrayLike]
"""One result list that fuses into :class:`FusedResults` (see the module doc)."""


class FusedResults(NamedTuple):
    """Fused ranking.

    Attributes
    ----------
    ids : numpy.ndarray, shape [nq, width] or [n]
        Document ids, best first. Rows shorter than ``width`` are padded with ``None`` (object
        ids), ``-1`` (integer ids) or ``""`` (fixed-width string ids).
    scores : numpy.ndarray of float64, same shape
        Fused scores; padding is ``-inf``.
    """

    ids: np.ndarray
    scores: np.ndarray


# One query's list: ids (1-D object/int/str array) and float64 scores, already cleaned.
_QueryList = tuple[np.ndarray, np.ndarray]


def _is_padding(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    pad = np.isneginf(scores)
    if ids.dtype == object:
        pad |= np.fromiter((i is None for i in ids), dtype=bool, count=ids.shape[0])
    elif np.issubdtype(ids.dtype, np.integer):
        pad |= ids == -1
    return pad


def _clean(ids: Any, scores: Any, where: str) -> _QueryList:
    ids_arr = np.asarray(ids)
    sc = np.asarray(scores, dtype=np.float64)
    if ids_arr.shape != sc.shape:
        raise ValueError(f"{where}: ids shape {ids_arr.shape} differs from scores shape {sc.shape}")
    if np.isnan(sc).any():
        raise ValueError(f"{where}: a score is NaN; drop that document or give it a number")
    keep = ~_is_padding(ids_arr, sc)
    ids_arr, sc = ids_arr[keep], sc[keep]
    order = np.argsort(-sc, kind="stable")  # score descending, input order on ties
    return ids_arr[order], sc[order]


def _as_pair(obj: Any) -> tuple[Any, Any] | None:
    if hasattr(obj, "ids") and hasattr(obj, "scores"):
        return obj.ids, obj.scores
    if isinstance(obj, tuple) and len(obj) == 2:
        return obj[0], obj[1]
    return None


def _category(value: object) -> str:
    """The id kind that must not mix with another: number, str, bytes (anything else: other)."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, (str, np.str_)):
        return "str"
    if isinstance(value, (bytes, np.bytes_)):
        return "bytes"
    return "other"


def _categories(ids: np.ndarray) -> set[str]:
    kind = ids.dtype.kind
    if kind in "iuf":
        return {"number"}
    if kind == "U":
        return {"str"}
    if kind == "S":
        return {"bytes"}
    if kind == "b":
        return {"bool"}
    return {_category(x) for x in ids.ravel().tolist() if x is not None}


def _check_id_kinds(per_list: Sequence[set[str]]) -> None:
    """Refuse ids that mix numbers, strings and bytes (they could never match each other)."""
    seen: dict[str, int] = {}
    for i, cats in enumerate(per_list):
        for c in sorted(cats & {"number", "str", "bytes", "bool"}):
            seen.setdefault(c, i)
    if "bool" in seen:
        raise TypeError(f"list {seen['bool']} has bool ids; ids must be all integers or all strings")
    if len(seen) > 1:
        where = ", ".join(f"{c} ids in list {i}" for c, i in sorted(seen.items(), key=lambda kv: kv[1]))
        raise TypeError(f"ids mix kinds ({where}): use all integers or all strings, e.g. map them with str()")


def _split_inputs(
    lists: Sequence[Any],
) -> tuple[str, list[str] | None, list[list[_QueryList]], np.dtype | None]:
    """Return (kind, query ids, per-query lists, id dtype); kind in {"run", "batch", "single"}."""
    if isinstance(lists, (Mapping, str, bytes)) or not isinstance(lists, Sequence):
        raise TypeError("lists must be a sequence of result lists, e.g. [bm25_results, dense_results]")
    if len(lists) == 0:
        raise ValueError("no result lists to fuse: pass at least one")
    kinds = set()
    for x in lists:
        if isinstance(x, Mapping):
            if not x:
                kinds.add("empty")
            else:
                kinds.add("run" if isinstance(next(iter(x.values())), Mapping) else "dict")
        elif _as_pair(x) is not None:
            kinds.add("pair")
        else:
            raise TypeError(
                f"cannot fuse a {type(x).__name__}: expected a run {{qid: {{doc: score}}}}, "
                "a {doc: score} dict, an (ids, scores) pair, or an object with .ids and .scores"
            )
    if kinds == {"empty"}:
        kinds = {"dict"}  # nothing but empty mappings: one query with no documents
    kinds.discard("empty")  # an empty mapping joins whatever form the other lists have
    if len(kinds) != 1:
        raise TypeError("all result lists must have the same form (all runs, all dicts, or all arrays)")
    kind = kinds.pop()
    if kind == "run":
        _check_id_kinds([{_category(d) for docs in run.values() for d in docs} for run in lists])
        qids: list[str] = []
        seen: set[str] = set()
        for run in lists:
            for q in run:
                if q not in seen:
                    seen.add(q)
                    qids.append(q)
        per_query = [
            [
                _clean(list(run.get(q, {}).keys()), list(run.get(q, {}).values()), f"list {i}, query {q!r}")
                for i, run in enumerate(lists)
            ]
            for q in qids
        ]
        for row in per_query:
            for j, (ids, sc) in enumerate(row):
                row[j] = (ids.astype(object), sc)
        return "run", qids, per_query, None
    if kind == "dict":
        _check_id_kinds([{_category(d) for d in x} for x in lists])
        row = [
            _clean(np.array(list(d.keys()), dtype=object), list(d.values()), f"list {i}")
            for i, d in enumerate(lists)
        ]
        return "single", None, [row], np.dtype(object)
    pairs = [_as_pair(x) for x in lists]
    arrays = [(np.asarray(p[0]), np.asarray(p[1])) for p in pairs if p is not None]
    ndims = {a[1].ndim for a in arrays}
    if ndims - {1, 2} or len(ndims) != 1:
        raise ValueError("array result lists must all be 1-D [k] (one query) or all 2-D [nq, k]")
    _check_id_kinds([_categories(ids) for ids, _ in arrays])
    dtypes = [ids.dtype for ids, _ in arrays]
    # The widest common type: 'U4' and 'U9' give 'U9' (never cut an id short); any object -> object.
    dtype = np.dtype(object) if any(d.kind == "O" for d in dtypes) else np.result_type(*dtypes)
    if ndims == {1}:
        return "single", None, [[_clean(i, s, f"list {n}") for n, (i, s) in enumerate(arrays)]], dtype
    nqs = {a[1].shape[0] for a in arrays}
    if len(nqs) != 1:
        raise ValueError(f"result lists cover different numbers of queries: {sorted(nqs)}")
    nq = nqs.pop()
    per_query = [
        [_clean(i[r], s[r], f"list {n}, row {r}") for n, (i, s) in enumerate(arrays)] for r in range(nq)
    ]
    return "batch", None, per_query, dtype


def _check_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"got {w.size} weights for {n} result lists; pass one weight per list")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError(f"weights must be finite, >= 0 and not all zero, got {list(w)}")
    return w


def _accumulate(row: list[_QueryList], contributions: list[np.ndarray], fill: list[float]) -> _QueryList:
    """Sum per-list contributions per document (``fill[i]`` for a doc missing from list i); rank."""
    index: dict[Hashable, int] = {}
    best_rank: list[int] = []
    first_list: list[tuple[int, int]] = []
    for li, (ids, _) in enumerate(row):
        for pos, d in enumerate(ids.tolist()):
            j = index.get(d)
            if j is None:
                index[d] = len(best_rank)
                best_rank.append(pos)
                first_list.append((li, pos))
            elif pos < best_rank[j]:
                best_rank[j] = pos
    n = len(best_rank)
    total = np.zeros(n, dtype=np.float64)
    for li, (ids, _) in enumerate(row):
        present = np.zeros(n, dtype=bool)
        if ids.shape[0]:
            pos_idx = np.fromiter((index[d] for d in ids.tolist()), dtype=np.int64, count=ids.shape[0])
            if np.unique(pos_idx).shape[0] != pos_idx.shape[0]:
                raise ValueError(f"list {li} holds the same document twice for one query; deduplicate it")
            total[pos_idx] += contributions[li]
            present[pos_idx] = True
        if fill[li] != 0.0:
            total[~present] += fill[li]
    keys = list(index)
    fl = np.asarray(first_list, dtype=np.int64).reshape(n, 2)
    order = np.lexsort((fl[:, 1], fl[:, 0], np.asarray(best_rank, dtype=np.int64), -total))
    out_ids = np.empty(n, dtype=object)
    out_ids[:] = [keys[i] for i in order]
    return out_ids, total[order]


def _assemble(
    kind: str,
    qids: list[str] | None,
    fused: list[_QueryList],
    dtype: np.dtype | None,
    top_k: int | None,
) -> dict[str, dict[str, float]] | FusedResults:
    if top_k is not None:
        fused = [(i[:top_k], s[:top_k]) for i, s in fused]
    if kind == "run":
        assert qids is not None
        return {
            q: dict(zip(i.tolist(), s.tolist(), strict=True)) for q, (i, s) in zip(qids, fused, strict=True)
        }
    if kind == "single":
        ids, sc = fused[0]
        return FusedResults(ids.astype(dtype) if dtype is not None and dtype.kind != "O" else ids, sc)
    width = max((s.shape[0] for _, s in fused), default=0)
    if top_k is not None:
        width = min(width, top_k) if width else 0
    dt = dtype if dtype is not None else np.dtype(object)
    if dt.kind == "O":
        ids_out = np.full((len(fused), width), None, dtype=object)
    elif np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating):
        ids_out = np.full((len(fused), width), -1, dtype=dt)
    else:
        ids_out = np.full((len(fused), width), "", dtype=dt)
    scores_out = np.full((len(fused), width), -np.inf, dtype=np.float64)
    for r, (i, s) in enumerate(fused):
        ids_out[r, : s.shape[0]] = i
        scores_out[r, : s.shape[0]] = s
    return FusedResults(ids_out, scores_out)


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None:
        check_int(top_k, "top_k", minimum=1)


@overload
def reciprocal_rank_fusion(
    lists: Sequence[Run],
    *,
    rrf_k: float = ...,
    weights: Sequence[float] | None = ...,
    top_k: int | None = ...,
) -> dict[str, dict[str, float]]: ...
@overload
def reciprocal_rank_fusion(
    lists: Sequence[ResultList],
    *,
    rrf_k: float = ...,
    weights: Sequence[float] | None = ...,
    top_k: int | None = ...,
) -> FusedResults: ...
def reciprocal_rank_fusion(
    lists: Sequence[Run] | Sequence[ResultList],
    *,
    rrf_k: float = 60.0,
    weights: Sequence[float] | None = None,
    top_k: int | None = None,
) -> dict[str, dict[str, float]] | FusedResults:
    """Fuse ranked lists by reciprocal rank: ``score(d) = sum_i w_i / (rrf_k + rank_i(d))``.

    Cormack, Clarke & Buettcher (2009), "Reciprocal rank fusion outperforms Condorcet and
    individual rank learning methods". Ranks start at 1; a document missing from a list
    contributes 0 from that list. Only ranks matter, so scores on different scales fuse safely.

    Parameters
    ----------
    lists : sequence of result lists
        See the module doc for the accepted forms; all lists must have the same form.
    rrf_k : float
        Smoothing constant (>= 0); 60 as in the paper. (``k`` elsewhere in crossrank counts results.)
    weights : sequence of float, optional
        One non-negative weight per list (default all 1).
    top_k : int, optional
        Keep only the best ``top_k`` documents per query (default: all).

    Returns
    -------
    dict or FusedResults
        A run for run inputs, otherwise ids and float64 scores (see :class:`FusedResults`).

    Raises
    ------
    TypeError
        Mixed or unknown input forms.
    ValueError
        No lists, bad ``rrf_k``/``weights``/``top_k``, mismatched shapes, NaN scores, duplicate ids in one list.
    """
    if not math.isfinite(rrf_k) or rrf_k < 0:
        raise ValueError(f"rrf_k must be a finite number >= 0, got {rrf_k!r}")
    _check_top_k(top_k)
    kind, qids, per_query, dtype = _split_inputs(lists)
    w = _check_weights(weights, len(lists))
    fused = []
    for row in per_query:
        contrib = [
            w[i] / (rrf_k + np.arange(1, ids.shape[0] + 1, dtype=np.float64))
            for i, (ids, _) in enumerate(row)
        ]
        fused.append(_accumulate(row, contrib, [0.0] * len(row)))
    return _assemble(kind, qids, fused, dtype, top_k)


def _normalise(scores: np.ndarray, how: Normalization) -> np.ndarray:
    if scores.shape[0] == 0 or how == "none":
        return scores.astype(np.float64, copy=True)
    if not np.isfinite(scores).all():
        raise ValueError("score fusion needs finite scores (+inf cannot be normalised); use RRF instead")
    if how == "minmax":
        lo, hi = scores.min(), scores.max()
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    if how == "zscore":
        sd = scores.std()
        return np.zeros_like(scores) if sd == 0 else (scores - scores.mean()) / sd
    raise ValueError(f"normalization must be 'minmax', 'zscore' or 'none', got {how!r}")


@overload
def score_fusion(
    lists: Sequence[Run],
    *,
    normalization: Normalization = ...,
    weights: Sequence[float] | None = ...,
    missing: Missing = ...,
    top_k: int | None = ...,
) -> dict[str, dict[str, float]]: ...
@overload
def score_fusion(
    lists: Sequence[ResultList],
    *,
    normalization: Normalization = ...,
    weights: Sequence[float] | None = ...,
    missing: Missing = ...,
    top_k: int | None = ...,
) -> FusedResults: ...
def score_fusion(
    lists: Sequence[Run] | Sequence[ResultList],
    *,
    normalization: Normalization = "minmax",
    weights: Sequence[float] | None = None,
    missing: Missing = "zero",
    top_k: int | None = None,
) -> dict[str, dict[str, float]] | FusedResults:
    """Fuse lists by a weighted sum of per-query normalised scores (CombSUM over normalised scores).

    Each list's scores for one query are normalised on their own: ``minmax`` maps them to
    [0, 1] (all equal -> 1), ``zscore`` to ``(s - mean) / std`` (population std; all equal -> 0),
    ``none`` keeps them raw. The fused score is ``sum_i w_i * norm_i(d)``.

    A document missing from list i contributes 0 from it (``missing="zero"``) or that list's
    lowest normalised score for the query (``missing="min"``; the same as zero for minmax, and the
    safer choice for z-scores, where 0 is the list's mean). A list with no documents for a query
    contributes nothing.

    Parameters
    ----------
    lists : sequence of result lists
        See the module doc.
    normalization : {"minmax", "zscore", "none"}
    weights : sequence of float, optional
        One non-negative weight per list (default all 1).
    missing : {"zero", "min"}
    top_k : int, optional
        Keep only the best ``top_k`` documents per query.

    Returns
    -------
    dict or FusedResults
        As :func:`reciprocal_rank_fusion`.

    Raises
    ------
    TypeError, ValueError
        As :func:`reciprocal_rank_fusion`; also an unknown ``normalization``/``missing`` or a
        ``+inf`` score with a normalisation.
    """
    if normalization not in ("minmax", "zscore", "none"):
        raise ValueError(f"normalization must be 'minmax', 'zscore' or 'none', got {normalization!r}")
    if missing not in ("zero", "min"):
        raise ValueError(f"missing must be 'zero' or 'min', got {missing!r}")
    _check_top_k(top_k)
    kind, qids, per_query, dtype = _split_inputs(lists)
    w = _check_weights(weights, len(lists))
    fused = []
    for row in per_query:
        norms = [_normalise(sc, normalization) for _, sc in row]
        contrib = [w[i] * n for i, n in enumerate(norms)]
        fill = [
            float(w[i] * n.min()) if missing == "min" and n.shape[0] else 0.0 for i, n in enumerate(norms)
        ]
        fused.append(_accumulate(row, contrib, fill))
    return _assemble(kind, qids, fused, dtype, top_k)


@overload
def fuse(
    lists: Sequence[Run],
    method: Method = ...,
    *,
    weights: Sequence[float] | None = ...,
    top_k: int | None = ...,
    rrf_k: float = ...,
    missing: Missing = ...,
) -> dict[str, dict[str, float]]: ...
@overload
def fuse(
    lists: Sequence[ResultList],
    method: Method = ...,
    *,
    weights: Sequence[float] | None = ...,
    top_k: int | None = ...,
    rrf_k: float = ...,
    missing: Missing = ...,
) -> FusedResults: ...
def fuse(
    lists: Sequence[Run] | Sequence[ResultList],
    method: Method = "rrf",
    *,
    weights: Sequence[float] | None = None,
    top_k: int | None = None,
    rrf_k: float = 60.0,
    missing: Missing = "zero",
) -> dict[str, dict[str, float]] | FusedResults:
    """Fuse by name: ``"rrf"`` (:func:`reciprocal_rank_fusion`), ``"minmax"`` / ``"zscore"`` /
    ``"sum"`` (raw scores) (:func:`score_fusion`).

    Parameters
    ----------
    lists : sequence of result lists
        All runs (the output is a run), or all ``{doc: score}`` dicts / ``(ids, scores)`` pairs /
        objects with ``.ids`` and ``.scores`` (the output is :class:`FusedResults`).
    method : {"rrf", "minmax", "zscore", "sum"}
        The fusion.
    weights : sequence of float, optional
        One non-negative weight per list.
    top_k : int, optional
        Keep the best ``top_k`` per query.
    rrf_k : float
        The RRF constant (``"rrf"`` only).
    missing : {"zero", "min"}
        Score fusion only: what a list contributes for a document it lacks.

    Raises
    ------
    ValueError
        Unknown method, plus everything the chosen function raises.
    TypeError
        Unknown list forms, or ids that mix integers and strings.
    """
    norm: Normalization
    if method == "rrf":
        return reciprocal_rank_fusion(lists, rrf_k=rrf_k, weights=weights, top_k=top_k)
    if method == "minmax":
        norm = "minmax"
    elif method == "zscore":
        norm = "zscore"
    elif method == "sum":
        norm = "none"
    else:
        raise ValueError(f"unknown fusion method {method!r}: expected 'rrf', 'minmax', 'zscore' or 'sum'")
    return score_fusion(lists, normalization=norm, weights=weights, missing=missing, top_k=top_k)
