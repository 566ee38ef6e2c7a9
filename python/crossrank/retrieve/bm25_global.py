"""BM25 impacts from collection statistics supplied from outside (the shards of a sharded index).

A shard of :class:`~crossrank.retrieve.sharded_bm25.ShardedBM25Index` holds only its own postings,
but must score as the whole collection does: its IDF uses the collection's document count ``N`` and
each term's collection document frequency, and its length normalisation the collection's average
document length. :func:`global_impacts` computes a shard's impacts from those numbers with the
formulas and the precision policy of ``cpp/include/crossrank/bm25.hpp``, operation for operation:
float64 arithmetic in the same order (NumPy's ``+ - * /`` are IEEE-exact, as the core's are, which
is compiled without FMA contraction), ``log`` from the C library (``math.log``, once per distinct
document frequency, not NumPy's vectorised log) and one rounding to float32 per posting. With one
shard the result is bit-identical to the core's ``bm25_compute_impacts`` (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CollectionStats", "global_impacts"]


@dataclass(frozen=True)
class CollectionStats:
    """What BM25 needs to know about the whole collection.

    Attributes
    ----------
    n_docs : int
        Documents in the collection (all shards).
    total_len : int
        Sum of all document lengths (tokens after analysis); ``avgdl = total_len / n_docs``.
    """

    n_docs: int
    total_len: int

    @property
    def avgdl(self) -> float:
        """The average document length, as the core computes it (float64 division)."""
        return float(self.total_len) / float(self.n_docs) if self.n_docs else 0.0


def _idf(variant: str, df: int, n: int) -> float:
    """``bm25::idf`` of the core, in Python floats (IEEE float64, C library log)."""
    if df == 0:
        return 0.0
    d, m = float(df), float(n)
    if variant == "robertson":
        return math.log(max(1.0, (m - d + 0.5) / (d + 0.5)))
    if variant == "lucene":
        return math.log(1.0 + (m - d + 0.5) / (d + 0.5))
    if variant == "atire":
        return math.log(m / d)
    if variant == "bm25l":
        return math.log((m + 1.0) / (d + 0.5))
    if variant == "bm25+":
        return math.log((m + 1.0) / d)
    raise ValueError(f"unknown BM25 variant {variant!r}")


def _tfc(variant: str, k1: float, b: float, delta: float, tf: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """``bm25::tfc`` of the core, vectorised over postings; ``norm = 1 - b + b * |d| / avgdl``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if variant in ("robertson", "lucene"):
            den = k1 * norm + tf
            return np.where(den > 0, tf / den, 0.0)
        if variant == "atire":
            den = tf + k1 * norm
            return np.where(den > 0, tf * (k1 + 1.0) / den, 0.0)
        if variant == "bm25l":
            c = np.where(norm > 0, tf / norm, 0.0)
            den = k1 + c + delta
            return np.where(den > 0, (k1 + 1.0) * (c + delta) / den, 0.0)
        if variant == "bm25+":
            den = k1 * norm + tf
            return np.where(den > 0, (k1 + 1.0) * tf / den, 0.0) + delta
    raise ValueError(f"unknown BM25 variant {variant!r}")


def global_impacts(
    params: dict[str, object],
    stats: CollectionStats,
    df: np.ndarray,
    term_ptr: np.ndarray,
    docs: np.ndarray,
    tfs: np.ndarray,
    doc_lens: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Impacts (float32 per posting) and non-occurrence scores (float32 per term) of one shard.

    Parameters
    ----------
    params : dict
        ``variant``, ``k1``, ``b``, ``delta`` (as :attr:`BM25Index.params`).
    stats : CollectionStats
        Document count and total length of the whole collection.
    df : numpy.ndarray of int64, shape (n_terms,)
        Collection document frequency of each of the shard's terms (in the shard's term order).
    term_ptr, docs, tfs, doc_lens : numpy.ndarray
        The shard's CSR postings (see ``bm25.hpp``).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``impacts`` float32 (nnz,) and ``nonoccurrence`` float32 (n_terms,).
    """
    variant = str(params["variant"])
    k1, b, delta = float(params["k1"]), float(params["b"]), float(params["delta"])  # type: ignore[arg-type]
    n_terms = len(term_ptr) - 1
    df = np.asarray(df, dtype=np.int64)
    if df.shape != (n_terms,):
        raise ValueError(f"df must have one entry per term ({n_terms}), got shape {df.shape}")
    avgdl = stats.avgdl
    # IDF once per distinct document frequency, with the C library's log.
    uniq, inverse = np.unique(df, return_inverse=True)
    w_term = np.array([_idf(variant, int(d), stats.n_docs) for d in uniq.tolist()], dtype=np.float64)
    w_term = w_term[inverse.reshape(-1)] if n_terms else np.zeros(0)
    lower_bound = variant in ("bm25l", "bm25+")
    if lower_bound:
        norm0 = np.array([1.0 - b + b * 1.0])  # tfc(0, avgdl, avgdl): the length ratio is exactly 1
        tfc0 = float(_tfc(variant, k1, b, delta, np.zeros(1), norm0)[0])
    else:
        tfc0 = 0.0
    base_term = w_term * tfc0
    nonocc = base_term.astype(np.float32)
    counts: np.ndarray = np.diff(np.asarray(term_ptr, dtype=np.int64)).astype(np.int64)
    lens = np.asarray(doc_lens, dtype=np.float64)[np.asarray(docs, dtype=np.int64)]
    ratio = lens / avgdl if avgdl > 0 else np.ones_like(lens)
    norm = 1.0 - b + b * ratio
    tfc = _tfc(variant, k1, b, delta, np.asarray(tfs, dtype=np.float64), norm)
    s = np.repeat(w_term, counts) * tfc - np.repeat(base_term, counts)
    impacts = np.where(s > 0, s, 0.0).astype(np.float32)
    return impacts, nonocc
