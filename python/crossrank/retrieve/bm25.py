"""BM25 first-stage retrieval: :class:`BM25Index`, returning :class:`~crossrank.types.Hits`.

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

Threads
-------
One index may serve many threads. Its state (vocabulary, postings, impacts, ids) is an immutable
snapshot: :meth:`BM25Index.add` builds the new arrays and a copy of the vocabulary aside, then
publishes them with one reference assignment, so every search runs against the index as it was
before or after an add, never a mix. Writers (``add`` / ``add_tokens``) take a lock, so they run one
at a time; readers never wait for them. Each snapshot keeps its searches' working memory between
calls (one 4-bytes-per-document accumulator per search thread that ran at the same time, handed out
under a lock), so a one-query call does not allocate and zero-fill it again; it is freed with the
snapshot. Persistence lives in :mod:`crossrank.retrieve.bm25_io`.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from .. import _core
from .._common import MANIFEST, check_int, check_texts, core_threads
from ..errors import StateError
from ..text.analyzer import Analyzer
from ..types import Hits
from . import bm25_io

__all__ = ["BM25Index", "Variant"]

Variant = Literal["robertson", "lucene", "atire", "bm25l", "bm25+"]
VARIANTS: tuple[str, ...] = ("robertson", "lucene", "atire", "bm25l", "bm25+")
Strategy = Literal["auto", "exhaustive", "pruned"]
STRATEGIES: tuple[str, ...] = ("auto", "exhaustive", "pruned")

FORMAT_NAME = bm25_io.FORMAT_NAME
FORMAT_VERSION = bm25_io.FORMAT_VERSION

# Documents analysed per call into the core (bounds the memory of analysed-but-unmapped terms).
_BATCH = 16384
# Progress bars appear by default for corpora at least this large (and only on a terminal).
_PROGRESS_MIN_DOCS = 20_000

"""The v0.1 name of :class:`crossrank.types.Hits` (still exported by ``crossrank``)."""


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


@dataclass(frozen=True)
class _Snapshot:
    """One published state of an index: never mutated, replaced as a whole by ``add``."""

    vocab: _core.Vocabulary
    term_ptr: np.ndarray
    # Postings' documents and term frequencies, bit-packed per block (cpp/src/bm25_codec.hpp):
    # (block_ptr int64, block_last uint32, block_off uint64, data uint8). Search decodes them block
    # by block; plain arrays exist only while an add or a shard export needs them (plain()).
    packed: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    doc_lens: np.ndarray
    impacts: np.ndarray
    nonocc: np.ndarray
    ids: np.ndarray | None
    # The core's view of the search arrays, checked and bound once (searches pass only the query).
    view: _core.BM25View = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        view = _core.BM25View(len(self.doc_lens), self.term_ptr, self.impacts, self.nonocc, *self.packed)
        object.__setattr__(self, "view", view)

    def plain(self) -> tuple[np.ndarray, np.ndarray]:
        """The postings' (docs uint32, tfs uint32) in CSR order, decoded (a new pair each call)."""
        return _core.bm25_unpack_postings(self.term_ptr, *self.packed)


def _packed_state(state: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The packed postings of a builder's, loader's or shard's state: given ("packed"), extended
    over trailing empty terms (a shard's term_ptr grown to a larger vocabulary), or packed from
    plain "docs" / "tfs"."""
    term_ptr = np.asarray(state["term_ptr"])
    packed = state.get("packed")
    if packed is not None:
        block_ptr = packed[0]
        extra = len(term_ptr) - len(block_ptr)
        if extra > 0 and np.all(term_ptr[len(block_ptr) - 1 :] == term_ptr[-1]):
            block_ptr = np.concatenate([block_ptr, np.full(extra, block_ptr[-1], dtype=np.int64)])
            return (block_ptr, packed[1], packed[2], packed[3])
        if extra == 0:
            return packed
    return _core.bm25_pack_postings(
        np.ascontiguousarray(term_ptr, dtype=np.int64),
        np.ascontiguousarray(state["docs"], dtype=np.uint32),
        np.ascontiguousarray(state["tfs"], dtype=np.uint32),
    )


class BM25Index:
    """A BM25 index over a corpus; search many queries at once, append documents later.

    Build with :meth:`build` (texts, analysed by a :class:`crossrank.Analyzer`) or :meth:`from_tokens`
    (pre-tokenized documents); open a saved one with :meth:`load`. Variants, formulas and the
    precision policy are those of ``cpp/include/crossrank/bm25.hpp`` (Kamphuis et al. 2020, as
    bm25s defines them); scores agree with a float64 evaluation to about 1e-6 relative.

    Thread safety: one instance may be shared across threads. Searches (:meth:`search`,
    :meth:`search_tokens`, :meth:`get_scores`) and :meth:`save` run concurrently with each other
    and with :meth:`add` / :meth:`add_tokens`; each sees the index as it was before or after an add,
    never a mix (the add builds its new state aside and publishes it with one reference swap).
    Adds take a lock and run one at a time (single writer, many readers).

    The constructor is internal (its one keyword, ``_state``, is the arrays a builder or loader
    made); make an index with :meth:`build`, :meth:`from_tokens` or :meth:`load`.

    Examples
    --------
    >>> index = BM25Index.build(["the cat sat", "a dog barked"], ids=["d1", "d2"])
    >>> index.search(["cat"], k=1).ids
    array([['d1']], dtype=object)
    """

    def __init__(self, *, _state: Mapping[str, Any]) -> None:
        self._params: _Params = _state["params"]
        self._analyzer: Analyzer | None = _state["analyzer"]
        self._ids_kind: str = _state["ids_kind"]
        # str -> int map of an index built from int tokens (in memory only; not saved).
        self._vocab_map: Mapping[str, int] | None = None
        self._write_lock = threading.Lock()
        self._snap = _Snapshot(
            vocab=_state["vocab"],
            term_ptr=_state["term_ptr"],
            packed=_packed_state(_state),
            doc_lens=_state["doc_lens"],
            impacts=_state["impacts"],
            nonocc=_state["nonoccurrence"],
            ids=_state["ids"],
        )

    # Read-only views of the current snapshot (tests and debugging compare them).
    @property
    def _vocab(self) -> _core.Vocabulary:
        return self._snap.vocab

    @property
    def _term_ptr(self) -> np.ndarray:
        return self._snap.term_ptr

    @property
    def _docs(self) -> np.ndarray:
        return self._snap.plain()[0]

    @property
    def _tfs(self) -> np.ndarray:
        return self._snap.plain()[1]

    @property
    def _doc_lens(self) -> np.ndarray:
        return self._snap.doc_lens

    @property
    def _impacts(self) -> np.ndarray:
        return self._snap.impacts

    @property
    def _nonocc(self) -> np.ndarray:
        return self._snap.nonocc

    @property
    def _ids(self) -> np.ndarray | None:
        return self._snap.ids

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
        analyzer: Analyzer | None = None,
        num_threads: int | None = None,
        show_progress: bool | None = None,
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
        show_progress : bool, optional
            tqdm bar on stderr; None shows it for large corpora on a terminal.

        Raises
        ------
        ValueError
            No texts, duplicate ids, a parameter out of range.
        TypeError
            A text that is not str (the message gives its position), an analyzer that is not a
            :class:`crossrank.Analyzer`.
        """
        params = _check_params(variant, k1, b, delta)
        texts = check_texts(texts, "texts")
        threads = core_threads(num_threads)
        if not texts:
            raise ValueError("cannot build a BM25 index from 0 documents: pass at least one text")
        ids_kind, ids_arr = ("position", None) if ids is None else _ids_array(ids, len(texts))
        _check_unique(ids_arr)
        if analyzer is None:
            analyzer = _default_analyzer()
        elif not isinstance(analyzer, Analyzer):
            raise TypeError(f"analyzer must be a crossrank.Analyzer, got {type(analyzer).__name__}")
        index = cls._empty(params, analyzer, ids_kind)
        snap = index._snap  # not shared yet: its fresh vocabulary may grow in place
        term_ids, offsets = index._analyze_texts(snap.vocab, texts, threads, show_progress)
        index._snap = index._grown(snap, snap.vocab, term_ids, offsets, threads, ids_arr)
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

        The index has no analyzer: query it with :meth:`search_tokens`. Int tokens given with
        ``vocab`` are stored as their strings; queries may use the same ints while this object
        lives (the mapping is not saved), or the strings, also after :meth:`load`.

        Parameters
        ----------
        tokens : sequence of sequence of str, or of int
            Tokens of each document. Int tokens are looked up in ``vocab`` (str -> int, e.g. the
            ``vocab`` of ``bm25s.tokenize``); without ``vocab`` an int token stands for the term
            ``str(token)``.
        ids : sequence of str or sequence of int, optional
            As in :meth:`build`.
        vocab : mapping of str to int, optional
            The token ids' vocabulary.
        variant, k1, b, delta, num_threads
            As in :meth:`build`.
        """
        params = _check_params(variant, k1, b, delta)
        threads = core_threads(num_threads)
        index = cls._empty(params, None, "position")
        index._vocab_map = vocab
        snap = index._snap
        term_ids, offsets = index._map_tokens(snap.vocab, tokens, "tokens", True)
        n = len(offsets) - 1
        if n == 0:
            raise ValueError("cannot build a BM25 index from 0 documents: pass at least one token list")
        index._ids_kind, ids_arr = ("position", None) if ids is None else _ids_array(ids, n)
        _check_unique(ids_arr)
        index._snap = index._grown(snap, snap.vocab, term_ids, offsets, threads, ids_arr)
        return index

    @classmethod
    def _empty(cls, params: _Params, analyzer: Analyzer | None, ids_kind: str) -> BM25Index:
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
        self,
        vocab: _core.Vocabulary,
        texts: list[str],
        grow: bool,
        num_threads: int,
        progress: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Analyse texts into (term ids uint32, offsets int64); unknown terms added (grow) or dropped.

        ``grow=True`` mutates ``vocab``: only ever a vocabulary no reader can see yet.
        """
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
            ids, off = _analyze_batch_ids(self._analyzer, vocab, batch, grow, num_threads)
            parts_ids.append(ids)
            parts_off.append(off[1:] + done)
            done += len(ids)
            if progress is not None:
                progress.update(len(batch))
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), *parts_off])
        term_ids = np.concatenate(parts_ids) if parts_ids else np.zeros(0, dtype=np.uint32)
        return term_ids.astype(np.uint32, copy=False), offsets

    def _analyze_texts(
        self, vocab: _core.Vocabulary, texts: list[str], num_threads: int, show_progress: bool | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Analyse new documents, growing ``vocab``, with an optional progress bar."""
        if show_progress is None:
            show_progress = len(texts) >= _PROGRESS_MIN_DOCS and sys.stderr.isatty()
        progress = None
        if show_progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(texts), desc="crossrank index", unit="doc", file=sys.stderr)
        try:
            return self._analyze_to_ids(vocab, texts, True, num_threads, progress)
        finally:
            if progress is not None:
                progress.close()

    def _grown(
        self,
        snap: _Snapshot,
        vocab: _core.Vocabulary,
        term_ids: np.ndarray,
        offsets: np.ndarray,
        num_threads: int,
        ids: np.ndarray | None,
    ) -> _Snapshot:
        """A new snapshot: ``snap`` plus documents given as term ids of ``vocab``; every impact
        is recomputed (IDF and avgdl change). ``snap`` itself is left untouched."""
        base_docs, base_tfs = snap.plain()
        term_ptr, docs, tfs, doc_lens = _core.bm25_build_postings(
            len(vocab),
            np.ascontiguousarray(term_ids, dtype=np.uint32),
            np.ascontiguousarray(offsets, dtype=np.int64),
            np.ascontiguousarray(snap.term_ptr),
            base_docs,
            base_tfs,
            np.ascontiguousarray(snap.doc_lens),
        )
        del base_docs, base_tfs
        p = self._params
        impacts, nonocc = _core.bm25_compute_impacts(
            p.variant, p.k1, p.b, p.delta, term_ptr, docs, tfs, doc_lens, num_threads
        )
        packed = _core.bm25_pack_postings(term_ptr, docs, tfs)
        return _Snapshot(vocab, term_ptr, packed, doc_lens, impacts, nonocc, ids)

    def _replaced(self, *, _external_stats: Mapping[str, Any]) -> BM25Index:
        """Private hook for collection statistics supplied from outside: a new index sharing this
        one's arrays except those given (``vocab``, ``term_ptr``, ``impacts``, ``nonoccurrence``).

        The shards of :class:`crossrank.retrieve.sharded_bm25.ShardedBM25Index` score with impacts
        computed from the statistics of all shards together; the caller keeps the arrays consistent
        (impacts for these postings, ``term_ptr`` over ``vocab``). This index is not changed.
        """
        snap = self._snap
        state: dict[str, Any] = {
            "params": self._params,
            "analyzer": self._analyzer,
            "ids_kind": self._ids_kind,
            "vocab": snap.vocab,
            "term_ptr": snap.term_ptr,
            "packed": snap.packed,
            "doc_lens": snap.doc_lens,
            "impacts": snap.impacts,
            "nonoccurrence": snap.nonocc,
            "ids": snap.ids,
        }
        unknown = set(_external_stats) - {"vocab", "term_ptr", "impacts", "nonoccurrence"}
        if unknown:  # pragma: no cover - a programming error in the caller
            raise KeyError(f"cannot replace {sorted(unknown)}")
        index = type(self)(_state={**state, **_external_stats})
        index._vocab_map = self._vocab_map
        return index

    # ------------------------------------------------------------------ incremental update
    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        num_threads: int | None = None,
        show_progress: bool | None = None,
    ) -> None:
        """Append documents. Afterwards the index equals one built from all texts at once.

        Every impact is recomputed (IDF and the average document length change), which costs about
        as much as scoring the postings once; new terms extend a copy of the vocabulary. Searches
        running meanwhile see the index without the new documents; the ones that start after
        this call returns see them.

        Parameters
        ----------
        texts : sequence of str
            The new documents.
        ids : sequence of str or int, optional
            Required (and of the same kind, not already used) when the index has caller ids;
            not allowed when it uses positions.
        num_threads : int, optional
            Threads for analysis and impacts; None uses the CPU quota.
        show_progress : bool, optional
            As in :meth:`build`.
        """
        texts = check_texts(texts, "texts")
        threads = core_threads(num_threads)
        with self._write_lock:
            snap = self._snap
            new_ids = self._check_new_ids(snap, ids, len(texts))
            if not texts:
                return
            vocab = snap.vocab.copy()  # readers keep using snap.vocab while this one grows
            term_ids, offsets = self._analyze_texts(vocab, texts, threads, show_progress)
            self._snap = self._grown(snap, vocab, term_ids, offsets, threads, _joined(snap.ids, new_ids))

    def add_tokens(
        self,
        tokens: Sequence[Sequence[str]] | Sequence[Sequence[int]],
        *,
        ids: Sequence[str] | Sequence[int] | None = None,
        num_threads: int | None = None,
    ) -> None:
        """Append pre-tokenized documents (see :meth:`from_tokens` and :meth:`add`).

        Parameters
        ----------
        tokens : sequence of sequence of str, or of int
            Tokens of each new document.
        ids : sequence of str or int, optional
            As in :meth:`add`.
        num_threads : int, optional
            Threads for the impacts; None uses the CPU quota.
        """
        if isinstance(tokens, (str, bytes)):
            raise TypeError(f"tokens must be a sequence of token lists, got {type(tokens).__name__}")
        seq = list(tokens)
        threads = core_threads(num_threads)
        with self._write_lock:
            snap = self._snap
            new_ids = self._check_new_ids(snap, ids, len(seq))
            if not seq:
                return
            vocab = snap.vocab.copy()
            term_ids, offsets = self._map_tokens(vocab, seq, "tokens", True)
            self._snap = self._grown(snap, vocab, term_ids, offsets, threads, _joined(snap.ids, new_ids))

    def _check_new_ids(
        self, snap: _Snapshot, ids: Sequence[str] | Sequence[int] | None, n: int
    ) -> np.ndarray | None:
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
        if snap.ids is None:  # pragma: no cover - an index with caller ids always holds them
            raise StateError("this index lost its ids")
        clash = set(snap.ids.tolist()).intersection(arr.tolist())
        if clash:
            raise ValueError(f"ids already in the index: {sorted(clash)[:5]!r}")
        if len(set(arr.tolist())) != len(arr):
            raise ValueError("ids must be unique within the added documents")
        return arr

    def _ids_dtype(self) -> type:
        return object if self._ids_kind == "str" else np.int64

    # ------------------------------------------------------------------ search
    def search(
        self,
        queries: str | Sequence[str],
        *,
        k: int = 10,
        num_threads: int | None = None,
        strategy: Strategy = "auto",
    ) -> Hits:
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
        strategy : {"auto", "exhaustive", "pruned"}
            How the top-k is found; every strategy returns the same ids and bit-identical scores.
            ``"exhaustive"`` scores every posting of every query term; ``"pruned"`` (block-max
            MaxScore) skips documents and blocks of postings that cannot reach the top-k;
            ``"auto"`` prunes on large corpora with small ``k`` and falls back to exhaustive
            scoring where pruning does not pay.

        Returns
        -------
        crossrank.types.Hits
            ``ids`` (n_queries, k) and ``scores`` float32 (n_queries, k); see the module docstring
            for ties, empty queries and documents that match nothing.

        Raises
        ------
        ValueError
            ``k < 1``; an unknown ``strategy``; the index was built from tokens (use
            :meth:`search_tokens`).
        TypeError
            A query that is not str (the message gives its position), ``k`` not an int.
        """
        k = check_int(k, "k", minimum=1)
        _check_strategy(strategy)
        threads = core_threads(num_threads)
        qs = [queries] if isinstance(queries, str) else check_texts(queries, "queries")
        snap = self._snap  # one state for the whole call
        term_ids, offsets = self._analyze_to_ids(snap.vocab, qs, False, threads)
        return self._search_ids(snap, term_ids, offsets, k, threads, strategy)

    def search_tokens(
        self,
        queries: Sequence[Sequence[str]] | Sequence[Sequence[int]],
        *,
        k: int = 10,
        num_threads: int | None = None,
        strategy: Strategy = "auto",
    ) -> Hits:
        """Like :meth:`search` for pre-tokenized queries (list of tokens per query).

        Parameters
        ----------
        queries : sequence of sequence of str, or of int
            Tokens of each query.
        k, num_threads, strategy
            As in :meth:`search`.
        """
        k = check_int(k, "k", minimum=1)
        _check_strategy(strategy)
        threads = core_threads(num_threads)
        snap = self._snap
        term_ids, offsets = self._map_tokens(snap.vocab, queries, "queries", False)
        return self._search_ids(snap, term_ids, offsets, k, threads, strategy)

    def _map_tokens(
        self, vocab: _core.Vocabulary, docs: Any, what: str, grow: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token lists -> (term ids, offsets). Fast path for str tokens; ints and errors take the
        checking path (which names the bad position)."""
        if self._vocab_map is None and not isinstance(docs, (str, bytes)):
            try:
                seq: list[Any] = docs if isinstance(docs, list) else list(docs)
                if not any(isinstance(d, (str, bytes)) for d in seq):
                    lengths = np.fromiter(map(len, seq), dtype=np.int64, count=len(seq))
                    offsets = np.zeros(len(seq) + 1, dtype=np.int64)
                    np.cumsum(lengths, out=offsets[1:])
                    return vocab.map_tokens(list(itertools.chain.from_iterable(seq)), offsets, grow)
            except TypeError:
                pass  # int tokens, non-sequences: the checking path converts or explains
        flat, offsets = _flatten_tokens(docs, self._vocab_map, what)
        return vocab.map_tokens(flat, offsets, grow)

    def _search_ids(
        self,
        snap: _Snapshot,
        term_ids: np.ndarray,
        offsets: np.ndarray,
        k: int,
        threads: int,
        strategy: str = "auto",
    ) -> Hits:
        k = min(k, max(len(snap.doc_lens), 1))  # never more columns than documents (nor a huge k)
        args = (
            np.ascontiguousarray(term_ids, dtype=np.uint32),
            np.ascontiguousarray(offsets, dtype=np.int64),
        )
        if strategy == "auto":  # the core's default
            docs, scores = snap.view.search(*args, k, threads)
        else:
            docs, scores = snap.view.search(*args, k, threads, strategy)
        ids = docs if snap.ids is None else snap.ids[docs]
        return Hits(ids=ids, scores=scores)

    def get_scores(self, query: str) -> np.ndarray:
        """Return the score of every document for one query.

        Parameters
        ----------
        query : str
            The query text.

        Returns
        -------
        numpy.ndarray of float32, shape (len(self),)
            The same float32 values :meth:`search` ranks.
        """
        if not isinstance(query, str):
            raise TypeError(
                f"query must be str, got {type(query).__name__}; use get_scores_tokens for tokens"
            )
        snap = self._snap
        term_ids, _ = self._analyze_to_ids(snap.vocab, [query], False, 1)
        return self._score_all(snap, term_ids)

    def get_scores_tokens(self, tokens: Sequence[str] | Sequence[int]) -> np.ndarray:
        """Like :meth:`get_scores` for one pre-tokenized query.

        Parameters
        ----------
        tokens : sequence of str or of int
            The query's tokens.
        """
        snap = self._snap
        term_ids, _ = self._map_tokens(snap.vocab, [tokens], "tokens", False)
        return self._score_all(snap, term_ids)

    def _score_all(self, snap: _Snapshot, term_ids: np.ndarray) -> np.ndarray:
        return snap.view.score_all(np.ascontiguousarray(term_ids, dtype=np.uint32))

    # ------------------------------------------------------------------ introspection
    def __len__(self) -> int:
        return len(self._snap.doc_lens)

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
        return len(self._snap.vocab)

    @property
    def ids(self) -> np.ndarray:
        """Document ids in position order: the caller's ids, or int64 positions."""
        snap = self._snap
        return np.arange(len(snap.doc_lens), dtype=np.int64) if snap.ids is None else snap.ids

    def __repr__(self) -> str:
        p, snap = self._params, self._snap
        extra = f", delta={p.delta}" if p.variant in ("bm25l", "bm25+") else ""
        mapped = isinstance(snap.impacts, np.memmap)
        return (
            f"BM25Index(docs={len(snap.doc_lens)}, terms={len(snap.vocab)}, postings={len(snap.impacts)}, "
            f"variant={p.variant!r}, k1={p.k1}, b={p.b}{extra}, "
            f"analyzer={'yes' if self._analyzer is not None else 'none (tokens)'}, "
            f"ids={self._ids_kind}{', memory-mapped' if mapped else ''})"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to a directory, atomically (see :mod:`crossrank.retrieve.bm25_io`).

        Layout: ``manifest.json`` (format name and version, parameters, analyzer config, and for
        every array its file, little-endian dtype, shape and SHA-256) plus one raw binary file per
        array, so :meth:`load` can memory-map them. The directory is written aside and swapped in
        by one rename: a kill at any moment leaves the old index or the new one, and indexes
        memory-mapped from the old files keep working.

        Parameters
        ----------
        path : path-like
            The index directory: created, or replaced when it holds a BM25 index.

        Raises
        ------
        FileExistsError
            ``path`` is a non-empty directory that does not hold a BM25 index.
        """
        snap = self._snap
        bm25_io.save_state(
            path,
            params=self._params._asdict(),
            analyzer_config=None if self._analyzer is None else dict(self._analyzer.config),
            vocab=snap.vocab,
            arrays={
                "term_ptr": snap.term_ptr,
                "block_last": snap.packed[1],
                "block_off": snap.packed[2],
                "packed_postings": snap.packed[3],
                "doc_lens": snap.doc_lens,
                "impacts": snap.impacts,
                "nonoccurrence": snap.nonocc,
            },
            ids_kind=self._ids_kind,
            ids=snap.ids,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True, verify: bool = True) -> BM25Index:
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
        state = bm25_io.load_state(path, mmap=mmap, verify=verify)
        p = state["params"]
        try:
            params = _check_params(p["variant"], p["k1"], p["b"], p["delta"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{Path(path) / MANIFEST}: invalid parameters ({exc})") from None
        return cls(_state={**state, "params": params})


def _check_strategy(strategy: object) -> None:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}")


def _check_unique(ids: np.ndarray | None) -> None:
    if ids is None:
        return
    if len(set(ids.tolist())) != len(ids):
        seen: set[Any] = set()
        for i, x in enumerate(ids.tolist()):
            if x in seen:
                raise ValueError(f"ids must be unique: ids[{i}] = {x!r} appears twice")
            seen.add(x)


def _joined(ids: np.ndarray | None, new_ids: np.ndarray | None) -> np.ndarray | None:
    """The ids after an add (a new array: the published one is never changed)."""
    return ids if new_ids is None or ids is None else np.concatenate([ids, new_ids])


def _default_analyzer() -> Analyzer:
    return Analyzer()


def _analyze_batch_ids(
    analyzer: Analyzer, vocab: _core.Vocabulary, texts: list[str], grow: bool, num_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Analyse a batch of texts into vocabulary ids, in C++ end to end (GIL released)."""
    return _core.bm25_analyze_to_ids(analyzer._impl, vocab, texts, grow, num_threads)
