"""ColBERT late-interaction scoring: ``score(q, d) = sum_i max_j q_i . d_j``.

Documents are packed once into one contiguous buffer (fp32, fp16 or bf16 storage) and then scored
against any number of queries by the C++ kernel (runtime SIMD dispatch, multi-threaded, GIL
released). See ``cpp/include/crossrank/maxsim.hpp`` for the precision policy and memory layout.

Defined edge cases: an empty document scores ``0.0``; an empty (or fully masked) query scores
``0.0`` against every document; NaN or infinity in documents or queries raises ``ValueError``.

Examples
--------
>>> import numpy as np
>>> from crossrank.rerank.maxsim import PackedDocs, maxsim
>>> docs = PackedDocs([np.eye(3, dtype=np.float32), np.ones((2, 3), np.float32)], dtype="fp16")
>>> maxsim(np.eye(3, dtype=np.float32)[:2], docs).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import _core
from .._common import (
    MANIFEST,
    atomic_directory,
    check_bool_array,
    check_int_array,
    core_threads,
    manifest_body,
    manifest_field,
    read_consistent,
    read_manifest,
    sha256_bytes,
    sha256_file,
    write_json,
)
from ..errors import StateError

__all__ = ["DType", "PackedDocStore", "PackedDocs", "maxsim", "maxsim_batch"]

DType = Literal["fp32", "fp16", "bf16"]
#: NumPy dtype of the packed buffer for each storage type (bf16 is kept as raw uint16 bits).
NUMPY_DTYPES: dict[str, type[np.generic]] = {"fp32": np.float32, "fp16": np.float16, "bf16": np.uint16}
# Largest token dimension a saved store may declare (guards the size arithmetic of a bad manifest).
_MAX_DIM = 1 << 20


def _check_dtype(dtype: str) -> str:
    if dtype not in NUMPY_DTYPES:
        raise ValueError(f"dtype must be one of 'fp32', 'fp16', 'bf16', got {dtype!r}")
    return dtype


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a NumPy array, reading tensors through DLPack (no copy when possible)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError, ValueError) as e:
            raise TypeError(
                f"{name}: cannot read this tensor through DLPack ({e}); pass a CPU float32 tensor, "
                "e.g. t.detach().cpu().float()"
            ) from e
    return np.asarray(x)


def _as_matrix(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 [n, dim] array (converting visibly when needed)."""
    arr = _to_numpy(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n_tokens, dim], got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold floats, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(
            f"{name} has dim {arr.shape[1]} but the documents have dim {dim}; encode both with the same model"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_offsets(x: Any, n_rows: int, name: str) -> np.ndarray:
    off = np.ascontiguousarray(check_int_array(_to_numpy(x, name), name))  # floats are refused
    if off.ndim != 1 or off.size < 1:
        raise ValueError(f"{name} must be a 1-D array of n + 1 int64 entries, got shape {off.shape}")
    if off[0] != 0 or off[-1] != n_rows or np.any(np.diff(off) < 0):
        raise ValueError(
            f"{name} must start at 0, be non-decreasing and end at the number of rows ({n_rows}); "
            f"got first={int(off[0])}, last={int(off[-1])}"
        )
    return off


def _aligned_empty(shape: tuple[int, int], dtype: type[np.generic], align: int = 64) -> np.ndarray:
    """Return an uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    nbytes = shape[0] * shape[1] * itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _ragged(docs: Any, name: str, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Return (flat float32 [total, dim], offsets int64 [n + 1]) from a list or a (flat, offsets) pair."""
    if isinstance(docs, tuple) and len(docs) == 2 and _to_numpy(docs[1], name).ndim == 1:
        flat = _as_matrix(docs[0], f"{name} (flat)", dim)
        return flat, _as_offsets(docs[1], flat.shape[0], f"{name} offsets")
    if isinstance(docs, np.ndarray) or hasattr(docs, "__dlpack__") or not isinstance(docs, Sequence):
        raise TypeError(
            f"{name} must be a list of 2-D [n_tokens_i, dim] arrays or a (flat [total, dim], offsets) tuple"
        )
    mats = [_as_matrix(d, f"{name}[{i}]", dim) for i, d in enumerate(docs)]
    if not mats:
        if dim is None:
            raise ValueError(f"cannot infer dim from zero {name}; pass dim=")
        return np.zeros((0, dim), np.float32), np.zeros(1, np.int64)
    dims = {m.shape[1] for m in mats}
    if len(dims) != 1:
        raise ValueError(f"all {name} must have the same dim, got {sorted(dims)}")
    offsets = np.zeros(len(mats) + 1, np.int64)
    np.cumsum([m.shape[0] for m in mats], out=offsets[1:])
    return np.concatenate(mats, axis=0), offsets


class PackedDocs:
    """Token vectors of many documents packed once into one aligned buffer ("pack once, score many").

    Parameters
    ----------
    docs : list of array_like, or tuple (flat, offsets)
        Either one float array [n_tokens_i, dim] per document (NumPy arrays or DLPack tensors such
        as CPU torch tensors), or ``flat`` float [total_tokens, dim] with ``offsets`` int64
        [n_docs + 1] (document i owns rows ``offsets[i]:offsets[i+1]``). Zero-token documents are
        allowed and score 0.0.
    dtype : {"fp32", "fp16", "bf16"}
        Storage type; rounding is to nearest even. fp16 rejects values beyond 65504.
    normalize : bool
        L2-normalise each token vector before storing (an all-zero vector stays zero).
    dim : int, optional
        Required only when ``docs`` is an empty list.
    num_threads : int, optional
        None uses the CPU quota.

    Attributes
    ----------
    data : numpy.ndarray
        [n_tokens, stride] of float32 / float16 / uint16 (raw bf16 bits), 64-byte aligned for
        packed input (memory-mapped when opened from a :class:`PackedDocStore`).
    offsets : numpy.ndarray
        int64 [n_docs + 1].
    dim : int
    dtype : str

    Raises
    ------
    ValueError
        Ragged dims, bad offsets, NaN/inf values, fp16 overflow.
    TypeError
        Unsupported container or non-numeric arrays.

    Notes
    -----
    Thread safety: the packed buffer is read-only after construction, so one instance may be
    scored from many threads at once.
    """

    __slots__ = ("data", "dim", "dtype", "offsets")

    def __init__(
        self,
        docs: Any,
        *,
        dtype: DType = "fp32",
        normalize: bool = False,
        dim: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        _check_dtype(dtype)
        flat, offsets = _ragged(docs, "documents", dim)
        d = int(flat.shape[1])
        if d < 1:
            raise ValueError("token vectors must have dim >= 1")
        data = _aligned_empty((flat.shape[0], _core.maxsim_row_stride(d, dtype)), NUMPY_DTYPES[dtype])
        _core.maxsim_pack(flat, data, dtype, bool(normalize), core_threads(num_threads))
        data.flags.writeable = False
        self.data, self.offsets, self.dim, self.dtype = data, offsets, d, dtype

    @classmethod
    def from_buffers(cls, data: np.ndarray, offsets: np.ndarray, *, dim: int, dtype: DType) -> PackedDocs:
        """Wrap an already packed buffer (e.g. memory-mapped) without copying it.

        Parameters
        ----------
        data : numpy.ndarray
            [n_tokens, stride] in the storage dtype (see ``NUMPY_DTYPES``), C-contiguous.
        offsets : numpy.ndarray
            int64 [n_docs + 1].
        dim : int
            Token vector dimension (``stride`` is derived from it).
        dtype : {"fp32", "fp16", "bf16"}
        """
        _check_dtype(dtype)
        stride = _core.maxsim_row_stride(int(dim), dtype)
        if data.ndim != 2 or data.shape[1] != stride or data.dtype != NUMPY_DTYPES[dtype]:
            raise ValueError(
                f"packed data must be [n_tokens, {stride}] of {np.dtype(NUMPY_DTYPES[dtype]).name}, "
                f"got {data.shape} of {data.dtype}"
            )
        if not data.flags.c_contiguous:
            raise ValueError("packed data must be C-contiguous; try np.ascontiguousarray")
        self = cls.__new__(cls)
        self.data = data
        self.offsets = _as_offsets(offsets, data.shape[0], "document offsets")
        self.dim, self.dtype = int(dim), dtype
        return self

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_tokens(self) -> int:
        """Total token vectors stored."""
        return int(self.data.shape[0])

    @property
    def doc_lengths(self) -> np.ndarray:
        """int64 [n_docs]: tokens per document."""
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of the packed buffer plus offsets."""
        return int(self.data.nbytes + self.offsets.nbytes)

    def doc(self, i: int) -> np.ndarray:
        """Return document ``i``'s stored token vectors widened to float32 [n_tokens_i, dim].

        Parameters
        ----------
        i : int
            Document index; negative counts from the end.

        Raises
        ------
        IndexError
            ``i`` is outside ``[-len(self), len(self))``.
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"document index {i} out of range for {len(self)} documents")
        i %= len(self)
        rows = self.data[self.offsets[i] : self.offsets[i + 1]]
        return _core.maxsim_unpack(np.ascontiguousarray(rows), self.dim, self.dtype)

    def __repr__(self) -> str:
        return (
            f"PackedDocs(n_docs={len(self)}, n_tokens={self.n_tokens}, dim={self.dim}, "
            f"dtype={self.dtype!r}, nbytes={self.nbytes})"
        )


def _doc_ids(doc_ids: Any) -> np.ndarray | None:
    if doc_ids is None:
        return None
    ids = np.ascontiguousarray(_to_numpy(doc_ids, "doc_ids"))
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise ValueError(f"doc_ids must be a 1-D integer array, got shape {ids.shape} of {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def _check_docs(docs: Any) -> PackedDocs:
    if isinstance(docs, PackedDocStore):
        return docs.docs
    if not isinstance(docs, PackedDocs):
        raise TypeError(
            f"docs must be PackedDocs or PackedDocStore, got {type(docs).__name__}; pack them with PackedDocs(list_of_arrays)"
        )
    return docs


def maxsim(
    query_vecs: Any,
    docs: PackedDocs | PackedDocStore,
    *,
    doc_ids: Any = None,
    query_mask: Any = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Score one query against packed documents with ColBERT MaxSim.

    Parameters
    ----------
    query_vecs : array_like
        float [n_query_tokens, dim] (NumPy or a DLPack tensor); converted to C-contiguous float32
        if needed. Not normalised here (ColBERT encoders normalise).
    docs : PackedDocs or PackedDocStore
    doc_ids : array_like of int, optional
        int64 [n_out]: score only these documents (repeats allowed); default all.
    query_mask : array_like of bool, optional
        [n_query_tokens]; False drops that query token from the sum.
    num_threads : int, optional
        None uses the CPU quota; results are identical for any thread count.

    Returns
    -------
    numpy.ndarray
        float32 [n_out] (n_out = len(docs), or len(doc_ids)).

    Raises
    ------
    ValueError
        Dim mismatch, NaN/inf in the query, bad mask shape.
    TypeError
        A ``query_mask`` that does not hold bools (``['False']`` would read as True).
    IndexError
        A doc id out of range.
    """
    packed = _check_docs(docs)
    q = _as_matrix(query_vecs, "query_vecs", packed.dim)
    if query_mask is not None:
        mask = check_bool_array(_to_numpy(query_mask, "query_mask"), "query_mask")
        if mask.shape != (q.shape[0],):
            raise ValueError(f"query_mask must have shape ({q.shape[0]},), got {mask.shape}")
        q = np.ascontiguousarray(q[mask])
    qoff = np.array([0, q.shape[0]], np.int64)
    out = _core.maxsim_score(
        q,
        qoff,
        packed.data,
        packed.dtype,
        packed.dim,
        packed.offsets,
        _doc_ids(doc_ids),
        core_threads(num_threads),
    )
    return out[0]


def maxsim_batch(
    queries: Any,
    docs: PackedDocs | PackedDocStore,
    *,
    doc_ids: Any = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Score several queries against the same packed documents in one call.

    Parameters
    ----------
    queries : list of array_like, or tuple (flat, offsets)
        One float [n_query_tokens_b, dim] array per query, or flat float [total, dim] with int64
        offsets [n_queries + 1].
    docs : PackedDocs or PackedDocStore
    doc_ids : array_like of int, optional
        int64 [n_out]: the documents to score for every query; default all.
    num_threads : int, optional

    Returns
    -------
    numpy.ndarray
        float32 [n_queries, n_out].
    """
    packed = _check_docs(docs)
    flat, qoff = _ragged(queries, "queries", packed.dim)
    return _core.maxsim_score(
        flat,
        qoff,
        packed.data,
        packed.dtype,
        packed.dim,
        packed.offsets,
        _doc_ids(doc_ids),
        core_threads(num_threads),
    )


class PackedDocStore:
    """Packed document vectors on disk: a directory with a versioned, checksummed manifest.

    Layout: ``manifest.json`` (format ``crossrank.packed_docs``, ``format_version``, dtype, dim,
    stride, counts, byte sizes and SHA-256 of every file), ``tokens.bin`` (the packed buffer,
    little-endian, row-major), ``offsets.bin`` (int64 [n_docs + 1]) and, when ids were given,
    ``ids.json``. ``open`` maps ``tokens.bin`` read-only, so a store larger than memory still scores.

    Use :meth:`save` to write and :meth:`open` to read; ``store.docs`` is a :class:`PackedDocs`
    usable with :func:`maxsim`. The constructor only wraps the values below and checks nothing;
    they are also the store's attributes.

    Thread safety: an open store is read-only and may be shared across threads. :meth:`save`
    writes a new directory aside and swaps it in with one rename, so stores already open on the
    old files keep scoring them (their memory maps hold the old inodes), and a kill at any moment
    leaves the old store or the new one.

    Parameters
    ----------
    path : Path
        The store directory.
    docs : PackedDocs
        The packed vectors (memory-mapped when opened).
    ids : list of str or None
        One id per document; None when the store was saved without ids.
    metadata : dict
        The JSON metadata kept in the manifest ({} when none was given).
    """

    FORMAT = "crossrank.packed_docs"
    VERSION = 1
    __slots__ = ("docs", "ids", "metadata", "path")

    def __init__(self, path: Path, docs: PackedDocs, ids: list[str] | None, metadata: dict[str, Any]) -> None:
        self.path, self.docs, self.ids, self.metadata = path, docs, ids, metadata

    def __len__(self) -> int:
        return len(self.docs)

    def __repr__(self) -> str:
        return (
            f"PackedDocStore({str(self.path)!r}, n_docs={len(self.docs)}, n_tokens={self.docs.n_tokens}, "
            f"dim={self.docs.dim}, dtype={self.docs.dtype!r})"
        )

    @classmethod
    def save(
        cls,
        path: str | os.PathLike[str],
        docs: PackedDocs,
        *,
        ids: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> PackedDocStore:
        """Write ``docs`` (and optional string ids / JSON metadata) to directory ``path``, atomically.

        Everything is validated first; then the store is written into a temporary sibling
        directory, fsynced, and swapped in with one rename (see :class:`PackedDocStore`).

        Parameters
        ----------
        path : path-like
            The store directory.
        docs : PackedDocs or PackedDocStore
            The packed vectors.
        ids : sequence of str, optional
            One id per document (converted with ``str``).
        metadata : dict, optional
            JSON-serialisable data kept in the manifest (e.g. the model name).
        overwrite : bool
            Replace an existing store at ``path``.

        Raises
        ------
        FileExistsError
            ``path`` is a non-empty directory and ``overwrite`` is False, or it holds something
            other than a store.
        ValueError
            ``ids`` length differs from the number of documents, or ``metadata`` is not JSON.
        TypeError
            ``docs`` is not packed, or ``metadata`` is not a dict.
        """
        docs = _check_docs(docs)
        if ids is not None:
            if isinstance(ids, (str, bytes)):
                raise TypeError("ids must be a sequence of str, got a single str; wrap it in a list")
            ids = [str(i) for i in ids]
            if len(ids) != len(docs):
                raise ValueError(f"ids has {len(ids)} entries but there are {len(docs)} documents")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        try:
            json.dumps(metadata or {}, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"metadata must be JSON-serialisable: {e}") from None
        files = {
            "tokens.bin": np.ascontiguousarray(
                docs.data.astype(docs.data.dtype.newbyteorder("<"), copy=False)
            ),
            "offsets.bin": np.ascontiguousarray(docs.offsets.astype("<i8", copy=False)),
        }
        with atomic_directory(path, overwrite=overwrite, replaces=cls.FORMAT) as tmp:
            entries: dict[str, dict[str, Any]] = {}
            for name, arr in files.items():
                buf = arr.data.cast("B") if arr.size else memoryview(b"")
                _write_synced(tmp / name, buf)
                entries[name] = {"bytes": len(buf), "sha256": sha256_bytes(buf)}
            if ids is not None:
                raw = json.dumps(ids, ensure_ascii=False).encode("utf-8", "surrogatepass")
                _write_synced(tmp / "ids.json", raw)
                entries["ids.json"] = {"bytes": len(raw), "sha256": sha256_bytes(raw)}
            body = manifest_body(
                cls.FORMAT,
                cls.VERSION,
                dtype=docs.dtype,
                dim=docs.dim,
                stride=int(docs.data.shape[1]),
                n_docs=len(docs),
                n_tokens=docs.n_tokens,
                byteorder="little",
                files=entries,
                metadata=metadata or {},
            )
            write_json(tmp / MANIFEST, body)
        return cls.open(path, verify=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = True) -> PackedDocStore:
        """Open a store written by :meth:`save`, memory-mapping the token buffer read-only.

        Parameters
        ----------
        path : str or PathLike
            The store directory.
        verify : bool
            Check every file's SHA-256 (reads the whole store once). Sizes, format, version and
            offsets are always checked.

        Raises
        ------
        crossrank.errors.StateError
            Not a store, foreign format, newer format version, a malformed manifest, truncated or
            corrupted files (the message names the file and the field).
        """
        root = Path(path)
        return read_consistent(root, lambda: cls._open(root, verify=verify))

    @classmethod
    def _open(cls, root: Path, *, verify: bool) -> PackedDocStore:
        manifest, _ = read_manifest(root, cls.FORMAT, cls.VERSION, label="packed document store")
        mpath = root / MANIFEST
        dtype = manifest_field(manifest, "dtype", str, mpath)
        dim = manifest_field(manifest, "dim", int, mpath)
        stride = manifest_field(manifest, "stride", int, mpath)
        n_docs = manifest_field(manifest, "n_docs", int, mpath)
        n_tokens = manifest_field(manifest, "n_tokens", int, mpath)
        entries = manifest_field(manifest, "files", dict, mpath)
        metadata = manifest.get("metadata", {})
        if not isinstance(metadata, dict):
            raise StateError(f"{mpath}: field 'metadata' must be dict, got {type(metadata).__name__}")
        for field, ok in (
            ("dtype", dtype in NUMPY_DTYPES),
            ("dim", 1 <= dim <= _MAX_DIM),
            ("n_docs", n_docs >= 0),
            ("n_tokens", n_tokens >= 0),
        ):
            if not ok:
                raise StateError(f"{mpath}: field {field!r} is invalid ({manifest[field]!r})")
        if stride != _core.maxsim_row_stride(dim, dtype) or manifest.get("byteorder") != "little":
            raise StateError(
                f"{mpath} describes a layout this crossrank does not read (field 'stride' or 'byteorder')"
            )
        itemsize = np.dtype(NUMPY_DTYPES[dtype]).itemsize
        expected = {"tokens.bin": n_tokens * stride * itemsize, "offsets.bin": (n_docs + 1) * 8}
        for name in [*expected, *(["ids.json"] if "ids.json" in entries else [])]:
            file = root / name
            entry = entries.get(name)
            if not isinstance(entry, dict):
                raise StateError(f"{mpath} does not describe {name} (field 'files')")
            size_field = manifest_field(entry, "bytes", int, f"{mpath}: field 'files' / {name}")
            if not file.is_file():
                raise StateError(f"{file} is missing; the store is incomplete")
            size = file.stat().st_size
            if size != size_field or (name in expected and size != expected[name]):
                raise StateError(
                    f"{file} has {size} bytes, expected {expected.get(name, size_field)}; "
                    "the store is truncated or corrupted, rebuild it"
                )
            if verify:
                digest = manifest_field(entry, "sha256", str, f"{mpath}: field 'files' / {name}")
                if sha256_file(file) != digest:
                    raise StateError(f"{file} fails its SHA-256 check; the store is corrupted, rebuild it")
        offsets = np.fromfile(root / "offsets.bin", dtype="<i8").astype(np.int64, copy=False)
        if offsets[0] != 0 or offsets[-1] != n_tokens or np.any(np.diff(offsets) < 0):
            raise StateError(f"{root / 'offsets.bin'} holds invalid offsets; the store is corrupted")
        np_dtype = np.dtype(NUMPY_DTYPES[dtype]).newbyteorder("<")
        if n_tokens == 0:
            data: np.ndarray = np.zeros((0, stride), np_dtype)
        else:
            data = np.memmap(root / "tokens.bin", dtype=np_dtype, mode="r", shape=(n_tokens, stride))
        ids = None
        if "ids.json" in entries:
            try:
                ids = json.loads((root / "ids.json").read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise StateError(f"{root / 'ids.json'} is corrupted: {e}") from e
            if not isinstance(ids, list) or len(ids) != n_docs or not all(isinstance(i, str) for i in ids):
                raise StateError(f"{root / 'ids.json'} does not hold {n_docs} string ids")
        docs = PackedDocs.from_buffers(data, offsets, dim=dim, dtype=dtype)
        return cls(root, docs, ids, metadata)


def _write_synced(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
