"""Dense vectors split over FAISS shards, searched by scatter-gather: :class:`ShardedDenseIndex`.

Each shard is a :class:`~crossrank.retrieve.dense.DenseIndex` over a part of the vectors. Inner
products need no collection statistics, so a search asks every shard for its top-``k`` and merges
them by score, ties by global position (see :mod:`crossrank.retrieve.shards`). With ``kind="flat"``
(exact search) the result equals one flat :class:`DenseIndex` over all vectors in the same order:
the same ids, scores equal up to the last float32 bit of FAISS's dot products (the same vectors
give the same products whatever shard they sit in, except that FAISS's BLAS blocking may order a
sum differently), and equal scores in position order (FAISS itself lists exactly tied scores in an
unspecified order; the sharded index always lists them by ascending global position). Approximate kinds (``hnsw``, ``ivfpq``) are searched and merged the same way but
each shard approximates on its own, so they do not equal one approximate index.

Persistence: a directory with ``manifest.json`` (format ``crossrank.dense.sharded``) and one saved
:class:`DenseIndex` per shard, written aside and swapped in by one rename.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._common import (
    MANIFEST,
    atomic_directory,
    check_int,
    manifest_body,
    manifest_field,
    read_consistent,
    read_manifest,
    sha256_file,
    write_json,
)
from ..errors import StateError
from ..types import Hits
from .dense import _FORMAT as _SHARD_FORMAT
from .dense import _FORMAT_VERSION as _SHARD_FORMAT_VERSION
from .dense import DenseIndex, _check_id, _check_vectors
from .shards import check_same, merge_topk, split_bounds

__all__ = ["ShardedDenseIndex"]

FORMAT_NAME = "crossrank.dense.sharded"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class _State:
    shards: tuple[DenseIndex, ...]  # ids: global positions (int, increasing)
    ids: np.ndarray  # caller ids (object) by global position


class ShardedDenseIndex:
    """FAISS shards searched by scatter-gather and merged by score.

    Make one with :meth:`build` or :meth:`load`; the constructor is internal.

    Thread safety: one instance may be shared across threads. Searches run concurrently with each
    other, with :meth:`save` and with :meth:`add`; an add builds the changed shard aside and
    publishes the new set of shards with one reference swap. Adds take a lock, one at a time.
    """

    def __init__(self, *, _state: _State) -> None:
        self._state = _state
        self._write_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: Sequence[str | int] | None = None,
        *,
        num_shards: int,
        **kwargs: Any,
    ) -> ShardedDenseIndex:
        """Split ``vectors`` into ``num_shards`` contiguous parts, one :class:`DenseIndex` each.

        Parameters
        ----------
        vectors : array-like of float, shape [n, dim]
            The document vectors (n >= 1), in global order.
        ids : sequence of str or int, optional
            One unique id per row; default the global positions 0..n-1.
        num_shards : int
            Number of shards, in [1, n].
        **kwargs
            Options of every shard's :class:`DenseIndex` (``kind``, ...). Only ``kind="flat"``
            equals one unsharded index.

        Raises
        ------
        ValueError
            Empty input, NaN/inf rows, duplicate ids or ids of the wrong length, ``num_shards``
            out of range.
        TypeError
            An id that is not a str or an int.
        """
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(
                f"cannot build a ShardedDenseIndex from {arr.shape} vectors: pass a non-empty [n, dim] array"
            )
        arr = _check_vectors(arr, None, "vectors")
        n = arr.shape[0]
        num_shards = check_int(num_shards, "num_shards", minimum=1, maximum=n)
        all_ids = _caller_ids(ids, n, set())
        bounds = split_bounds(n, num_shards)
        shards = tuple(
            DenseIndex.build(arr[lo:hi], list(range(lo, hi)), **kwargs)
            for lo, hi in itertools.pairwise(bounds)
        )
        return cls(_state=_State(shards, all_ids))

    def add(
        self, vectors: npt.ArrayLike, ids: Sequence[str | int] | None = None, *, shard: int | None = None
    ) -> None:
        """Append vectors to one shard (they take the next global positions).

        Parameters
        ----------
        vectors : array-like of float, shape [n, dim]
            The new vectors.
        ids : sequence of str or int, optional
            One id per row, not already used; default continues the global positions.
        shard : int, optional
            The shard that receives them; default the one with the fewest vectors (the first of
            those).

        Raises
        ------
        ValueError
            Wrong dimension, NaN/inf rows, ids of the wrong length or already used, ``shard``
            out of range.
        """
        with self._write_lock:
            st = self._state
            first = st.shards[0]
            arr = _check_vectors(vectors, first.dim, "vectors")
            n, start = arr.shape[0], len(st.ids)
            if shard is None:
                sizes = [len(s) for s in st.shards]
                target = sizes.index(min(sizes))
            else:
                target = check_int(shard, "shard", minimum=0, maximum=len(st.shards) - 1)
            new_ids = _caller_ids(ids, n, set(st.ids.tolist()), start=start)
            if n == 0:
                return
            old = st.shards[target]
            # A new shard object: searches running on `st` keep the old one untouched.
            grown = _copy(old)
            grown.add(arr, list(range(start, start + n)))
            shards = list(st.shards)
            shards[target] = grown
            self._state = _State(tuple(shards), np.concatenate([st.ids, new_ids]))

    def search(self, queries: npt.ArrayLike, k: int = 10) -> Hits:
        """Return the ``k`` best documents of each query: every shard's top-k merged by score.

        Parameters
        ----------
        queries : array-like of float, shape [nq, dim]
            The query vectors.
        k : int
            Hits per query, >= 1; ``min(k, len(self))`` columns are returned.

        Returns
        -------
        crossrank.types.Hits
            ``ids`` object [nq, min(k, n)] and ``scores`` float32, best first, ties by global
            position; places an approximate shard could not fill hold id None and score -inf.

        Raises
        ------
        ValueError
            ``k < 1``, wrong dimension, NaN/inf queries.
        TypeError
            ``k`` is not an int.
        """
        k = check_int(k, "k", minimum=1)
        st = self._state
        q = _check_vectors(queries, st.shards[0].dim, "queries")
        # Shard after shard: FAISS already spreads each search over its OpenMP threads.
        hits = [s.search(q, k) for s in st.shards]
        positions = [np.where(h.ids == None, -1, h.ids).astype(np.int64) for h in hits]  # noqa: E711
        pos, scores = merge_topk(positions, [h.scores for h in hits], min(k, len(st.ids)))
        ids = np.full(pos.shape, None, dtype=object)
        ok = pos >= 0
        ids[ok] = st.ids[pos[ok]]
        return Hits(ids, scores)

    def __len__(self) -> int:
        return len(self._state.ids)

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return len(self._state.shards)

    @property
    def shard_sizes(self) -> list[int]:
        """Vectors in each shard."""
        return [len(s) for s in self._state.shards]

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._state.shards[0].dim

    @property
    def ids(self) -> list[str | int]:
        """The caller's ids in global order."""
        return self._state.ids.tolist()

    def __repr__(self) -> str:
        st = self._state
        return (
            f"ShardedDenseIndex(dim={self.dim}, kind={st.shards[0].kind!r}, size={len(st.ids)}, "
            f"shards={len(st.shards)})"
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to a directory, atomically (the old index or the new one, never a mix).

        Layout: ``manifest.json`` (format, version, kind, dim, parameters, shard names with sizes
        and the SHA-256 of their manifests, the ids file's SHA-256), ``ids.json`` (caller ids by
        global position) and ``shard-000``, ... each a saved :class:`DenseIndex`.

        Parameters
        ----------
        path : path-like
            The index directory: created, or replaced when it holds a sharded dense index.

        Raises
        ------
        FileExistsError
            ``path`` is a non-empty directory that does not hold a sharded dense index.
        """
        st = self._state
        first = st.shards[0]
        with atomic_directory(path, overwrite=True, replaces=FORMAT_NAME) as tmp:
            names = [f"shard-{i:03d}" for i in range(len(st.shards))]
            for name, shard in zip(names, st.shards, strict=True):
                shard.save(tmp / name)
            with open(tmp / "ids.json", "w", encoding="utf-8") as f:
                json.dump(st.ids.tolist(), f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            body = manifest_body(
                FORMAT_NAME,
                FORMAT_VERSION,
                kind=first.kind,
                dim=first.dim,
                size=len(st.ids),
                params=_kwargs(first),
                shard_format_version=_SHARD_FORMAT_VERSION,
                shards=[
                    {"name": n, "size": len(s), "manifest_sha256": sha256_file(tmp / n / MANIFEST)}
                    for n, s in zip(names, st.shards, strict=True)
                ],
                sha256={"ids.json": sha256_file(tmp / "ids.json")},
            )
            write_json(tmp / MANIFEST, body)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> ShardedDenseIndex:
        """Open an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The index directory.
        **kwargs
            ``use_gpu``, ``num_threads`` as in :meth:`DenseIndex.load`, for every shard.

        Raises
        ------
        FileNotFoundError
            No such directory.
        crossrank.errors.StateError
            Missing or corrupted files; a shard whose format version, kind, dimension or
            parameters differ from the manifest's (the message names the shard and the field).
        """
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no sharded dense index directory at {root}")
        return read_consistent(root, lambda: cls._load(root, kwargs))

    @classmethod
    def _load(cls, root: Path, kwargs: dict[str, Any]) -> ShardedDenseIndex:
        manifest, _ = read_manifest(root, FORMAT_NAME, FORMAT_VERSION, label="sharded dense")
        mpath = root / MANIFEST
        kind = manifest_field(manifest, "kind", str, mpath)
        dim = manifest_field(manifest, "dim", int, mpath)
        size = manifest_field(manifest, "size", int, mpath)
        params = manifest_field(manifest, "params", dict, mpath)
        shard_version = manifest_field(manifest, "shard_format_version", int, mpath)
        entries = manifest_field(manifest, "shards", list, mpath)
        digests = manifest_field(manifest, "sha256", dict, mpath)
        if not entries:
            raise StateError(f"{mpath}: field 'shards' is empty")
        shards: list[DenseIndex] = []
        for i, entry in enumerate(entries):
            where = f"{mpath}: field 'shards'[{i}]"
            if not isinstance(entry, dict):
                raise StateError(f"{where} must be an object")
            name = manifest_field(entry, "name", str, where)
            if "/" in name or name in ("", ".", ".."):
                raise StateError(f"{where}: invalid shard name {name!r}")
            shard_dir = root / name
            label = f"shard {i} ({shard_dir})"
            _, version = read_manifest(shard_dir, _SHARD_FORMAT, _SHARD_FORMAT_VERSION, label="DenseIndex")
            if version != shard_version:
                raise StateError(
                    f"{label}: field 'format_version' is {version} but the sharded index was saved "
                    f"with shards of version {shard_version}; save every shard with one crossrank"
                )
            shard = DenseIndex.load(shard_dir, **kwargs)
            check_same({"kind": kind, "dim": dim}, {"kind": shard.kind, "dim": shard.dim}, label, "index")
            check_same(params, _kwargs(shard), label, "params")
            if sha256_file(shard_dir / MANIFEST) != manifest_field(entry, "manifest_sha256", str, where):
                raise StateError(
                    f"{label}: its manifest does not match the SHA-256 recorded for it; it is not the "
                    "shard this index saved (replaced or corrupted)"
                )
            if len(shard) != manifest_field(entry, "size", int, where):
                raise StateError(
                    f"{label}: holds {len(shard)} vectors, the manifest's field 'size' disagrees"
                )
            shards.append(shard)
        id_file = root / "ids.json"
        if not id_file.is_file():
            raise StateError(f"{id_file} is missing; the saved index is incomplete")
        if sha256_file(id_file) != manifest_field(digests, "ids.json", str, f"{mpath}: field 'sha256'"):
            raise StateError(f"{id_file} is corrupted (checksum mismatch)")
        try:
            with open(id_file, encoding="utf-8") as f:
                raw = json.load(f)
            ids = _caller_ids(raw, size, set())
        except (OSError, TypeError, ValueError, RecursionError) as exc:  # JSON errors are ValueErrors
            raise StateError(f"{id_file}: invalid ids ({exc})") from None
        positions = np.concatenate([np.asarray(s.ids, dtype=np.int64) for s in shards])
        if len(positions) != size or not np.array_equal(np.sort(positions), np.arange(size)):
            raise StateError(
                f"{mpath}: the shards' vectors are not the global positions 0..{size - 1} once each"
            )
        return cls(_state=_State(tuple(shards), ids))


def _kwargs(index: DenseIndex) -> dict[str, Any]:
    return dict(index.params)


def _copy(index: DenseIndex) -> DenseIndex:
    """An independent copy of a shard (FAISS ``clone_index``: the same vectors, graph or codes)."""
    import faiss

    copy = DenseIndex(index.dim, kind=index.kind, use_gpu=index.on_gpu, **_kwargs(index))
    if index._index is not None:
        cpu = faiss.index_gpu_to_cpu(index._index) if index.on_gpu else index._index
        copy._set_index(faiss.clone_index(cpu))
    copy._ids = index._ids.copy()
    copy._id_set = set(index._id_set)
    return copy


def _caller_ids(ids: Sequence[str | int] | None, n: int, used: set[Any], *, start: int = 0) -> np.ndarray:
    """Checked caller ids as an object array (default the positions ``start..start + n - 1``)."""
    if ids is None:
        values: list[Any] = list(range(start, start + n))
    else:
        if isinstance(ids, (str, bytes)):
            raise TypeError("ids must be a sequence of str or int, got a single str; wrap it in a list")
        values = [_check_id(v, f"ids[{j}]") for j, v in enumerate(ids)]
        if len(values) != n:
            raise ValueError(f"got {len(values)} ids for {n} vectors; pass one id per row")
    seen = set(used)
    for v in values:
        if v in seen:
            raise ValueError(f"id {v!r} is already in the index (or repeated); ids must be unique")
        seen.add(v)
    out = np.empty(n, dtype=object)
    out[:] = values
    return out
