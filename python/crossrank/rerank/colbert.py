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

Checkpoint layouts read (by :mod:`crossrank.rerank.colbert_checkpoint`): colbert-ai (``artifact.metadata`` with ``query_token_id`` "[unused0]",
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

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .._common import check_int, check_text, check_texts, check_top_k, text_key
from ..errors import StateError
from ..text.windows import (
    aggregate_windows,
    check_window_options,
    tokenize_with_offsets,
    window_bounds,
)
from ..types import Aggregation, Scores, Window
from .base import RerankerBase, ranked_from_scores
from .colbert_checkpoint import (
    ColBERTSettings,
    find_projection,
    hub_side_files,
    read_safetensors,
    settings_from_checkpoint,
)
from .maxsim import DType, PackedDocs, PackedDocStore, _check_dtype, maxsim

__all__ = ["ColBERTReranker", "ColBERTSettings", "RankedId", "read_safetensors", "settings_from_checkpoint"]


_Spans = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # token starts, ends, char starts, ends


class RankedId(TypedDict):
    """One row of :meth:`ColBERTReranker.rerank_ids`: a corpus id of the index and its score."""

    corpus_id: str
    score: float
    truncated: bool


class ColBERTReranker(RerankerBase):
    """Rerank candidates with ColBERT late interaction (token vectors + MaxSim).

    Meets the :class:`crossrank.types.Reranker` protocol. One instance may be shared across threads:
    the document-vector cache is locked, the encoder session and the MaxSim kernel are thread-safe, and
    per-call counters come back in :attr:`Scores.stats <crossrank.types.Scores.stats>`
    (``cache_hits``, ``cache_misses``, ``encoded``, ``total_s``). :meth:`index` and :meth:`load_index`
    replace the instance's store: do not call them while other threads call :meth:`rerank_ids`.

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
    max_batch_size : int
        Sequences per encoder call at most.
    max_batch_tokens : int
        Rows × padded length per encoder call at most (sequences are sorted by length first), which
        bounds the activations' memory.
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
        least recently used evicted; 0 disables it). Each call's ``Scores.stats`` counts its hits.
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
        max_batch_size: int = 32,
        max_batch_tokens: int = 16384,
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
        self.max_batch_size = check_int(max_batch_size, "max_batch_size", minimum=1)
        self.max_batch_tokens = check_int(max_batch_tokens, "max_batch_tokens", minimum=1)
        self.num_threads = num_threads
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, int | float) or cache_mb < 0:
            raise ValueError(f"cache_mb must be a number >= 0, got {cache_mb!r}")
        self._cache_limit = int(cache_mb * 2**20)
        self._doc_cache: OrderedDict[bytes, tuple[np.ndarray, bool]] = OrderedDict()
        self._cache_bytes = 0
        self._cache_lock = threading.Lock()
        self.model_name = os.fspath(model)
        files = resolve_model(
            model, onnx_file=onnx_file, local_files_only=local_files_only, task="token-embedding"
        )
        dirs = [files.root]
        given = Path(self.model_name).expanduser()
        if given.is_dir() and given.resolve() != files.root:
            dirs.append(given.resolve())
        elif not given.exists():
            hub_root = hub_side_files(self.model_name, local_files_only)
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
        for idx in self._batches(order, [len(x) for x in seqs]):
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

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut length-sorted rows into batches under max_batch_size and max_batch_tokens (padded)."""
        out: list[list[int]] = []
        cur: list[int] = []
        for i in order:  # ascending length: the row being added sets the padded width
            if cur and (
                len(cur) >= self.max_batch_size or (len(cur) + 1) * lengths[i] > self.max_batch_tokens
            ):
                out.append(cur)
                cur = []
            cur.append(i)
        if cur:
            out.append(cur)
        return out

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

        Parameters
        ----------
        queries : sequence of str
            The queries.

        Returns
        -------
        list of numpy.ndarray
            float32 [query_maxlen, dim] each with augmentation (else [n_tokens_i, dim]),
            L2-normalised.

        Raises
        ------
        TypeError
            ``queries`` is a lone str or holds a non-str.
        """
        qs = check_texts(queries, "queries")
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
            The texts.
        cache : bool
            Reuse / keep vectors in the in-memory document cache (bounded by ``cache_mb``); a
            reranker sees the same candidates again and again while only the query changes.

        Returns
        -------
        vectors : list of numpy.ndarray
            float32 [n_kept_i, dim] each, L2-normalised (read-only when they come from the cache).
        truncated : numpy.ndarray
            bool [n_docs]: the document had more tokens than ``doc_maxlen`` allows.

        Raises
        ------
        TypeError
            ``documents`` is a lone str or holds a non-str.
        """
        vecs, cut, _ = self._encode_documents(check_texts(documents, "documents"), cache)
        return vecs, cut

    def _encode_documents(
        self, docs: list[str], cache: bool
    ) -> tuple[list[np.ndarray], np.ndarray, dict[str, float]]:
        """Vectors, truncation flags and this call's cache counters (hits, misses = texts encoded)."""
        if not (cache and self._cache_limit > 0):
            vecs, cut = self._encode_uncached(docs)
            return vecs, cut, {"cache_hits": 0.0, "cache_misses": float(len(docs))}
        keys = [text_key(d) for d in docs]
        found: dict[bytes, tuple[np.ndarray, bool]] = {}
        todo: list[int] = []
        hits = 0
        with self._cache_lock:  # read the hits out under the lock: another thread may evict them next
            for i, k in enumerate(keys):
                hit = self._doc_cache.get(k)
                if hit is not None:
                    self._doc_cache.move_to_end(k)
                    found[k] = hit
                    hits += 1
                elif k not in found:
                    todo.append(i)
                    found[k] = (np.zeros((0, 0), np.float32), False)  # placeholder: one encode per text
        if todo:
            vecs, cut = self._encode_uncached([docs[i] for i in todo])
            with self._cache_lock:
                for j, i in enumerate(todo):
                    vecs[j].flags.writeable = False
                    found[keys[i]] = (vecs[j], bool(cut[j]))
                    self._cache_put(keys[i], vecs[j], bool(cut[j]))
        out = [found[k] for k in keys]
        counts = {"cache_hits": float(hits), "cache_misses": float(len(todo))}
        return [v for v, _ in out], np.array([c for _, c in out], dtype=bool), counts

    def _cache_put(self, key: bytes, vec: np.ndarray, cut: bool) -> None:
        """Store one entry (the caller holds ``_cache_lock``)."""
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
        with self._cache_lock:
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
        """Encode and pack documents for :func:`crossrank.maxsim`.

        Parameters
        ----------
        documents : sequence of str
            The texts.
        cache : bool
            Use the document-vector cache (see :meth:`encode_documents`).

        Returns
        -------
        packed : PackedDocs
        truncated : numpy.ndarray
            bool [n_docs].
        """
        vecs, truncated = self.encode_documents(documents, cache=cache)
        dim = self.dim if self.dim is not None else self._probe_dim()
        return PackedDocs(vecs, dtype=self.dtype, dim=dim, num_threads=self.num_threads), truncated  # type: ignore[arg-type]

    def _probe_dim(self) -> int:
        self.encode_queries([""])
        assert self.dim is not None  # set by _project
        return self.dim

    # ------------------------------------------------------------------ the reranker protocol
    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        """Queries encoded in one pass; all candidates encoded (through the cache) and packed once."""
        t0 = time.perf_counter()
        q_vecs = self.encode_queries(queries)
        flat = [d for docs in documents_per_query for d in docs]
        if self.windowed:
            return self._score_windows_many(q_vecs, documents_per_query, t0)
        vecs, cut, counts = self._encode_documents(flat, cache=True)
        dim = self.dim if self.dim is not None else self._probe_dim()
        packed = PackedDocs(vecs, dtype=self.dtype, dim=dim, num_threads=self.num_threads)  # type: ignore[arg-type]
        raw: list[np.ndarray] = []
        pos = 0
        for q, docs in zip(q_vecs, documents_per_query, strict=True):
            rows = np.arange(pos, pos + len(docs), dtype=np.int64)
            raw.append(np.asarray(maxsim(q, packed, doc_ids=rows, num_threads=self.num_threads)))
            pos += len(docs)
        stats = {
            **counts,
            "queries": float(len(queries)),
            "documents": float(len(flat)),
            "total_s": time.perf_counter() - t0,
        }
        out: list[Scores] = []
        pos = 0
        for sc in raw:
            out.append(Scores(sc, cut[pos : pos + len(sc)], None, dict(stats)))
            pos += len(sc)
        return out

    # Windows encoded and scored per block: bounds the window vectors held at once (256 windows x 180
    # tokens x 128 dims x 4 bytes = 24 MB for ColBERTv2).
    _WINDOW_BLOCK = 256

    def score_windows(self, query: str, documents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim score of every token window of every document (windows on or off).

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            The candidates.

        Returns
        -------
        window_scores : numpy.ndarray
            float64 [n_windows], documents' windows one after another.
        window_offsets : numpy.ndarray
            int64 [n_docs + 1].

        Raises
        ------
        TypeError
            A non-str query or document.
        """
        check_text(query, "query")
        docs = check_texts(documents, "documents")
        (q,) = self.encode_queries([query])
        ((scores, offsets, _),), _ = self._window_scores([q], [docs])
        return scores, offsets

    def _window_scores(
        self, q_vecs: list[np.ndarray], documents_per_query: list[list[str]]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, list[_Spans]]], int]:
        """Per query: window MaxSim scores, window offsets per document, and per document its spans.

        Windows of every query's documents are encoded a block at a time; each block is packed once
        and scored against the queries whose windows it holds. Returns the results and the number of
        windows encoded.
        """
        size, stride = self.window_size, self.window_stride
        nq = len(q_vecs)
        spans: list[list[_Spans]] = [[] for _ in range(nq)]
        parts: list[list[np.ndarray]] = [[] for _ in range(nq)]
        offsets = [np.zeros(len(d) + 1, dtype=np.int64) for d in documents_per_query]
        pieces: list[tuple[int, np.ndarray]] = []  # (query, token ids) still to score
        encoded = 0

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
            owner = np.array([qi for qi, _ in pieces], dtype=np.int64)
            for qi in np.unique(owner).tolist():  # pieces are in query order: rows of qi are contiguous
                rows = np.flatnonzero(owner == qi).astype(np.int64)
                got = maxsim(q_vecs[qi], packed, doc_ids=rows, num_threads=self.num_threads)
                parts[qi].append(np.asarray(got, dtype=np.float64))
            pieces.clear()

        for qi, docs in enumerate(documents_per_query):
            total = 0
            for i, doc in enumerate(docs):
                (t,) = tokenize_with_offsets(self.tokenizer, [doc])
                starts, ends = window_bounds(len(t.ids), size, stride)
                if len(t.ids):
                    cs, ce = t.offsets[starts, 0], t.offsets[ends - 1, 1]
                else:
                    cs = ce = np.zeros(1, np.int64)
                spans[qi].append((starts, ends, cs, ce))
                for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                    pieces.append((qi, t.ids[s:e]))
                    total += 1
                    encoded += 1
                    if len(pieces) >= self._WINDOW_BLOCK:
                        flush()
                offsets[qi][i + 1] = total
                del t
        flush()
        out = [
            (np.concatenate(parts[qi]) if parts[qi] else np.zeros(0), offsets[qi], spans[qi])
            for qi in range(nq)
        ]
        return out, encoded

    def _score_windows_many(
        self, q_vecs: list[np.ndarray], documents_per_query: list[list[str]], t0: float
    ) -> list[Scores]:
        results, encoded = self._window_scores(q_vecs, documents_per_query)
        n_docs = sum(len(d) for d in documents_per_query)
        stats = {
            "queries": float(len(q_vecs)),
            "documents": float(n_docs),
            "windows_encoded": float(encoded),
            "total_s": time.perf_counter() - t0,
        }
        out: list[Scores] = []
        for window_scores, offsets, spans in results:
            agg, best = aggregate_windows(window_scores, offsets, self.aggregate, self.aggregate_k)
            windows: list[Window | None] = []
            for (starts, ends, cs, ce), b in zip(spans, best.tolist(), strict=True):
                windows.append(
                    Window(
                        index=int(b),
                        start_token=int(starts[b]),
                        end_token=int(ends[b]),
                        start_char=int(cs[b]),
                        end_char=int(ce[b]),
                    )
                )
            # Windows cover every token: nothing is left out.
            out.append(Scores(agg, np.zeros(len(spans), bool), windows, dict(stats)))
        return out

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
            The corpus.
        ids : sequence of str, optional
            Corpus ids (default "0", "1", ...).
        path : str or PathLike, optional
            Save a :class:`PackedDocStore` there (reopen later with :meth:`load_index`).
        overwrite : bool
            Replace an existing store at ``path``.

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

        Parameters
        ----------
        path : str or PathLike
            The store's directory.
        verify : bool
            Check the stored checksums.

        Returns
        -------
        PackedDocStore

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
        self, query: str, candidate_ids: Sequence[str], top_k: int | None = None
    ) -> list[RankedId]:
        """Rank corpus ids from the index (see :meth:`index`) for one query, best first.

        Parameters
        ----------
        query : str
            The query.
        candidate_ids : sequence of str
            Ids of the index to score.
        top_k : int, optional
            Keep the best ``top_k`` (an int >= 1); None keeps all.

        Returns
        -------
        list of RankedId
            ``{"corpus_id": str, "score": float, "truncated": bool}``, highest score first, ties in
            input order.

        Raises
        ------
        crossrank.errors.StateError
            No index built or loaded.
        KeyError
            A candidate id that is not in the index.
        TypeError, ValueError
            A non-str query, or a bad ``top_k`` (the same rule as :meth:`rank`).
        """
        check_text(query, "query")
        check_top_k(top_k, 0)
        store = self.store
        if store is None or store.ids is None:
            raise StateError("no document index; call index(...) or load_index(path) first")
        pos = {cid: i for i, cid in enumerate(store.ids)}
        ids = [str(c) for c in candidate_ids]
        try:
            rows = np.array([pos[c] for c in ids], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"candidate id {e.args[0]!r} is not in the index") from None
        if rows.size == 0:
            return []
        (q,) = self.encode_queries([query])
        scores = np.asarray(maxsim(q, store.docs, doc_ids=rows, num_threads=self.num_threads), np.float32)
        trunc_all = np.asarray(store.metadata.get("truncated", [0] * len(store)), dtype=bool)
        ranked = ranked_from_scores(Scores(scores, trunc_all[rows]), ids, top_k)
        return [
            RankedId(corpus_id=ids[r["corpus_id"]], score=r["score"], truncated=r["truncated"])
            for r in ranked
        ]

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"ColBERTReranker({self.model_name!r}, query_maxlen={s.query_maxlen}, doc_maxlen={s.doc_maxlen}, "
            f"dtype={self.dtype!r}, settings={s.source!r}, projection={self.projection is not None})"
        )
