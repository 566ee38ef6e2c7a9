"""The bindings never copy an array silently.

Every array argument of ``crossrank._core`` is taken as the caller passed it: exactly the expected
dtype, C order. A non-contiguous view (a transpose or a strided slice), float16 in place of float32,
int32 in place of int64 (and so on) raise TypeError / ValueError naming the argument and the fix,
instead of being copied by pybind11 on every call. The public Python API converts visibly where a
conversion is intended; the last tests check that it still accepts those inputs with equal results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from crossrank import _core
from crossrank.rerank.maxsim import PackedDocs, maxsim, maxsim_batch
from crossrank.retrieve.bm25 import BM25Index
from crossrank.text.packing import PairTemplate, plan_pairs

# The wrong dtype tried for each expected one: the float16-for-float32 and int32-for-int64,
# and for the others a same-width type of another kind (which pybind11 would have cast silently).
WRONG_DTYPE: dict[Any, Any] = {
    np.float32: np.float16,
    np.int64: np.int32,
    np.int32: np.int64,
    np.uint32: np.int32,
    np.uint64: np.int64,
    np.uint8: np.int8,
    np.float16: np.float32,
}


@dataclass
class Case:
    """One bound callable: ``call(**arrays)`` with valid ``arrays`` (each of ndim >= 1, size >= 2)."""

    name: str
    call: Callable[..., Any]
    arrays: Callable[[], dict[str, np.ndarray]]


def _index_arrays() -> dict[str, np.ndarray]:
    # Two documents, three terms: doc 0 = [0, 1, 1], doc 1 = [1, 2].
    return {
        "term_ptr": np.array([0, 1, 3, 4], np.int64),
        "docs": np.array([0, 0, 1, 1], np.uint32),
        "tfs": np.array([1, 2, 1, 1], np.uint32),
        "doc_lens": np.array([3, 2], np.uint32),
    }


def _impacts() -> dict[str, np.ndarray]:
    a = _index_arrays()
    impacts, nonocc = _core.bm25_compute_impacts(
        "bm25+", 1.2, 0.75, 0.5, a["term_ptr"], a["docs"], a["tfs"], a["doc_lens"], 1
    )
    return {"impacts": impacts, "nonoccurrence": nonocc}


def _packed() -> dict[str, np.ndarray]:
    a = _index_arrays()
    names = ("block_ptr", "block_last", "block_off", "data")
    return dict(zip(names, _core.bm25_pack_postings(a["term_ptr"], a["docs"], a["tfs"]), strict=True))


def _view() -> _core.BM25View:
    a, i, p = _index_arrays(), _impacts(), _packed()
    return _core.BM25View(2, a["term_ptr"], i["impacts"], i["nonoccurrence"], *p.values())


def _maxsim_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((5, 4)).astype(np.float32)
    stride = _core.maxsim_row_stride(4, "fp32")
    data = np.zeros((5, stride), np.float32)
    _core.maxsim_pack(docs, data, "fp32", False, 1)
    return {
        "queries": rng.standard_normal((3, 4)).astype(np.float32),
        "query_offsets": np.array([0, 1, 3], np.int64),
        "data": data,
        "offsets": np.array([0, 2, 5], np.int64),
        "doc_ids": np.array([1, 0, 1], np.int64),
    }


def _pack_plan(**a: np.ndarray) -> Any:
    return _core.pack_plan(
        a["q_values"], a["q_offsets"], a["d_values"], a["d_offsets"],
        [101], [0], [102], [0], [102], [1], 0, 1, 0, 0,
        32, "longest_first", None, 256, 16, 1, [], None, None,
    )  # fmt: skip


CASES = [
    Case(
        "Vocabulary.from_arena",
        lambda **a: _core.Vocabulary.from_arena(a["chars"], a["offsets"]),
        lambda: {
            "chars": np.frombuffer(b"catdog", np.uint8).copy(),
            "offsets": np.array([0, 3, 6], np.uint64),
        },
    ),
    Case(
        "Vocabulary.map_tokens",
        lambda **a: _core.Vocabulary().map_tokens(["a", "b", "c"], a["offsets"], True),
        lambda: {"offsets": np.array([0, 1, 3], np.int64)},
    ),
    Case(
        "bm25_build_postings",
        lambda **a: _core.bm25_build_postings(
            3,
            a["term_ids"],
            a["doc_offsets"],
            a["base_term_ptr"],
            a["base_docs"],
            a["base_tfs"],
            a["base_doc_lens"],
        ),
        lambda: {
            "term_ids": np.array([0, 2, 2], np.uint32),
            "doc_offsets": np.array([0, 1, 3], np.int64),
            **{"base_" + k: v for k, v in _index_arrays().items()},
        },
    ),
    Case(
        "bm25_compute_impacts",
        lambda **a: _core.bm25_compute_impacts(
            "lucene", 1.2, 0.75, 0.0, a["term_ptr"], a["docs"], a["tfs"], a["doc_lens"], 1
        ),
        _index_arrays,
    ),
    Case(
        "bm25_validate_index",
        lambda **a: _core.bm25_validate_index(
            a["term_ptr"], a["docs"], a["tfs"], a["doc_lens"], a["impacts"], a["nonoccurrence"]
        ),
        lambda: {**_index_arrays(), **_impacts()},
    ),
    Case(
        "bm25_pack_postings",
        lambda **a: _core.bm25_pack_postings(a["term_ptr"], a["docs"], a["tfs"]),
        lambda: {k: v for k, v in _index_arrays().items() if k != "doc_lens"},
    ),
    Case(
        "bm25_check_packed",
        lambda **a: _core.bm25_check_packed(
            a["term_ptr"], a["block_ptr"], a["block_last"], a["block_off"], a["data"], 2
        ),
        lambda: {"term_ptr": _index_arrays()["term_ptr"], **_packed()},
    ),
    Case(
        "bm25_unpack_postings",
        lambda **a: _core.bm25_unpack_postings(
            a["term_ptr"], a["block_ptr"], a["block_last"], a["block_off"], a["data"]
        ),
        lambda: {"term_ptr": _index_arrays()["term_ptr"], **_packed()},
    ),
    Case(
        "BM25View",
        lambda **a: _core.BM25View(
            2,
            a["term_ptr"],
            a["impacts"],
            a["nonoccurrence"],
            a["block_ptr"],
            a["block_last"],
            a["block_off"],
            a["data"],
        ),
        lambda: {"term_ptr": _index_arrays()["term_ptr"], **_impacts(), **_packed()},
    ),
    Case(
        "BM25View.search",
        lambda **a: _view().search(a["query_terms"], a["query_offsets"], 2, 1),
        lambda: {"query_terms": np.array([1, 2], np.uint32), "query_offsets": np.array([0, 1, 2], np.int64)},
    ),
    Case(
        "BM25View.score_all",
        lambda **a: _view().score_all(a["query_terms"]),
        lambda: {"query_terms": np.array([1, 2], np.uint32)},
    ),
    Case(
        "maxsim_pack",
        lambda **a: _core.maxsim_pack(a["src"], a["dst"], "fp16", True, 1),
        lambda: {
            "src": np.arange(12, dtype=np.float32).reshape(3, 4) + 1,
            "dst": np.zeros((3, _core.maxsim_row_stride(4, "fp16")), np.float16),
        },
    ),
    Case(
        "maxsim_unpack",
        lambda **a: _core.maxsim_unpack(a["src"], 4, "fp32"),
        lambda: {"src": _maxsim_inputs()["data"]},
    ),
    Case(
        "maxsim_score",
        lambda **a: _core.maxsim_score(
            a["queries"], a["query_offsets"], a["data"], "fp32", 4, a["offsets"], a["doc_ids"], 1
        ),
        _maxsim_inputs,
    ),
    Case(
        "pack_plan",
        _pack_plan,
        lambda: {
            "q_values": np.array([5, 6, 7], np.int32),
            "q_offsets": np.array([0, 2, 3], np.int64),
            "d_values": np.array([8, 9, 10, 11], np.int32),
            "d_offsets": np.array([0, 1, 4], np.int64),
        },
    ),
]

ARGS = [(c, name) for c in CASES for name in c.arrays()]


def _id(x: Any) -> str:
    return x.name if isinstance(x, Case) else str(x)


def _non_contiguous(a: np.ndarray) -> np.ndarray:
    """The same values and dtype as a non-C-contiguous view: a transpose for 2-D, a strided slice for 1-D."""
    out = np.ascontiguousarray(a.T).T if a.ndim == 2 else np.repeat(a, 2)[::2]
    assert not out.flags.c_contiguous
    assert out.dtype == a.dtype
    assert np.array_equal(out, a)
    return out


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_valid_arrays_are_accepted(case: Case) -> None:
    case.call(**case.arrays())


@pytest.mark.parametrize(("case", "name"), ARGS, ids=_id)
def test_non_contiguous_array_raises_naming_argument(case: Case, name: str) -> None:
    arrays = case.arrays()
    arrays[name] = _non_contiguous(arrays[name])
    with pytest.raises(
        ValueError, match=rf"^{name} must be a C-contiguous .*non-contiguous.*np\.ascontiguousarray"
    ):
        case.call(**arrays)


@pytest.mark.parametrize(("case", "name"), ARGS, ids=_id)
def test_wrong_dtype_raises_naming_argument_and_fix(case: Case, name: str) -> None:
    arrays = case.arrays()
    good = arrays[name]
    wrong = WRONG_DTYPE[good.dtype.type]
    arrays[name] = good.astype(wrong)  # float16 for float32, int32 for int64, ...
    want = np.dtype(good.dtype).name
    with pytest.raises(
        TypeError, match=rf"^{name} must be .*{want}.*got {np.dtype(wrong).name}.*dtype=np\.{want}\)"
    ):
        case.call(**arrays)


@pytest.mark.parametrize(("case", "name"), ARGS, ids=_id)
def test_list_in_place_of_array_raises_naming_argument(case: Case, name: str) -> None:
    arrays = case.arrays()
    arrays[name] = arrays[name].tolist()
    with pytest.raises(TypeError, match=rf"^{name} must be a C-contiguous .*got list"):
        case.call(**arrays)


def test_bm25_view_reads_the_callers_arrays_without_a_copy() -> None:
    a, i = _index_arrays(), _impacts()
    view = _core.BM25View(2, a["term_ptr"], i["impacts"], i["nonoccurrence"], *_packed().values())
    q, qoff = np.array([0], np.uint32), np.array([0, 1], np.int64)
    before = view.score_all(q)
    i["impacts"][0] += 1.0  # term 0's only posting (doc 0): the view sees the caller's memory
    after = view.score_all(q)
    assert after[0] == np.float32(before[0] + 1.0)
    assert after[1] == before[1]
    ids, scores = view.search(q, qoff, 1, 1)
    assert ids.tolist() == [[0]]
    assert scores[0, 0] == after[0]


def test_maxsim_pack_writes_into_the_callers_buffer() -> None:
    src = np.ones((2, 4), np.float32)
    dst = np.zeros((2, _core.maxsim_row_stride(4, "fp32")), np.float32)
    _core.maxsim_pack(src, dst, "fp32", False, 1)
    assert np.array_equal(dst[:, :4], src)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: _view().search(np.array([1], np.uint32), np.array([0, 1], np.int64), 0, 1),
            "k must be an int >= 1",
        ),
        (
            lambda: _view().search(np.array([1], np.uint32), np.array([0, 1], np.int64), 1, -2),
            "num_threads must be 0",
        ),
        (lambda: _core.maxsim_row_stride(0, "fp32"), r"dim must be an int in \[1, "),
        (
            lambda: _core.maxsim_unpack(np.zeros((1, 16), np.float32), -1, "fp32"),
            r"dim must be an int in \[1, ",
        ),
        (lambda: _core.Vocabulary().term(-1), "term id -1 out of range"),
    ],
)
def test_out_of_range_ints_raise_a_sentence_not_a_signature(call: Callable[[], Any], message: str) -> None:
    with pytest.raises((ValueError, IndexError), match=message) as info:
        call()
    assert "incompatible function arguments" not in str(info.value)


# --- the public API converts visibly where a conversion is intended ---------------------------------


def test_maxsim_public_api_converts_transposed_float16_and_int32_inputs() -> None:
    rng = np.random.default_rng(1)
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (3, 1, 4)]
    query = rng.standard_normal((5, 8)).astype(np.float32)
    packed = PackedDocs(docs)
    want = maxsim(query, packed)
    got_t = maxsim(np.ascontiguousarray(query.T).T, packed)  # a transposed (F-order) view
    assert np.array_equal(got_t, want)
    q16 = query.astype(np.float16)
    assert np.array_equal(maxsim(q16, packed), maxsim(q16.astype(np.float32), packed))
    ids32 = np.array([2, 0], np.int32)
    assert np.array_equal(maxsim(query, packed, doc_ids=ids32), want[[2, 0]])
    flat, offsets = np.concatenate(docs), np.array([0, 3, 4, 8], np.int32)
    assert np.array_equal(PackedDocs((flat, offsets)).data, packed.data)
    assert np.array_equal(
        PackedDocs([d.astype(np.float16) for d in docs]).data,
        PackedDocs([d.astype(np.float16).astype(np.float32) for d in docs]).data,
    )
    batch = maxsim_batch((np.ascontiguousarray(query.T).T, np.array([0, 5], np.int32)), packed)
    assert np.array_equal(batch[0], want)


def test_packed_docs_from_buffers_refuses_rather_than_copies() -> None:
    packed = PackedDocs([np.ones((2, 4), np.float32)])
    with pytest.raises(ValueError, match="C-contiguous"):
        PackedDocs.from_buffers(np.asfortranarray(packed.data), packed.offsets, dim=4, dtype="fp32")
    with pytest.raises(ValueError, match="float32"):
        PackedDocs.from_buffers(packed.data.astype(np.float16), packed.offsets, dim=4, dtype="fp32")


def test_plan_pairs_converts_int64_values_int32_offsets_and_strided_views() -> None:
    template = PairTemplate.bert(101, 102)
    q, d = [[5, 6], [7]], [[8], [9, 10, 11]]
    want = plan_pairs(q, d, template, max_length=32)
    values = np.repeat(np.array([5, 6, 7], np.int64), 2)[::2]  # strided int64
    q_arrays = (values, np.array([0, 2, 3], np.int32))
    d_arrays = (np.array([8, 9, 10, 11], np.int64), np.array([0, 1, 4], np.int32))
    got = plan_pairs(q_arrays, d_arrays, template, max_length=32)
    assert np.array_equal(got.order, want.order)
    for b in range(want.n_batches):
        x, y = got.batch(b), want.batch(b)
        for field in ("input_ids", "attention_mask", "token_type_ids", "pair_index"):
            assert np.array_equal(getattr(x, field), getattr(y, field))


def test_bm25_public_api_converts_numpy_int32_ids() -> None:
    texts = ["the cat sat on the mat", "a dog barked at the cat", "birds sing"]
    ids32 = np.array([30, 10, 20], np.int32)
    index = BM25Index.build(texts, ids=ids32)
    by_list = BM25Index.build(texts, ids=[30, 10, 20])
    hits, want = index.search(["cat mat"], k=3), by_list.search(["cat mat"], k=3)
    assert hits.ids.dtype == np.int64
    assert np.array_equal(hits.ids, want.ids)
    assert np.array_equal(hits.scores, want.scores)
