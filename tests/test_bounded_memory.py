"""Hostile sizes (issue 12): every allocation that scales with a caller's number (``k``, ``top_k``,
``depth``, window counts, batch sizes, thread counts) is capped by the data or a documented limit.

Each case passes a number far beyond the data (up to 2**62) and checks both the answer and, with
tracemalloc (which sees NumPy's buffers), that the call allocated next to nothing.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crossrank import _common
from crossrank.retrieve.bm25 import BM25Index

HUGE = 2**62
LIMIT = 8 << 20  # bytes: generous for these tiny inputs, tiny next to what HUGE would need


def _peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def bm25() -> BM25Index:
    return BM25Index.build(
        ["the cat sat", "a dog barked", "cats and dogs"], ids=["a", "b", "c"], num_threads=1
    )


def test_bm25_search_huge_k(bm25: BM25Index) -> None:
    hits, peak = _peak(lambda: bm25.search(["cat", "dog"], k=HUGE, num_threads=1))
    assert hits.ids.shape == (2, 3)
    assert peak < LIMIT


def test_bm25_search_tokens_huge_k() -> None:
    index = BM25Index.from_tokens([["x", "y"], ["y"]], num_threads=1)
    hits, peak = _peak(lambda: index.search_tokens([["y"]], k=HUGE))
    assert hits.ids.shape == (1, 2)
    assert peak < LIMIT


def test_dense_search_huge_k_on_twenty_vectors() -> None:
    pytest.importorskip("faiss")
    from crossrank.retrieve.dense import DenseIndex

    rng = np.random.default_rng(0)
    for kind in ("flat", "hnsw"):
        index = DenseIndex.build(rng.standard_normal((20, 8)).astype(np.float32), kind=kind)  # type: ignore[arg-type]
        hits, peak = _peak(lambda index=index: index.search(np.ones((1, 8), np.float32), k=10**9))
        assert hits.ids.shape == (1, 20)
        assert peak < LIMIT


def test_reranker_huge_top_k() -> None:
    from crossrank.rerank.base import RerankerBase
    from crossrank.types import Scores

    class Lengths(RerankerBase):
        def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
            return [
                Scores(np.array([len(d) for d in docs], np.float32), np.zeros(len(docs), bool))
                for docs in documents_per_query
            ]

    ranked, peak = _peak(lambda: Lengths().rank("q", ["a", "bbb", "bb"], top_k=HUGE))
    assert [r["corpus_id"] for r in ranked] == [1, 2, 0]
    assert peak < LIMIT


def test_fusion_huge_top_k() -> None:
    from crossrank.retrieve.fusion import fuse

    a = (np.array([["x", "y"]]), np.array([[2.0, 1.0]]))
    b = (np.array([["y", "z"]]), np.array([[2.0, 1.0]]))
    out, peak = _peak(lambda: fuse([a, b], top_k=HUGE))
    assert out.ids.shape == (1, 3)
    assert peak < LIMIT


def test_pipeline_huge_depth_and_top_k(bm25: BM25Index) -> None:
    from crossrank.pipeline import Pipeline

    pipe = Pipeline([bm25], depth=HUGE, top_k=HUGE)
    out, peak = _peak(lambda: pipe.search("cat"))
    assert 1 <= len(out.ids) <= 3
    assert peak < LIMIT


def test_packing_huge_batch_and_window_numbers() -> None:
    from crossrank.text.packing import PairTemplate, plan_pairs

    def plan() -> Any:
        return plan_pairs(
            [[1, 2]],
            [[3] * 40, [4]],
            PairTemplate.bert(101, 102),
            max_length=16,
            max_batch_tokens=HUGE,
            max_batch_size=HUGE,
            max_windows=HUGE,
            window_stride=4,
            max_query_length=HUGE,
        )

    p, peak = _peak(plan)
    assert p.n_pairs == 2
    assert p.batch(0).input_ids.shape[1] == 16  # bounded by max_length, rows by the data
    assert p.n_rows == 1 + -(-(40 - 11) // 4) + 1  # 11-token windows every 4 tokens, and the short pair
    assert peak < LIMIT


def test_packing_ids_beyond_int32_are_refused() -> None:
    from crossrank.text.packing import PairTemplate

    with pytest.raises(ValueError, match=r"^prefix must hold token ids in \[0, 2147483647\], got 2147483648"):
        PairTemplate((2**31,), (0,), (0,), (0,), (0,), (1,))


def test_topk_mean_huge_k_is_the_mean_of_all_windows() -> None:
    from crossrank.text.windows import aggregate_windows

    (agg, _), peak = _peak(
        lambda: aggregate_windows(np.array([1.0, 2.0, 6.0]), np.array([0, 3]), "topk_mean", k=HUGE)
    )
    assert agg.tolist() == [3.0]
    assert peak < LIMIT


def test_eval_run_retriever_huge_depth() -> None:
    from crossrank.cli.eval import _RunRetriever

    run = {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d3": 5.0}}
    retriever = _RunRetriever(run, {"q1": "cats", "q2": "dogs"})
    hits, peak = _peak(lambda: retriever.search(["cats", "dogs", "unknown"], k=HUGE))
    assert hits.ids.tolist() == [["d1", "d2"], ["d3", None], [None, None]]
    assert peak < LIMIT


def test_thread_counts_beyond_the_limit_are_refused_before_any_thread_starts(bm25: BM25Index) -> None:
    with pytest.raises(
        ValueError,
        match=rf"num_threads must be None \(use the CPU quota\) or an int in \[1, {_common.MAX_THREADS}\]",
    ):
        bm25.search(["cat"], num_threads=HUGE)
    hits = bm25.search(
        ["cat"], k=1, num_threads=_common.MAX_THREADS
    )  # the limit itself: threads <= work items
    assert hits.ids.shape == (1, 1)


def test_maxsim_with_repeated_doc_ids_is_bounded_by_the_request() -> None:
    from crossrank.rerank.maxsim import PackedDocs, maxsim

    docs = PackedDocs([np.ones((2, 4), np.float32)])
    out, peak = _peak(
        lambda: maxsim(np.ones((1, 4), np.float32), docs, doc_ids=np.zeros(1000, np.int64), num_threads=1)
    )
    assert out.shape == (1000,)
    assert peak < LIMIT
