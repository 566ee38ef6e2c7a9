"""Saving and opening a :class:`~crossrank.retrieve.bm25.BM25Index`: one directory of raw arrays.

Layout: ``manifest.json`` (format ``crossrank.bm25``, ``format_version``, parameters, analyzer
config, and for every array its file, little-endian dtype, shape and SHA-256, sealed by the SHA-256
of the manifest body) plus one raw binary file per array, so an index can be memory-mapped.

A save writes the whole directory aside and swaps it in with one rename
(:func:`crossrank._common.atomic_directory`): a reader, or a kill -9, sees the complete old index
or the complete new one, and an index already memory-mapped from the old files keeps working.
Everything is validated before anything on disk changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from .._common import (
    MANIFEST,
    atomic_directory,
    manifest_body,
    manifest_field,
    read_consistent,
    read_manifest,
    sha256_bytes,
    sha256_file,
)
from ..errors import StateError
from ..text.analyzer import Analyzer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load_state", "save_state"]

FORMAT_NAME = "crossrank.bm25"
FORMAT_VERSION = 2
_LABEL = "BM25"

# name -> dtype of every array of an index (little-endian on disk). Version 2 keeps the postings'
# documents and term frequencies packed (cpp/src/bm25_codec.hpp: per block of 64 postings, offsets
# from its last document and tf - 1 at 0, 1, 2 or 4 bytes; block_last / block_off locate the blocks
# in packed_postings, block_ptr is derived from term_ptr).
ARRAYS: dict[str, str] = {
    "term_ptr": "<i8",
    "block_last": "<u4",
    "block_off": "<u8",
    "packed_postings": "<u1",
    "doc_lens": "<u4",
    "impacts": "<f4",
    "nonoccurrence": "<f4",
    "vocab_chars": "<u1",
    "vocab_offsets": "<u8",
}
# Version 1 (still read): plain uint32 docs and tfs, 8 bytes per posting.
ARRAYS_V1: dict[str, str] = {
    "term_ptr": "<i8",
    "docs": "<u4",
    "tfs": "<u4",
    "doc_lens": "<u4",
    "impacts": "<f4",
    "nonoccurrence": "<f4",
    "vocab_chars": "<u1",
    "vocab_offsets": "<u8",
}
ID_ARRAYS: dict[str, dict[str, str]] = {
    "position": {},
    "int": {"ids": "<i8"},
    "str": {"ids_chars": "<u1", "ids_offsets": "<u8"},
}
# Exceptions a malformed (but checksum-sealed) manifest can raise while it is read.
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def _digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest body (every field but ``manifest_sha256``), canonical JSON."""
    return sha256_bytes(json.dumps(body, sort_keys=True).encode("utf-8"))


def save_state(
    path: str | os.PathLike[str],
    *,
    params: Mapping[str, Any],
    analyzer_config: Mapping[str, Any] | None,
    vocab: _core.Vocabulary,
    arrays: Mapping[str, np.ndarray],
    ids_kind: str,
    ids: np.ndarray | None,
) -> None:
    """Write one index state to directory ``path`` atomically (see the module doc).

    Parameters
    ----------
    path : path-like
        The index directory; an existing BM25 index there is replaced, any other non-empty
        directory is refused.
    params : mapping
        ``variant``, ``k1``, ``b``, ``delta``.
    analyzer_config : mapping, optional
        :attr:`crossrank.Analyzer.config`, or None for an index built from tokens.
    vocab : crossrank._core.Vocabulary
        The term vocabulary.
    arrays : mapping of str to numpy.ndarray
        ``term_ptr``, ``block_last``, ``block_off``, ``packed_postings`` (the packed postings),
        ``doc_lens``, ``impacts``, ``nonoccurrence`` (1-D).
    ids_kind : {"position", "int", "str"}
        How documents are named.
    ids : numpy.ndarray, optional
        The caller's ids (int64, or object array of str) for ``ids_kind`` int / str.

    Raises
    ------
    ValueError
        Ids that do not match ``ids_kind`` or the number of documents (nothing is written).
    FileExistsError
        ``path`` is a non-empty directory that does not hold a BM25 index.
    """
    n_docs = len(arrays["doc_lens"])
    chars, offsets = vocab.arena()
    data: dict[str, np.ndarray] = {name: arrays[name] for name in ARRAYS if name in arrays}
    data["vocab_chars"], data["vocab_offsets"] = chars, offsets
    if ids_kind not in ID_ARRAYS:
        raise ValueError(f"ids_kind must be one of {sorted(ID_ARRAYS)}, got {ids_kind!r}")
    if ids_kind != "position" and (ids is None or len(ids) != n_docs):
        raise ValueError(f"{0 if ids is None else len(ids)} ids for {n_docs} documents")
    if ids_kind == "int":
        data["ids"] = np.asarray(ids, dtype=np.int64)
    elif ids_kind == "str":
        encoded = [str(s).encode("utf-8", "surrogatepass") for s in ids.tolist()]  # type: ignore[union-attr]
        lens = np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))
        ids_off = np.zeros(len(encoded) + 1, dtype=np.uint64)
        np.cumsum(lens, out=ids_off[1:])
        data["ids_chars"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        data["ids_offsets"] = ids_off
    dtypes = {**ARRAYS, **ID_ARRAYS[ids_kind]}
    missing = sorted(set(dtypes) - set(data))
    if missing:
        raise ValueError(f"arrays {missing} are missing")
    # Convert (and so validate) every array before the directory is touched.
    ready = {
        name: np.ascontiguousarray(data[name], dtype=np.dtype(dt)).reshape(-1) for name, dt in dtypes.items()
    }
    with atomic_directory(path, overwrite=True, replaces=FORMAT_NAME) as tmp:
        entries: dict[str, Any] = {}
        for name, arr in ready.items():
            file = f"{name}.bin"
            buf = arr.data.cast("B") if arr.size else memoryview(b"")
            with open(tmp / file, "wb") as f:
                f.write(buf)
                f.flush()
                os.fsync(f.fileno())
            entries[name] = {
                "file": file,
                "dtype": dtypes[name],
                "shape": [int(arr.shape[0])],
                "sha256": sha256_bytes(buf),
            }
        body = manifest_body(
            FORMAT_NAME,
            FORMAT_VERSION,
            params=dict(params),
            analyzer=None if analyzer_config is None else dict(analyzer_config),
            n_docs=n_docs,
            n_terms=len(vocab),
            ids_kind=ids_kind,
            arrays=entries,
        )
        manifest = {**body, "manifest_sha256": _digest(body)}
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())


def load_state(path: str | os.PathLike[str], *, mmap: bool, verify: bool) -> dict[str, Any]:
    """Read and validate a saved index; return its state (``params`` still unchecked).

    Parameters
    ----------
    path : path-like
        The index directory.
    mmap : bool
        Memory-map the arrays read-only instead of reading them.
    verify : bool
        Check every file's SHA-256; structural checks always run.

    Returns
    -------
    dict
        ``params`` (the manifest's mapping), ``analyzer``, ``vocab``, ``term_ptr``, ``packed``
        (version 2: the four packed-postings arrays) or ``docs`` and ``tfs`` (version 1),
        ``doc_lens``, ``impacts``, ``nonoccurrence``, ``ids_kind``, ``ids``.

    Raises
    ------
    FileNotFoundError
        No such directory.
    crossrank.errors.StateError
        Any problem with the manifest or a file (the message names the file and the field).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such index directory")
    return read_consistent(root, lambda: _load(root, mmap=mmap, verify=verify))


def _load(root: Path, *, mmap: bool, verify: bool) -> dict[str, Any]:
    manifest, version = read_manifest(root, FORMAT_NAME, FORMAT_VERSION, label=_LABEL)
    mpath = root / MANIFEST
    body = {key: val for key, val in manifest.items() if key != "manifest_sha256"}
    if manifest.get("manifest_sha256") != _digest(body):
        raise StateError(f"{mpath}: checksum mismatch (the manifest was modified or corrupted)")
    try:
        return _state_from_manifest(root, manifest, version, mmap=mmap, verify=verify)
    except StateError:
        raise
    except _MALFORMED as exc:
        raise StateError(f"{mpath}: malformed manifest ({type(exc).__name__}: {exc})") from None


def _read_array(root: Path, entry: object, dtype: str, *, mmap: bool, verify: bool) -> np.ndarray:
    mpath = root / MANIFEST
    if not isinstance(entry, dict):
        raise StateError(f"{mpath}: malformed manifest (an array entry is {type(entry).__name__})")
    name = manifest_field(entry, "file", str, f"{mpath}: malformed manifest")
    if Path(name).name != name or name in ("", ".", ".."):
        raise StateError(f"{mpath}: array file name {name!r} must be a plain file name")
    file = root / name
    if entry.get("dtype") != dtype:
        raise StateError(f"{file}: dtype {entry.get('dtype')!r} in the manifest, expected {dtype!r}")
    shape = entry.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 1
        and isinstance(shape[0], int)
        and not isinstance(shape[0], bool)
        and shape[0] >= 0
    ):
        raise StateError(f"{file}: invalid shape {shape!r} in the manifest")
    if not file.is_file():
        raise StateError(f"{file}: missing (the index directory is incomplete)")
    expected = shape[0] * np.dtype(dtype).itemsize
    size = file.stat().st_size
    if size != expected:
        raise StateError(
            f"{file}: {size} bytes, expected {expected} (truncated or not written by this index)"
        )
    if verify and sha256_file(file) != entry.get("sha256"):
        raise StateError(f"{file}: SHA-256 mismatch (the file is corrupted or was modified)")
    if expected == 0:
        return np.zeros(0, dtype=np.dtype(dtype).newbyteorder("="))
    if mmap and np.dtype(dtype).isnative:
        return np.memmap(file, dtype=dtype, mode="r", shape=(shape[0],))
    arr = np.fromfile(file, dtype=dtype)
    return arr.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def _state_from_manifest(
    root: Path, manifest: Mapping[str, Any], version: int, *, mmap: bool, verify: bool
) -> dict[str, Any]:
    mpath = root / MANIFEST
    where = f"{mpath}: malformed manifest"
    params = manifest_field(manifest, "params", dict, where)
    ids_kind = manifest_field(manifest, "ids_kind", str, where)
    if ids_kind not in ID_ARRAYS:
        raise StateError(f"{mpath}: unknown ids_kind {ids_kind!r}")
    expected = {**(ARRAYS_V1 if version == 1 else ARRAYS), **ID_ARRAYS[ids_kind]}
    entries = manifest_field(manifest, "arrays", dict, where)
    missing = sorted(set(expected) - set(entries))
    if missing:
        raise StateError(f"{mpath}: arrays {missing} are not listed")
    arrays = {
        name: _read_array(root, entries[name], dtype, mmap=mmap, verify=verify)
        for name, dtype in expected.items()
    }
    n_docs = manifest_field(manifest, "n_docs", int, where)
    n_terms = manifest_field(manifest, "n_terms", int, where)
    if len(arrays["doc_lens"]) != n_docs or len(arrays["term_ptr"]) != n_terms + 1 or n_docs < 1:
        raise StateError(f"{mpath}: n_docs / n_terms do not match the arrays")
    packed = None
    try:
        if version >= 2:
            counts = np.diff(np.asarray(arrays["term_ptr"], dtype=np.int64))
            block_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum((counts + 63) // 64, out=block_ptr[1:])
            block_last, block_off = arrays["block_last"], arrays["block_off"]
            data = arrays["packed_postings"]
            packed = (block_ptr, block_last, block_off, data)
            _core.bm25_check_packed(arrays["term_ptr"], block_ptr, block_last, block_off, data, n_docs)
        _core.bm25_validate_index(
            arrays["term_ptr"],
            arrays.get("docs"),
            arrays.get("tfs"),
            arrays["doc_lens"],
            arrays["impacts"],
            arrays["nonoccurrence"],
        )
        vocab = _core.Vocabulary.from_arena(arrays["vocab_chars"], arrays["vocab_offsets"])
    except (StateError, ValueError) as exc:
        raise StateError(f"{root}: inconsistent index arrays: {exc}") from None
    if len(vocab) != n_terms:
        raise StateError(f"{root / 'vocab_offsets.bin'}: {len(vocab)} terms, manifest says {n_terms}")
    ids: np.ndarray | None = None
    if ids_kind == "int":
        ids = np.asarray(arrays["ids"], dtype=np.int64)
        if len(ids) != n_docs:
            raise StateError(f"{root / 'ids.bin'}: {len(ids)} ids for {n_docs} documents")
    elif ids_kind == "str":
        ids = _decode_str_ids(root, arrays["ids_chars"], arrays["ids_offsets"], n_docs)
    analyzer = None
    config = manifest.get("analyzer")
    if config is not None:
        try:
            analyzer = Analyzer.from_config(config)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateError(f"{mpath}: invalid analyzer config ({exc})") from None
    return {
        "params": params,
        "analyzer": analyzer,
        "vocab": vocab,
        "term_ptr": arrays["term_ptr"],
        # Version 1's plain docs / tfs are packed by the index (in memory); version 2's are mapped.
        **({"packed": packed} if packed is not None else {"docs": arrays["docs"], "tfs": arrays["tfs"]}),
        "doc_lens": arrays["doc_lens"],
        "impacts": arrays["impacts"],
        "nonoccurrence": arrays["nonoccurrence"],
        "ids_kind": ids_kind,
        "ids": ids,
    }


def _decode_str_ids(root: Path, chars_arr: np.ndarray, off: np.ndarray, n_docs: int) -> np.ndarray:
    chars = bytes(chars_arr)
    if (
        len(off) != n_docs + 1
        or off[0] != 0
        or off[-1] != len(chars)
        or np.any(np.diff(off.astype(np.int64)) < 0)
    ):
        raise StateError(f"{root / 'ids_offsets.bin'}: offsets do not describe {n_docs} ids")
    ids = np.empty(n_docs, dtype=object)
    try:
        ol = off.tolist()
        ids[:] = [chars[ol[i] : ol[i + 1]].decode("utf-8", "surrogatepass") for i in range(n_docs)]
    except UnicodeDecodeError:
        raise StateError(f"{root / 'ids_chars.bin'}: ids are not valid UTF-8") from None
    if len(set(ids.tolist())) != n_docs:
        raise StateError(f"{root / 'ids_chars.bin'}: ids are not unique")
    return ids
