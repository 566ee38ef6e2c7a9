"""BM25 first-stage retrieval: :class:`BM25Index` and its :class:`Results`.

The scoring core is C++ (``cpp/include/crossrank/bm25.hpp`` states the formulas of the five
variants, the precision policy and the memory layout). This module validates arguments, turns texts
or tokens into term ids, keeps the index arrays (NumPy arrays or read-only memory maps) and maps
result rows back to the caller's document ids.

Result contract
---------------
``search`` returns, for each query, exactly the first ``min(k, len(index))`` documents of all
document scores sorted by descending score, ties broken by the lower document position. Documents
that match no query term are part of that order with score 0 (bm25l / bm25+: the query's
non-occurrence score), so an empty or stopword-only query returns documents ``0..k-1`` with score 0;
callers can drop rows whose score is 0. ``k`` larger than the corpus gives ``len(index)`` columns.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from .. import _core
from ..errors import StateError
from ..text.analyzer import Analyzer

__all__ = ["BM25Index", "Results", "Variant"]

Variant = Literal["robertson", "lucene", "atire", "bm25l", "bm25+"]
VARIANTS: tuple[str, ...] = ("robertson", "lucene", "atire", "bm25l", "bm25+")

FORMAT_NAME = "crossrank.bm25"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# Documents analysed per call into the core (bounds the memory of analysed-but-unmapped terms).
_BATCH = 16384
# Progress bars appear by default for corpora at least this large (and only on a terminal).
_PROGRESS_MIN_DOCS = 20_000

# name -> dtype of every array of an index (little-endian on disk).
_ARRAYS: dict[str, str] = {
    "term_ptr": "<i8",
    "docs": "<u4",
    "tfs": "<u4",
    "doc_lens": "<u4",
    "impacts": "<f4",
    "nonoccurrence": "<f4",
    "vocab_chars": "<u1",
    "vocab_offsets": "<u8",
}
_ID_ARRAYS: dict[str, dict[str, str]] = {
    "position": {},
    "int": {"ids": "<i8"},
    "str": {"ids_chars": "<u1", "ids_offsets": "<u8"},
}


class Results(NamedTuple):
    """Top-k results of a batch of queries (row q answers query q, best first).

    Attributes
    ----------
    ids : numpy.ndarray, shape (n_queries, k)
        Document ids: the caller's ids (``object`` array of ``str``, or ``int64``) when the index was
        built with ``ids=``, else ``int64`` document positions ``0..n-1``.
    scores : numpy.ndarray of float32, shape (n_queries, k)
        BM25 scores, non-increasing along each row. ``k`` is ``min(k, len(index))``.
    """

    ids: np.ndarray
    scores: np.ndarray


class _Params(NamedTuple):
    variant: str
    k1: float
    b: float
    delta: float


def _check_params(variant: str, k1: float, b: float, delta: float) -> _Params:
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown BM25 variant {variant!r}: expected one of {', '.join(map(repr, VARIANTS))}"
        )
    for name, value in (("k1", k1), ("b", b), ("delta", delta)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    k1, b, delta = float(k1), float(b), float(delta)
    if not math.isfinite(k1) or k1 < 0:
        raise ValueError(f"k1 must be a finite number >= 0 (typical 0.9 to 2.0), got {k1}")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"b must be in [0, 1] (typical 0.4 to 0.75), got {b}")
    if not math.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be a finite number >= 0 (typical 0.5 to 1.0), got {delta}")
    return _Params(variant, k1, b, delta)


def _threads(num_threads: int | None) -> int:
    """Map the public num_threads (None = CPU quota) to the core's convention (0 = quota)."""
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be None (use the CPU quota) or an int >= 1, got {num_threads!r}")
    return int(num_threads)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int >= 1, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _as_text_list(texts: Any, what: str) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{what} must be a sequence of str, got a single {type(texts).__name__}; wrap it in a list"
        )
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be str, got {type(t).__name__}")
    return texts


def _flatten_tokens(
    docs: Iterable[Sequence[str] | Sequence[int]], vocab: Mapping[str, int] | None, what: str
) -> tuple[list[str], np.ndarray]:
    """Flatten ragged token lists into (tokens, offsets int64 (n+1,)); int tokens become strings."""
    if isinstance(docs, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of token lists, got {type(docs).__name__}")
    inverse: dict[int, str] | None = None
    if vocab is not None:
        inverse = {}
        for term, tid in vocab.items():
            if not isinstance(term, str) or isinstance(tid, bool) or not isinstance(tid, (int, np.integer)):
                raise TypeError("vocab must map str tokens to int ids")
            inverse[int(tid)] = term
    flat: list[str] = []
    lengths: list[int] = []
    for i, doc in enumerate(docs):
        if isinstance(doc, (str, bytes)):
            raise TypeError(f"{what}[{i}] must be a list of tokens, got {type(doc).__name__}; split it first")
        toks: list[Any] = list(doc)
        for j, tok in enumerate(toks):
            if isinstance(tok, str):
                continue
            if isinstance(tok, bool) or not isinstance(tok, (int, np.integer)):
                raise TypeError(f"{what}[{i}][{j}] must be str or int, got {type(tok).__name__}")
            if inverse is not None:
                try:
                    toks[j] = inverse[int(tok)]
                except KeyError:
                    raise ValueError(f"{what}[{i}][{j}] = {int(tok)} is not an id in vocab") from None
            else:
                toks[j] = str(int(tok))
        flat.extend(toks)
        lengths.append(len(toks))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return flat, offsets


def _ids_array(ids: Sequence[str] | Sequence[int], n: int) -> tuple[str, np.ndarray]:
    """Validate caller ids: all str (object array) or all int (int64), unique, n of them."""
    ids = list[Any](ids)
    if len(ids) != n:
        raise ValueError(f"ids must have one entry per document: got {len(ids)} ids for {n} documents")

    def kind_of(x: Any) -> str:
        if isinstance(x, str):
            return "str"
        if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
            return "int"
        return type(x).__name__

    kinds = [kind_of(x) for x in ids]
    first = kinds[0] if kinds else "str"
    for i, kd in enumerate(kinds):
        if kd not in ("str", "int") or kd != first:
            raise TypeError(
                f"ids must be all str or all int; ids[{i}] is {type(ids[i]).__name__} (ids[0] is {first})"
            )
    if first == "str":
        kind, arr = "str", np.empty(n, dtype=object)
        arr[:] = ids
    else:
        kind, arr = "int", np.asarray(ids, dtype=np.int64).reshape(n)
    return kind, arr


class BM25Index:
    """A BM25 index over a fixed corpus; search many queries at once.

    Build with :meth:`build` (texts, analysed by a :class:`crossrank.Analyzer`) or :meth:`from_tokens`
    (pre-tokenized documents); open a saved one with :meth:`load`. Variants, formulas and the
    precision policy are those of ``cpp/include/crossrank/bm25.hpp`` (Kamphuis et al. 2020, as
    bm25s defines them); scores agree with a float64 evaluation to about 1e-6 relative.

    Examples
    --------
    Searching is safe from several Python threads at once; :meth:`add` / :meth:`add_tokens`
    must not run concurrently with any other call on the same index.

    >>> index = BM25Index.build(["the cat sat", "a dog barked"], ids=["d1", "d2"])
    >>> index.search(["cat"], k=1).ids
    array([['d1']], dtype=object)
    """

    def __init__(self, *, _state: dict[str, Any]) -> None:
        self._params: _Params = _state["params"]
        self._analyzer: Analyzer | None = _state["analyzer"]
        self._vocab: Any = _state["vocab"]
        self._term_ptr: np.ndarray = _state["term_ptr"]
        self._docs: np.ndarray = _state["docs"]
        self._tfs: np.ndarray = _state["tfs"]
        self._doc_lens: np.ndarray = _state["doc_lens"]
        self._impacts: np.ndarray = _state["impacts"]
        self._nonocc: np.ndarray = _state["nonoccurrence"]
        self._ids_kind: str = _state["ids_kind"]
        self._ids: np.ndarray | None = _state["ids"]
        # str -> int map of an index built from int tokens (in memory only; not saved).
        self._vocab_map: Mapping[str, int] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        variant: Variant = "lucene",
        k1: float = 1.5,
        b: float = 0.75,
        delta: float = 0.5,
        analyzer: Any = None,
        num_threads: int | None = None,
        show_progress_bar: bool | None = None,
    ) -> BM25Index:
        """Index texts.

        Parameters
        ----------
        texts : sequence of str
            One text per document (e.g. title + " " + body).
        ids : sequence of str or sequence of int, optional
            The caller's document ids (unique), returned by :meth:`search`. Default: positions
            ``0..n-1`` as int64.
        variant : {"lucene", "robertson", "atire", "bm25l", "bm25+"}
            BM25 variant (Kamphuis et al. 2020).
        k1 : float
            Term-frequency saturation, finite and >= 0.
        b : float
            Length normalisation in [0, 1].
        delta : float
            Lower bound of bm25l / bm25+ (ignored by the others), finite and >= 0.
        analyzer : crossrank.Analyzer, optional
            How texts become tokens; default ``Analyzer()`` (lowercase, English stopwords, English
            Snowball stemmer, CJK bigrams). Saved with the index and applied to queries.
        num_threads : int, optional
            Threads for analysis and scoring; None uses the CPU quota.
        show_progress_bar : bool, optional
            tqdm bar on stderr; None shows it for large corpora on a terminal.

        Raises
        ------
        ValueError
            No texts, duplicate ids, a parameter out of range.
        TypeError
            A text that is not str (the message gives its position).
        """
        params = _check_params(variant, k1, b, delta)
        texts = _as_text_list(texts, "texts")
        if not texts:
            raise ValueError("cannot build a BM25 index from 0 documents: pass at least one text")
        ids_kind, ids_arr = ("position", None) if ids is None else _ids_array(ids, len(texts))
        if analyzer is None:
            analyzer = _default_analyzer()
        elif not isinstance(analyzer, Analyzer):
            raise TypeError(f"analyzer must be a crossrank.Analyzer, got {type(analyzer).__name__}")
        index = cls._empty(params, analyzer, ids_kind)
        index._append_texts(texts, _threads(num_threads), show_progress_bar)
        index._ids = ids_arr
        index._check_unique_ids()
        return index

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[Sequence[str]] | Sequence[Sequence[int]],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        vocab: Mapping[str, int] | None = None,
        variant: Variant = "lucene",
        k1: float = 1.5,
        b: float = 0.75,
        delta: float = 0.5,
        num_threads: int | None = None,
    ) -> BM25Index:
        """Index pre-tokenized documents.

        Parameters
        ----------
        tokens : sequence of sequence of str, or of int
            Tokens of each document. Int tokens are looked up in ``vocab`` (str -> int, e.g. the
            ``vocab`` of ``bm25s.tokenize``); without ``vocab`` an int token stands for the term
            ``str(token)``.
        ids, variant, k1, b, delta, num_threads
            As in :meth:`build`.

        The index has no analyzer: query it with :meth:`search_tokens`. Int tokens given with
        ``vocab`` are stored as their strings; queries may use the same ints while this object
        lives (the mapping is not saved), or the strings, also after :meth:`load`.
        """
        params = _check_params(variant, k1, b, delta)
        index = cls._empty(params, None, "position")
        index._vocab_map = vocab
        term_ids, offsets = index._map_tokens(tokens, "tokens", True)
        n = len(offsets) - 1
        if n == 0:
            raise ValueError("cannot build a BM25 index from 0 documents: pass at least one token list")
        index._ids_kind, ids_arr = ("position", None) if ids is None else _ids_array(ids, n)
        index._append_ids(term_ids, offsets, _threads(num_threads))
        index._ids = ids_arr
        index._check_unique_ids()
        return index

    @classmethod
    def _empty(cls, params: _Params, analyzer: Any, ids_kind: str) -> BM25Index:
        return cls(
            _state={
                "params": params,
                "analyzer": analyzer,
                "vocab": _core.Vocabulary(),
                "term_ptr": np.zeros(1, dtype=np.int64),
                "docs": np.zeros(0, dtype=np.uint32),
                "tfs": np.zeros(0, dtype=np.uint32),
                "doc_lens": np.zeros(0, dtype=np.uint32),
                "impacts": np.zeros(0, dtype=np.float32),
                "nonoccurrence": np.zeros(0, dtype=np.float32),
                "ids_kind": ids_kind,
                "ids": None,
            }
        )

    def _analyze_to_ids(
        self, texts: list[str], grow: bool, num_threads: int, progress: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Analyse texts into (term ids uint32, offsets int64); unknown terms added (grow) or dropped."""
        if self._analyzer is None:
            raise ValueError(
                "this index was built from tokens and has no analyzer: "
                "use search_tokens()/add_tokens(), or build it with BM25Index.build(texts, analyzer=...)"
            )
        parts_ids: list[np.ndarray] = []
        parts_off: list[np.ndarray] = []
        done = 0
        for start in range(0, len(texts), _BATCH):
            batch = texts[start : start + _BATCH]
            ids, off = _analyze_batch_ids(self._analyzer, self._vocab, batch, grow, num_threads)
            parts_ids.append(ids)
            parts_off.append(off[1:] + done)
            done += len(ids)
            if progress is not None:
                progress.update(len(batch))
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), *parts_off])
        term_ids = np.concatenate(parts_ids) if parts_ids else np.zeros(0, dtype=np.uint32)
        return term_ids.astype(np.uint32, copy=False), offsets

    def _append_texts(self, texts: list[str], num_threads: int, show_progress_bar: bool | None) -> None:
        if show_progress_bar is None:
            show_progress_bar = len(texts) >= _PROGRESS_MIN_DOCS and sys.stderr.isatty()
        progress = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(texts), desc="crossrank index", unit="doc", file=sys.stderr)
        try:
            term_ids, offsets = self._analyze_to_ids(texts, True, num_threads, progress)
        finally:
            if progress is not None:
                progress.close()
        self._append_ids(term_ids, offsets, num_threads)

    def _append_ids(self, term_ids: np.ndarray, offsets: np.ndarray, num_threads: int) -> None:
        """Add documents given as term ids; recompute every impact (IDF and avgdl change)."""
        term_ptr, docs, tfs, doc_lens = _core.bm25_build_postings(
            len(self._vocab),
            np.ascontiguousarray(term_ids, dtype=np.uint32),
            np.ascontiguousarray(offsets, dtype=np.int64),
            np.ascontiguousarray(self._term_ptr),
            np.ascontiguousarray(self._docs),
            np.ascontiguousarray(self._tfs),
            np.ascontiguousarray(self._doc_lens),
        )
        p = self._params
        impacts, nonocc = _core.bm25_compute_impacts(
            p.variant, p.k1, p.b, p.delta, term_ptr, docs, tfs, doc_lens, num_threads
        )
        self._term_ptr, self._docs, self._tfs, self._doc_lens = term_ptr, docs, tfs, doc_lens
        self._impacts, self._nonocc = impacts, nonocc

    def _check_unique_ids(self) -> None:
        if self._ids is None:
            return
        if len(set(self._ids.tolist())) != len(self._ids):
            seen: set[Any] = set()
            for i, x in enumerate(self._ids.tolist()):
                if x in seen:
                    raise ValueError(f"ids must be unique: ids[{i}] = {x!r} appears twice")
                seen.add(x)

    # ------------------------------------------------------------------ incremental update
    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        num_threads: int | None = None,
        show_progress_bar: bool | None = None,
    ) -> None:
        """Append documents. Afterwards the index equals one built from all texts at once.

        Every impact is recomputed (IDF and the average document length change), which costs about
        as much as scoring the postings once; new terms extend the vocabulary.

        Parameters
        ----------
        texts : sequence of str
            The new documents.
        ids : sequence of str or int, optional
            Required (and of the same kind, not already used) when the index has caller ids;
            not allowed when it uses positions.
        """
        texts = _as_text_list(texts, "texts")
        new_ids = self._check_new_ids(ids, len(texts))
        if not texts:
            return
        self._append_texts(texts, _threads(num_threads), show_progress_bar)
        self._extend_ids(new_ids)

    def add_tokens(
        self,
        tokens: Sequence[Sequence[str]] | Sequence[Sequence[int]],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        num_threads: int | None = None,
    ) -> None:
        """Append pre-tokenized documents (see :meth:`from_tokens` and :meth:`add`)."""
        seq = list(tokens)
        new_ids = self._check_new_ids(ids, len(seq))
        if not seq:
            return
        term_ids, offsets = self._map_tokens(seq, "tokens", True)
        self._append_ids(term_ids, offsets, _threads(num_threads))
        self._extend_ids(new_ids)

    def _check_new_ids(self, ids: Sequence[str] | Sequence[int] | None, n: int) -> np.ndarray | None:
        if self._ids_kind == "position":
            if ids is not None:
                raise ValueError(
                    "this index numbers documents by position (built without ids): call add() without ids"
                )
            return None
        if ids is None:
            raise ValueError(f"this index has caller ids ({self._ids_kind}): pass ids= for the new documents")
        kind, arr = _ids_array(ids, n) if n else (self._ids_kind, np.empty(0, dtype=self._ids_dtype()))
        if kind != self._ids_kind:
            raise TypeError(f"new ids must be {self._ids_kind} like the index's ids, got {kind}")
        assert self._ids is not None
        clash = set(self._ids.tolist()).intersection(arr.tolist())
        if clash:
            raise ValueError(f"ids already in the index: {sorted(clash)[:5]!r}")
        if len(set(arr.tolist())) != len(arr):
            raise ValueError("ids must be unique within the added documents")
        return arr

    def _ids_dtype(self) -> Any:
        return object if self._ids_kind == "str" else np.int64

    def _extend_ids(self, new_ids: np.ndarray | None) -> None:
        if new_ids is not None and self._ids is not None:
            self._ids = np.concatenate([self._ids, new_ids])

    # ------------------------------------------------------------------ search
    def search(self, queries: str | Sequence[str], *, k: int = 10, num_threads: int | None = None) -> Results:
        """Return the top-k documents of each query.

        Parameters
        ----------
        queries : str or sequence of str
            One query or a batch (a single str is a batch of one; results stay 2-D).
        k : int
            Results per query, >= 1; ``min(k, len(self))`` columns are returned.
        num_threads : int, optional
            Queries are spread over this many threads (one query per task); None uses the CPU
            quota. Results are bit-identical whatever the thread count.

        Returns
        -------
        Results
            ``ids`` (n_queries, k) and ``scores`` float32 (n_queries, k); see the module docstring
            for ties, empty queries and documents that match nothing.

        Raises
        ------
        ValueError
            ``k < 1``; the index was built from tokens (use :meth:`search_tokens`).
        TypeError
            A query that is not str (the message gives its position).
        """
        k = _check_k(k)
        threads = _threads(num_threads)
        qs = [queries] if isinstance(queries, str) else _as_text_list(queries, "queries")
        term_ids, offsets = self._analyze_to_ids(qs, False, threads)
        return self._search_ids(term_ids, offsets, k, threads)

    def search_tokens(
        self,
        queries: Sequence[Sequence[str]] | Sequence[Sequence[int]],
        *,
        k: int = 10,
        num_threads: int | None = None,
    ) -> Results:
        """Like :meth:`search` for pre-tokenized queries (list of tokens per query)."""
        k = _check_k(k)
        threads = _threads(num_threads)
        term_ids, offsets = self._map_tokens(queries, "queries", False)
        return self._search_ids(term_ids, offsets, k, threads)

    def _map_tokens(self, docs: Any, what: str, grow: bool) -> tuple[np.ndarray, np.ndarray]:
        """Token lists -> (term ids, offsets). Fast path for str tokens; ints and errors take the
        checking path (which names the bad position)."""
        if self._vocab_map is None and not isinstance(docs, (str, bytes)):
            try:
                seq: list[Any] = docs if isinstance(docs, list) else list(docs)
                if not any(isinstance(d, (str, bytes)) for d in seq):
                    lengths = np.fromiter(map(len, seq), dtype=np.int64, count=len(seq))
                    offsets = np.zeros(len(seq) + 1, dtype=np.int64)
                    np.cumsum(lengths, out=offsets[1:])
                    return self._vocab.map_tokens(list(itertools.chain.from_iterable(seq)), offsets, grow)
            except TypeError:
                pass  # int tokens, non-sequences: the checking path converts or explains
        flat, offsets = _flatten_tokens(docs, self._vocab_map, what)
        return self._vocab.map_tokens(flat, offsets, grow)

    def _search_ids(self, term_ids: np.ndarray, offsets: np.ndarray, k: int, threads: int) -> Results:
        docs, scores = _core.bm25_search(
            len(self._doc_lens),
            self._term_ptr,
            self._docs,
            self._impacts,
            self._nonocc,
            np.ascontiguousarray(term_ids, dtype=np.uint32),
            np.ascontiguousarray(offsets, dtype=np.int64),
            k,
            threads,
        )
        ids = docs if self._ids is None else self._ids[docs]
        return Results(ids=ids, scores=scores)

    def get_scores(self, query: str) -> np.ndarray:
        """Return the score of every document for one query.

        Returns
        -------
        numpy.ndarray of float32, shape (len(self),)
            The same float32 values :meth:`search` ranks.
        """
        if not isinstance(query, str):
            raise TypeError(
                f"query must be str, got {type(query).__name__}; use get_scores_tokens for tokens"
            )
        term_ids, _ = self._analyze_to_ids([query], False, 1)
        return self._score_all(term_ids)

    def get_scores_tokens(self, tokens: Sequence[str] | Sequence[int]) -> np.ndarray:
        """Like :meth:`get_scores` for one pre-tokenized query."""
        term_ids, _ = self._map_tokens([tokens], "tokens", False)
        return self._score_all(term_ids)

    def _score_all(self, term_ids: np.ndarray) -> np.ndarray:
        return _core.bm25_score_all(
            len(self._doc_lens),
            self._term_ptr,
            self._docs,
            self._impacts,
            self._nonocc,
            np.ascontiguousarray(term_ids, dtype=np.uint32),
        )

    # ------------------------------------------------------------------ introspection
    def __len__(self) -> int:
        return len(self._doc_lens)

    @property
    def params(self) -> dict[str, Any]:
        """The scoring parameters: ``variant``, ``k1``, ``b``, ``delta``."""
        return self._params._asdict()

    @property
    def analyzer(self) -> Analyzer | None:
        """The analyzer applied to texts and queries (None for an index built from tokens)."""
        return self._analyzer

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct terms."""
        return len(self._vocab)

    @property
    def ids(self) -> np.ndarray:
        """Document ids in position order: the caller's ids, or int64 positions."""
        return np.arange(len(self), dtype=np.int64) if self._ids is None else self._ids

    def __repr__(self) -> str:
        p = self._params
        extra = f", delta={p.delta}" if p.variant in ("bm25l", "bm25+") else ""
        mapped = isinstance(self._docs, np.memmap)
        return (
            f"BM25Index(docs={len(self)}, terms={len(self._vocab)}, postings={len(self._docs)}, "
            f"variant={p.variant!r}, k1={p.k1}, b={p.b}{extra}, "
            f"analyzer={'yes' if self._analyzer is not None else 'none (tokens)'}, "
            f"ids={self._ids_kind}{', memory-mapped' if mapped else ''})"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to a directory (created if needed; existing index files are replaced).

        Layout: ``manifest.json`` (format name and version, parameters, analyzer config, and for
        every array its file, little-endian dtype, shape and SHA-256) plus one raw binary file per
        array, so :meth:`load` can memory-map them.
        """
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        chars, offsets = self._vocab.arena()
        arrays: dict[str, np.ndarray] = {
            "term_ptr": self._term_ptr,
            "docs": self._docs,
            "tfs": self._tfs,
            "doc_lens": self._doc_lens,
            "impacts": self._impacts,
            "nonoccurrence": self._nonocc,
            "vocab_chars": chars,
            "vocab_offsets": offsets,
        }
        if self._ids_kind == "int":
            assert self._ids is not None
            arrays["ids"] = self._ids
        elif self._ids_kind == "str":
            assert self._ids is not None
            encoded = [s.encode("utf-8", "surrogatepass") for s in self._ids.tolist()]
            lens = np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))
            ids_off = np.zeros(len(encoded) + 1, dtype=np.uint64)
            np.cumsum(lens, out=ids_off[1:])
            arrays["ids_chars"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            arrays["ids_offsets"] = ids_off
        entries: dict[str, Any] = {}
        for name, arr in arrays.items():
            dtype = {**_ARRAYS, **_ID_ARRAYS[self._ids_kind]}[name]
            data = np.ascontiguousarray(arr, dtype=np.dtype(dtype)).tobytes()
            file = f"{name}.bin"
            # Write beside and rename: an index memory-mapped from this directory keeps reading
            # the old file (its inode lives on) instead of faulting on a truncated mapping.
            tmp = root / (file + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, root / file)
            entries[name] = {
                "file": file,
                "dtype": dtype,
                "shape": [int(arr.shape[0])],
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        analyzer_config = None
        if self._analyzer is not None:
            analyzer_config = dict(self._analyzer.config)
        body = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "crossrank_version": _core.__version__,
            "params": self._params._asdict(),
            "analyzer": analyzer_config,
            "n_docs": len(self),
            "n_terms": len(self._vocab),
            "ids_kind": self._ids_kind,
            "arrays": entries,
        }
        manifest = {**body, "manifest_sha256": _digest(body)}
        tmp = root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, root / MANIFEST)

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True, verify: bool = True) -> BM25Index:
        """Open an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The index directory.
        mmap : bool
            Memory-map the arrays read-only (no copy; pages load on demand) instead of reading them.
        verify : bool
            Check every file's SHA-256 against the manifest (reads each file once). Structural
            checks (offsets, document and term ids in range, finite impacts) always run.

        Raises
        ------
        FileNotFoundError
            The directory does not exist.
        crossrank.errors.StateError
            A missing, truncated, corrupted or foreign file, or a format version newer than this
            crossrank reads; the message names the file.
        """
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such index directory")
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise StateError(
                f"{manifest_path}: missing; {root} is not a crossrank BM25 index (save one with BM25Index.save)"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StateError(f"{manifest_path}: not a crossrank BM25 manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise StateError(
                f"{manifest_path}: not a crossrank BM25 manifest (format is not {FORMAT_NAME!r})"
            )
        version = manifest.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise StateError(f"{manifest_path}: invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise StateError(
                f"{manifest_path}: format version {version} was written by a newer crossrank "
                f"({manifest.get('crossrank_version')}); this one reads up to {FORMAT_VERSION}: upgrade crossrank"
            )
        body = {key: val for key, val in manifest.items() if key != "manifest_sha256"}
        if manifest.get("manifest_sha256") != _digest(body):
            raise StateError(f"{manifest_path}: checksum mismatch (the manifest was modified or corrupted)")
        try:
            state = _state_from_manifest(root, manifest, mmap=mmap, verify=verify)
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{manifest_path}: malformed manifest ({type(exc).__name__}: {exc})") from None
        return cls(_state=state)


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _read_array(
    root: Path, name: str, entry: Mapping[str, Any], dtype: str, *, mmap: bool, verify: bool
) -> np.ndarray:
    file = root / str(entry["file"])
    if Path(entry["file"]).name != entry["file"]:
        raise StateError(f"{root / MANIFEST}: array file name {entry['file']!r} must be a plain file name")
    if entry["dtype"] != dtype:
        raise StateError(f"{file}: dtype {entry['dtype']!r} in the manifest, expected {dtype!r}")
    shape = entry["shape"]
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] >= 0):
        raise StateError(f"{file}: invalid shape {shape!r} in the manifest")
    if not file.is_file():
        raise StateError(f"{file}: missing (the index directory is incomplete)")
    expected = shape[0] * np.dtype(dtype).itemsize
    size = file.stat().st_size
    if size != expected:
        raise StateError(
            f"{file}: {size} bytes, expected {expected} (truncated or not written by this index)"
        )
    if verify:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            raise StateError(f"{file}: SHA-256 mismatch (the file is corrupted or was modified)")
    if expected == 0:
        return np.zeros(0, dtype=np.dtype(dtype).newbyteorder("="))
    if mmap and np.dtype(dtype).isnative:
        return np.memmap(file, dtype=dtype, mode="r", shape=(shape[0],))
    arr = np.fromfile(file, dtype=dtype)
    return arr.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def _state_from_manifest(
    root: Path, manifest: Mapping[str, Any], *, mmap: bool, verify: bool
) -> dict[str, Any]:
    mpath = root / MANIFEST
    p = manifest["params"]
    try:
        params = _check_params(p["variant"], p["k1"], p["b"], p["delta"])
    except (ValueError, TypeError) as exc:
        raise StateError(f"{mpath}: invalid parameters ({exc})") from None
    ids_kind = manifest["ids_kind"]
    if ids_kind not in _ID_ARRAYS:
        raise StateError(f"{mpath}: unknown ids_kind {ids_kind!r}")
    expected = {**_ARRAYS, **_ID_ARRAYS[ids_kind]}
    entries = manifest["arrays"]
    missing = sorted(set(expected) - set(entries))
    if missing:
        raise StateError(f"{mpath}: arrays {missing} are not listed")
    arrays = {
        name: _read_array(root, name, entries[name], dtype, mmap=mmap, verify=verify)
        for name, dtype in expected.items()
    }
    n_docs, n_terms = manifest["n_docs"], manifest["n_terms"]
    if len(arrays["doc_lens"]) != n_docs or len(arrays["term_ptr"]) != n_terms + 1 or n_docs < 1:
        raise StateError(f"{mpath}: n_docs / n_terms do not match the arrays")
    try:
        _core.bm25_validate_index(
            arrays["term_ptr"],
            arrays["docs"],
            arrays["tfs"],
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
        off = arrays["ids_offsets"]
        chars = bytes(arrays["ids_chars"])
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
    analyzer = None
    if manifest["analyzer"] is not None:
        try:
            analyzer = Analyzer.from_config(manifest["analyzer"])
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(f"{mpath}: invalid analyzer config ({exc})") from None
    return {
        "params": params,
        "analyzer": analyzer,
        "vocab": vocab,
        "term_ptr": arrays["term_ptr"],
        "docs": arrays["docs"],
        "tfs": arrays["tfs"],
        "doc_lens": arrays["doc_lens"],
        "impacts": arrays["impacts"],
        "nonoccurrence": arrays["nonoccurrence"],
        "ids_kind": ids_kind,
        "ids": ids,
    }


def _default_analyzer() -> Analyzer:
    return Analyzer()


def _analyze_batch_ids(
    analyzer: Any, vocab: Any, texts: list[str], grow: bool, num_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Analyse a batch of texts into vocabulary ids, in C++ end to end (GIL released)."""
    return _core.bm25_analyze_to_ids(analyzer._impl, vocab, texts, grow, num_threads)
