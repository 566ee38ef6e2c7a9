"""Dense first stage: a FAISS :class:`DenseIndex` keeping the caller's ids, and a :class:`DenseRetriever`
(embedder + index) with the same ``search(queries, k=...)`` shape as the BM25 index.

Both return :class:`crossrank.types.Hits`. ``k`` is capped at the collection size, so a search
never allocates more than ``[n_queries, len(index)]``.

Threads: FAISS runs its own OpenMP pool, whose size is process-wide. :class:`DenseIndex` sets it
only when asked (``num_threads=``), once, when the index is created or loaded; never per call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .._common import (
    MANIFEST,
    ReadWriteLock,
    atomic_directory,
    check_int,
    check_texts,
    core_threads,
    manifest_body,
    manifest_field,
    read_consistent,
    read_manifest,
    sha256_file,
    write_json,
)
from ..errors import StateError, missing_extra
from ..models.embedder import Embedder
from ..types import Hits

__all__ = ["DenseIndex", "DenseRetriever"]

IndexKind = Literal["flat", "hnsw", "ivfpq"]
DocId = str | int

_FORMAT = "crossrank.DenseIndex"
_FORMAT_VERSION = 1
_FILES = ("index.faiss", "ids.json")
_PARAMS = ("hnsw_m", "ef_construction", "ef_search", "nlist", "pq_m", "nbits", "nprobe")


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise missing_extra("faiss-cpu", "dense") from exc
    return faiss


def _gpu_available(faiss: Any) -> bool:
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def _check_vectors(x: npt.ArrayLike, dim: int | None, what: str) -> np.ndarray:
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


def _check_id(value: object, where: str) -> DocId:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{where} must be a str or an int, got {type(value).__name__}")
    return value


class DenseIndex:
    """Nearest neighbours by inner product over FAISS, keeping the caller's ids.

    Thread safety: one instance may be shared across threads. Searches (and :meth:`save`) run
    concurrently; :meth:`add` takes a writer lock, so it waits for running searches and holds new
    ones back until it is done (each search sees the index before or after an add).

    Parameters
    ----------
    dim : int
        Vector dimension.
    kind : {"flat", "hnsw", "ivfpq"}
        ``flat``: exact (``IndexFlatIP``). ``hnsw``: graph index (``IndexHNSWFlat``, ``hnsw_m``
        links, ``ef_search`` at query time). ``ivfpq``: inverted lists over product-quantised codes
        (``nlist`` lists, ``pq_m`` sub-quantisers of ``nbits`` bits, ``nprobe`` lists searched);
        trained on the first :meth:`add` (needs at least ``max(nlist, 2**nbits)`` vectors).
    hnsw_m, ef_construction, ef_search : int
        HNSW links per node, build beam and search beam (raised to ``k`` when smaller).
    nlist, pq_m : int, optional
        IVF-PQ lists and sub-quantisers; default chosen from the data size and ``dim``.
    nbits, nprobe : int
        IVF-PQ bits per code and lists searched.
    use_gpu : bool or "auto"
        Put flat and IVF-PQ indexes on the GPU when faiss-gpu and a GPU are present (HNSW stays on
        the CPU: FAISS has no GPU HNSW).
    num_threads : int, optional
        FAISS's OpenMP threads. That setting is process-wide: when given, it is applied once, here
        (not on every call), and holds for every FAISS index in the process. None leaves it alone.

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
        try:
            dim = check_int(dim, "dim", minimum=1)
        except TypeError as exc:
            raise ValueError(f"dim must be a positive int, got {dim!r}") from exc
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise ValueError(f"kind must be 'flat', 'hnsw' or 'ivfpq', got {kind!r}")
        hnsw_m = check_int(hnsw_m, "hnsw_m", minimum=2, maximum=1 << 16)
        ef_construction = check_int(ef_construction, "ef_construction", minimum=1, maximum=1 << 24)
        ef_search = check_int(ef_search, "ef_search", minimum=1, maximum=1 << 24)
        nbits = check_int(nbits, "nbits", minimum=1, maximum=16)
        nprobe = check_int(nprobe, "nprobe", minimum=1, maximum=1 << 24)
        if nlist is not None:
            nlist = check_int(nlist, "nlist", minimum=1, maximum=1 << 24)
        if pq_m is not None and dim % check_int(pq_m, "pq_m", minimum=1):
            raise ValueError(f"pq_m={pq_m} must divide dim={dim}")
        threads = core_threads(num_threads)
        gpu = _gpu_available(faiss)
        if use_gpu is True and not gpu:
            raise ValueError(
                "use_gpu=True but faiss has no GPU support here; install faiss-gpu or use use_gpu='auto'"
            )
        self.dim = dim
        self.kind: IndexKind = kind
        self.params: dict[str, int | None] = {
            "hnsw_m": hnsw_m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "nlist": nlist,
            "pq_m": pq_m,
            "nbits": nbits,
            "nprobe": nprobe,
        }
        self.num_threads = threads or None
        if threads:
            faiss.omp_set_num_threads(threads)  # process-wide: once here, never per call
        self._use_gpu = bool(use_gpu) and gpu and kind != "hnsw"
        self._lock = ReadWriteLock()
        self._ids = np.empty(0, dtype=object)
        self._id_set: set[DocId] = set()
        self._index: Any = None
        self._gpu_res: Any = None
        self._quantizer: Any = None
        if kind == "flat":
            self._set_index(faiss.IndexFlatIP(dim))
        elif kind == "hnsw":
            idx = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = ef_construction
            idx.hnsw.efSearch = ef_search
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
    def ids(self) -> list[DocId]:
        """The caller's ids, in insertion order."""
        return self._ids.tolist()

    @classmethod
    def build(cls, vectors: npt.ArrayLike, ids: Sequence[DocId] | None = None, **kwargs: Any) -> DenseIndex:
        """Create an index of ``vectors`` with ids (default 0..n-1).

        Parameters
        ----------
        vectors : array-like of float, shape [n, dim]
            The document vectors (n >= 1).
        ids : sequence of str or int, optional
            One id per row.
        **kwargs
            Options of :class:`DenseIndex`.

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

    def add(self, vectors: npt.ArrayLike, ids: Sequence[DocId] | None = None) -> None:
        """Add vectors with their ids.

        Parameters
        ----------
        vectors : array-like of float, shape [n, dim]
            The new vectors.
        ids : sequence of str or int, optional
            One id per row; default continues 0, 1, 2, ... from the current size.

        Raises
        ------
        ValueError
            Wrong dimension, NaN/inf rows, ids of the wrong length, duplicate ids, or too few
            vectors to train an IVF-PQ index.
        TypeError
            An id that is not a str or an int.
        """
        arr = _check_vectors(vectors, self.dim, "vectors")
        n = arr.shape[0]
        with self._lock.write():
            if ids is None:
                new_ids: list[DocId] = list(range(len(self._ids), len(self._ids) + n))
            else:
                if isinstance(ids, (str, bytes)):
                    raise TypeError(
                        "ids must be a sequence of str or int, got a single str; wrap it in a list"
                    )
                new_ids = [_check_id(i, f"ids[{j}]") for j, i in enumerate(ids)]
                if len(new_ids) != n:
                    raise ValueError(f"got {len(new_ids)} ids for {n} vectors; pass one id per row")
            seen = set(self._id_set)
            for i in new_ids:
                if i in seen:
                    raise ValueError(f"id {i!r} is already in the index (or repeated); ids must be unique")
                seen.add(i)
            if n == 0:
                return
            if self._index is None:  # ivfpq: create and train on this first batch
                self._create_ivfpq(arr)
            self._index.add(arr)
            more = np.empty(n, dtype=object)
            more[:] = new_ids
            self._ids = np.concatenate([self._ids, more])
            self._id_set = seen

    def _create_ivfpq(self, arr: np.ndarray) -> None:
        faiss = _faiss()
        n = arr.shape[0]
        nbits = int(self.params["nbits"] or 8)
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
        idx = faiss.IndexIVFPQ(quantizer, self.dim, int(nlist), int(pq_m), nbits, faiss.METRIC_INNER_PRODUCT)
        idx.train(arr)
        idx.nprobe = int(self.params["nprobe"] or 16)
        self.params.update(nlist=int(nlist), pq_m=int(pq_m))
        self._quantizer = quantizer  # keep alive alongside the index
        self._set_index(idx)

    def search(self, queries: npt.ArrayLike, k: int = 10) -> Hits:
        """Return the ``k`` best documents of each query by inner product.

        Parameters
        ----------
        queries : array-like of float, shape [nq, dim]
            The query vectors.
        k : int
            Hits per query, >= 1; ``min(k, len(self))`` columns are returned. An approximate index
            may find fewer: those places hold id None and score -inf.

        Returns
        -------
        crossrank.types.Hits
            ``ids`` object [nq, min(k, n)] and ``scores`` float32 [nq, min(k, n)], best first.

        Raises
        ------
        ValueError
            ``k < 1``, wrong dimension, NaN/inf queries, or an empty index.
        TypeError
            ``k`` is not an int.
        """
        k = check_int(k, "k", minimum=1)
        q = _check_vectors(queries, self.dim, "queries")
        with self._lock.read():
            n = len(self._ids)
            if not n:
                raise ValueError("the index is empty: add vectors before searching")
            kk = min(k, n)
            if self.kind == "hnsw":
                # Per-call parameters: the shared index is not modified, so searches can overlap.
                ef = max(int(self.params["ef_search"] or 0), kk)
                params = _faiss().SearchParametersHNSW(efSearch=ef)
                scores, labels = self._index.search(q, kk, params=params)
            else:
                scores, labels = self._index.search(q, kk)
            ids = np.full(labels.shape, None, dtype=object)
            out_scores = np.full(labels.shape, -np.inf, dtype=np.float32)
            valid = labels >= 0
            ids[valid] = self._ids[labels[valid]]
            out_scores[valid] = scores[valid]
        return Hits(ids, out_scores)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to a directory: ``index.faiss``, ``ids.json`` and ``manifest.json``.

        The manifest records the format version, kind, dimension, size, parameters and the SHA-256
        of the two data files, so :meth:`load` detects truncation and corruption. The directory is
        written aside and swapped in by one rename: a kill at any moment leaves the old index or the
        new one.

        Parameters
        ----------
        path : path-like
            The index directory: created, or replaced when it holds a DenseIndex.

        Raises
        ------
        ValueError
            An untrained, empty IVF-PQ index (nothing is written).
        FileExistsError
            ``path`` is a non-empty directory that does not hold a DenseIndex.
        """
        faiss = _faiss()
        with self._lock.read():
            if self._index is None:
                raise ValueError("the IVF-PQ index is untrained and empty; add vectors before saving")
            ids = self._ids.tolist()
            with atomic_directory(path, overwrite=True, replaces=_FORMAT) as tmp:
                cpu = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
                faiss.write_index(cpu, str(tmp / "index.faiss"))
                with open(tmp / "ids.json", "w", encoding="utf-8") as f:
                    json.dump(ids, f, ensure_ascii=False)
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_file(tmp / "index.faiss")
                body = manifest_body(
                    _FORMAT,
                    _FORMAT_VERSION,
                    kind=self.kind,
                    dim=self.dim,
                    size=len(ids),
                    params=self.params,
                    sha256={name: sha256_file(tmp / name) for name in _FILES},
                )
                write_json(tmp / MANIFEST, body)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        use_gpu: bool | Literal["auto"] = "auto",
        num_threads: int | None = None,
    ) -> DenseIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The index directory.
        use_gpu, num_threads
            As in :class:`DenseIndex`.

        Raises
        ------
        FileNotFoundError
            No such directory.
        crossrank.errors.StateError
            Missing or corrupted files, a foreign or newer format, a malformed manifest, or sizes
            that disagree (the message names the file and the field).
        """
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"no DenseIndex directory at {root}")
        return read_consistent(root, lambda: cls._load(root, use_gpu=use_gpu, num_threads=num_threads))

    @classmethod
    def _load(cls, root: Path, *, use_gpu: bool | Literal["auto"], num_threads: int | None) -> DenseIndex:
        faiss = _faiss()
        manifest, _ = read_manifest(root, _FORMAT, _FORMAT_VERSION, label="DenseIndex")
        mpath = root / MANIFEST
        kind = manifest_field(manifest, "kind", str, mpath)
        if kind not in ("flat", "hnsw", "ivfpq"):
            raise StateError(f"{mpath}: field 'kind' is {kind!r}, expected 'flat', 'hnsw' or 'ivfpq'")
        dim = manifest_field(manifest, "dim", int, mpath)
        size = manifest_field(manifest, "size", int, mpath)
        params = manifest_field(manifest, "params", dict, mpath)
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise StateError(f"{mpath}: field 'params' holds unknown keys {unknown}")
        digests = manifest_field(manifest, "sha256", dict, mpath)
        for name in _FILES:
            digest = manifest_field(digests, name, str, f"{mpath}: field 'sha256'")
            f = root / name
            if not f.is_file():
                raise StateError(f"{f} is missing; the saved index is incomplete")
            if sha256_file(f) != digest:
                raise StateError(f"{f} is corrupted (checksum mismatch); rebuild and save the index again")
        try:
            cpu = faiss.read_index(str(root / "index.faiss"))
            with open(root / "ids.json", encoding="utf-8") as fh:
                ids = json.load(fh)
        except Exception as exc:  # FAISS raises RuntimeError; JSON/decoding errors too
            raise StateError(f"cannot read the index in {root}: {exc}") from None
        if not isinstance(ids, list):
            raise StateError(f"{root / 'ids.json'}: expected a JSON list of ids, got {type(ids).__name__}")
        if cpu.d != dim or cpu.ntotal != size or len(ids) != cpu.ntotal:
            raise StateError(f"{root}: sizes in the manifest, the FAISS index and ids.json disagree")
        try:
            checked = [_check_id(i, f"{root / 'ids.json'}: ids[{j}]") for j, i in enumerate(ids)]
            self = cls(int(cpu.d), kind=kind, use_gpu=use_gpu, num_threads=num_threads, **params)
        except (TypeError, ValueError) as exc:
            raise StateError(f"{mpath}: invalid saved index ({exc})") from None
        if len(set(checked)) != len(checked):
            raise StateError(f"{root / 'ids.json'}: ids are not unique")
        self._set_index(cpu)
        self._ids = np.empty(len(checked), dtype=object)
        self._ids[:] = checked
        self._id_set = set(checked)
        return self


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Retriever: embedder + index
# --------------------------------------------------------------------------------------------------
class DenseRetriever:
    """First-stage dense retrieval: embed queries with an :class:`Embedder`, search a :class:`DenseIndex`.

    Has the same ``search(queries, k=...)`` shape as :class:`crossrank.BM25Index`, so a
    :class:`crossrank.pipeline.Pipeline` can use either.

    Thread safety: one instance may be shared across threads as far as its embedder may (see
    :class:`crossrank.Embedder`); the index part is safe (see :class:`DenseIndex`).

    Parameters
    ----------
    embedder : crossrank.Embedder
        Encodes queries (and documents in :meth:`build`).
    index : DenseIndex
        The document vectors.
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
        ids: Sequence[DocId] | None = None,
        *,
        show_progress: bool = False,
        vectors: np.ndarray | None = None,
        **index_kwargs: Any,
    ) -> DenseRetriever:
        """Embed ``texts`` (unless ``vectors`` [n, dim] are given) and index them with the caller's ids.

        Parameters
        ----------
        embedder : crossrank.Embedder
            Encodes the documents and, later, the queries.
        texts : sequence of str
            One text per document.
        ids : sequence of str or int, optional
            One id per document; default 0..n-1.
        show_progress : bool
            Progress bar while embedding.
        vectors : numpy.ndarray, optional
            Precomputed document vectors [n, dim] (``texts`` are then not embedded).
        **index_kwargs
            Options of :class:`DenseIndex`.

        Raises
        ------
        ValueError
            No texts, or what :meth:`DenseIndex.build` rejects.
        """
        texts = check_texts(texts, "texts")
        if not texts:
            raise ValueError("cannot build a dense index from 0 documents: pass at least one text")
        if vectors is None:
            vectors = embedder.encode_documents(texts, show_progress=show_progress)
        elif len(vectors) != len(texts):
            raise ValueError(f"got {len(vectors)} vectors for {len(texts)} texts")
        return cls(embedder, DenseIndex.build(vectors, ids, **index_kwargs))

    def search(self, queries: str | Sequence[str], *, k: int = 10) -> Hits:
        """Return the ``k`` nearest documents of each query (see :meth:`DenseIndex.search`).

        Parameters
        ----------
        queries : str or sequence of str
            One query or a batch.
        k : int
            Hits per query, >= 1, capped at the collection size.
        """
        k = check_int(k, "k", minimum=1)
        qs = [queries] if isinstance(queries, str) else check_texts(queries, "queries")
        if not qs:
            width = min(k, len(self.index))
            return Hits(np.zeros((0, width), dtype=object), np.zeros((0, width), dtype=np.float32))
        return self.index.search(self.embedder.encode_queries(qs), k=k)
