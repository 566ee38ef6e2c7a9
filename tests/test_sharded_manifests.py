"""Every field of a sharded index's manifest, replaced by a wrong value or deleted, and garbage in
ids.json (with a matching checksum), make load raise StateError: never another exception."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from crossrank.errors import StateError
from crossrank.retrieve.sharded_bm25 import ShardedBM25Index
from crossrank.retrieve.sharded_dense import ShardedDenseIndex

WRONG = [None, -1, "../x", [1], {"a": 1}, "DELETE"]


def _saved(kind: str, root):  # type: ignore[no-untyped-def]
    if kind == "bm25":
        ShardedBM25Index.build(["a b", "c d", "e f"], ids=["x", "y", "z"], num_shards=2).save(root)
        return ShardedBM25Index
    ShardedDenseIndex.build(np.eye(4, dtype=np.float32), num_shards=2).save(root)
    return ShardedDenseIndex


def _paths(obj, prefix=()):  # type: ignore[no-untyped-def]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@pytest.mark.parametrize("kind", ["bm25", "dense"])
def test_malformed_manifests_and_ids_are_state_errors(tmp_path, kind) -> None:
    cls = _saved(kind, tmp_path / "orig")
    original = json.loads((tmp_path / "orig" / "manifest.json").read_text())
    work = tmp_path / "work"
    shutil.copytree(tmp_path / "orig", work)
    # crossrank_version only says who wrote the files; every other field is checked.
    cases = [(p, v) for p in _paths(original) if p != ("crossrank_version",) for v in WRONG]
    for path, value in cases:
        body = json.loads(json.dumps(original))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if value == "DELETE":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        (work / "manifest.json").write_text(json.dumps(body))  # loads change nothing else
        if body == original:
            continue
        with pytest.raises(StateError):
            cls.load(work)
    for content in ["{", "5", '{"a": 1}', '["x", "x", "y"]', "[null, 1, 2, 3]", "[1, 2]"]:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(tmp_path / "orig", work)
        (work / "ids.json").write_text(content)
        body = json.loads(json.dumps(original))
        body["sha256"]["ids.json"] = hashlib.sha256(content.encode()).hexdigest()
        (work / "manifest.json").write_text(json.dumps(body))
        with pytest.raises(StateError, match="ids"):
            cls.load(work)
