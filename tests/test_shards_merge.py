"""merge_topk (integer keys, partition + sort) equals the obvious two-key lexsort merge, for scores
with ties, signed zeros, subnormals, infinities and unfilled places (position -1, score -inf)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.retrieve.shards import _merge_lexsort, merge_topk

VALUES = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, 3e-39, -3e-39, 7.25, 1e-7], dtype=np.float32)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nq=st.integers(0, 4), n_shards=st.integers(1, 5), k=st.integers(1, 25))
def test_merge_equals_lexsort_reference(seed: int, nq: int, n_shards: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    positions, scores = [], []
    taken = rng.choice(10**6, 45, replace=False)
    start = 0
    for _ in range(n_shards):
        ks = int(rng.integers(1, 9))
        pos = np.tile(np.sort(taken[start : start + ks]), (nq, 1)).astype(np.int64)
        start += ks
        sc = VALUES[rng.integers(0, len(VALUES), (nq, ks))]
        unfilled = (sc == -np.inf) & (rng.random((nq, ks)) < 0.5)
        pos[unfilled] = -1
        positions.append(pos)
        scores.append(sc)
    got_pos, got_sc = merge_topk(positions, scores, k)
    all_pos, all_sc = np.concatenate(positions, axis=1), np.concatenate(scores, axis=1)
    want_pos, want_sc = _merge_lexsort(all_pos, all_sc, min(k, all_pos.shape[1]))
    assert np.array_equal(got_pos, want_pos)
    assert np.array_equal(got_sc, want_sc)
    assert got_sc.dtype == np.float32


def test_positions_beyond_32_bits_take_the_reference_path() -> None:
    pos = [np.array([[2**40, 3]], dtype=np.int64), np.array([[5]], dtype=np.int64)]
    sc = [np.array([[1.0, 1.0]], dtype=np.float32), np.array([[1.0]], dtype=np.float32)]
    got_pos, got_sc = merge_topk(pos, sc, 3)
    assert got_pos.tolist() == [[3, 5, 2**40]]
    assert got_sc.tolist() == [[1.0, 1.0, 1.0]]
