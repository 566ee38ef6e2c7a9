"""ShardedDenseIndex (flat FAISS shards, merged by score) equals one unsharded flat DenseIndex, before
and after adds; exact ties rank by global position (checked against a NumPy reference); save/load;
StateError for shards that do not belong together."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from crossrank.errors import StateError
from crossrank.retrieve.dense import DenseIndex
from crossrank.retrieve.sharded_dense import ShardedDenseIndex

DIM = 48


def _unit(rng, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return _unit(rng, 6000), _unit(rng, 60), [f"doc{i}" for i in range(6000)]


def assert_same_hits(got, want) -> None:
    assert got.ids.shape == want.ids.shape
    assert (got.ids == want.ids).all()
    np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_shards", [1, 2, 4, 7])
def test_equals_unsharded_before_and_after_add(data, num_shards) -> None:
    x, q, ids = data
    sharded = ShardedDenseIndex.build(x[:4000], ids[:4000], num_shards=num_shards)
    single = DenseIndex.build(x[:4000], ids[:4000])
    # 5 queries: FAISS's per-pair path; 60 queries: its BLAS path.
    for queries in (q[:5], q):
        assert_same_hits(sharded.search(queries, 100), single.search(queries, 100))
    sharded.add(x[4000:5000], ids[4000:5000], shard=num_shards - 1)
    sharded.add(x[5000:], ids[5000:])
    single.add(x[4000:], ids[4000:])
    assert len(sharded) == 6000
    assert sum(sharded.shard_sizes) == 6000
    for queries in (q[:5], q):
        assert_same_hits(sharded.search(queries, 100), single.search(queries, 100))
    assert_same_hits(sharded.search(q[:3], 10_000), single.search(q[:3], 10_000))


@pytest.mark.parametrize("nq", [3, 40])
def test_exact_ties_rank_by_global_position(nq) -> None:
    rng = np.random.default_rng(3)
    base = _unit(rng, 6)
    x = base[rng.integers(0, 6, 300)]  # many exactly equal vectors: ties everywhere, at the cutoff too
    q = _unit(rng, nq)
    sharded = ShardedDenseIndex.build(x, num_shards=4)
    got = sharded.search(q, 50)
    scores = q @ x.T
    # NumPy reference: descending score (FAISS's float32 products), ascending position among ties.
    faiss_scores = DenseIndex.build(x).search(q, 300)
    for i in range(nq):
        by_id = dict(zip(faiss_scores.ids[i].tolist(), faiss_scores.scores[i].tolist(), strict=True))
        s = np.array([by_id[j] for j in range(300)], dtype=np.float32)
        want = np.lexsort((np.arange(300), -s))[:50]
        assert got.ids[i].tolist() == want.tolist()
        np.testing.assert_allclose(got.scores[i], scores[i][want], atol=1e-6)


def test_save_load_round_trip(data, tmp_path) -> None:
    x, q, ids = data
    sharded = ShardedDenseIndex.build(x[:3000], ids[:3000], num_shards=3)
    sharded.save(tmp_path / "idx")
    loaded = ShardedDenseIndex.load(tmp_path / "idx")
    assert loaded.ids == ids[:3000]
    assert_same_hits(loaded.search(q, 20), sharded.search(q, 20))
    loaded.add(x[3000:3100], ids[3000:3100])
    assert_same_hits(loaded.search(q, 20), DenseIndex.build(x[:3100], ids[:3100]).search(q, 20))


def test_bad_arguments(data) -> None:
    x, _, _ = data
    with pytest.raises(ValueError, match="num_shards"):
        ShardedDenseIndex.build(x[:3], num_shards=4)
    with pytest.raises(ValueError, match="non-empty"):
        ShardedDenseIndex.build(np.zeros((0, DIM)), num_shards=1)
    index = ShardedDenseIndex.build(x[:10], [f"a{i}" for i in range(10)], num_shards=2)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(x[:1], ["a3"])
    with pytest.raises(ValueError, match="dimension"):
        index.add(np.zeros((1, DIM + 1), dtype=np.float32), ["b"])
    with pytest.raises(ValueError, match="shard"):
        index.add(x[:1], ["b"], shard=5)
    with pytest.raises(ValueError, match="k"):
        index.search(x[:1], 0)
    assert len(index) == 10


def test_foreign_shards_are_state_errors(data, tmp_path) -> None:
    x, _, _ = data
    root = tmp_path / "idx"
    ShardedDenseIndex.build(x[:90], num_shards=3).save(root)

    def replace(i: int, index: DenseIndex) -> None:
        shutil.rmtree(root / f"shard-{i:03d}")
        index.save(root / f"shard-{i:03d}")

    replace(1, DenseIndex.build(x[30:60], list(range(30, 60)), kind="hnsw"))
    with pytest.raises(StateError, match=r"shard 1 .*field 'index\.kind' is 'hnsw'"):
        ShardedDenseIndex.load(root)
    replace(1, DenseIndex.build(x[30:60, :16], list(range(30, 60))))
    with pytest.raises(StateError, match=r"shard 1 .*field 'index\.dim' is 16"):
        ShardedDenseIndex.load(root)
    replace(1, DenseIndex.build(x[60:90], list(range(30, 60))))  # the right kind, other vectors
    with pytest.raises(StateError, match=r"shard 1 .*SHA-256"):
        ShardedDenseIndex.load(root)
    ShardedDenseIndex.build(x[:90], num_shards=3).save(root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shard_format_version"] = 7
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StateError, match=r"shard 0 .*field 'format_version'"):
        ShardedDenseIndex.load(root)
