"""ColBERT late-interaction reranking with an ONNX token encoder and the C++ MaxSim kernel.

ColBERT (Khattab & Zaharia 2020; ColBERTv2, Santhanam et al. 2022) encodes query and document
separately into one L2-normalised vector per token and scores ``sum_i max_j q_i . d_j``. Conventions
followed here (read from the checkpoint when it says otherwise):

* query:    ``[CLS] [Q] tokens... [SEP]`` then ``[MASK]`` up to ``query_maxlen`` (query
  augmentation); the [MASK] positions are not attended to (unless the checkpoint says
  ``attend_to_mask_tokens``) but their output vectors are kept and scored;
* document: ``[CLS] [D] tokens... [SEP]`` truncated to ``doc_maxlen``; vectors of punctuation tokens
  (the skip-list) are dropped;
* the model's linear projection (``linear`` in a colbert-ai checkpoint, ``1_Dense`` in a PyLate one)
  is applied to the encoder output in NumPy unless the ONNX graph already includes it, then every
  vector is L2-normalised.

Checkpoint layouts read: colbert-ai (``artifact.metadata`` with ``query_token_id`` "[unused0]",
``doc_token_id`` "[unused1]", ``query_maxlen``, ``doc_maxlen``...; ``linear.weight`` in
``model.safetensors``) and PyLate / sentence-transformers (``config_sentence_transformers.json`` with
``query_prefix`` "[Q] ", ``document_prefix`` "[D] ", ``query_length``, ``document_length``,
``skiplist_words``...; ``1_Dense/model.safetensors``). A plain encoder (e.g. all-MiniLM-L6-v2) also
works with the ColBERT defaults, which is how the tests run offline; its scores are *not* ColBERT
quality. Retrieval-quality figures need a trained checkpoint such as ``colbert-ir/colbertv2.0`` or
``answerdotai/answerai-colbert-small-v1`` (exported to ONNX with ``crossrank export``).

Runs on the CPU (ONNX Runtime or OpenVINO for the encoder, the C++ kernel for MaxSim); there is no
GPU MaxSim path.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelNotFoundError, StateError
from ..text.windows import (
    Aggregation,
    aggregate_windows,
    check_window_options,
    tokenize_with_offsets,
    window_bounds,
)
from .maxsim import DType, PackedDocs, PackedDocStore, _check_dtype, maxsim

__all__ = ["ColBERTReranker", "ColBERTSettings"]

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


@dataclass(frozen=True)
class ColBERTSettings:
    """How queries and documents are turned into token ids (defaults: ColBERTv2).

    Attributes
    ----------
    query_maxlen, doc_maxlen : int
        Token budgets including [CLS], the marker and [SEP].
    query_marker, doc_marker : str or None
        Marker tokens inserted after [CLS] ("[unused0]"/"[unused1]" in colbert-ai checkpoints,
        "[Q] "/"[D] " in PyLate ones); None inserts nothing.
    query_augmentation : bool
        Pad queries with [MASK] up to ``query_maxlen`` and score those vectors too.
    attend_to_mask_tokens : bool
        Let the encoder attend to the [MASK] padding (colbert-ai default False).
    skiplist : tuple of str
        Document tokens whose vectors are dropped (punctuation).
    source : str
        Where the settings came from: "colbert-ai", "pylate" or "defaults".
    """

    query_maxlen: int = 32
    doc_maxlen: int = 180
    query_marker: str | None = "[unused0]"
    doc_marker: str | None = "[unused1]"
    query_augmentation: bool = True
    attend_to_mask_tokens: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)
    source: str = "defaults"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateError(f"{path} is not valid JSON: {e}") from e
    return data if isinstance(data, dict) else None


def settings_from_checkpoint(dirs: Sequence[Path]) -> ColBERTSettings:
    """Read ColBERT settings from a colbert-ai ``artifact.metadata`` or a PyLate config in ``dirs``."""
    for d in dirs:
        meta = _read_json(d / "artifact.metadata")
        if meta is not None:
            base = ColBERTSettings()
            return replace(
                base,
                query_maxlen=int(meta.get("query_maxlen", base.query_maxlen)),
                doc_maxlen=int(meta.get("doc_maxlen", base.doc_maxlen)),
                query_marker=meta.get("query_token_id", base.query_marker),
                doc_marker=meta.get("doc_token_id", base.doc_marker),
                attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", False)),
                skiplist=tuple(string.punctuation) if meta.get("mask_punctuation", True) else (),
                source="colbert-ai",
                extra={"dim": meta.get("dim")},
            )
    for d in dirs:
        st = _read_json(d / "config_sentence_transformers.json")
        if st is not None and ("query_prefix" in st or "document_prefix" in st):
            base = ColBERTSettings()
            skip = st.get("skiplist_words")
            return replace(
                base,
                query_maxlen=int(st.get("query_length") or base.query_maxlen),
                doc_maxlen=int(st.get("document_length") or base.doc_maxlen),
                query_marker=st.get("query_prefix", "[Q] "),
                doc_marker=st.get("document_prefix", "[D] "),
                query_augmentation=bool(st.get("do_query_expansion", True)),
                attend_to_mask_tokens=bool(st.get("attend_to_expansion_tokens", False)),
                skiplist=tuple(skip) if isinstance(skip, list) else base.skiplist,
                source="pylate",
            )
    return ColBERTSettings()


def read_safetensors(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the named tensors of a ``.safetensors`` file with NumPy (fp32/fp16/fp64/bf16).

    Raises
    ------
    crossrank.errors.StateError
        A header that does not parse or a tensor that lies outside the file.
    """
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise StateError(f"{path} is not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StateError(f"{path} has a corrupted safetensors header: {e}") from e
        out: dict[str, np.ndarray] = {}
        for name in names:
            info = header.get(name)
            if info is None:
                continue
            begin, end = info["data_offsets"]
            f.seek(8 + n + begin)
            buf = f.read(end - begin)
            if len(buf) != end - begin:
                raise StateError(f"{path} is truncated (tensor {name!r})")
            if info["dtype"] == "BF16":
                arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] in _SAFETENSORS_DTYPES:
                arr = np.frombuffer(buf, np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
            else:
                raise StateError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
            out[name] = arr.astype(np.float32).reshape(info["shape"])
        return out


def find_projection(dirs: Sequence[Path]) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Return the checkpoint's linear projection (weight [out, in] float32, bias or None), if any.

    Looks for PyLate's ``1_Dense/model.safetensors`` (``linear.weight``) and colbert-ai's
    ``linear.weight`` in ``model.safetensors``.
    """
    for d in dirs:
        for path, prefix in ((d / "1_Dense" / "model.safetensors", ""), (d / "model.safetensors", "")):
            if path.is_file():
                t = read_safetensors(path, [prefix + "linear.weight", prefix + "linear.bias"])
                if "linear.weight" in t:
                    return t["linear.weight"], t.get("linear.bias")
        if (d / "1_Dense" / "pytorch_model.bin").is_file():
            raise ModelNotFoundError(
                f"{d / '1_Dense'} stores its projection as pytorch_model.bin; convert it to "
                "model.safetensors (safetensors.torch.save_file) so crossrank can read it without torch"
            )
    return None


def _hub_side_files(model: str, local_files_only: bool) -> Path | None:
    """Fetch the ColBERT-specific files resolve_model does not (metadata, projection) for a hub id."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - a hard dependency
        return None
    root: Path | None = None
    for name in ("artifact.metadata", "config_sentence_transformers.json", "1_Dense/model.safetensors"):
        try:
            p = Path(hf_hub_download(model, name, local_files_only=local_files_only))
            root = p.parents[1] if name.startswith("1_Dense/") else p.parent
        except Exception:
            continue
    return root


def _check_text(x: Any, what: str) -> str:
    if not isinstance(x, str):
        raise ValueError(f"{what} must be a str, got {type(x).__name__}")
    return x


class ColBERTReranker:
    """Rerank candidates with ColBERT late interaction (token vectors + MaxSim).

    Parameters
    ----------
    model : str or PathLike
        Model directory (Hugging Face / PyLate layout with an ONNX graph), ``.onnx`` file, or hub id;
        resolved with :func:`crossrank.models.hub.resolve_model`.
    query_maxlen, doc_maxlen : int, optional
        Override the checkpoint's (default 32 / 180).
    dtype : {"fp32", "fp16", "bf16"}
        Storage of document vectors for MaxSim.
    query_marker, doc_marker : str or None, optional
        Override the marker tokens (see :class:`ColBERTSettings`); ``""`` disables a marker.
    batch_size : int
        Sequences per encoder call.
    backend, precision : str
        Passed to :func:`crossrank.models.onnx_session.load_backend`.
    num_threads : int, optional
        Encoder and MaxSim threads; None = the CPU quota.
    onnx_file : str, optional
        Which graph when the model has several.
    local_files_only : bool
        Never touch the network.
    cache_mb : float
        Bound of the in-memory cache of document vectors (keyed by a BLAKE2b hash of the text,
        least recently used evicted; 0 disables it). ``cache_hits`` / ``cache_misses`` count uses.
    window_size : int, optional
        Long documents: instead of truncating at ``doc_maxlen``, split each document into windows of
        this many tokens (default and maximum: what ``doc_maxlen`` holds beside [CLS], the marker and
        [SEP]), encode each window as its own document and score it with MaxSim. Windows are on when
        ``window_size`` or ``window_stride`` is given. Window vectors are not cached; windows are
        encoded and scored a block at a time, so memory stays bounded for a 1 MB document.
    window_stride : int, optional
        Tokens between window starts (default ``window_size // 2``); the last window ends at the
        document's end (see :mod:`crossrank.text.windows`).
    aggregate : {"max", "mean", "first", "topk_mean"}
        How window MaxSim scores become the document's score.
    aggregate_k : int
        Windows averaged by ``topk_mean``.

    Raises
    ------
    crossrank.errors.ModelNotFoundError
        The model cannot be resolved.
    ValueError
        A marker token the tokenizer does not know, bad lengths, or a dtype not in fp32/fp16/bf16.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        query_maxlen: int | None = None,
        doc_maxlen: int | None = None,
        dtype: DType = "fp16",
        query_marker: str | None = None,
        doc_marker: str | None = None,
        batch_size: int = 32,
        backend: str = "auto",
        precision: str = "fp32",
        num_threads: int | None = None,
        onnx_file: str | None = None,
        local_files_only: bool = False,
        cache_mb: float = 256,
        window_size: int | None = None,
        window_stride: int | None = None,
        aggregate: Aggregation = "max",
        aggregate_k: int = 3,
    ) -> None:
        from ..models.hub import resolve_model
        from ..models.onnx_session import load_backend
        from ..text.tokenization import TextEncoder, load_tokenizer

        self.dtype: str = _check_dtype(dtype)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = batch_size
        self.num_threads = num_threads
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, int | float) or cache_mb < 0:
            raise ValueError(f"cache_mb must be a number >= 0, got {cache_mb!r}")
        self._cache_limit = int(cache_mb * 2**20)
        self._doc_cache: OrderedDict[bytes, tuple[np.ndarray, bool]] = OrderedDict()
        self._cache_bytes = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.model_name = os.fspath(model)
        files = resolve_model(
            model, onnx_file=onnx_file, local_files_only=local_files_only, task="token-embedding"
        )
        dirs = [files.root]
        given = Path(self.model_name).expanduser()
        if given.is_dir() and given.resolve() != files.root:
            dirs.append(given.resolve())
        elif not given.exists():
            hub_root = _hub_side_files(self.model_name, local_files_only)
            if hub_root is not None:
                dirs.append(hub_root)
        settings = settings_from_checkpoint(dirs)
        overrides: dict[str, Any] = {}
        for key, value in (("query_maxlen", query_maxlen), ("doc_maxlen", doc_maxlen)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 4:
                    raise ValueError(f"{key} must be an int >= 4, got {value!r}")
                overrides[key] = value
        if query_marker is not None:
            overrides["query_marker"] = query_marker or None
        if doc_marker is not None:
            overrides["doc_marker"] = doc_marker or None
        self.settings = replace(settings, **overrides)

        self.files = files
        self.tokenizer = load_tokenizer(files.tokenizer_path)
        # Prefix tokenization: a 1 MB document costs about what doc_maxlen tokens cost.
        self._text = TextEncoder(self.tokenizer, cache_tokens=0)
        self._special = self._special_ids()
        self._q_marker = self._marker_id(self.settings.query_marker, "query_marker")
        self._d_marker = self._marker_id(self.settings.doc_marker, "doc_marker")
        self._skip_ids = self._skiplist_ids(self.settings.skiplist)
        self.backend = load_backend(
            files.onnx_path, backend=backend, precision=precision, num_threads=num_threads
        )
        self.projection = find_projection(dirs)
        self.dim: int | None = None
        self.windowed = window_size is not None or window_stride is not None
        limit = self._room(self._d_marker, self.settings.doc_maxlen)
        check_window_options(window_size, window_stride, limit, aggregate, aggregate_k)
        self.window_size = window_size if window_size is not None else limit
        self.window_stride = window_stride if window_stride is not None else max(1, self.window_size // 2)
        self.aggregate: Aggregation = aggregate
        self.aggregate_k = aggregate_k
        self.store: PackedDocStore | None = None

    # ------------------------------------------------------------------ tokens
    def _token_id(self, *candidates: str) -> int | None:
        for c in candidates:
            i = self.tokenizer.token_to_id(c)
            if i is not None:
                return int(i)
        return None

    def _special_ids(self) -> dict[str, int]:
        ids = self.tokenizer.encode("", add_special_tokens=True).ids
        cls_id = ids[0] if ids else self._token_id("[CLS]", "<s>")
        sep_id = ids[-1] if len(ids) > 1 else self._token_id("[SEP]", "</s>")
        mask_id = self._token_id("[MASK]", "<mask>")
        pad_id = self._token_id("[PAD]", "<pad>")
        if cls_id is None or sep_id is None or mask_id is None:
            raise ValueError(
                f"{self.files.tokenizer_path} lacks the [CLS]/[SEP]/[MASK] tokens ColBERT needs "
                "(BERT- or RoBERTa-style vocabularies are supported)"
            )
        return {"cls": int(cls_id), "sep": int(sep_id), "mask": int(mask_id), "pad": int(pad_id or 0)}

    def _marker_id(self, marker: str | None, what: str) -> int | None:
        if marker is None:
            return None
        found = self._token_id(marker, marker.strip())
        if found is None:
            raise ValueError(
                f"{what} {marker!r} is not a token of {self.files.tokenizer_path}; pass {what}='' to use none"
            )
        return found

    def _skiplist_ids(self, words: Sequence[str]) -> np.ndarray:
        ids = set()
        for w in words:
            i = self._token_id(w)
            if i is None:
                enc = self.tokenizer.encode(w, add_special_tokens=False).ids
                i = enc[0] if len(enc) == 1 else None
            if i is not None:
                ids.add(int(i))
        return np.array(sorted(ids), dtype=np.int64)

    @staticmethod
    def _room(marker: int | None, maxlen: int) -> int:
        """Text tokens that fit beside [CLS], the marker and [SEP]."""
        return maxlen - 2 - (marker is not None)

    def _frame(self, ids: np.ndarray, marker: int | None, maxlen: int) -> tuple[list[int], bool]:
        """[CLS] marker ids[:room] [SEP]; returns (ids, truncated)."""
        head = [self._special["cls"]] + ([marker] if marker is not None else [])
        room = self._room(marker, maxlen)
        return [*head, *(int(i) for i in ids[:room]), self._special["sep"]], len(ids) > room

    # ------------------------------------------------------------------ encoder
    def _run(self, seqs: list[list[int]], attend: list[list[int]]) -> list[np.ndarray]:
        """Encode sequences (sorted into batches by length); return float32 [len_i, dim] each."""
        out: list[np.ndarray | None] = [None] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = np.full((len(idx), width), self._special["pad"], dtype=np.int64)
            att = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(seqs[i])] = seqs[i]
                att[r, : len(seqs[i])] = attend[i]
            feeds = {"input_ids": ids, "attention_mask": att, "token_type_ids": np.zeros_like(ids)}
            hidden = np.asarray(self.backend.run(feeds)[0], dtype=np.float32)
            if hidden.ndim != 3:
                raise ValueError(
                    f"the ONNX graph's first output has shape {hidden.shape}; a ColBERT encoder must output "
                    "token vectors [batch, seq, dim] (export with --task token-embedding)"
                )
            vecs = self._project(hidden)
            for r, i in enumerate(idx):
                out[i] = vecs[r, : len(seqs[i])]
        return [o if o is not None else np.zeros((0, 0), np.float32) for o in out]

    def _project(self, hidden: np.ndarray) -> np.ndarray:
        if self.projection is not None:
            w, bias = self.projection
            if hidden.shape[-1] == w.shape[1]:
                hidden = hidden @ w.T
                if bias is not None:
                    hidden = hidden + bias
            elif hidden.shape[-1] != w.shape[0]:
                raise ValueError(
                    f"the encoder outputs dim {hidden.shape[-1]} but the projection maps {w.shape[1]} -> "
                    f"{w.shape[0]}; the ONNX graph and the checkpoint do not match"
                )
        norms = np.linalg.norm(hidden, axis=-1, keepdims=True)
        hidden = hidden / np.maximum(norms, 1e-12)
        self.dim = int(hidden.shape[-1])
        return np.ascontiguousarray(hidden, dtype=np.float32)

    def encode_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Encode queries to token vectors.

        Returns
        -------
        list of numpy.ndarray
            float32 [query_maxlen, dim] each with augmentation (else [n_tokens_i, dim]),
            L2-normalised.
        """
        qs = [_check_text(q, f"queries[{i}]") for i, q in enumerate(queries)]
        s = self.settings
        seqs, attend = [], []
        room = self._room(self._q_marker, s.query_maxlen)
        for ids in self._text.encode(qs, max_tokens=room, cache=False):
            seq, _ = self._frame(ids, self._q_marker, s.query_maxlen)
            att = [1] * len(seq)
            if s.query_augmentation:
                pad = s.query_maxlen - len(seq)
                seq = seq + [self._special["mask"]] * pad
                att = att + [1 if s.attend_to_mask_tokens else 0] * pad
            seqs.append(seq)
            attend.append(att)
        return self._run(seqs, attend)

    def encode_documents(
        self, documents: Sequence[str], *, cache: bool = True
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Encode documents to token vectors, punctuation dropped.

        Parameters
        ----------
        documents : sequence of str
        cache : bool
            Reuse / keep vectors in the in-memory document cache (bounded by ``cache_mb``); a
            reranker sees the same candidates again and again while only the query changes.

        Returns
        -------
        vectors : list of numpy.ndarray
            float32 [n_kept_i, dim] each, L2-normalised (read-only when they come from the cache).
        truncated : numpy.ndarray
            bool [n_docs]: the document had more tokens than ``doc_maxlen`` allows.
        """
        docs = [_check_text(d, f"documents[{i}]") for i, d in enumerate(documents)]
        use_cache = cache and self._cache_limit > 0
        keys = (
            [hashlib.blake2b(d.encode("utf-8"), digest_size=16).digest() for d in docs] if use_cache else []
        )
        found: dict[bytes, tuple[np.ndarray, bool]] = {}
        todo: list[int] = []
        for i in range(len(docs)):
            hit = self._doc_cache.get(keys[i]) if use_cache else None
            if hit is not None:
                self._doc_cache.move_to_end(keys[i])
                found[keys[i]] = hit
                self.cache_hits += 1
            elif not use_cache or keys[i] not in found:
                todo.append(i)
                if use_cache:
                    found[keys[i]] = (np.zeros((0, 0), np.float32), False)  # placeholder: one encode per text
        if todo:
            self.cache_misses += len(todo)
            vecs, cut = self._encode_uncached([docs[i] for i in todo])
            for j, i in enumerate(todo):
                if use_cache:
                    vecs[j].flags.writeable = False
                    found[keys[i]] = (vecs[j], bool(cut[j]))
                    self._cache_put(keys[i], vecs[j], bool(cut[j]))
            if not use_cache:
                return vecs, cut
        out = [found[k] for k in keys]
        return [v for v, _ in out], np.array([c for _, c in out], dtype=bool)

    def _cache_put(self, key: bytes, vec: np.ndarray, cut: bool) -> None:
        if vec.nbytes > self._cache_limit:
            return
        old = self._doc_cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= old[0].nbytes
        self._doc_cache[key] = (vec, cut)
        self._cache_bytes += vec.nbytes
        while self._cache_bytes > self._cache_limit:
            _, (evicted, _) = self._doc_cache.popitem(last=False)
            self._cache_bytes -= evicted.nbytes

    def clear_cache(self) -> None:
        """Forget the cached document vectors."""
        self._doc_cache.clear()
        self._cache_bytes = 0

    def _encode_uncached(self, docs: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
        seqs, attend, truncated = [], [], []
        room = self._room(self._d_marker, self.settings.doc_maxlen)
        for ids in self._text.encode(docs, max_tokens=room, cache=False):
            seq, cut = self._frame(ids, self._d_marker, self.settings.doc_maxlen)
            seqs.append(seq)
            attend.append([1] * len(seq))
            truncated.append(cut)
        vecs = self._run(seqs, attend)
        kept = [
            np.ascontiguousarray(v[~np.isin(np.asarray(s), self._skip_ids)])
            for v, s in zip(vecs, seqs, strict=True)
        ]
        return kept, np.array(truncated, dtype=bool)

    def pack_documents(
        self, documents: Sequence[str], *, cache: bool = True
    ) -> tuple[PackedDocs, np.ndarray]:
        """Encode and pack documents for :func:`crossrank.maxsim` (returns (packed, truncated))."""
        vecs, truncated = self.encode_documents(documents, cache=cache)
        dim = self.dim if self.dim is not None else self._probe_dim()
        return PackedDocs(vecs, dtype=self.dtype, dim=dim, num_threads=self.num_threads), truncated  # type: ignore[arg-type]

    def _probe_dim(self) -> int:
        self.encode_queries([""])
        assert self.dim is not None  # set by _project
        return self.dim

    # ------------------------------------------------------------------ ranking
    def _ranked(
        self,
        scores: np.ndarray,
        truncated: np.ndarray,
        top_k: int | None,
        texts: Sequence[str] | None,
        ids: Sequence[Any] | None,
    ) -> list[dict[str, Any]]:
        order = np.argsort(-scores, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        out = []
        for i in order:
            row: dict[str, Any] = {
                "corpus_id": ids[i] if ids is not None else int(i),
                "score": float(scores[i]),
                "truncated": bool(truncated[i]),
            }
            if texts is not None:
                row["text"] = texts[i]
            out.append(row)
        return out

    @staticmethod
    def _check_top_k(top_k: int | None) -> None:
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
            raise ValueError(f"top_k must be an int >= 0 or None, got {top_k!r}")

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
    ) -> list[dict[str, Any]]:
        """Rank documents for one query, best first (same shape as ``CrossEncoder.rank``).

        Returns
        -------
        list of dict
            ``{"corpus_id": int, "score": float, "truncated": bool[, "text": str]}`` sorted by
            MaxSim score, highest first, ties in input order; scores are Python floats.

        Raises
        ------
        ValueError
            A query or document that is not a str, or ``top_k < 0``.
        """
        _check_text(query, "query")
        if isinstance(documents, str | bytes) or not isinstance(documents, Sequence | np.ndarray):
            raise ValueError(f"documents must be a list of str, got {type(documents).__name__}")
        self._check_top_k(top_k)
        docs = list(documents)
        if not docs:
            return []
        (q,) = self.encode_queries([query])
        if self.windowed:
            return self._rerank_windows(q, docs, top_k, return_documents)
        packed, truncated = self.pack_documents(docs)
        scores = maxsim(q, packed, num_threads=self.num_threads)
        return self._ranked(scores, truncated, top_k, docs if return_documents else None, None)

    # Windows encoded and scored per block: bounds the window vectors held at once (256 windows x 180
    # tokens x 128 dims x 4 bytes = 24 MB for ColBERTv2).
    _WINDOW_BLOCK = 256

    def score_windows(self, query: str, documents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim score of every token window of every document (windows on or off).

        Returns
        -------
        window_scores : numpy.ndarray
            float64 [n_windows], documents' windows one after another.
        window_offsets : numpy.ndarray
            int64 [n_docs + 1].
        """
        _check_text(query, "query")
        docs = [_check_text(d, f"documents[{i}]") for i, d in enumerate(documents)]
        (q,) = self.encode_queries([query])
        scores, offsets, _ = self._window_scores(q, docs)
        return scores, offsets

    def _window_scores(
        self, q: np.ndarray, docs: list[str]
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
        """Per-window MaxSim scores, window offsets per document, and per document (starts, ends, char spans)."""
        size, stride = self.window_size, self.window_stride
        spans: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        pieces: list[tuple[int, np.ndarray]] = []  # (global window row, token ids) still to score
        scores_parts: list[np.ndarray] = []
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        total = 0

        def flush() -> None:
            if not pieces:
                return
            seqs, attend = [], []
            for _, ids in pieces:
                seq, _ = self._frame(ids, self._d_marker, self.settings.doc_maxlen)
                seqs.append(seq)
                attend.append([1] * len(seq))
            vecs = self._run(seqs, attend)
            kept = [
                np.ascontiguousarray(v[~np.isin(np.asarray(sq), self._skip_ids)])
                for v, sq in zip(vecs, seqs, strict=True)
            ]
            dim = self.dim if self.dim is not None else self._probe_dim()
            packed = PackedDocs(kept, dtype=self.dtype, dim=dim, num_threads=self.num_threads)  # type: ignore[arg-type]
            scores_parts.append(np.asarray(maxsim(q, packed, num_threads=self.num_threads), dtype=np.float64))
            pieces.clear()

        for i, doc in enumerate(docs):
            (t,) = tokenize_with_offsets(self.tokenizer, [doc])
            starts, ends = window_bounds(len(t.ids), size, stride)
            if len(t.ids):
                cs, ce = t.offsets[starts, 0], t.offsets[ends - 1, 1]
            else:
                cs = ce = np.zeros(1, np.int64)
            spans.append((starts, ends, cs, ce))
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                pieces.append((total, t.ids[s:e]))
                total += 1
                if len(pieces) >= self._WINDOW_BLOCK:
                    flush()
            offsets[i + 1] = total
            del t
        flush()
        scores = np.concatenate(scores_parts) if scores_parts else np.zeros(0)
        return scores, offsets, spans

    def _rerank_windows(
        self, q: np.ndarray, docs: list[str], top_k: int | None, return_documents: bool
    ) -> list[dict[str, Any]]:
        window_scores, offsets, spans = self._window_scores(q, docs)
        agg, best = aggregate_windows(window_scores, offsets, self.aggregate, self.aggregate_k)
        out = self._ranked(
            agg, np.zeros(len(docs), dtype=bool), top_k, docs if return_documents else None, None
        )
        for row in out:
            i = row["corpus_id"]
            b = int(best[i])
            starts, ends, cs, ce = spans[i]
            row["window"] = {
                "index": b,
                "start_token": int(starts[b]),
                "end_token": int(ends[b]),
                "start_char": int(cs[b]),
                "end_char": int(ce[b]),
            }
        return out

    rank = rerank

    # ------------------------------------------------------------------ on-disk store
    def _store_metadata(self) -> dict[str, Any]:
        s = self.settings
        return {
            "encoder": "crossrank.ColBERTReranker",
            "model": self.model_name,
            "doc_maxlen": s.doc_maxlen,
            "doc_marker": s.doc_marker,
            "skiplist": list(s.skiplist),
            "projection": None if self.projection is None else list(self.projection[0].shape),
        }

    def index(
        self,
        documents: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
    ) -> PackedDocStore | PackedDocs:
        """Encode a corpus once; keep it for :meth:`rerank_ids`, optionally saved as a store.

        Parameters
        ----------
        documents : sequence of str
        ids : sequence of str, optional
            Corpus ids (default "0", "1", ...).
        path : str or PathLike, optional
            Save a :class:`PackedDocStore` there (reopen later with :meth:`load_index`).

        Returns
        -------
        PackedDocStore when ``path`` is given, else PackedDocs.
        """
        packed, truncated = self.pack_documents(documents, cache=False)  # a corpus would only thrash it
        ids = [str(i) for i in (ids if ids is not None else range(len(packed)))]
        meta = {**self._store_metadata(), "truncated": truncated.astype(int).tolist()}
        if path is not None:
            self.store = PackedDocStore.save(path, packed, ids=ids, metadata=meta, overwrite=overwrite)
            return self.store
        self.store = PackedDocStore(Path(""), packed, ids, meta)
        return packed

    def load_index(self, path: str | os.PathLike[str], *, verify: bool = True) -> PackedDocStore:
        """Open a store written by :meth:`index` with the same model and document settings.

        Raises
        ------
        crossrank.errors.StateError
            A corrupted store, or one encoded with another model or other document settings.
        """
        store = PackedDocStore.open(path, verify=verify)
        mine = self._store_metadata()
        theirs = {k: store.metadata.get(k) for k in mine}
        if theirs != mine:
            diff = {k: (theirs[k], mine[k]) for k in mine if theirs[k] != mine[k]}
            raise StateError(f"{path} was encoded with different settings (stored, current): {diff}")
        self.store = store
        return store

    def rerank_ids(
        self, query: str, candidate_ids: Sequence[str], *, top_k: int | None = None
    ) -> list[dict[str, Any]]:
        """Rank corpus ids from the index (see :meth:`index`) for one query, best first.

        Returns
        -------
        list of dict
            ``{"corpus_id": str, "score": float, "truncated": bool}``, highest score first.

        Raises
        ------
        crossrank.errors.StateError
            No index built or loaded.
        KeyError
            A candidate id that is not in the index.
        """
        _check_text(query, "query")
        self._check_top_k(top_k)
        if self.store is None or self.store.ids is None:
            raise StateError("no document index; call index(...) or load_index(path) first")
        pos = {cid: i for i, cid in enumerate(self.store.ids)}
        try:
            rows = np.array([pos[str(c)] for c in candidate_ids], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"candidate id {e.args[0]!r} is not in the index") from None
        if rows.size == 0:
            return []
        (q,) = self.encode_queries([query])
        scores = maxsim(q, self.store.docs, doc_ids=rows, num_threads=self.num_threads)
        trunc_all = np.asarray(self.store.metadata.get("truncated", [0] * len(self.store)), dtype=bool)
        return self._ranked(scores, trunc_all[rows], top_k, None, [str(c) for c in candidate_ids])

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"ColBERTReranker({self.model_name!r}, query_maxlen={s.query_maxlen}, doc_maxlen={s.doc_maxlen}, "
            f"dtype={self.dtype!r}, settings={s.source!r}, projection={self.projection is not None})"
        )
