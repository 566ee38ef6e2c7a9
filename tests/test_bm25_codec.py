"""The postings codec (cpp/src/bm25_codec.hpp) round-trips, and its checker refuses damage.

Postings are packed per block of 64: documents as offsets back from the block's last one and term
frequencies, each at the block's own width of 0, 1, 2 or 4 bytes. These tests drive it through the
bindings with Hypothesis: arbitrary increasing document ids (up to 2^32 - 2, so every width),
arbitrary term frequencies, empty terms, single-posting and partial last blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank import _core
from crossrank.errors import StateError

_MAX_DOC = 2**32 - 2


@st.composite
def _postings(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n_terms = draw(st.integers(0, 5))
    term_ptr, docs, tfs = [0], [], []
    for _ in range(n_terms):
        ids = draw(
            st.one_of(
                st.sets(st.integers(0, _MAX_DOC), max_size=150),
                st.sets(st.integers(0, 300), max_size=200),  # dense runs: 1-byte offsets
            )
        )
        docs += sorted(ids)
        tfs += draw(
            st.lists(st.one_of(st.just(1), st.integers(1, 2**32 - 1)), min_size=len(ids), max_size=len(ids))
        )
        term_ptr.append(len(docs))
    n_docs = max(docs, default=0) + 1
    return (
        np.array(term_ptr, np.int64),
        np.array(docs, np.uint32),
        np.array(tfs, np.uint32),
        n_docs,
    )


@settings(max_examples=150, deadline=None)
@given(_postings())
def test_hypothesis_round_trip(case: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    term_ptr, docs, tfs, n_docs = case
    packed = _core.bm25_pack_postings(term_ptr, docs, tfs)
    _core.bm25_check_packed(term_ptr, *packed, n_docs)
    got_docs, got_tfs = _core.bm25_unpack_postings(term_ptr, *packed)
    assert np.array_equal(got_docs, docs)
    assert np.array_equal(got_tfs, tfs)
    block_ptr, block_last = packed[0], packed[1]
    for t in range(len(term_ptr) - 1):
        n = int(term_ptr[t + 1] - term_ptr[t])
        assert block_ptr[t + 1] - block_ptr[t] == -(-n // 64)
        lasts = docs[term_ptr[t] : term_ptr[t + 1]][63::64].tolist()
        if n % 64:
            lasts.append(int(docs[term_ptr[t + 1] - 1]))
        assert block_last[block_ptr[t] : block_ptr[t + 1]].tolist() == lasts
    if n_docs > 1:  # the largest document is out of range for one document fewer
        with pytest.raises(StateError, match="out of range"):
            _core.bm25_check_packed(term_ptr, *packed, n_docs - 1)


def test_packing_compresses_dense_postings() -> None:
    # 10,000 consecutive documents with tf 1: 1-byte offsets, 0-byte tfs, a 1-byte header per
    # block (157 blocks), 8 bytes of padding.
    term_ptr = np.array([0, 10_000], np.int64)
    packed = _core.bm25_pack_postings(
        term_ptr, np.arange(10_000, dtype=np.uint32), np.ones(10_000, np.uint32)
    )
    assert packed[3].nbytes == 10_000 + 157 + 8


@pytest.mark.parametrize(
    ("docs", "tfs", "match"),
    [([3, 3], [1, 1], "not increasing"), ([2, 1], [1, 1], "not increasing"), ([1], [0], "is 0")],
)
def test_pack_refuses_bad_postings(docs: list[int], tfs: list[int], match: str) -> None:
    term_ptr = np.array([0, len(docs)], np.int64)
    with pytest.raises(ValueError, match=match):
        _core.bm25_pack_postings(term_ptr, np.array(docs, np.uint32), np.array(tfs, np.uint32))


def test_check_refuses_damaged_blocks() -> None:
    term_ptr = np.array([0, 100], np.int64)
    docs = np.arange(0, 700, 7, dtype=np.uint32)
    block_ptr, block_last, block_off, data = _core.bm25_pack_postings(term_ptr, docs, np.ones(100, np.uint32))
    _core.bm25_check_packed(term_ptr, block_ptr, block_last, block_off, data, 700)
    bad = data.copy()
    bad[0] = 0x10  # an unknown header bit
    with pytest.raises(StateError, match="bad header"):
        _core.bm25_check_packed(term_ptr, block_ptr, block_last, block_off, bad, 700)
    bad = data.copy()
    bad[-1] = 1
    with pytest.raises(StateError, match="padding"):
        _core.bm25_check_packed(term_ptr, block_ptr, block_last, block_off, bad, 700)
    bad_last = block_last.copy()
    bad_last[1] = bad_last[0]  # the second block would start before the first one ends
    with pytest.raises(StateError, match="not increasing"):
        _core.bm25_check_packed(term_ptr, block_ptr, bad_last, block_off, data, 700)
    with pytest.raises(StateError, match="block_ptr"):
        _core.bm25_check_packed(term_ptr, block_ptr[:1], block_last, block_off, data, 700)
