"""Token-exact packing of (query, document) pairs into padded, token-budgeted batches.

A cross-encoder reads ``[CLS] query [SEP] document [SEP]`` (or the model's own pair template). This
module turns token ids (without special tokens) into model inputs:

1. truncate each pair to ``max_length`` exactly as Hugging Face ``tokenizers`` does (``longest_first``,
   ``only_second``, ``only_first``; an optional query cap first), or split a long document into
   overlapping windows with the query whole in each;
2. sort rows by token count (stable, longest first), cut batches so that ``rows * L <= max_batch_tokens``
   and ``rows <= max_batch_size``, and pad each batch's length ``L`` up to a shape bucket;
3. fill one batch at a time (:meth:`PackPlan.batch`), so memory stays bounded however many pairs there are;
4. put scores back in the caller's order (:meth:`PackPlan.unsort`) and aggregate windows per pair
   (:meth:`PackPlan.aggregate`).

Planning and filling run in C++ (``crossrank/pack.hpp``) with the GIL released.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from .. import _core
from .._common import check_int
from ..errors import StateError

if TYPE_CHECKING:
    import tokenizers

__all__ = [
    "Batch",
    "PackPlan",
    "PairTemplate",
    "Truncation",
    "WindowScores",
    "plan_pairs",
]

Truncation = Literal["longest_first", "only_second", "only_first"]
Aggregation = Literal["max", "mean", "first", "topk_mean"]

#: Token id sequences: a list of int sequences / 1-D integer arrays, or a ``(values, offsets)`` tuple
#: of two NumPy arrays (flat ids and ``n + 1`` offsets).
TokenIds = Sequence[Sequence[int]] | Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray]

_INT32_MAX = np.iinfo(np.int32).max
# Post-processors that add no token and only touch offsets; they may appear inside a Sequence.
_OFFSET_ONLY_PROCESSORS = {"ByteLevel"}
_PAD_TOKEN_GUESSES = ("[PAD]", "<pad>", "<|pad|>")


_INT32_MAX = 2**31 - 1


def _ids_tuple(values: Iterable[int], name: str) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold integers, got {type(v).__name__} {v!r}")
        if not 0 <= v <= _INT32_MAX:  # the packer's ids are int32
            raise ValueError(f"{name} must hold token ids in [0, {_INT32_MAX}], got {int(v)}")
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class PairTemplate:
    """Where a model puts its special tokens and token types around a (query, document) pair.

    A row reads ``prefix, query, middle, document, suffix``; ``*_type_ids`` give the token type id of
    each special token, ``query_type_id`` / ``doc_type_id`` those of the query and document tokens.
    The attributes below are also the constructor's parameters (in this order); :meth:`bert`,
    :meth:`roberta` and :meth:`from_tokenizer` build the usual ones.

    Attributes
    ----------
    prefix, middle, suffix : tuple of int
        Special token ids before the query, between query and document, and after the document
        (any sequence of ints >= 0 is accepted and stored as a tuple; may be empty).
    prefix_type_ids, middle_type_ids, suffix_type_ids : tuple of int
        Token type id of each of those special tokens, one per id.
    query_type_id, doc_type_id : int
        Token type id of every query token and of every document token.
    pad_id : int
        Token id that fills padded positions.
    pad_type_id : int
        Token type id of padded positions.

    Raises
    ------
    TypeError
        A non-integer id.
    ValueError
        A negative id, or a ``*_type_ids`` whose length differs from its segment's.

    Examples
    --------
    BERT ``[CLS] q [SEP] d [SEP]``, types ``0 0 0 1 1``: ``PairTemplate.bert(cls_id=101, sep_id=102)``.
    RoBERTa / XLM-R ``<s> q </s></s> d </s>``, all types 0: ``PairTemplate.roberta(bos_id=0, eos_id=2)``.
    """

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_type_ids: tuple[int, ...]
    middle_type_ids: tuple[int, ...]
    suffix_type_ids: tuple[int, ...]
    query_type_id: int = 0
    doc_type_id: int = 1
    pad_id: int = 0
    pad_type_id: int = 0

    def __post_init__(self) -> None:
        for seg in ("prefix", "middle", "suffix"):
            ids = _ids_tuple(getattr(self, seg), seg)
            types = _ids_tuple(getattr(self, f"{seg}_type_ids"), f"{seg}_type_ids")
            if len(ids) != len(types):
                raise ValueError(
                    f"{seg} has {len(ids)} ids but {seg}_type_ids has {len(types)}; give one type id per id"
                )
            object.__setattr__(self, seg, ids)
            object.__setattr__(self, f"{seg}_type_ids", types)
        for name in ("query_type_id", "doc_type_id", "pad_id", "pad_type_id"):
            object.__setattr__(self, name, _ids_tuple([getattr(self, name)], name)[0])

    @property
    def n_special(self) -> int:
        """Number of special tokens the template adds to a pair."""
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @classmethod
    def bert(cls, cls_id: int, sep_id: int, *, pad_id: int = 0) -> PairTemplate:
        """``[CLS] q [SEP] d [SEP]`` with token types ``0 0 0 1 1`` (BERT, MiniLM, ELECTRA).

        Parameters
        ----------
        cls_id : int
            Id of ``[CLS]`` (101 in BERT's uncased vocabulary).
        sep_id : int
            Id of ``[SEP]`` (102 there).
        pad_id : int
            Id of ``[PAD]`` (0 there).
        """
        return cls((cls_id,), (sep_id,), (sep_id,), (0,), (0,), (1,), 0, 1, pad_id, 0)

    @classmethod
    def roberta(cls, bos_id: int, eos_id: int, *, pad_id: int = 1) -> PairTemplate:
        """``<s> q </s></s> d </s>`` with all token types 0 (RoBERTa, XLM-R, BGE/GTE rerankers).

        Parameters
        ----------
        bos_id : int
            Id of ``<s>`` (0 in RoBERTa and XLM-R).
        eos_id : int
            Id of ``</s>`` (2 there).
        pad_id : int
            Id of ``<pad>`` (1 there).
        """
        return cls((bos_id,), (eos_id, eos_id), (eos_id,), (0,), (0, 0), (0,), 0, 0, pad_id, 0)

    @classmethod
    def from_tokenizer(cls, tokenizer: tokenizers.Tokenizer, *, pad_id: int | None = None) -> PairTemplate:
        """Read the pair template and pad token of a Hugging Face ``tokenizers.Tokenizer``.

        Supports the ``TemplateProcessing`` pair template, ``BertProcessing``, ``RobertaProcessing``,
        no post-processor, and a ``Sequence`` holding one of them beside offset-only processors
        (``ByteLevel``). The pad id is ``pad_id`` when given; else it comes from the tokenizer's
        padding settings, else from a ``[PAD]`` / ``<pad>`` / ``<|pad|>`` token.

        Parameters
        ----------
        tokenizer : tokenizers.Tokenizer
            The model's tokenizer.
        pad_id : int, optional
            Pad token id to use (with pad type id 0) instead of reading it from the tokenizer; None
            reads it.

        Raises
        ------
        ValueError
            For a post-processor this layout cannot express, or when no pad id can be found.
        """
        config = json.loads(tokenizer.to_str())
        return cls._from_config(config, tokenizer.token_to_id, pad_id)

    @classmethod
    def from_tokenizer_json(cls, path: str | PathLike[str], *, pad_id: int | None = None) -> PairTemplate:
        """Read the pair template of a ``tokenizer.json`` file (see :meth:`from_tokenizer`).

        Parameters
        ----------
        path : path-like
            The ``tokenizer.json`` file.
        pad_id : int, optional
            As in :meth:`from_tokenizer`: None reads the pad id from the tokenizer.

        Raises
        ------
        FileNotFoundError
            When the file does not exist.
        StateError
            When the file is not a tokenizer.json that ``tokenizers`` can load.
        """
        import tokenizers

        try:
            tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as exc:
            from pathlib import Path

            if not Path(path).is_file():
                raise FileNotFoundError(f"no tokenizer file at {path}") from exc
            raise StateError(f"{path} is not a tokenizer.json that tokenizers can load: {exc}") from exc
        return cls.from_tokenizer(tok, pad_id=pad_id)

    @classmethod
    def _from_config(cls, config: dict[str, Any], token_to_id: Any, pad_id: int | None) -> PairTemplate:
        proc = config.get("post_processor")
        adding = []
        if proc is not None:
            parts = proc["processors"] if proc.get("type") == "Sequence" else [proc]
            for p in parts:
                kind = p.get("type")
                if kind in _OFFSET_ONLY_PROCESSORS:
                    continue
                if kind not in ("TemplateProcessing", "BertProcessing", "RobertaProcessing"):
                    raise ValueError(
                        f"unsupported tokenizer post-processor {kind!r}; supported: TemplateProcessing, "
                        "BertProcessing, RobertaProcessing (or a Sequence of one of them with ByteLevel). "
                        "Build a PairTemplate by hand for this model"
                    )
                adding.append(p)
        if len(adding) > 1:
            raise ValueError(
                "the tokenizer's Sequence post-processor adds special tokens more than once "
                f"({[p['type'] for p in adding]}); build a PairTemplate by hand for this model"
            )
        if pad_id is None:
            pad_id, pad_type_id = _pad_from_config(config, token_to_id)
        else:
            pad_type_id = 0
        if not adding:  # no special tokens: tokenizers concatenates with type ids 0 / 1
            return cls((), (), (), (), (), (), 0, 1, pad_id, pad_type_id)
        p = adding[0]
        kind = p["type"]
        if kind == "BertProcessing":
            sep, cls_ = int(p["sep"][1]), int(p["cls"][1])
            return cls((cls_,), (sep,), (sep,), (0,), (0,), (1,), 0, 1, pad_id, pad_type_id)
        if kind == "RobertaProcessing":
            sep, cls_ = int(p["sep"][1]), int(p["cls"][1])
            return cls((cls_,), (sep, sep), (sep,), (0,), (0, 0), (0,), 0, 0, pad_id, pad_type_id)
        return _from_template_processing(cls, p, pad_id, pad_type_id)


def _pad_from_config(config: dict[str, Any], token_to_id: Any) -> tuple[int, int]:
    padding = config.get("padding")
    if padding:
        return int(padding["pad_id"]), int(padding.get("pad_type_id", 0))
    for tok in _PAD_TOKEN_GUESSES:
        tid = token_to_id(tok)
        if tid is not None:
            return int(tid), 0
    raise ValueError(
        "the tokenizer has no padding settings and no [PAD] / <pad> token; pass pad_id= explicitly"
    )


def _from_template_processing(
    cls: type[PairTemplate], p: dict[str, Any], pad_id: int, pad_type_id: int
) -> PairTemplate:
    special = p.get("special_tokens", {})
    segments: list[list[tuple[int, int]]] = [[], [], []]
    seq_types: list[int] = []
    seg = 0
    for item in p["pair"]:
        if "SpecialToken" in item:
            name, type_id = item["SpecialToken"]["id"], int(item["SpecialToken"]["type_id"])
            if name not in special:
                raise ValueError(f"TemplateProcessing pair template names unknown special token {name!r}")
            segments[seg].extend((int(i), type_id) for i in special[name]["ids"])
        elif "Sequence" in item:
            which = item["Sequence"]["id"]
            expected = "A" if seg == 0 else "B"
            if seg > 1 or which != expected:
                raise ValueError(
                    "unsupported TemplateProcessing pair template: expected specials, $A, specials, $B, "
                    f"specials in that order, got {p['pair']}; build a PairTemplate by hand"
                )
            seq_types.append(int(item["Sequence"]["type_id"]))
            seg += 1
        else:
            raise ValueError(f"unsupported TemplateProcessing item {item}")
    if seg != 2:
        raise ValueError(
            f"the TemplateProcessing pair template must hold $A and $B once each, got {p['pair']}"
        )
    ids = [tuple(i for i, _ in s) for s in segments]
    types = [tuple(t for _, t in s) for s in segments]
    return cls(
        ids[0], ids[1], ids[2], types[0], types[1], types[2], seq_types[0], seq_types[1], pad_id, pad_type_id
    )


@dataclass
class Batch:
    """One padded batch of rows, ready for the model.

    Attributes
    ----------
    input_ids, attention_mask, token_type_ids : np.ndarray
        int64, shape [rows, L]; ``L`` is a shape bucket (never above ``max_length``).
    pair_index : np.ndarray
        int64 [rows]: the caller's pair each row belongs to.
    window_start, window_end : np.ndarray
        int32 [rows]: document token range ``[start, end)`` read by the row (the kept part of the
        document when there are no windows).
    n_tokens : np.ndarray
        int32 [rows]: real tokens in the row (specials included), the rest is padding.
    window_index : np.ndarray
        int32 [rows]: window number within its pair (0 without windows).
    row_index : np.ndarray
        int64 [rows]: the row's position in the plan's pair-major row order (see :meth:`PackPlan.unsort`).
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    pair_index: np.ndarray
    window_start: np.ndarray
    window_end: np.ndarray
    n_tokens: np.ndarray
    window_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    row_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __repr__(self) -> str:
        rows, length = self.input_ids.shape
        return f"Batch(rows={rows}, length={length}, real_tokens={int(self.n_tokens.sum())})"


class WindowScores(NamedTuple):
    """Per-pair scores aggregated over windows, with the winning window.

    Attributes
    ----------
    scores : np.ndarray
        float64 [n_pairs].
    best_window : np.ndarray
        int32 [n_pairs]: index of the highest-scoring window.
    best_start, best_end : np.ndarray
        int32 [n_pairs]: its document token range ``[start, end)``; map it to characters with the
        tokenizer's offsets of the document encoding.
    """

    scores: np.ndarray
    best_window: np.ndarray
    best_start: np.ndarray
    best_end: np.ndarray


class PackPlan:
    """Truncation, windows, sort order and batch cuts for a list of pairs; batches filled on demand.

    Made by :func:`plan_pairs`. Rows are numbered pair-major (all windows of pair 0, then pair 1, ...);
    ``row_offsets[i]:row_offsets[i+1]`` are pair ``i``'s rows. Without windows row ``i`` is pair ``i``.

    Attributes
    ----------
    truncated : np.ndarray
        bool [n_pairs]: True when any query or document token of the pair was left out.
    n_tokens : np.ndarray
        int32 [n_pairs]: tokens of the pair's (first) row, specials included.
    n_windows : np.ndarray
        int32 [n_pairs]: rows per pair (1 without windows).
    row_offsets : np.ndarray
        int64 [n_pairs + 1].
    row_pair, row_window, row_start, row_end, row_tokens : np.ndarray
        int64 / int32 / int32 / int32 / int32 [n_rows]: pair, window number, document token range and
        token count of each row.
    batch_lengths, batch_sizes : np.ndarray
        int32 / int64 [n_batches]: padded length and rows of each batch.
    """

    def __init__(self, core: Any, template: PairTemplate) -> None:
        self._core = core
        self.template = template
        self.truncated: np.ndarray = core.truncated.astype(bool)
        self.n_tokens: np.ndarray = core.n_tokens
        self.row_offsets: np.ndarray = core.row_offsets
        self.row_pair: np.ndarray = core.row_pair
        self.row_window: np.ndarray = core.row_window
        self.row_start: np.ndarray = core.row_start
        self.row_end: np.ndarray = core.row_end
        self.row_tokens: np.ndarray = core.row_tokens
        self.n_windows: np.ndarray = np.diff(self.row_offsets).astype(np.int32)
        self.batch_lengths: np.ndarray = core.batch_length
        self._batch_offsets: np.ndarray = core.batch_offsets
        self.batch_sizes: np.ndarray = np.diff(self._batch_offsets)
        self._order: np.ndarray = core.order

    @property
    def n_pairs(self) -> int:
        return int(self._core.n_pairs)

    @property
    def n_rows(self) -> int:
        return int(self._core.n_rows)

    @property
    def n_batches(self) -> int:
        return int(self._core.n_batches)

    @property
    def peak_batch_tokens(self) -> int:
        """Largest ``rows * L`` over the batches (0 for an empty plan)."""
        return int(self._core.peak_batch_tokens)

    @property
    def order(self) -> np.ndarray:
        """int64 [n_rows]: plan rows in batch order (batch 0's rows first)."""
        return self._order

    def __len__(self) -> int:
        return self.n_batches

    def __repr__(self) -> str:
        return (
            f"PackPlan(pairs={self.n_pairs}, rows={self.n_rows}, batches={self.n_batches}, "
            f"truncated={int(self.truncated.sum())}, peak_batch_tokens={self.peak_batch_tokens})"
        )

    def batch(self, i: int) -> Batch:
        """Fill batch ``i`` (0 <= i < n_batches).

        Parameters
        ----------
        i : int
            Batch number in plan order (longest rows first); negative indices are not accepted.

        Returns
        -------
        Batch
            The padded model inputs of the batch's rows and, per row, its pair, window and token range.

        Raises
        ------
        IndexError
            For an index outside the plan.
        """
        if not 0 <= i < self.n_batches:
            raise IndexError(f"batch index {i} out of range for a plan of {self.n_batches} batches")
        ids, mask, types = self._core.materialize(i)
        rows = self._order[self._batch_offsets[i] : self._batch_offsets[i + 1]]
        return Batch(
            input_ids=ids,
            attention_mask=mask,
            token_type_ids=types,
            pair_index=self.row_pair[rows],
            window_start=self.row_start[rows],
            window_end=self.row_end[rows],
            n_tokens=self.row_tokens[rows],
            window_index=self.row_window[rows],
            row_index=rows.copy(),
        )

    def __iter__(self) -> Iterator[Batch]:
        for i in range(self.n_batches):
            yield self.batch(i)

    def unsort(self, batch_scores: Iterable[np.ndarray]) -> np.ndarray:
        """Put per-batch scores back in row order (= the caller's pair order without windows).

        Parameters
        ----------
        batch_scores : iterable of np.ndarray
            One array per batch, in batch order, shape [rows] or [rows, k] (e.g. logits).

        Returns
        -------
        np.ndarray
            Shape [n_rows] or [n_rows, k], the dtype of the inputs.

        Raises
        ------
        ValueError
            When the number of batches or of rows in a batch does not match the plan.
        """
        parts = [np.asarray(s) for s in batch_scores]
        if len(parts) != self.n_batches:
            raise ValueError(f"expected scores for {self.n_batches} batches, got {len(parts)}")
        for i, (part, size) in enumerate(zip(parts, self.batch_sizes, strict=True)):
            if part.shape[:1] != (size,):
                raise ValueError(f"batch {i} has {size} rows but its scores have shape {part.shape}")
        if not parts:
            return np.zeros(0, dtype=np.float32)
        flat = np.concatenate(parts, axis=0)
        out = np.empty_like(flat)
        out[self._order] = flat
        return out

    def aggregate(self, row_scores: np.ndarray, *, how: Aggregation = "max", k: int = 3) -> WindowScores:
        """Aggregate row scores [n_rows] into one score per pair, and name the best window.

        Parameters
        ----------
        row_scores : np.ndarray
            float [n_rows], in row order (:meth:`unsort`'s output).
        how : {"max", "mean", "first", "topk_mean"}
            ``max`` (default), ``mean`` over windows, the ``first`` window's score, or the mean of the
            ``k`` best windows (all of them when a pair has fewer).
        k : int
            Windows averaged by ``topk_mean``.

        Raises
        ------
        ValueError
            For a wrong shape, an unknown ``how``, or ``k < 1``.
        TypeError
            ``k`` is not an int.
        """
        scores = np.asarray(row_scores, dtype=np.float64)
        if scores.shape != (self.n_rows,):
            raise ValueError(f"row_scores must have shape ({self.n_rows},), got {scores.shape}")
        if how not in ("max", "mean", "first", "topk_mean"):
            raise ValueError(f"how must be 'max', 'mean', 'first' or 'topk_mean', got {how!r}")
        k = check_int(k, "k", minimum=1)  # k=1.5 would average more than the best window
        starts = self.row_offsets[:-1]
        if self.n_pairs == 0:
            empty_i = np.zeros(0, np.int32)
            return WindowScores(np.zeros(0), empty_i, empty_i, empty_i)
        # Best window per pair: sort rows by (pair, -score), first row of each pair wins; ties -> first window.
        by_score = np.lexsort((self.row_window, -scores, self.row_pair))
        best_rows = by_score[starts]
        if how == "max":
            agg = scores[best_rows]
        elif how == "first":
            agg = scores[starts]
        elif how == "mean":
            agg = np.add.reduceat(scores, starts) / self.n_windows
        else:
            rank_in_pair = np.arange(self.n_rows) - np.repeat(starts, self.n_windows)
            top = scores[by_score] * (rank_in_pair < k)
            agg = np.add.reduceat(top, starts) / np.minimum(self.n_windows, k)
        return WindowScores(
            agg, self.row_window[best_rows], self.row_start[best_rows], self.row_end[best_rows]
        )


def _to_ragged(ids: TokenIds, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert token id sequences to flat int32 values + int64 offsets (visible copy)."""
    x: Any = ids
    if isinstance(x, tuple) and len(x) == 2 and all(isinstance(a, np.ndarray) for a in x):
        values, offsets = x
        if values.size and values.dtype.kind not in "iu":
            raise TypeError(f"{name} values must be integers, got dtype {values.dtype}")
        if offsets.dtype.kind not in "iu":
            raise TypeError(f"{name} offsets must be integers, got dtype {offsets.dtype}")
        if values.ndim != 1 or offsets.ndim != 1:
            raise ValueError(f"{name} (values, offsets) must both be 1-D")
        _check_int32_range(values, name)
        return np.ascontiguousarray(values, dtype=np.int32), np.ascontiguousarray(offsets, dtype=np.int64)
    if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
        raise TypeError(
            f"{name} must be a list of token id sequences or a (values, offsets) tuple of arrays, "
            f"got {type(x).__name__}"
        )
    seqs: list[Any] = list(x)
    if seqs and all(isinstance(s, np.ndarray) for s in seqs):
        for s in seqs:
            if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
                raise TypeError(
                    f"{name} arrays must be 1-D integer arrays, got {s.dtype} with shape {s.shape}"
                )
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum([s.size for s in seqs], out=offsets[1:])
        flat = np.concatenate(seqs)
        _check_int32_range(flat, name)
        return np.ascontiguousarray(flat, dtype=np.int32), offsets
    # Python lists (tokenizers' Encoding.ids): one strict pass in C++ (rejects floats, bools, strings).
    values, offsets = _core.ragged_from_sequences(seqs, name)
    return values, offsets


def _check_int32_range(values: np.ndarray, name: str) -> None:
    # int32 input needs no check here: the core rejects negative ids.
    if values.size == 0 or values.dtype == np.int32:
        return
    if int(values.min()) < 0:
        raise ValueError(f"{name} hold the negative token id {int(values.min())}; token ids must be >= 0")
    if int(values.max()) > _INT32_MAX:
        raise ValueError(f"{name} hold token id {int(values.max())}, above the int32 range")


def plan_pairs(
    query_ids: TokenIds,
    doc_ids: TokenIds,
    template: PairTemplate,
    *,
    max_length: int,
    truncation: Truncation = "longest_first",
    max_query_length: int | None = None,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 256,
    buckets: int | Sequence[int] | None = 16,
    window_stride: int | None = None,
    max_windows: int | None = None,
) -> PackPlan:
    """Plan truncation (or windows), sort order and token-budgeted batches for (query, document) pairs.

    Parameters
    ----------
    query_ids : list of int sequences, or (values, offsets)
        Query token ids without special tokens: one per document, or a single query for all.
        ``(values, offsets)``: int32-range flat ids [total] and int64 offsets [n + 1].
    doc_ids : list of int sequences, or (values, offsets)
        Document token ids without special tokens, one per pair.
    template : PairTemplate
        The model's special tokens (:meth:`PairTemplate.from_tokenizer`).
    max_length : int
        Tokens per row, special tokens included; at least ``template.n_special + 2``.
    truncation : {"longest_first", "only_second", "only_first"}
        As in Hugging Face tokenizers (same kept lengths). ``only_second`` / ``only_first`` raise when
        the other sequence alone leaves no room.
    max_query_length : int, optional
        Query tokens kept before pair truncation (the pair is flagged truncated when it cuts).
    max_batch_tokens : int
        Upper bound of ``rows * L`` per batch; at least ``max_length``.
    max_batch_size : int
        Upper bound of rows per batch.
    buckets : int or sequence of int or None
        Padded lengths: an int pads ``L`` up to a multiple of it; an increasing sequence pads to the
        first listed length that fits (the row's own length past the last); ``None`` pads only to the
        batch's longest row. ``L`` never exceeds ``max_length``.
    window_stride : int, optional
        Split documents longer than the window (``max_length`` minus specials minus the query) into
        windows starting every ``window_stride`` tokens (at most the window size, so no token is
        skipped), the last one ending at the document's end; each window is a row with the whole query.
        Window 0 equals the truncated pair. Needs ``longest_first`` or ``only_second``.
    max_windows : int, optional
        Keep at most this many windows per document (first ones); the pair is then flagged truncated.

    Returns
    -------
    PackPlan

    Raises
    ------
    ValueError
        For option values out of range (the message gives the minimum), negative or over-int32 ids,
        inconsistent offsets, a query count that is neither 1 nor the document count, or a pair
        ``only_second`` / ``only_first`` cannot fit.
    TypeError
        For ids that are not integers.
    """
    q_values, q_offsets = _to_ragged(query_ids, "query_ids")
    d_values, d_offsets = _to_ragged(doc_ids, "doc_ids")
    if isinstance(buckets, bool):
        raise TypeError("buckets must be an int, a sequence of ints, or None")
    if buckets is None:
        multiple, lengths = 1, list[int]()
    elif isinstance(buckets, (int, np.integer)):
        multiple, lengths = int(buckets), []
        if multiple < 1:
            raise ValueError(f"buckets as a multiple must be >= 1, got {multiple}")
    else:
        multiple, lengths = 1, [int(b) for b in buckets]
        if not lengths:
            raise ValueError("buckets as a list must not be empty; pass None for no bucketing")
    if not isinstance(max_length, (int, np.integer)) or isinstance(max_length, bool):
        raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
    t = template
    core = _core.pack_plan(
        q_values,
        q_offsets,
        d_values,
        d_offsets,
        list(t.prefix),
        list(t.prefix_type_ids),
        list(t.middle),
        list(t.middle_type_ids),
        list(t.suffix),
        list(t.suffix_type_ids),
        t.query_type_id,
        t.doc_type_id,
        t.pad_id,
        t.pad_type_id,
        int(max_length),
        truncation,
        max_query_length,
        int(max_batch_tokens),
        int(max_batch_size),
        multiple,
        lengths,
        window_stride,
        max_windows,
    )
    return PackPlan(core, template)
