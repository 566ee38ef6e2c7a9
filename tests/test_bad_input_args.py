"""Bad arguments across the API (issue 12): each case asserts the exact exception type and that the
message names the argument; cases that must succeed assert the result.

Companions: ``test_bad_input_files.py`` (readers, manifests, saves), ``test_bad_input_cli.py`` (the
command line) and ``test_bounded_memory.py`` (hostile sizes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossrank import _common
from crossrank.rerank.base import RerankerBase
from crossrank.rerank.calibration import Calibrator, log_loss
from crossrank.rerank.maxsim import PackedDocs, maxsim, maxsim_batch
from crossrank.retrieve.bm25 import BM25Index
from crossrank.retrieve.fusion import fuse, reciprocal_rank_fusion
from crossrank.text.analyzer import Analyzer
from crossrank.text.windows import aggregate_windows
from crossrank.types import Scores

HUGE = 2**70  # does not fit any C integer: must be refused (or capped) in Python, never reach pybind11


@pytest.fixture(scope="module")
def bm25() -> BM25Index:
    return BM25Index.build(
        ["the cat sat", "a dog barked", "cats and dogs"], ids=["a", "b", "c"], num_threads=1
    )


@pytest.fixture(scope="module")
def packed() -> PackedDocs:
    rng = np.random.default_rng(0)
    return PackedDocs([rng.standard_normal((n, 4)).astype(np.float32) for n in (3, 1, 2)])


class _Lengths(RerankerBase):
    """Scores a document by its length: a reranker with no model, for the protocol's checks."""

    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        return [
            Scores(np.array([len(d) for d in docs], np.float32), np.zeros(len(docs), bool))
            for docs in documents_per_query
        ]


# ---------------------------------------------------------------------------------------------
# k and num_threads: checked in Python with a sentence (never a pybind11 signature dump)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, -1, -(2**70)])
def test_bm25_k_below_one_is_a_value_error_naming_k(bm25: BM25Index, k: int) -> None:
    with pytest.raises(ValueError, match=r"^k must be >= 1"):
        bm25.search(["cat"], k=k)


@pytest.mark.parametrize("k", [1.5, "3", None, True, np.float64(2.0)])
def test_bm25_k_not_an_int_is_a_type_error_naming_k(bm25: BM25Index, k: object) -> None:
    with pytest.raises(TypeError, match=r"^k must be an int"):
        bm25.search(["cat"], k=k)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [3, 4, 10**9, HUGE, np.int64(2**62)])
def test_bm25_k_is_capped_at_the_collection_size(bm25: BM25Index, k: int) -> None:
    hits = bm25.search(["cat", "dog"], k=k)
    assert hits.ids.shape == (2, 3)
    assert hits.ids[0, 0] in {"a", "c"}


@pytest.mark.parametrize("n", [0, -3, HUGE, 2**40, 1.5, "2", True])
def test_bm25_num_threads_out_of_range_names_the_argument_and_range(bm25: BM25Index, n: object) -> None:
    with pytest.raises(
        ValueError,
        match=rf"num_threads must be None \(use the CPU quota\) or an int in \[1, {_common.MAX_THREADS}\]",
    ):
        bm25.search(["cat"], k=1, num_threads=n)  # type: ignore[arg-type]


def test_bm25_num_threads_at_the_limit_works(bm25: BM25Index) -> None:
    ref = bm25.search(["cat"], k=3, num_threads=1)
    got = bm25.search(["cat"], k=3, num_threads=_common.MAX_THREADS)
    np.testing.assert_array_equal(got.scores, ref.scores)


@pytest.mark.parametrize("n", [HUGE, _common.MAX_THREADS + 1])
def test_analyzer_num_threads_too_large(n: int) -> None:
    with pytest.raises(ValueError, match=r"num_threads must be <= 1024"):
        Analyzer().analyze_batch(["x"], num_threads=n)


@pytest.mark.parametrize("n", [HUGE, 0])
def test_maxsim_num_threads_out_of_range(packed: PackedDocs, n: int) -> None:
    with pytest.raises(ValueError, match=r"num_threads must be None"):
        maxsim(np.ones((2, 4), np.float32), packed, num_threads=n)


def test_packing_docs_num_threads_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"num_threads must be None"):
        PackedDocs([np.ones((2, 4), np.float32)], num_threads=HUGE)


@pytest.mark.parametrize("doc_ids", [[HUGE], [1.0], ["0"]])
def test_maxsim_doc_ids_must_be_integers(packed: PackedDocs, doc_ids: list[object]) -> None:
    with pytest.raises(ValueError, match=r"^doc_ids must be a 1-D integer array"):
        maxsim(np.ones((2, 4), np.float32), packed, doc_ids=doc_ids)


def test_maxsim_doc_id_out_of_range_is_an_index_error(packed: PackedDocs) -> None:
    with pytest.raises(IndexError, match="doc"):
        maxsim(np.ones((2, 4), np.float32), packed, doc_ids=[3])


# ---------------------------------------------------------------------------------------------
# Booleans as booleans, offsets as integers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [["False", "True"], [0.5, 1.0], [0, 1], [None, True]])
def test_query_mask_must_hold_bools(packed: PackedDocs, mask: list[object]) -> None:
    with pytest.raises(TypeError, match=r"^query_mask must hold bools"):
        maxsim(np.ones((2, 4), np.float32), packed, query_mask=mask)


def test_query_mask_of_bools_drops_tokens(packed: PackedDocs) -> None:
    q = np.arange(8, dtype=np.float32).reshape(2, 4)
    got = maxsim(q, packed, query_mask=[False, True])
    np.testing.assert_array_equal(got, maxsim(q[1:], packed))


@pytest.mark.parametrize("value", ["False", 0, 1, None, "true"])
def test_check_bool_refuses_non_bools(value: object) -> None:
    with pytest.raises(TypeError, match=r"^return_documents must be a bool"):
        _Lengths().rank("q", ["a", "bb"], return_documents=value)  # type: ignore[arg-type]


def test_rank_with_bools_succeeds() -> None:
    ranked = _Lengths().rank("q", ["a", "bbb", "bb"], top_k=2, return_documents=np.bool_(True))
    assert [(r["corpus_id"], r["text"]) for r in ranked] == [(1, "bbb"), (2, "bb")]


@pytest.mark.parametrize("offsets", [np.array([0, 1.5, 3.0]), np.array([0.0, 1.0, 3.0]), ["0", "1", "3"]])
def test_packed_docs_float_offsets_are_refused(offsets: object) -> None:
    with pytest.raises(TypeError, match=r"^documents offsets must hold integers"):
        PackedDocs((np.ones((3, 4), np.float32), offsets))


def test_packed_docs_integer_offsets_work() -> None:
    docs = PackedDocs((np.ones((3, 4), np.float32), np.array([0, 1, 3], np.int32)))
    assert docs.doc_lengths.tolist() == [1, 2]


def test_maxsim_batch_float_query_offsets_are_refused(packed: PackedDocs) -> None:
    with pytest.raises(TypeError, match=r"^queries offsets must hold integers"):
        maxsim_batch((np.ones((3, 4), np.float32), np.array([0.0, 1.5, 3.0])), packed)


def test_aggregate_windows_float_offsets_are_refused() -> None:
    with pytest.raises(TypeError, match=r"^doc_offsets must hold integers"):
        aggregate_windows(np.array([1.0, 2.0, 3.0]), np.array([0, 1.5, 3.0]))


@pytest.mark.parametrize("k", [1.5, "2", True, None])
def test_topk_mean_k_must_be_an_int(k: object) -> None:
    with pytest.raises(TypeError, match=r"^k must be an int"):
        aggregate_windows(np.array([1.0, 2.0, 3.0]), np.array([0, 3]), "topk_mean", k=k)  # type: ignore[arg-type]


def test_topk_mean_k1_is_the_best_window() -> None:
    agg, best = aggregate_windows(np.array([1.0, 2.0, 3.0, 5.0]), np.array([0, 3, 4]), "topk_mean", k=1)
    assert agg.tolist() == [3.0, 5.0]
    assert best.tolist() == [2, 0]


# ---------------------------------------------------------------------------------------------
# top_k of every reranker: one rule
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("top_k", "exc"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)]
)
def test_reranker_top_k_errors_name_top_k(top_k: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"^top_k must be"):
        _Lengths().rank("q", ["a", "bb"], top_k=top_k)  # type: ignore[arg-type]


def test_reranker_huge_top_k_is_capped() -> None:
    assert len(_Lengths().rank("q", ["a", "bb"], top_k=HUGE)) == 2


@pytest.mark.parametrize(
    ("docs", "msg"), [("one doc", "single str"), (["a", 3], r"documents\[1\]"), ([None], r"\[0\]")]
)
def test_reranker_documents_must_be_str_lists(docs: object, msg: str) -> None:
    with pytest.raises(TypeError, match=msg):
        _Lengths().score("q", docs)  # type: ignore[arg-type]


def test_reranker_query_must_be_str() -> None:
    with pytest.raises(TypeError, match=r"^query must be a str, got bytes"):
        _Lengths().score(b"q", ["a"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Fusion: ids keep their full width; kinds never mix
# ---------------------------------------------------------------------------------------------
def test_fuse_keeps_long_numpy_string_ids() -> None:
    out = fuse([(np.array(["l"]), np.array([1.0])), (np.array(["longdocid"]), np.array([2.0]))])
    assert sorted(out.ids.tolist()) == ["l", "longdocid"]


def test_fuse_keeps_long_ids_in_batches() -> None:
    a = (np.array([["a", "b"]]), np.array([[2.0, 1.0]]))
    b = (np.array([["a_much_longer_id", "b"]]), np.array([[2.0, 1.0]]))
    out = reciprocal_rank_fusion([a, b])
    assert set(out.ids[0].tolist()) == {"a", "b", "a_much_longer_id"}


def test_fuse_mixed_int_and_str_ids_name_the_lists() -> None:
    with pytest.raises(TypeError, match=r"ids mix kinds \(number ids in list 0, str ids in list 1\)"):
        fuse([(np.array([1]), np.array([1.0])), (np.array(["a"]), np.array([2.0]))])


def test_fuse_bool_ids_are_refused() -> None:
    with pytest.raises(TypeError, match=r"list 0 has bool ids"):
        fuse([(np.array([True]), np.array([1.0]))])


def test_fuse_nan_score_names_the_list() -> None:
    with pytest.raises(ValueError, match=r"^list 1: a score is NaN"):
        fuse([{"a": 1.0}, {"a": float("nan")}])


def test_fuse_unknown_method_names_it() -> None:
    with pytest.raises(ValueError, match=r"unknown fusion method 'max'"):
        fuse([{"a": 1.0}], "max")  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------
# Calibration: extreme logits get a fit (or the true reason), never a false one
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["platt", "temperature"])
@pytest.mark.parametrize(
    "logits", [[-1e30, -1e30, 1e30, 1e30], [-1.7e308, 0.0, 1.7e308, 1.0], [1e308, 1e308, 1.7e308, 1.7e308]]
)
def test_calibrator_fits_extreme_logits_monotonically(
    method: str, logits: list[float], tmp_path: Path
) -> None:
    x = np.array(logits)
    cal = Calibrator.fit(x, np.array([0, 0, 1, 1]), method=method)  # type: ignore[arg-type]
    assert cal.a > 0
    assert np.isfinite(cal.b)
    p = cal(np.sort(x))
    assert np.all(np.diff(p) >= 0)
    assert np.all((p >= 0) & (p <= 1))
    assert cal.log_loss_after is not None
    assert not np.isnan(cal.log_loss_after)
    # Saved as standard JSON (no Infinity / NaN tokens) and loaded back with the same mapping.
    saved = cal.save(tmp_path / "calibration.json")

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token} in {saved}")

    json.loads(saved.read_text(), parse_constant=refuse)
    np.testing.assert_array_equal(Calibrator.load(saved)(np.sort(x)), p)


def test_log_loss_of_overflowing_logits_is_inf_or_finite_never_nan() -> None:
    assert log_loss([1.7e308, -1.7e308], [1, 0], a=2.0) == 0.0  # right and saturated: no loss
    assert log_loss([1.7e308], [0], a=2.0) == float("inf")  # confidently wrong: infinite loss


def test_calibrator_falling_labels_give_the_true_reason() -> None:
    with pytest.raises(ValueError, match=r"the labels do not rise with the logits"):
        Calibrator.fit(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([1, 1, 0, 0]))


@pytest.mark.parametrize(
    ("logits", "labels", "exc", "msg"),
    [
        ([0.0, float("nan")], [0, 1], ValueError, "logits must be finite"),
        ([0.0, 1.0], [0, 2], ValueError, "labels must be 0/1"),
        ([0.0, 1.0], [1, 1], ValueError, "need both relevant and non-relevant"),
        (["a", "b"], [0, 1], TypeError, "logits must be real numbers"),
        ([0.0, 1.0, 2.0], [0, 1], ValueError, "logits and labels must have the same length"),
    ],
)
def test_calibrator_fit_bad_pairs(
    logits: list[object], labels: list[int], exc: type[Exception], msg: str
) -> None:
    with pytest.raises(exc, match=msg):
        Calibrator.fit(np.array(logits), np.array(labels))


# ---------------------------------------------------------------------------------------------
# The shared checks themselves
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "exc"), [(True, TypeError), (1.0, TypeError), ("1", TypeError), (-1, ValueError)]
)
def test_check_int_names_the_argument(value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"^depth must be"):
        _common.check_int(value, "depth", minimum=0)


def test_check_int_array_rejects_unsigned_overflow() -> None:
    with pytest.raises(ValueError, match=r"^offsets holds a value above the int64 range"):
        _common.check_int_array(np.array([2**64 - 1], np.uint64), "offsets")


def test_check_int_array_accepts_ints_of_any_width() -> None:
    got = _common.check_int_array(np.array([0, 2, 5], np.uint8), "offsets")
    assert got.dtype == np.int64
    assert got.tolist() == [0, 2, 5]
