"""ShardedBM25Index built as Ray tasks on a real local Ray cluster (127.0.0.1, 2 CPUs) equals the
local build and one unsharded index, also after an add."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank.eval.datasets import load_beir
from crossrank.retrieve import sharded_bm25
from crossrank.retrieve.bm25 import BM25Index
from crossrank.retrieve.sharded_bm25 import ShardedBM25Index


def test_ray_task_build_equals_one_index(ray_local, datasets_dir, monkeypatch) -> None:
    ds = load_beir(datasets_dir / "scifact", judged_only=False)
    texts, ids = ds.documents(), list(ds.doc_ids)
    queries = [*list(ds.queries.values())[:100], ""]
    cut = 4000

    def not_here(*args, **kwargs):
        raise AssertionError("with ray=True the shards are built in Ray workers, not in this process")

    # The workers import crossrank afresh: only the driver's copy is patched.
    monkeypatch.setattr(sharded_bm25, "_build_shard", not_here)
    sharded = ShardedBM25Index.build(texts[:cut], ids=ids[:cut], num_shards=4, ray=True, variant="bm25l")
    monkeypatch.undo()
    assert sharded.shard_sizes == [1000, 1000, 1000, 1000]
    single = BM25Index.build(texts[:cut], ids=ids[:cut], variant="bm25l")
    got, want = sharded.search(queries, k=100), single.search(queries, k=100)
    assert (got.ids == want.ids).all()
    assert np.array_equal(got.scores, want.scores)
    sharded.add(texts[cut:], ids=ids[cut:], shard=2)
    single.add(texts[cut:], ids=ids[cut:])
    got, want = sharded.search(queries, k=100), single.search(queries, k=100)
    assert (got.ids == want.ids).all()
    np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-6)


def test_ray_argument_is_checked() -> None:
    with pytest.raises(TypeError, match="ray must be a bool or an address"):
        ShardedBM25Index.build(["a b"], num_shards=1, ray=1)  # type: ignore[arg-type]
