"""Dense first stage: a FAISS :class:`DenseIndex` keeping the caller's ids, and a :class:`DenseRetriever`
(embedder + index) with the same ``search(queries, k=...)`` shape as the BM25 index."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from ..errors import StateError, missing_extra
from ..models.embedder import Embedder, _check_texts

__all__ = ["DenseIndex", "DenseRetriever", "SearchResults"]

IndexKind = Literal["flat", "hnsw", "ivfpq"]


# --------------------------------------------------------------------------------------------------
# FAISS index
# --------------------------------------------------------------------------------------------------
class SearchResults(NamedTuple):
    """Top-k hits of a batch of queries.

    Attributes
    ----------
    ids : numpy.ndarray of object, shape [nq, k]
        The caller's document ids, best first; ``None`` where fewer than k documents exist.
    scores : numpy.ndarray of float32, shape [nq, k]
        Inner products; ``-inf`` for padding.
    """

    ids: np.ndarray
    scores: np.ndarray


_FORMAT = "crossrank.DenseIndex"
_FORMAT_VERSION = 1


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise missing_extra("faiss-cpu", "dense") from exc
    return faiss


def _gpu_available(faiss: Any) -> bool:
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def _check_vectors(x: Any, dim: int | None, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [n, dim], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must hold numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{what} have dimension {arr.shape[1]} but the index holds dimension {dim}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} have dimension 0")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{what} row {int(np.flatnonzero(bad)[0])} holds NaN or inf ({int(bad.sum())} such rows); "
            "fix or drop those vectors"
        )
    return arr


class DenseIndex:
    """Nearest neighbours by inner product over FAISS, keeping the caller's ids.

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {"flat", "hnsw", "ivfpq"}
        ``flat``: exact (``IndexFlatIP``). ``hnsw``: graph index (``IndexHNSWFlat``, ``hnsw_m``
        links, ``ef_search`` at query time). ``ivfpq``: inverted lists over product-quantised codes
        (``nlist`` lists, ``pq_m`` sub-quantisers of ``nbits`` bits, ``nprobe`` lists searched);
        trained on the first :meth:`add` (needs at least ``max(nlist, 2**nbits)`` vectors).
    use_gpu : bool or "auto"
        Put flat and IVF-PQ indexes on the GPU when faiss-gpu and a GPU are present (HNSW stays on
        the CPU: FAISS has no GPU HNSW).
    num_threads : int, optional
        FAISS (OpenMP) threads for add/search; None leaves FAISS's setting.

    Raises
    ------
    ValueError
        ``dim < 1``, unknown ``kind``, bad parameters, or ``use_gpu=True`` without a GPU.
    """

    def __init__(
        self,
        dim: int,
        *,
        kind: IndexKind = "flat",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        pq_m: int | None = None,
        nbits: int = 8,
        nprobe: int = 16,
        use_gpu: bool | Literal["auto"] = "auto",
        num_threads: int | None = None,
    ) -> None:
        faiss = _faiss()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise ValueError(f"kind must be 'flat', 'hnsw' or 'ivfpq', got {kind!r}")
        if pq_m is not None and (pq_m < 1 or dim % pq_m):
            raise ValueError(f"pq_m={pq_m} must divide dim={dim}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        gpu = _gpu_available(faiss)
        if use_gpu is True and not gpu:
            raise ValueError(
                "use_gpu=True but faiss has no GPU support here; install faiss-gpu or use use_gpu='auto'"
            )
        self.dim = dim
        self.kind: IndexKind = kind
        self.params = {
            "hnsw_m": hnsw_m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "nlist": nlist,
            "pq_m": pq_m,
            "nbits": nbits,
            "nprobe": nprobe,
        }
        self.num_threads = num_threads
        self._use_gpu = bool(use_gpu) and gpu and kind != "hnsw"
        self._ids: list[Any] = []
        self._id_set: set[Any] = set()
        self._index: Any = None
        self._gpu_res: Any = None
        if kind == "flat":
            self._set_index(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            idx = faiss.IndexHNSWFlat(dim, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = int(ef_construction)
            idx.hnsw.efSearch = int(ef_search)
            self._set_index(idx)
        # ivfpq is created on the first add, when the data size fixes nlist.

    def _set_index(self, cpu_index: Any) -> None:
        faiss = _faiss()
        if self._use_gpu:
            self._gpu_res = faiss.StandardGpuResources()
            self._index = faiss.index_cpu_to_gpu(self._gpu_res, 0, cpu_index)
        else:
            self._index = cpu_index

    @property
    def on_gpu(self) -> bool:
        """Whether the index lives on a GPU."""
        return self._gpu_res is not None

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"DenseIndex(dim={self.dim}, kind={self.kind!r}, size={len(self)}, gpu={self.on_gpu})"

    @property
    def ids(self) -> list[Any]:
        """The caller's ids, in insertion order."""
        return list(self._ids)

    @classmethod
    def build(cls, vectors: Any, ids: Sequence[Any] | None = None, **kwargs: Any) -> DenseIndex:
        """Create an index of ``vectors`` (float32 [n, dim]) with ids (default 0..n-1).

        Raises
        ------
        ValueError
            Empty input, NaN/inf rows, or anything :meth:`add` rejects.
        """
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(
                f"cannot build a DenseIndex from {arr.shape} vectors: pass a non-empty [n, dim] array"
            )
        index = cls(int(arr.shape[1]), **kwargs)
        index.add(arr, ids)
        return index

    def _threads(self) -> None:
        if self.num_threads is not None:
            _faiss().omp_set_num_threads(self.num_threads)

    def add(self, vectors: Any, ids: Sequence[Any] | None = None) -> None:
        """Add vectors with their ids.

        Parameters
        ----------
        vectors : array-like of float, shape [n, dim]
        ids : sequence of hashable, optional
            One id per row (str or int); default continues 0, 1, 2, ... from the current size.

        Raises
        ------
        ValueError
            Wrong dimension, NaN/inf rows, ids of the wrong length, duplicate ids, or too few
            vectors to train an IVF-PQ index.
        """
        faiss = _faiss()
        arr = _check_vectors(vectors, self.dim, "vectors")
        n = arr.shape[0]
        if ids is None:
            new_ids: list[Any] = list(range(len(self._ids), len(self._ids) + n))
        else:
            new_ids = [i.item() if isinstance(i, np.generic) else i for i in ids]
            if len(new_ids) != n:
                raise ValueError(f"got {len(new_ids)} ids for {n} vectors; pass one id per row")
        seen = set(self._id_set)
        for i in new_ids:
            if i is None:
                raise ValueError("an id is None; ids must be str or int")
            if i in seen:
                raise ValueError(f"id {i!r} is already in the index (or repeated); ids must be unique")
            seen.add(i)
        if n == 0:
            return
        self._threads()
        if self._index is None:  # ivfpq: create and train on this first batch
            nbits = int(self.params["nbits"])  # type: ignore[arg-type]
            nlist = self.params["nlist"] or max(1, min(4096, int(4 * np.sqrt(n))))
            pq_m = self.params["pq_m"] or next(
                m for m in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if self.dim % m == 0
            )
            need = max(int(nlist), 2**nbits)
            if n < need:
                raise ValueError(
                    f"an IVF-PQ index needs at least {need} vectors to train (nlist={nlist}, "
                    f"nbits={nbits}); got {n}: add more at once, lower nlist/nbits, or use kind='flat'"
                )
            quantizer = faiss.IndexFlatIP(self.dim)
            idx = faiss.IndexIVFPQ(
                quantizer, self.dim, int(nlist), int(pq_m), nbits, faiss.METRIC_INNER_PRODUCT
            )
            idx.train(arr)
            idx.nprobe = int(self.params["nprobe"])  # type: ignore[arg-type]
            self.params.update(nlist=int(nlist), pq_m=int(pq_m))
            self._quantizer = quantizer  # keep alive alongside the index
            self._set_index(idx)
        self._index.add(arr)
        self._ids.extend(new_ids)
        self._id_set = seen

    def search(self, queries: Any, k: int = 10) -> SearchResults:
        """Return the ``k`` best documents of each query by inner product.

        Parameters
        ----------
        queries : array-like of float, shape [nq, dim]
        k : int
            Hits per query; rows are padded with id None / score -inf when the index holds fewer.

        Raises
        ------
        ValueError
            ``k < 1``, wrong dimension, NaN/inf queries, or an empty index.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = _check_vectors(queries, self.dim, "queries")
        if not self._ids:
            raise ValueError("the index is empty: add vectors before searching")
        kk = min(k, len(self._ids))
        self._threads()
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = max(int(self.params["ef_search"]), kk)  # type: ignore[arg-type]
        scores, labels = self._index.search(q, kk)
        nq = q.shape[0]
        ids = np.full((nq, k), None, dtype=object)
        out_scores = np.full((nq, k), -np.inf, dtype=np.float32)
        valid = labels >= 0
        lookup = np.empty(len(self._ids), dtype=object)
        lookup[:] = self._ids
        ids[:, :kk][valid] = lookup[labels[valid]]
        out_scores[:, :kk][valid] = scores[valid]
        return SearchResults(ids, out_scores)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to a directory: ``index.faiss``, ``ids.json`` and ``manifest.json``.

        The manifest records format version, kind, dimension, size, parameters and the SHA-256 of
        the two data files, so :meth:`load` detects truncation and corruption.
        """
        faiss = _faiss()
        if self._index is None:
            raise ValueError("the IVF-PQ index is untrained and empty; add vectors before saving")
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        cpu = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        faiss.write_index(cpu, str(root / "index.faiss"))
        id_types = {type(i).__name__ for i in self._ids}
        if not id_types <= {"str", "int"}:
            raise TypeError(f"ids of type {sorted(id_types)} cannot be saved; use str or int ids")
        (root / "ids.json").write_text(json.dumps(self._ids), encoding="utf-8")
        manifest = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "size": len(self._ids),
            "params": self.params,
            "sha256": {name: _sha256(root / name) for name in ("index.faiss", "ids.json")},
        }
        (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        use_gpu: bool | Literal["auto"] = "auto",
        num_threads: int | None = None,
    ) -> DenseIndex:
        """Read an index written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No such directory.
        crossrank.errors.StateError
            Missing or corrupted files, a foreign or newer format, or sizes that disagree.
        """
        faiss = _faiss()
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no DenseIndex directory at {root}")
        try:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StateError(f"{root} has no manifest.json: not a saved DenseIndex") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StateError(f"{root / 'manifest.json'} is corrupted ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise StateError(f"{root} does not hold a crossrank DenseIndex")
        if manifest.get("version") != _FORMAT_VERSION:
            raise StateError(
                f"{root} has DenseIndex format version {manifest.get('version')}; this crossrank reads "
                f"version {_FORMAT_VERSION} (rebuild the index or upgrade crossrank)"
            )
        for name, digest in (manifest.get("sha256") or {}).items():
            f = root / name
            if not f.is_file():
                raise StateError(f"{f} is missing; the saved index is incomplete")
            if _sha256(f) != digest:
                raise StateError(f"{f} is corrupted (checksum mismatch); rebuild and save the index again")
        try:
            cpu = faiss.read_index(str(root / "index.faiss"))
            ids = json.loads((root / "ids.json").read_text(encoding="utf-8"))
        except Exception as exc:
            raise StateError(f"cannot read the index in {root}: {exc}") from None
        if cpu.d != manifest.get("dim") or cpu.ntotal != manifest.get("size") or len(ids) != cpu.ntotal:
            raise StateError(f"{root}: sizes in the manifest, the FAISS index and ids.json disagree")
        params = dict(manifest.get("params") or {})
        self = cls(int(cpu.d), kind=manifest["kind"], use_gpu=use_gpu, num_threads=num_threads, **params)
        self._set_index(cpu)
        self._ids = list(ids)
        self._id_set = set(self._ids)
        return self


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Reranker


# --------------------------------------------------------------------------------------------------
# Retriever: embedder + index
# --------------------------------------------------------------------------------------------------
class DenseRetriever:
    """First-stage dense retrieval: embed queries with an :class:`Embedder`, search a :class:`DenseIndex`.

    Has the same ``search(queries, k=...)`` shape as :class:`crossrank.BM25Index`, so a
    :class:`crossrank.pipeline.Pipeline` can use either.
    """

    def __init__(self, embedder: Embedder, index: DenseIndex) -> None:
        self.embedder = embedder
        self.index = index

    def __repr__(self) -> str:
        return f"DenseRetriever({self.embedder!r}, {self.index!r})"

    @classmethod
    def build(
        cls,
        embedder: Embedder,
        texts: Sequence[str],
        ids: Sequence[Any] | None = None,
        *,
        show_progress: bool = False,
        vectors: np.ndarray | None = None,
        **index_kwargs: Any,
    ) -> DenseRetriever:
        """Embed ``texts`` (unless ``vectors`` [n, dim] are given) and index them with the caller's ids.

        Raises
        ------
        ValueError
            No texts, or what :meth:`DenseIndex.build` rejects.
        """
        texts = _check_texts(texts, "texts")
        if not texts:
            raise ValueError("cannot build a dense index from 0 documents: pass at least one text")
        if vectors is None:
            vectors = embedder.encode_documents(texts, show_progress=show_progress)
        elif len(vectors) != len(texts):
            raise ValueError(f"got {len(vectors)} vectors for {len(texts)} texts")
        return cls(embedder, DenseIndex.build(vectors, ids, **index_kwargs))

    def search(self, queries: str | Sequence[str], *, k: int = 10) -> SearchResults:
        """Return the ``k`` nearest documents of each query (see :meth:`DenseIndex.search`)."""
        qs = [queries] if isinstance(queries, str) else _check_texts(queries, "queries")
        if not qs:
            return SearchResults(np.zeros((0, k), dtype=object), np.zeros((0, k), dtype=np.float32))
        return self.index.search(self.embedder.encode_queries(qs), k=k)
