"""Hard negatives from crossrank's own first stage, resampled each epoch.

The first stage (BM25, dense or their RRF hybrid) retrieves ``depth`` candidates per training query once;
each epoch draws ``count`` of them per positive with a generator seeded by (seed, epoch), so a resumed
run draws the same negatives as an uninterrupted one. Judged positives are never drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["FirstStage", "FirstStageKind", "mine_candidates", "sample_negatives"]

FirstStageKind = Literal["bm25", "dense", "hybrid"]


class FirstStage:
    """Retrieve candidates from a corpus with BM25 (Lucene, k1=0.9, b=0.4), dense, or RRF of both.

    Parameters
    ----------
    kind : {"bm25", "dense", "hybrid"}
        Which first stage.
    doc_ids, docs : sequence of str
        The corpus (aligned).
    dense_model : str, optional
        Bi-encoder for ``dense`` / ``hybrid`` (folder or hub id).
    num_threads : int, optional
        Threads (None: the CPU quota).

    Not shared across threads (the dense embedder's caches are per instance).
    """

    def __init__(
        self,
        kind: FirstStageKind,
        doc_ids: Sequence[str],
        docs: Sequence[str],
        *,
        dense_model: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        if kind not in ("bm25", "dense", "hybrid"):
            raise ValueError(f"first_stage must be 'bm25', 'dense' or 'hybrid', got {kind!r}")
        if kind != "bm25" and not dense_model:
            raise ValueError(f"first_stage={kind!r} needs dense_model (a bi-encoder folder or hub id)")
        self.kind = kind
        self.bm25 = None
        self.dense = None
        if kind in ("bm25", "hybrid"):
            from ..retrieve.bm25 import BM25Index

            self.bm25 = BM25Index.build(
                list(docs), ids=list(doc_ids), variant="lucene", k1=0.9, b=0.4, num_threads=num_threads
            )
        if kind in ("dense", "hybrid"):
            from ..models.embedder import Embedder
            from ..retrieve.dense import DenseRetriever

            assert dense_model is not None
            self.dense = DenseRetriever.build(
                Embedder(dense_model, num_threads=num_threads), list(docs), list(doc_ids)
            )

    def search(self, queries: Sequence[str], depth: int) -> list[list[str]]:
        """Return the top ``depth`` document ids of each query, best first.

        Parameters
        ----------
        queries : sequence of str
            Query texts.
        depth : int
            Candidates per query (>= 1).
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if not queries:
            return []
        lists = []
        if self.bm25 is not None:
            lists.append(self.bm25.search(list(queries), k=depth))
        if self.dense is not None:
            lists.append(self.dense.search(list(queries), k=depth))
        if len(lists) == 1:
            ids, scores = lists[0][0], lists[0][1]
        else:
            from ..retrieve.fusion import fuse

            fused = fuse(lists, "rrf", top_k=depth)
            ids, scores = fused[0], fused[1]
        out = []
        for row_ids, row_scores in zip(ids, scores, strict=True):
            out.append(
                [
                    str(d)
                    for d, s in zip(row_ids, row_scores, strict=True)
                    if d is not None and d != "" and np.isfinite(s)
                ]
            )
        return out


def mine_candidates(
    first_stage: FirstStage, queries: dict[str, str], qids: Sequence[str], depth: int
) -> dict[str, list[str]]:
    """Retrieve ``depth`` candidates for each of ``qids`` (query id -> ranked doc ids).

    Parameters
    ----------
    first_stage : FirstStage
        The retriever.
    queries : dict of str to str
        Query id -> text.
    qids : sequence of str
        Which queries.
    depth : int
        Candidates per query.
    """
    ranked = first_stage.search([queries[q] for q in qids], depth)
    return dict(zip(qids, ranked, strict=True))


def sample_negatives(
    candidates: Sequence[str], judged_positive: set[str], count: int, rng: np.random.Generator
) -> list[str]:
    """Draw up to ``count`` distinct candidates that are not judged positive (fewer when too few exist).

    Parameters
    ----------
    candidates : sequence of str
        The query's first-stage candidates.
    judged_positive : set of str
        Documents judged relevant for the query (never returned).
    count : int
        How many to draw (>= 0).
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller per epoch).
    """
    pool = [d for d in candidates if d not in judged_positive]
    if count <= 0 or not pool:
        return []
    if len(pool) <= count:
        picks = rng.permutation(len(pool))
    else:
        picks = rng.choice(len(pool), size=count, replace=False)
    return [pool[int(i)] for i in picks]
