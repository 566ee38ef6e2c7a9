"""MaxSim kernel: every SIMD path against a float64 reference, edge cases, errors, the on-disk store.

Documented tolerances (absolute, per score, as a fraction of nq * max|q_i| * max|d_j|, i.e. of the
largest possible score; for L2-normalised vectors that is the fraction of nq):

* against the *stored* vectors (widened to float64): 1e-5 for every storage type and path, except
  ``avx512bf16`` with bf16 storage, which rounds the query to bf16 too: 4e-3 (2^-8);
* against the original fp32 vectors: fp32 1e-5; fp16 5e-4 (2^-11 per element); bf16 4e-3 (2^-8).
  Measured on unit vectors (dim 128, 32 query tokens): fp32 2e-8, fp16 1e-5, bf16 9e-5 (1.2e-4 with
  dpbf16) per query token.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crossrank
from crossrank import _core
from crossrank.errors import StateError
from crossrank.rerank.maxsim import PackedDocs, PackedDocStore, maxsim, maxsim_batch
from reference.maxsim_reference import error_bound, from_bf16_bits, maxsim_reference, to_bf16_bits

ISAS = _core.simd_available()
DTYPES = ["fp32", "fp16", "bf16"]
TOL_STORED = 1e-5
TOL_DPBF16 = 4e-3
TOL_ORIGINAL = {"fp32": 1e-5, "fp16": 5e-4, "bf16": 4e-3}


@pytest.fixture
def forced_isa(request):
    _core.simd_force(request.param)
    yield request.param
    _core.simd_force(None)


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def stored_tol(isa: str, dtype: str) -> float:
    return TOL_DPBF16 if (isa == "avx512bf16" and dtype == "bf16") else TOL_STORED


@pytest.mark.parametrize("forced_isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("nq", "dim"), [(1, 1), (5, 7), (16, 16), (17, 33), (32, 128), (33, 96), (64, 384)])
def test_every_simd_path_matches_float64_reference(forced_isa, dtype, nq, dim):
    rng = np.random.default_rng(nq * 1000 + dim)
    lengths = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100]
    docs = [unit(rng, n, dim) for n in lengths]
    query = unit(rng, nq, dim)
    packed = PackedDocs(docs, dtype=dtype)
    assert _core.simd_active() == forced_isa
    got = maxsim(query, packed)
    assert got.dtype == np.float32
    assert got.shape == (len(docs),)
    stored = [packed.doc(i) for i in range(len(packed))]
    np.testing.assert_allclose(
        got,
        maxsim_reference(query, stored),
        rtol=0,
        atol=error_bound(query, stored, stored_tol(forced_isa, dtype)),
    )
    np.testing.assert_allclose(
        got, maxsim_reference(query, docs), rtol=0, atol=error_bound(query, docs, TOL_ORIGINAL[dtype])
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    dim=st.integers(1, 70),
    nq=st.integers(0, 40),
    lengths=st.lists(st.integers(0, 40), min_size=0, max_size=12),
    dtype=st.sampled_from(DTYPES),
    isa=st.sampled_from(ISAS),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
)
def test_hypothesis_shapes_against_reference(seed, dim, nq, lengths, dtype, isa, scale):
    rng = np.random.default_rng(seed)
    docs = [(rng.standard_normal((n, dim)) * scale).astype(np.float32) for n in lengths]
    query = rng.standard_normal((nq, dim)).astype(np.float32)
    packed = PackedDocs(docs, dtype=dtype, dim=dim)
    _core.simd_force(isa)
    try:
        got = maxsim(query, packed)
    finally:
        _core.simd_force(None)
    stored = [packed.doc(i) for i in range(len(packed))]
    want = maxsim_reference(query, stored)
    np.testing.assert_allclose(got, want, rtol=0, atol=error_bound(query, stored, stored_tol(isa, dtype)))
    for n, length in enumerate(lengths):
        if length == 0 or nq == 0:
            assert got[n] == 0.0


@pytest.mark.parametrize("forced_isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_never_wins_the_max(forced_isa, dtype):
    # Every true dot product is negative: a zero-padded or masked-in token scoring 0 would win.
    rng = np.random.default_rng(7)
    dim = 19
    query = np.abs(unit(rng, 21, dim))
    docs = [-np.abs(unit(rng, n, dim)) for n in range(1, 40)]
    got = maxsim(query, PackedDocs(docs, dtype=dtype))
    assert np.all(got < 0)
    np.testing.assert_allclose(got, maxsim_reference(query, docs), atol=error_bound(query, docs, 4e-3))


@pytest.mark.parametrize("forced_isa", ISAS, indirect=True)
def test_one_and_many_threads_are_bit_identical(forced_isa):
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 60, size=3000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = unit(rng, int(offsets[-1]), 64)
    for dtype in DTYPES:
        packed = PackedDocs((flat, offsets), dtype=dtype)
        query = unit(rng, 32, 64)
        one = maxsim(query, packed, num_threads=1)
        many = maxsim(query, packed, num_threads=3)
        auto = maxsim(query, packed)
        assert one.tobytes() == many.tobytes() == auto.tobytes()


def test_thousands_of_candidates_match_reference():
    rng = np.random.default_rng(11)
    lengths = rng.integers(0, 12, size=4000)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = unit(rng, int(offsets[-1]), 24)
    query = unit(rng, 9, 24)
    got = maxsim(query, PackedDocs((flat, offsets)))
    docs = [flat[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]
    np.testing.assert_allclose(
        got, maxsim_reference(query, docs), rtol=0, atol=error_bound(query, docs, 1e-5)
    )


def test_empty_document_empty_query_and_masked_query_score_zero():
    rng = np.random.default_rng(0)
    packed = PackedDocs([np.zeros((0, 8), np.float32), unit(rng, 3, 8)])
    query = unit(rng, 4, 8)
    got = maxsim(query, packed)
    assert got[0] == 0.0
    assert got[1] != 0.0
    assert maxsim(np.zeros((0, 8), np.float32), packed).tolist() == [0.0, 0.0]
    assert maxsim(query, packed, query_mask=np.zeros(4, bool)).tolist() == [0.0, 0.0]
    assert PackedDocs([], dim=8).n_tokens == 0
    assert maxsim(query, PackedDocs([], dim=8)).shape == (0,)


def test_query_mask_drops_tokens():
    rng = np.random.default_rng(1)
    docs = [unit(rng, 5, 16), unit(rng, 9, 16)]
    packed = PackedDocs(docs)
    query = unit(rng, 6, 16)
    mask = np.array([1, 0, 1, 1, 0, 1], bool)
    np.testing.assert_array_equal(maxsim(query, packed, query_mask=mask), maxsim(query[mask], packed))


def test_doc_ids_select_and_repeat_documents():
    rng = np.random.default_rng(2)
    packed = PackedDocs([unit(rng, n, 12) for n in [3, 0, 5, 8]])
    query = unit(rng, 7, 12)
    full = maxsim(query, packed)
    ids = np.array([3, 1, 3, 0])
    np.testing.assert_array_equal(maxsim(query, packed, doc_ids=ids), full[ids])
    assert maxsim(query, packed, doc_ids=np.array([], np.int64)).shape == (0,)
    with pytest.raises(IndexError, match="out of range"):
        maxsim(query, packed, doc_ids=[4])
    with pytest.raises(IndexError, match="out of range"):
        maxsim(query, packed, doc_ids=[-1])


def test_batch_equals_one_query_at_a_time():
    rng = np.random.default_rng(4)
    packed = PackedDocs([unit(rng, n, 20) for n in [3, 0, 50, 8]], dtype="fp16")
    queries = [unit(rng, n, 20) for n in [1, 32, 0, 17]]
    got = maxsim_batch(queries, packed)
    assert got.shape == (4, 4)
    for b, q in enumerate(queries):
        np.testing.assert_array_equal(got[b], maxsim(q, packed))
    flat = np.concatenate(queries)
    offsets = np.concatenate([[0], np.cumsum([len(q) for q in queries])])
    np.testing.assert_array_equal(maxsim_batch((flat, offsets), packed, doc_ids=[2, 0]), got[:, [2, 0]])


def test_pack_rounds_to_nearest_even_like_numpy():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((50, 33)) * np.logspace(-9, 4, 33)).astype(np.float32)
    x[0, :4] = [65504.0, -65504.0, 6e-8, 2.0**-25]  # fp16 max, smallest subnormals and a tie to 0
    fp16 = PackedDocs([x], dtype="fp16")
    np.testing.assert_array_equal(fp16.data[:, :33], x.astype(np.float16))
    assert np.all(fp16.data[:, 33:] == 0)  # row padding to an even stride is zero
    bf16 = PackedDocs([x], dtype="bf16")
    np.testing.assert_array_equal(bf16.data[:, :33], to_bf16_bits(x))
    np.testing.assert_array_equal(bf16.doc(0), from_bf16_bits(to_bf16_bits(x)))
    np.testing.assert_array_equal(PackedDocs([x]).doc(0), x)


def test_pack_normalize_gives_unit_rows_and_keeps_zero_rows():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((10, 17)).astype(np.float32) * 3
    x[4] = 0
    packed = PackedDocs([x], normalize=True)
    norms = np.linalg.norm(packed.doc(0), axis=1)
    np.testing.assert_allclose(np.delete(norms, 4), 1.0, atol=1e-6)
    assert norms[4] == 0


def test_packed_buffer_is_aligned_and_read_only():
    packed = PackedDocs([np.ones((3, 5), np.float32)], dtype="bf16")
    assert packed.data.ctypes.data % 64 == 0
    assert not packed.data.flags.writeable
    assert "n_docs=1" in repr(packed)
    assert "bf16" in repr(packed)
    assert len(packed) == 1
    assert packed.doc_lengths.tolist() == [3]
    assert packed.nbytes > 0
    with pytest.raises(IndexError):
        packed.doc(1)


def test_non_contiguous_and_other_float_inputs_are_converted_visibly():
    rng = np.random.default_rng(8)
    big = rng.standard_normal((10, 40))  # float64, and a strided view below
    packed = PackedDocs([big[:, ::2], big[:3, 1::2]])
    query = np.asfortranarray(rng.standard_normal((4, 20)))
    np.testing.assert_array_equal(
        maxsim(query, packed), maxsim(np.ascontiguousarray(query, dtype=np.float32), packed)
    )


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: PackedDocs([np.ones((2, 3)), np.ones((2, 4))]), ValueError, "same dim"),
        (lambda: PackedDocs([np.ones(3)]), ValueError, "2-D"),
        (lambda: PackedDocs([]), ValueError, "dim="),
        (lambda: PackedDocs(np.ones((3, 3))), TypeError, "list of 2-D"),
        (lambda: PackedDocs([np.array([["a"]])]), TypeError, "floats"),
        (lambda: PackedDocs([np.ones((2, 3))], dtype="int8"), ValueError, "fp32"),
        (lambda: PackedDocs([np.full((2, 3), np.nan)]), ValueError, "NaN"),
        (lambda: PackedDocs([np.full((2, 3), np.inf)]), ValueError, "NaN or infinity"),
        (lambda: PackedDocs([np.full((2, 3), 70000.0)], dtype="fp16"), ValueError, "overflows fp16"),
        (lambda: PackedDocs((np.ones((4, 3)), np.array([0, 5]))), ValueError, "offsets"),
        (lambda: PackedDocs((np.ones((4, 3)), np.array([0, 3, 2, 4]))), ValueError, "non-decreasing"),
        (lambda: PackedDocs([np.ones((2, 3))], num_threads=0), ValueError, "num_threads"),
        (lambda: PackedDocs([np.ones((2, 0))]), ValueError, "dim >= 1"),
    ],
)
def test_bad_documents_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_queries_raise_clear_errors():
    packed = PackedDocs([np.ones((2, 3), np.float32)])
    with pytest.raises(ValueError, match="same model"):
        maxsim(np.ones((2, 4)), packed)
    with pytest.raises(ValueError, match="NaN or infinity"):
        maxsim(np.array([[1.0, np.nan, 0.0]]), packed)
    with pytest.raises(ValueError, match="2-D"):
        maxsim(np.ones(3), packed)
    with pytest.raises(ValueError, match="query_mask"):
        maxsim(np.ones((2, 3)), packed, query_mask=np.ones(3, bool))
    with pytest.raises(TypeError, match="PackedDocs"):
        maxsim(np.ones((2, 3)), [np.ones((2, 3))])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        maxsim(np.ones((2, 3)), packed, num_threads=-2)
    with pytest.raises(ValueError, match="integer"):
        maxsim(np.ones((2, 3)), packed, doc_ids=[0.5])


def test_from_buffers_checks_layout():
    packed = PackedDocs([np.ones((2, 3), np.float32)], dtype="fp16")
    same = PackedDocs.from_buffers(packed.data, packed.offsets, dim=3, dtype="fp16")
    assert maxsim(np.ones((1, 3)), same).tolist() == maxsim(np.ones((1, 3)), packed).tolist()
    with pytest.raises(ValueError, match="packed data"):
        PackedDocs.from_buffers(packed.data, packed.offsets, dim=3, dtype="fp32")
    with pytest.raises(ValueError, match="offsets"):
        PackedDocs.from_buffers(packed.data, np.array([0, 1]), dim=3, dtype="fp16")


def test_dlpack_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    docs = [unit(rng, n, 16) for n in [4, 7]]
    query = unit(rng, 5, 16)
    packed = PackedDocs([torch.from_numpy(d) for d in docs])
    np.testing.assert_array_equal(maxsim(torch.from_numpy(query), packed), maxsim(query, PackedDocs(docs)))
    with pytest.raises(TypeError, match="detach"):
        maxsim(torch.ones(2, 16, requires_grad=True), packed)


def test_build_info_lists_maxsim_kernels():
    kernels = crossrank.build_info()["maxsim_kernels"]
    assert set(kernels) == set(DTYPES)
    assert all(name.endswith("/" + dt) for dt, name in kernels.items())
    assert _core.maxsim_kernel("fp32", "scalar") == "scalar/fp32"


# ----------------------------------------------------------------------------------------------
# On-disk store
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def small_packed():
    rng = np.random.default_rng(10)
    return [unit(rng, n, 10) for n in [3, 0, 6]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_store_round_trip(tmp_path, small_packed, dtype):
    packed = PackedDocs(small_packed, dtype=dtype)
    store = PackedDocStore.save(tmp_path / "s", packed, ids=["a", "b", "c"], metadata={"model": "m"})
    opened = PackedDocStore.open(tmp_path / "s")
    assert opened.ids == ["a", "b", "c"]
    assert opened.metadata == {"model": "m"}
    assert len(opened) == 3
    assert isinstance(opened.docs.data, np.memmap)
    assert not opened.docs.data.flags.writeable
    np.testing.assert_array_equal(opened.docs.data, packed.data)
    np.testing.assert_array_equal(opened.docs.offsets, packed.offsets)
    q = np.ones((2, 10), np.float32)
    np.testing.assert_array_equal(maxsim(q, opened), maxsim(q, packed))
    assert "PackedDocStore" in repr(store)


def test_store_without_ids_and_empty_store(tmp_path):
    PackedDocStore.save(tmp_path / "e", PackedDocs([], dim=4))
    opened = PackedDocStore.open(tmp_path / "e")
    assert opened.ids is None
    assert len(opened) == 0
    assert opened.docs.dim == 4


def test_store_refuses_to_overwrite_and_checks_ids(tmp_path, small_packed):
    packed = PackedDocs(small_packed)
    PackedDocStore.save(tmp_path / "s", packed)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        PackedDocStore.save(tmp_path / "s", packed)
    PackedDocStore.save(tmp_path / "s", packed, ids=["x", "y", "z"], overwrite=True)
    assert PackedDocStore.open(tmp_path / "s").ids == ["x", "y", "z"]
    PackedDocStore.save(tmp_path / "s", packed, overwrite=True)
    assert PackedDocStore.open(tmp_path / "s").ids is None
    with pytest.raises(ValueError, match="ids has 1"):
        PackedDocStore.save(tmp_path / "t", packed, ids=["x"])


def _edit_manifest(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_store_corruption_is_a_state_error(tmp_path, small_packed):
    root = tmp_path / "s"
    PackedDocStore.save(root, PackedDocs(small_packed, dtype="fp16"), ids=["a", "b", "c"])

    data = bytearray((root / "tokens.bin").read_bytes())
    data[5] ^= 0xFF
    (root / "tokens.bin").write_bytes(bytes(data))
    with pytest.raises(StateError, match="SHA-256"):
        PackedDocStore.open(root)
    PackedDocStore.open(root, verify=False)  # sizes still fine: opening unverified is allowed

    (root / "tokens.bin").write_bytes(bytes(data[:-2]))
    with pytest.raises(StateError, match="truncated"):
        PackedDocStore.open(root, verify=False)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "someone.else"}, "not a 'crossrank.packed_docs'"),
        ({"format_version": 2}, "upgrade crossrank"),
        ({"format_version": "1"}, "invalid format version"),
        ({"dtype": "int4"}, "field 'dtype' is invalid"),
        ({"stride": 3}, "layout"),
        ({"n_tokens": 1}, "bytes"),
        ({"files": {}}, "does not describe"),
    ],
)
def test_store_foreign_future_or_malformed_manifest_is_a_state_error(tmp_path, small_packed, change, match):
    root = tmp_path / "s"
    PackedDocStore.save(root, PackedDocs(small_packed))
    _edit_manifest(root, **change)
    with pytest.raises(StateError, match=match):
        PackedDocStore.open(root)


def test_store_missing_or_unreadable_manifest_is_a_state_error(tmp_path, small_packed):
    with pytest.raises(StateError, match="no manifest"):
        PackedDocStore.open(tmp_path)
    root = tmp_path / "s"
    PackedDocStore.save(root, PackedDocs(small_packed))
    (root / "offsets.bin").unlink()
    with pytest.raises(StateError, match="missing"):
        PackedDocStore.open(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        PackedDocStore.open(root)
    (root / "manifest.json").write_text("[1, 2]")
    with pytest.raises(StateError, match="not a"):
        PackedDocStore.open(root)


def test_store_bad_offsets_with_matching_checksum_is_a_state_error(tmp_path, small_packed):
    root = tmp_path / "s"
    PackedDocStore.save(root, PackedDocs(small_packed))
    (root / "offsets.bin").write_bytes(np.array([0, 5, 3, 9], "<i8").tobytes())
    manifest = json.loads((root / "manifest.json").read_text())
    import hashlib

    manifest["files"]["offsets.bin"]["sha256"] = hashlib.sha256(
        (root / "offsets.bin").read_bytes()
    ).hexdigest()
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StateError, match="invalid offsets"):
        PackedDocStore.open(root)


def test_store_golden_v1_still_reads():
    from pathlib import Path

    golden = Path(__file__).parent / "data" / "maxsim_store_v1"
    store = PackedDocStore.open(golden)
    assert store.ids == ["d0", "d1", "d2"]
    assert store.docs.dtype == "fp16"
    assert store.docs.dim == 3
    np.testing.assert_array_equal(store.docs.doc(0), [[1, 0, 0], [0, 1, 0]])
    assert store.docs.doc_lengths.tolist() == [2, 0, 1]
    assert maxsim(np.eye(3, dtype=np.float32), store).tolist() == [2.0, 0.0, 0.5]


def test_module_doctest():
    import doctest

    result = doctest.testmod(sys.modules["crossrank.rerank.maxsim"])
    assert result.failed == 0
    assert result.attempted > 0


def test_scoring_releases_the_gil():
    # One long C++ call in a worker; the main thread keeps running Python meanwhile. Were the GIL
    # held, the main thread would stall for the whole call (the largest gap ~ the call's length).
    import threading
    import time

    rng = np.random.default_rng(12)
    offsets = np.arange(0, 3000 * 64 + 1, 64)
    packed = PackedDocs((unit(rng, int(offsets[-1]), 128), offsets))
    queries = [unit(rng, 32, 128) for _ in range(16)]
    started = threading.Event()
    span = []

    def work():
        started.set()
        t0 = time.perf_counter()
        maxsim_batch(queries, packed, num_threads=1)
        span.append(time.perf_counter() - t0)

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    last, gap = time.perf_counter(), 0.0
    while worker.is_alive():
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    worker.join()
    assert span[0] > 0.1
    assert gap < 0.5 * span[0]


def test_store_save_over_an_open_store_keeps_it_working(tmp_path, small_packed):
    """Re-saving a store (e.g. re-indexing while a ColBERT reranker serves) never rewrites the files
    an open store has mapped: it keeps scoring its old data instead of dying with SIGBUS."""
    root = tmp_path / "s"
    old = PackedDocs(small_packed)
    PackedDocStore.save(root, old, ids=["a", "b", "c"])
    opened = PackedDocStore.open(root)
    q = np.ones((2, 10), np.float32)
    before = maxsim(q, opened)
    bigger = PackedDocs([*small_packed, *small_packed], dtype="fp16")
    PackedDocStore.save(root, bigger, overwrite=True)
    np.testing.assert_array_equal(maxsim(q, opened), before)  # the old inodes are still mapped
    assert opened.ids == ["a", "b", "c"]
    reopened = PackedDocStore.open(root)
    assert len(reopened) == 6 and reopened.ids is None  # noqa: PT018
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_store_save_validates_before_touching_anything(tmp_path, small_packed):
    root = tmp_path / "s"
    PackedDocStore.save(root, PackedDocs(small_packed), ids=["a", "b", "c"])
    files = {p.name: p.read_bytes() for p in root.iterdir()}
    with pytest.raises(ValueError, match="ids has 2"):
        PackedDocStore.save(root, PackedDocs(small_packed), ids=["x", "y"], overwrite=True)
    with pytest.raises(ValueError, match="JSON"):
        PackedDocStore.save(root, PackedDocs(small_packed), metadata={"bad": object()}, overwrite=True)
    with pytest.raises(TypeError, match="metadata must be a dict"):
        PackedDocStore.save(root, PackedDocs(small_packed), metadata=["x"], overwrite=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        PackedDocStore.save(root, PackedDocs(small_packed), ids="abc", overwrite=True)
    assert {p.name: p.read_bytes() for p in root.iterdir()} == files
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a saved"):
        PackedDocStore.save(tmp_path / "other", PackedDocs(small_packed), overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"dim": "10"}, "field 'dim' must be int"),
        ({"dim": 10**30}, "field 'dim' is invalid"),
        ({"n_docs": None}, "field 'n_docs' must be int"),
        ({"files": ["tokens.bin"]}, "field 'files' must be dict"),
        ({"files": {"tokens.bin": {"bytes": "1"}, "offsets.bin": {}}}, "field 'bytes' must be int"),
        ({"metadata": [1]}, "field 'metadata' must be dict"),
        ({"format_version": True}, "invalid format version"),
    ],
)
def test_store_manifest_type_errors_are_state_errors(tmp_path, small_packed, change, match):
    root = tmp_path / "s"
    PackedDocStore.save(root, PackedDocs(small_packed))
    _edit_manifest(root, **change)
    with pytest.raises(StateError, match=match):
        PackedDocStore.open(root)


def test_store_manifest_uses_the_shared_convention(tmp_path, small_packed):
    PackedDocStore.save(tmp_path / "s", PackedDocs(small_packed))
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["format"] == "crossrank.packed_docs"
    assert manifest["format_version"] == 1
    assert "version" not in manifest
