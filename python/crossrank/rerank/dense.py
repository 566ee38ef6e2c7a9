"""A :class:`DenseReranker` that rescores candidates by bi-encoder similarity to the query."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ..models.embedder import Embedder, _check_texts
from ..text.windows import Aggregation

__all__ = ["DenseReranker", "WindowedScores"]


# --------------------------------------------------------------------------------------------------

_V = TypeVar("_V")


def _lru_trim(cache: OrderedDict[bytes, Any], size: int) -> None:
    """Evict the least recently used entries beyond ``size``."""
    while len(cache) > size:
        cache.popitem(last=False)


def _lru_merge(
    cache: OrderedDict[bytes, _V], keys: Sequence[bytes], fresh: dict[bytes, _V], size: int
) -> list[_V]:
    """Values for ``keys``: freshly computed ones, else cached ones (marked recently used); then
    store the fresh values and evict beyond ``size`` (0 keeps nothing)."""
    out: list[_V] = []
    for k in keys:
        v = fresh.get(k)
        if v is None:
            v = cache[k]
            cache.move_to_end(k)
        out.append(v)
    if size > 0:
        cache.update(fresh)
        _lru_trim(cache, size)
    return out


class DenseReranker:
    """Rescore candidate documents by bi-encoder similarity to the query.

    Document embeddings are cached (keyed by a hash of the text, least recently used dropped past
    ``cache_size``), so documents that come back for several queries are embedded once.

    Parameters
    ----------
    model : Embedder, str or PathLike
        An :class:`Embedder`, or a model to load one from (``embedder_kwargs`` passed on).
    cache_size : int
        Document embeddings kept (0 disables the cache); with windows, one entry holds a document's
        window vectors.
    window_size : int, optional
        Long documents: split each document into windows of this many tokens (default: all the model
        reads, ``max_length`` minus special tokens and the document prompt) and embed each window as
        its own text. Windows are on when ``window_size`` or ``window_stride`` is given.
    window_stride : int, optional
        Tokens between window starts (default ``window_size // 2``); the last window ends at the
        document's end (see :mod:`crossrank.text.windows`).
    aggregate : {"max", "mean", "first", "topk_mean"}
        How window similarities become the document's score (``first`` = plain truncation to the window).
    aggregate_k : int
        Windows averaged by ``topk_mean``.

    Raises
    ------
    ValueError
        Bad window options (the message gives the accepted range).
    """

    def __init__(
        self,
        model: Embedder | str | os.PathLike[str],
        *,
        cache_size: int = 200_000,
        window_size: int | None = None,
        window_stride: int | None = None,
        aggregate: Aggregation = "max",
        aggregate_k: int = 3,
        **embedder_kwargs: Any,
    ):
        from ..text.windows import check_window_options

        self.embedder = model if isinstance(model, Embedder) else Embedder(model, **embedder_kwargs)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._win_cache: OrderedDict[bytes, _DocWindows] = OrderedDict()
        self.timings: dict[str, float] = {}
        self.windowed = window_size is not None or window_stride is not None
        self._prompt_ids: np.ndarray = np.zeros(0, np.int32)
        limit = self.embedder.max_length
        if self.windowed:
            from ..text.tokenization import load_tokenizer

            self._win_tokenizer = load_tokenizer(self.embedder.files.tokenizer_path)  # no truncation
            prompt = next(
                (self.embedder.prompts[n] for n in ("document", "passage") if n in self.embedder.prompts), ""
            )
            if prompt:
                self._prompt_ids = np.asarray(
                    self._win_tokenizer.encode(prompt, add_special_tokens=False).ids, dtype=np.int32
                )
            head, tail = self.embedder.special_tokens()
            limit = self.embedder.max_length - len(head) - len(tail) - len(self._prompt_ids)
        check_window_options(window_size, window_stride, limit, aggregate, aggregate_k)
        self.window_size = window_size if window_size is not None else limit
        self.window_stride = window_stride if window_stride is not None else max(1, self.window_size // 2)
        self.aggregate: Aggregation = aggregate
        self.aggregate_k = aggregate_k

    def __repr__(self) -> str:
        return f"DenseReranker({self.embedder!r})"

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def embed_documents(self, documents: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Return document embeddings (float32 [n, dim]), from the cache where possible."""
        docs = _check_texts(documents, "documents")
        keys = [self._key(d) for d in docs]
        todo: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._cache and k not in todo:
                todo[k] = i
        fresh: dict[bytes, np.ndarray] = {}
        if todo:
            vecs = self.embedder.encode_documents(
                [docs[i] for i in todo.values()], show_progress=show_progress
            )
            fresh = dict(zip(todo, vecs, strict=True))
        rows = _lru_merge(self._cache, keys, fresh, self.cache_size)
        dim = self.embedder.dim or 0
        return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)

    def add_to_cache(self, documents: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the cache with embeddings computed elsewhere (e.g. while indexing the corpus)."""
        docs = _check_texts(documents, "documents")
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(docs):
            raise ValueError(f"vectors must be [{len(docs)}, dim], got {vecs.shape}")
        for d, v in zip(docs, vecs, strict=True):
            self._cache[self._key(d)] = v
        _lru_trim(self._cache, self.cache_size)

    def score_batch(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Score many queries' candidates at once: unique documents are embedded in one sorted pass.

        Returns
        -------
        list of numpy.ndarray of float32
            ``[len(documents[i])]`` per query.
        """
        qs = _check_texts(queries, "queries")
        if len(documents) != len(qs):
            raise ValueError(f"got {len(documents)} document lists for {len(qs)} queries")
        flat = [d for docs in documents for d in _check_texts(docs, "documents")]
        doc_vecs = self.embed_documents(flat)
        q_vecs = self.embedder.encode_queries(qs) if qs else np.zeros((0, 0), np.float32)
        out, start = [], 0
        for i, docs in enumerate(documents):
            n = len(docs)
            sims = self._similarity(q_vecs[i], doc_vecs[start : start + n]) if n else np.zeros(0)
            out.append(np.asarray(sims, dtype=np.float32))
            start += n
        return out

    def _similarity(self, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        if self.embedder.similarity == "cosine" and not self.embedder.normalize:
            q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
            d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
        elif self.embedder.similarity in ("euclidean", "manhattan"):
            ord_ = 2 if self.embedder.similarity == "euclidean" else 1
            return -np.linalg.norm(d - q[None, :], ord=ord_, axis=1)
        return d @ q

    def _windows(self, docs: list[str]) -> list[_DocWindows]:
        """Window vectors and spans of each document (from the cache where possible)."""
        from ..text.windows import tokenize_with_offsets, window_bounds

        tag = f"{self.window_size}/{self.window_stride}".encode()
        keys = [self._key(d) + tag for d in docs]
        todo: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._win_cache and k not in todo:
                todo[k] = i
        fresh: dict[bytes, _DocWindows] = {}
        # A chunk of documents at a time: their token ids and offsets are dropped once embedded.
        todo_items = list(todo.items())
        for c in range(0, len(todo_items), 256):
            chunk = todo_items[c : c + 256]
            toks = tokenize_with_offsets(self._win_tokenizer, [docs[i] for _, i in chunk])
            seqs: list[np.ndarray] = []
            spans = []
            for t in toks:
                starts, ends = window_bounds(len(t.ids), self.window_size, self.window_stride)
                for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                    w = t.ids[s:e]
                    seqs.append(np.concatenate([self._prompt_ids, w]) if self._prompt_ids.size else w)
                if len(t.ids):
                    cs, ce = t.offsets[starts, 0], t.offsets[ends - 1, 1]
                else:
                    cs = ce = np.zeros(1, np.int64)
                spans.append((starts, ends, cs, ce))
            vecs = self.embedder.encode_token_ids(seqs)
            pos = 0
            for (k, _), (starts, ends, cs, ce) in zip(chunk, spans, strict=True):
                n = len(starts)
                fresh[k] = _DocWindows(vecs[pos : pos + n].copy(), starts, ends, cs, ce)
                pos += n
        return _lru_merge(self._win_cache, keys, fresh, self.cache_size)

    def score_windows(self, query: str, documents: Sequence[str]) -> WindowedScores:
        """Score every window of every document, aggregate per document, and name the winning window.

        Works with windows off too (one window per document: the text as the embedder truncates it).

        Returns
        -------
        WindowedScores
        """
        from ..text.windows import aggregate_windows

        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        docs = _check_texts(documents, "documents")
        q = self.embedder.encode_queries([query])[0]
        if not self.windowed:
            sims = self._similarity(q, self.embed_documents(docs)) if docs else np.zeros(0)
            z = np.zeros(len(docs), np.int64)
            offs = np.arange(len(docs) + 1, dtype=np.int64)
            return WindowedScores(
                np.asarray(sims, np.float64), np.asarray(sims, np.float64), offs, z, z, z, z - 1, z - 1
            )
        wins = self._windows(docs)
        counts = np.array([len(w.starts) for w in wins], dtype=np.int64)
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if not docs:
            e = np.zeros(0, np.int64)
            return WindowedScores(np.zeros(0), np.zeros(0), offsets, e, e, e, e, e)
        window_scores = np.concatenate([self._similarity(q, w.vectors) for w in wins]).astype(np.float64)
        agg, best = aggregate_windows(window_scores, offsets, self.aggregate, self.aggregate_k)

        def pick(attr: str) -> np.ndarray:
            return np.array([getattr(w, attr)[b] for w, b in zip(wins, best.tolist(), strict=True)], np.int64)

        return WindowedScores(
            agg,
            window_scores,
            offsets,
            best,
            pick("starts"),
            pick("ends"),
            pick("char_starts"),
            pick("char_ends"),
        )

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Return the similarity of each document to the query (float32 [n]; cosine for cosine models).

        With windows, the aggregated similarity of the document's windows (``aggregate``).
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        t0 = time.perf_counter()
        if self.windowed:
            out = self.score_windows(query, documents).scores.astype(np.float32)
            self.timings = {"rerank_s": time.perf_counter() - t0}
            return out
        docs = self.embed_documents(documents)
        q = self.embedder.encode_queries([query])[0]
        out = self._similarity(q, docs).astype(np.float32) if docs.shape[0] else np.zeros(0, np.float32)
        self.timings = {"rerank_s": time.perf_counter() - t0}
        return out

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None) -> list[dict[str, Any]]:
        """Rank documents for a query; like ``CrossEncoder.rank``.

        Returns
        -------
        list of dict
            ``{"corpus_id": index into documents, "score": float}``, best first (ties by index); with
            windows also ``"window": {"index", "start_token", "end_token", "start_char", "end_char"}``
            of the best window (``documents[i][start_char:end_char]`` is its text).
        """
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        if not self.windowed:
            scores = self.score(query, documents)
            order = np.argsort(-scores, kind="stable")[:top_k]
            return [{"corpus_id": int(i), "score": float(scores[i])} for i in order]
        t0 = time.perf_counter()
        ws = self.score_windows(query, documents)
        self.timings = {"rerank_s": time.perf_counter() - t0}
        scores = ws.scores.astype(np.float32)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [{"corpus_id": int(i), "score": float(scores[i]), "window": ws.window(int(i))} for i in order]


@dataclass(frozen=True)
class _DocWindows:
    vectors: np.ndarray  # float32 [n_windows, dim]
    starts: np.ndarray  # int64 [n_windows] token ranges
    ends: np.ndarray
    char_starts: np.ndarray  # int64 [n_windows] character ranges
    char_ends: np.ndarray


class WindowedScores(NamedTuple):
    """Per-document scores aggregated over token windows, with the winning window.

    Attributes
    ----------
    scores : numpy.ndarray
        float64 [n_docs], aggregated.
    window_scores : numpy.ndarray
        float64 [n_windows], every window's score, documents one after another.
    window_offsets : numpy.ndarray
        int64 [n_docs + 1]: document ``i``'s windows are ``window_scores[window_offsets[i]:window_offsets[i+1]]``.
    best_window, best_start, best_end, best_start_char, best_end_char : numpy.ndarray
        int64 [n_docs]: the highest-scoring window, its token range and its character range (-1 when
        windows are off).
    """

    scores: np.ndarray
    window_scores: np.ndarray
    window_offsets: np.ndarray
    best_window: np.ndarray
    best_start: np.ndarray
    best_end: np.ndarray
    best_start_char: np.ndarray
    best_end_char: np.ndarray

    def window(self, i: int) -> dict[str, int]:
        """The winning window of document ``i`` as a JSON-ready dict."""
        return {
            "index": int(self.best_window[i]),
            "start_token": int(self.best_start[i]),
            "end_token": int(self.best_end[i]),
            "start_char": int(self.best_start_char[i]),
            "end_char": int(self.best_end_char[i]),
        }
