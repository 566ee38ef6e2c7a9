"""Fusion against the plain references in tests/reference/fusion_ref.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.retrieve.fusion import FusedResults, fuse, reciprocal_rank_fusion, score_fusion
from reference.fusion_ref import rrf_ref, score_fusion_ref

# A list: distinct doc ids with scores (small integers make ties frequent).
_list = st.dictionaries(
    st.sampled_from([f"d{i}" for i in range(15)]), st.integers(-5, 5).map(float), max_size=12
).map(lambda d: list(d.items()))
_lists = st.lists(_list, min_size=1, max_size=4)


def _check(got, ref, tol=1e-12):
    assert [d for d, _ in ref] == list(got.ids)
    np.testing.assert_allclose(got.scores, [s for _, s in ref], rtol=0, atol=tol)


@settings(max_examples=200, deadline=None)
@given(_lists, st.sampled_from([0.0, 1.0, 60.0]), st.booleans())
def test_rrf_matches_reference(lists, k, weighted):
    weights = [float(i + 1) for i in range(len(lists))] if weighted else None
    got = reciprocal_rank_fusion([dict(lst) for lst in lists], rrf_k=k, weights=weights)
    _check(got, rrf_ref(lists, k, weights))


@settings(max_examples=200, deadline=None)
@given(_lists, st.sampled_from(["minmax", "zscore", "none"]), st.sampled_from(["zero", "min"]), st.booleans())
def test_score_fusion_matches_reference(lists, norm, missing, weighted):
    weights = [0.5 + i for i in range(len(lists))] if weighted else None
    got = score_fusion([dict(lst) for lst in lists], normalization=norm, weights=weights, missing=missing)
    ref = score_fusion_ref(lists, norm, weights, missing)
    # Sums in a different order may differ in the last bit; compare orders where totals are distinct.
    np.testing.assert_allclose(got.scores, [s for _, s in ref], rtol=0, atol=1e-12)
    assert sorted(got.ids) == sorted(d for d, _ in ref)


@settings(max_examples=50, deadline=None)
@given(st.lists(_lists.filter(lambda ls: len(ls) == 2), min_size=1, max_size=5), st.integers(1, 6))
def test_batch_arrays_and_runs_agree_with_single(queries, top_k):
    # Build [nq, k] arrays padded with -inf, and the same data as runs.
    width = max(len(lst) for q in queries for lst in q) or 1
    arrays = []
    runs = []
    for li in range(2):
        ids = np.full((len(queries), width), None, dtype=object)
        sc = np.full((len(queries), width), -np.inf)
        run = {}
        for r, q in enumerate(queries):
            for c, (d, s) in enumerate(q[li]):
                ids[r, c], sc[r, c] = d, s
            run[f"q{r}"] = dict(q[li])
        arrays.append((ids, sc))
        runs.append(run)
    batch = reciprocal_rank_fusion(arrays, top_k=top_k)
    fused_runs = reciprocal_rank_fusion(runs, top_k=top_k)
    assert batch.ids.shape == batch.scores.shape
    for r, q in enumerate(queries):
        ref = rrf_ref(q)[:top_k]
        n = len(ref)
        assert list(batch.ids[r, :n]) == [d for d, _ in ref]
        np.testing.assert_allclose(batch.scores[r, :n], [s for _, s in ref])
        assert all(x is None for x in batch.ids[r, n:])
        assert np.isneginf(batch.scores[r, n:]).all()
        assert list(fused_runs[f"q{r}"]) == [d for d, _ in ref]


def test_rrf_known_values_and_object_results():
    class Results:  # duck-typed like BM25Index.search's Results
        def __init__(self, ids, scores):
            self.ids, self.scores = np.asarray(ids), np.asarray(scores)

    a = Results([[1, 2, 3]], [[3.0, 2.0, 1.0]])
    b = Results([[3, 4, -1]], [[9.0, 8.0, -np.inf]])  # -1 / -inf is padding
    out = reciprocal_rank_fusion([a, b], rrf_k=60)
    assert isinstance(out, FusedResults)
    assert out.ids.dtype == a.ids.dtype
    assert out.ids[0].tolist() == [3, 1, 2, 4]  # 2 and 4 tie on rank 2: list 0 first
    assert out.scores[0, 0] == pytest.approx(1 / 63 + 1 / 61)
    assert out.scores[0, 1] == pytest.approx(1 / 61)


def test_deterministic_ties():
    # d1 and d2 both rank first in one list: best rank ties, so the first list wins.
    out = reciprocal_rank_fusion([{"d1": 1.0}, {"d2": 1.0}])
    assert list(out.ids) == ["d1", "d2"]
    out = reciprocal_rank_fusion([{"d2": 1.0}, {"d1": 1.0}])
    assert list(out.ids) == ["d2", "d1"]


def test_missing_doc_policy_for_zscore():
    a = {"x": 10.0, "y": 0.0}
    b = {"y": 1.0, "z": 0.0}
    zero = score_fusion([a, b], normalization="zscore", missing="zero")
    low = score_fusion([a, b], normalization="zscore", missing="min")
    assert dict(zip(zero.ids, zero.scores, strict=True))["x"] == pytest.approx(1.0)
    assert dict(zip(low.ids, low.scores, strict=True))["x"] == pytest.approx(
        0.0
    )  # 1 + (-1) for missing from b


def test_fuse_dispatch():
    lists = [{"a": 2.0, "b": 1.0}, {"b": 5.0, "c": 1.0}]
    assert list(fuse(lists, "rrf").ids) == list(reciprocal_rank_fusion(lists).ids)
    assert list(fuse(lists, "sum").ids) == ["b", "a", "c"]
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse(lists, "borda")  # type: ignore[arg-type]


def test_bad_inputs():
    with pytest.raises(ValueError, match="no result lists"):
        reciprocal_rank_fusion([])
    with pytest.raises(TypeError, match="sequence of result lists"):
        reciprocal_rank_fusion({"a": 1.0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot fuse"):
        reciprocal_rank_fusion([[1, 2, 3]])
    with pytest.raises(TypeError, match="same form"):
        reciprocal_rank_fusion([{"a": 1.0}, (np.array(["a"]), np.array([1.0]))])
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([{"a": 1.0}], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([{"a": 1.0}], weights=[-1.0])
    with pytest.raises(ValueError, match="rrf_k must be"):
        reciprocal_rank_fusion([{"a": 1.0}], rrf_k=-1)
    with pytest.raises(ValueError, match="top_k"):
        reciprocal_rank_fusion([{"a": 1.0}], top_k=0)
    with pytest.raises(ValueError, match="NaN"):
        reciprocal_rank_fusion([{"a": float("nan")}])
    with pytest.raises(ValueError, match="twice"):
        reciprocal_rank_fusion([(np.array(["a", "a"]), np.array([2.0, 1.0]))])
    with pytest.raises(ValueError, match="different numbers of queries"):
        reciprocal_rank_fusion([(np.zeros((2, 3)), np.zeros((2, 3))), (np.zeros((3, 3)), np.zeros((3, 3)))])
    with pytest.raises(ValueError, match="shape"):
        reciprocal_rank_fusion([(np.zeros(3), np.zeros(2))])
    with pytest.raises(ValueError, match="normalization"):
        score_fusion([{"a": 1.0}], normalization="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        score_fusion([{"a": 1.0}], missing="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        score_fusion([{"a": float("inf"), "b": 1.0}])


def test_empty_lists_give_empty_results():
    out = reciprocal_rank_fusion([{}, {}])
    assert out.ids.shape == (0,)
    assert reciprocal_rank_fusion([{"q": {}}, {"q": {}}]) == {"q": {}}


def test_string_ids_keep_their_full_width():
    short = (np.array([["l", "b"]]), np.array([[2.0, 1.0]]))  # dtype <U1
    long = (np.array([["longdocid", "b"]]), np.array([[3.0, 1.0]]))  # dtype <U9
    for lists in ([short, long], [long, short]):
        for method in ("rrf", "minmax", "sum"):
            out = fuse(lists, method)  # type: ignore[arg-type]
            assert "longdocid" in out.ids[0].tolist()
            assert out.ids.dtype == np.dtype("<U9")
    single = fuse([(np.array(["a"]), np.array([1.0])), (np.array(["abcdefgh"]), np.array([1.0]))])
    assert sorted(single.ids.tolist()) == ["a", "abcdefgh"]
    ints = fuse([(np.array([[1]], np.int32), np.array([[1.0]])), (np.array([[2**40]]), np.array([[1.0]]))])
    assert ints.ids.dtype == np.int64 and sorted(ints.ids[0].tolist()) == [1, 2**40]  # noqa: PT018


@pytest.mark.parametrize(
    "lists",
    [
        [(np.array([[1, 2]]), np.array([[2.0, 1.0]])), (np.array([["1", "x"]]), np.array([[2.0, 1.0]]))],
        [(np.array([1, "a"], dtype=object), np.array([2.0, 1.0]))],
        [{"a": 1.0}, {1: 2.0}],
        [{"q1": {"d1": 1.0}}, {"q1": {2: 1.0}}],
        [(np.array([[True, False]]), np.array([[2.0, 1.0]]))],
    ],
)
def test_mixed_id_kinds_are_a_type_error(lists):
    with pytest.raises(TypeError, match="ids"):
        fuse(lists)


def test_hits_fuse_directly():
    from crossrank.types import Hits

    a = Hits(np.array([["d1", "d2"]], dtype=object), np.array([[2.0, 1.0]], np.float32))
    b = Hits(np.array([["d2", None]], dtype=object), np.array([[5.0, -np.inf]], np.float32))
    out = fuse([a, b], top_k=5)
    assert out.ids[0].tolist() == ["d2", "d1"]
    with pytest.raises(TypeError, match="top_k"):
        fuse([a, b], top_k=2.0)  # type: ignore[arg-type]
