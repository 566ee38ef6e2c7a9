"""What the sharded first stages share: how a corpus is split, the exact merge of per-shard top-k
lists, the check that saved shards agree, and the lazy connection to Ray.

Global document order
---------------------
Every document of a sharded index has a *global position*: its place in the sequence of all
documents ever given to the index, ``build`` first, then each ``add`` in call order. It is the
position the document would have in one unsharded index built from the same calls, and the
tie-break of every merge: equal scores rank by lower global position, exactly as the unsharded
index ranks equal scores by lower document position. Each shard stores the global positions of its
documents as its ids, in increasing order, so a shard's own tie order agrees with the global one and
the first ``k`` of the merged per-shard top-``k`` lists are the exact global top-``k``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from ..errors import StateError

__all__ = ["check_same", "merge_topk", "ray_module", "scatter", "split_bounds"]

_T = TypeVar("_T")


def split_bounds(n: int, num_shards: int) -> list[int]:
    """Bounds of ``num_shards`` contiguous, near-equal ranges of ``n`` documents (``n >= num_shards``)."""
    return [i * n // num_shards for i in range(num_shards + 1)]


def merge_topk(
    positions: Sequence[np.ndarray], scores: Sequence[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard results (global positions int64 and float32 scores, each [nq, k_s]) into the
    first ``k`` by (descending score, ascending global position); returns (positions, scores) [nq, <= k].

    Places a shard could not fill (an approximate index: position -1, score -inf) sort last.
    """
    pos = np.concatenate([np.asarray(p, dtype=np.int64) for p in positions], axis=1)
    sc = np.concatenate([np.asarray(s, dtype=np.float32) for s in scores], axis=1)
    k = min(k, pos.shape[1])
    if pos.size and int(pos.max()) >= _NO_POS:
        return _merge_lexsort(pos, sc, k)
    # One uint64 key per hit, ordered as (descending score, ascending position): the high half is
    # the float32 score's bits turned into an order-preserving integer and inverted, the low half the
    # position (unfilled places: the largest). Sorting integers is exact and much faster than a
    # two-key lexsort; both halves are decoded back bit for bit.
    i = (sc + np.float32(0.0)).view(np.int32)  # -0.0 becomes 0.0: equal scores, one key
    ordered = i ^ ((i >> 31) & np.int32(0x7FFFFFFF))  # float order as signed int order
    key = (np.int64(0x7FFFFFFF) - ordered.astype(np.int64)).astype(np.uint64) << np.uint64(32)
    if (pos < 0).any():
        pos = np.where(pos < 0, _NO_POS, pos)
    key |= pos.astype(np.uint64)
    if k < key.shape[1]:
        key = np.partition(key, k - 1, axis=1)[:, :k]
    key.sort(axis=1)
    back = (np.int64(0x7FFFFFFF) - (key >> np.uint64(32)).astype(np.int64)).astype(np.int32)
    out_scores = (back ^ ((back >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)
    out_pos = (key & np.uint64(_NO_POS)).astype(np.int64)
    out_pos[out_pos == _NO_POS] = -1
    return out_pos, out_scores


# The low 32 bits of a merge key: positions must stay below it (else the lexsort path runs).
_NO_POS = 0xFFFFFFFF


def _merge_lexsort(pos: np.ndarray, sc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The obvious merge (two-key lexsort): the reference of :func:`merge_topk`, and its path for
    positions beyond 32 bits."""
    key_pos = np.where(pos < 0, np.iinfo(np.int64).max, pos)
    order = np.lexsort((key_pos, -sc), axis=-1)[:, :k]
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(sc, order, axis=1)


def scatter(items: Sequence[_T], call: Callable[[_T, int], Any], threads: int) -> list[Any]:
    """``[call(item, per_item_threads) for item in items]``, the items spread over ``threads``
    threads (the callees release the GIL); ``threads`` 0 means the CPU quota."""
    if threads == 0:
        from .. import _core

        threads = int(_core.default_num_threads())
    if threads <= 1 or len(items) <= 1:
        return [call(item, max(threads, 1)) for item in items]
    per_item = max(1, threads // len(items))
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(lambda item: call(item, per_item), items))


def check_same(expected: Mapping[str, Any], found: Mapping[str, Any], where: str, field: str) -> None:
    """Raise :class:`StateError` naming ``where`` and the first field of ``found`` that differs."""
    for key in sorted(set(expected) | set(found)):
        if key not in found or key not in expected or found[key] != expected[key]:
            raise StateError(
                f"{where}: field '{field}.{key}' is {found.get(key)!r} but the sharded index has "
                f"{expected.get(key)!r}; every shard must be built with the same {field}"
            )


def ray_module(address: bool | str) -> Any:
    """Ray, connected to a cluster (:func:`crossrank.ray.connect`; the ``[ray]`` extra).

    ``address`` True uses the running Ray session, or starts a local one; a string is the address of
    a running cluster (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``). An address that cannot be
    reached is a one-line ``ValueError`` naming it.
    """
    from ..ray import connect

    connect(None if address is True else str(address))
    import ray

    return ray
