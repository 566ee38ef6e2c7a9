"""A :class:`DenseReranker` that rescores candidates by bi-encoder similarity to the query."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .._common import check_int, check_text, check_texts, text_key
from ..models.embedder import Embedder
from ..types import Aggregation, Scores, Window
from .base import RerankerBase

__all__ = ["DenseReranker", "WindowedScores"]


class _LockedLRU:
    """A bounded least-recently-used map of text keys, safe to share between threads.

    Values are read out under the lock (a lookup copies references, so a concurrent eviction cannot
    make an entry vanish between "is it there?" and "give it to me" — the KeyError an unlocked
    check-then-read raises under concurrency).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, keys: Sequence[bytes]) -> tuple[dict[bytes, Any], list[int]]:
        """Cached values by key, and the positions of the first occurrence of every missing key."""
        found: dict[bytes, Any] = {}
        missing: list[int] = []
        seen: set[bytes] = set()
        with self._lock:
            for i, k in enumerate(keys):
                if k in found or k in seen:
                    continue
                v = self._data.get(k)
                if v is None:
                    seen.add(k)
                    missing.append(i)
                else:
                    self._data.move_to_end(k)
                    found[k] = v
        return found, missing

    def store(self, fresh: dict[bytes, Any]) -> None:
        """Add values, then evict the least recently used beyond ``size`` (0 keeps nothing)."""
        if self.size <= 0 or not fresh:
            return
        with self._lock:
            self._data.update(fresh)
            for k in fresh:
                self._data.move_to_end(k)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class DenseReranker(RerankerBase):
    """Rescore candidate documents by bi-encoder similarity to the query.

    Meets the :class:`crossrank.types.Reranker` protocol. Document embeddings are cached (keyed by a
    hash of the text, least recently used dropped past ``cache_size``), so documents that come back for
    several queries are embedded once. One instance may be shared across threads: the caches are
    locked, the inference session is thread-safe, and per-call counters are returned in
    :attr:`Scores.stats <crossrank.types.Scores.stats>` (``cache_hits``, ``cache_misses``, ``embedded``,
    ``total_s``).

    Parameters
    ----------
    model : Embedder, str or PathLike
        An :class:`Embedder`, or a model to load one from (``embedder_kwargs`` passed on, e.g.
        ``max_batch_tokens``, ``max_batch_size``, ``precision``).
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
    **embedder_kwargs
        Passed to :class:`Embedder` when ``model`` is not one.

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
        from ..text.tokenization import TextEncoder, load_tokenizer
        from ..text.windows import check_window_options

        self.embedder = model if isinstance(model, Embedder) else Embedder(model, **embedder_kwargs)
        self.cache_size = check_int(cache_size, "cache_size", minimum=0)
        self._cache = _LockedLRU(self.cache_size)  # text key -> (vector, truncated)
        self._win_cache = _LockedLRU(self.cache_size)  # text key + window tag -> _DocWindows
        self.windowed = window_size is not None or window_stride is not None
        # An untruncated tokenizer: window token ids with offsets, and prefix counts for truncation flags.
        self._win_tokenizer = load_tokenizer(self.embedder.files.tokenizer_path)
        self._counter = TextEncoder(self._win_tokenizer, cache_tokens=0)
        self._prompt_ids: np.ndarray = np.zeros(0, np.int32)
        prompt = next(
            (self.embedder.prompts[n] for n in ("document", "passage") if n in self.embedder.prompts), ""
        )
        if prompt:
            self._prompt_ids = np.asarray(
                self._win_tokenizer.encode(prompt, add_special_tokens=False).ids, dtype=np.int32
            )
        head, tail = self.embedder.special_tokens()
        # Document tokens one model row holds beside the special tokens and the document prompt.
        self._room = self.embedder.max_length - len(head) - len(tail) - len(self._prompt_ids)
        check_window_options(window_size, window_stride, self._room, aggregate, aggregate_k)
        self.window_size = window_size if window_size is not None else self._room
        self.window_stride = window_stride if window_stride is not None else max(1, self.window_size // 2)
        self.aggregate: Aggregation = aggregate
        self.aggregate_k = aggregate_k

    def __repr__(self) -> str:
        return f"DenseReranker({self.embedder!r})"

    # ------------------------------------------------------------------ embeddings
    def _truncated(self, docs: list[str]) -> np.ndarray:
        """Whether each document has more tokens than the model reads (prefix tokenization: cheap)."""
        ids = self._counter.encode(docs, max_tokens=self._room, cache=False)
        return np.fromiter((len(x) > self._room for x in ids), dtype=bool, count=len(docs))

    def _embed(
        self, docs: list[str], show_progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """Vectors ``[n, dim]``, truncation flags ``[n]`` and cache counters of ``docs``."""
        keys = [text_key(d) for d in docs]
        found, missing = self._cache.lookup(keys)
        fresh: dict[bytes, tuple[np.ndarray, bool]] = {}
        if missing:
            todo = [docs[i] for i in missing]
            vecs = self.embedder.encode_documents(todo, show_progress=show_progress)
            cut = self._truncated(todo)
            for i, v, c in zip(missing, vecs, cut.tolist(), strict=True):
                fresh[keys[i]] = (v, c)
            self._cache.store(fresh)
        counts = {"cache_hits": float(len(found)), "cache_misses": float(len(missing))}
        if not docs:
            return np.zeros((0, self.embedder.dim or 0), np.float32), np.zeros(0, bool), counts
        rows = [fresh[k] if k in fresh else found[k] for k in keys]
        return np.stack([v for v, _ in rows]), np.array([c for _, c in rows], dtype=bool), counts

    def embed_documents(self, documents: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Return document embeddings, from the cache where possible.

        Parameters
        ----------
        documents : sequence of str
            The texts.
        show_progress : bool
            A tqdm bar over the texts that must be embedded.

        Returns
        -------
        numpy.ndarray
            float32 ``[n, dim]``, in input order.

        Raises
        ------
        TypeError
            ``documents`` is a lone str or holds a non-str.
        """
        docs = check_texts(documents, "documents")
        return self._embed(docs, show_progress)[0]

    def add_to_cache(self, documents: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the cache with embeddings computed elsewhere (e.g. while indexing the corpus).

        Parameters
        ----------
        documents : sequence of str
            The texts the vectors belong to.
        vectors : numpy.ndarray
            float32 ``[len(documents), dim]`` embeddings of the same model.

        Raises
        ------
        TypeError
            ``documents`` is a lone str or holds a non-str.
        ValueError
            ``vectors`` has the wrong shape.
        """
        docs = check_texts(documents, "documents")
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(docs):
            raise ValueError(f"vectors must be [{len(docs)}, dim], got {vecs.shape}")
        if self.cache_size <= 0:
            return
        # Only the last cache_size entries would survive the eviction: flag and store just those.
        docs, vecs = docs[-self.cache_size :], vecs[-self.cache_size :]
        cut = self._truncated(docs)
        self._cache.store({text_key(d): (v, c) for d, v, c in zip(docs, vecs, cut.tolist(), strict=True)})

    def _similarity(self, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        if self.embedder.similarity == "cosine" and not self.embedder.normalize:
            q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
            d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
        elif self.embedder.similarity in ("euclidean", "manhattan"):
            ord_ = 2 if self.embedder.similarity == "euclidean" else 1
            return -np.linalg.norm(d - q[None, :], ord=ord_, axis=1)
        return d @ q

    # ------------------------------------------------------------------ windows
    def _windows(self, docs: list[str]) -> tuple[list[_DocWindows], dict[str, float]]:
        """Window vectors and spans of each document (from the cache where possible)."""
        from ..text.windows import tokenize_with_offsets, window_bounds

        tag = f"{self.window_size}/{self.window_stride}".encode()
        keys = [text_key(d) + tag for d in docs]
        found, missing = self._win_cache.lookup(keys)
        fresh: dict[bytes, _DocWindows] = {}
        n_windows = 0
        # A chunk of documents at a time: their token ids and offsets are dropped once embedded.
        for c in range(0, len(missing), 256):
            chunk = missing[c : c + 256]
            toks = tokenize_with_offsets(self._win_tokenizer, [docs[i] for i in chunk])
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
            n_windows += len(seqs)
            pos = 0
            for i, (starts, ends, cs, ce) in zip(chunk, spans, strict=True):
                n = len(starts)
                fresh[keys[i]] = _DocWindows(vecs[pos : pos + n].copy(), starts, ends, cs, ce)
                pos += n
        self._win_cache.store(fresh)
        counts = {
            "cache_hits": float(len(found)),
            "cache_misses": float(len(missing)),
            "windows_embedded": float(n_windows),
        }
        return [fresh[k] if k in fresh else found[k] for k in keys], counts

    def _window_scores(self, q: np.ndarray, wins: list[_DocWindows]) -> WindowedScores:
        from ..text.windows import aggregate_windows

        n = len(wins)
        counts = np.array([len(w.starts) for w in wins], dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if not n:
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

    def score_windows(self, query: str, documents: Sequence[str]) -> WindowedScores:
        """Score every window of every document, aggregate per document, and name the winning window.

        Works with windows off too (one window per document: the text as the embedder truncates it).

        Parameters
        ----------
        query : str
            The query.
        documents : sequence of str
            The candidates.

        Returns
        -------
        WindowedScores

        Raises
        ------
        TypeError
            A non-str query or document.
        """
        check_text(query, "query")
        docs = check_texts(documents, "documents")
        q = self.embedder.encode_queries([query])[0]
        if not self.windowed:
            sims = self._similarity(q, self._embed(docs)[0]) if docs else np.zeros(0)
            z = np.zeros(len(docs), np.int64)
            offs = np.arange(len(docs) + 1, dtype=np.int64)
            return WindowedScores(
                np.asarray(sims, np.float64), np.asarray(sims, np.float64), offs, z, z, z, z - 1, z - 1
            )
        return self._window_scores(q, self._windows(docs)[0])

    # ------------------------------------------------------------------ the reranker protocol
    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        """All queries in one embedding pass, every distinct document embedded at most once."""
        t0 = time.perf_counter()
        q_vecs = self.embedder.encode_queries(queries)
        flat = [d for docs in documents_per_query for d in docs]
        out: list[Scores] = []
        if not self.windowed:
            vecs, cut, counts = self._embed(flat)
            pieces: list[tuple[np.ndarray, np.ndarray, list[Window | None] | None]] = []
            pos = 0
            for q, docs in zip(q_vecs, documents_per_query, strict=True):
                n = len(docs)
                sims = np.asarray(self._similarity(q, vecs[pos : pos + n]), dtype=np.float32)
                pieces.append((sims, cut[pos : pos + n], None))
                pos += n
        else:
            wins, counts = self._windows(flat)
            pieces = []
            pos = 0
            for q, docs in zip(q_vecs, documents_per_query, strict=True):
                n = len(docs)
                ws = self._window_scores(q, wins[pos : pos + n])
                # Windows cover every token: nothing is left out.
                pieces.append((ws.scores, np.zeros(n, bool), [ws.window(i) for i in range(n)]))
                pos += n
        stats = {
            **counts,
            "queries": float(len(queries)),
            "documents": float(len(flat)),
            "total_s": time.perf_counter() - t0,
        }
        for scores, cut_q, windows in pieces:
            out.append(Scores(scores, cut_q, windows, dict(stats)))
        return out


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

    def window(self, i: int) -> Window:
        """The winning window of document ``i``.

        Parameters
        ----------
        i : int
            Document index.
        """
        return Window(
            index=int(self.best_window[i]),
            start_token=int(self.best_start[i]),
            end_token=int(self.best_end[i]),
            start_char=int(self.best_start_char[i]),
            end_char=int(self.best_end_char[i]),
        )
