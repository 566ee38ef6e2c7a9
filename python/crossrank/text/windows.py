"""Token windows over long documents, their character spans, and per-document aggregation.

Shared by the dense and ColBERT rerankers (the cross-encoder plans its windows in the C++ packer with
the same arithmetic). A document of ``n`` tokens read ``size`` tokens at a time with stride ``stride``
(``1 <= stride <= size``) gives windows starting at ``0, stride, 2*stride, ...``; the last one is moved
back to end at the document's end, so every token is covered and no window is shorter than ``size``
(a document of at most ``size`` tokens is one window). The number of windows is
``1 + ceil((n - size) / stride)`` for ``n > size``.

Token ranges map to characters through the tokenizer's offsets of the document encoding (Hugging Face
``tokenizers`` gives ``(start, end)`` character offsets per token), so a caller can show the passage
that won.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import numpy as np

from .._common import check_int, check_int_array

if TYPE_CHECKING:
    from ..types import Window

__all__ = [
    "Aggregation",
    "TokenizedText",
    "aggregate_windows",
    "char_span",
    "tokenize_with_offsets",
    "window_bounds",
]

Aggregation = Literal["max", "mean", "first", "topk_mean"]
AGGREGATIONS = ("max", "mean", "first", "topk_mean")


class TokenizedText(NamedTuple):
    """Token ids of a text (no special tokens) with each token's character range.

    Attributes
    ----------
    ids : np.ndarray
        int32 [n_tokens].
    offsets : np.ndarray
        int64 [n_tokens, 2]: ``[start, end)`` character range of each token in the text.
    """

    ids: np.ndarray
    offsets: np.ndarray


def check_window_options(
    window_size: Any, window_stride: Any, limit: int, aggregate: Any, aggregate_k: Any
) -> None:
    """Validate window options; ``limit`` is the most text tokens one model row can hold.

    Raises
    ------
    ValueError
        For sizes / strides that are not positive ints, a window larger than ``limit``, a stride larger
        than the window, an unknown aggregation, or ``aggregate_k < 1``.
    """
    for name, value in (("window_size", window_size), ("window_stride", window_stride)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    if window_size is not None and window_size > limit:
        raise ValueError(
            f"window_size={window_size} exceeds the {limit} text tokens the model reads per row; "
            f"pass window_size <= {limit}"
        )
    size = window_size if window_size is not None else limit
    if window_stride is not None and window_stride > size:
        raise ValueError(
            f"window_stride={window_stride} is larger than the window ({size} tokens) and would skip "
            f"tokens; pass window_stride <= {size}"
        )
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be 'max', 'mean', 'first' or 'topk_mean', got {aggregate!r}")
    if isinstance(aggregate_k, bool) or not isinstance(aggregate_k, int) or aggregate_k < 1:
        raise ValueError(f"aggregate_k must be an int >= 1, got {aggregate_k!r}")


def window_bounds(n_tokens: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the token windows of a document of ``n_tokens`` tokens.

    Parameters
    ----------
    n_tokens : int
        Document length (>= 0).
    size : int
        Tokens per window (>= 1).
    stride : int
        Tokens between window starts, ``1 <= stride <= size``.

    Returns
    -------
    starts, ends : np.ndarray
        int64 [n_windows]: ``[start, end)`` of each window; one window ``[0, n_tokens)`` when the
        document fits.

    Raises
    ------
    ValueError
        For ``size < 1``, a stride outside ``[1, size]`` or a negative length.
    """
    if size < 1 or not 1 <= stride <= size or n_tokens < 0:
        raise ValueError(f"need n_tokens >= 0 and 1 <= stride <= size, got {n_tokens=}, {size=}, {stride=}")
    if n_tokens <= size:
        return np.zeros(1, np.int64), np.full(1, n_tokens, np.int64)
    n_win = 1 + -(-(n_tokens - size) // stride)
    starts = np.arange(n_win, dtype=np.int64) * stride
    starts[-1] = n_tokens - size  # the last window ends at the document's end
    return starts, starts + size


def aggregate_windows(
    scores: np.ndarray, doc_offsets: np.ndarray, how: Aggregation = "max", k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate window scores per document and name the best window.

    Parameters
    ----------
    scores : np.ndarray
        float [n_windows], documents' windows one after another.
    doc_offsets : np.ndarray
        int [n_docs + 1]: document ``i`` owns ``scores[doc_offsets[i]:doc_offsets[i + 1]]`` (at least
        one window each).
    how : {"max", "mean", "first", "topk_mean"}
        ``max``; ``mean`` over windows; the ``first`` window's score (plain truncation); the mean of the
        ``k`` best windows (all of them when a document has fewer).
    k : int
        Windows averaged by ``topk_mean``.

    Returns
    -------
    agg : np.ndarray
        float64 [n_docs].
    best : np.ndarray
        int64 [n_docs]: index (within the document) of its highest-scoring window, the first on ties.

    Raises
    ------
    ValueError
        For an unknown ``how``, ``k < 1``, or offsets that do not cover ``scores`` with non-empty runs.
    TypeError
        ``k`` is not an int, or ``doc_offsets`` does not hold integers.
    """
    s = np.asarray(scores, dtype=np.float64)
    off = check_int_array(doc_offsets, "doc_offsets")  # float offsets would be truncated
    if how not in AGGREGATIONS:
        raise ValueError(f"how must be 'max', 'mean', 'first' or 'topk_mean', got {how!r}")
    k = check_int(k, "k", minimum=1)  # k=1.5 would average more than the best window
    counts = np.diff(off)
    if s.ndim != 1 or off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != s.size or (counts < 1).any():
        raise ValueError("doc_offsets must start at 0, end at len(scores) and give each document >= 1 window")
    n_docs = counts.size
    if n_docs == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    starts = off[:-1]
    doc_of = np.repeat(np.arange(n_docs), counts)
    local = np.arange(s.size) - np.repeat(starts, counts)
    # Sort windows by (document, -score, window): each document's first row is its best window.
    by_score = np.lexsort((local, -s, doc_of))
    best = local[by_score[starts]]
    if how == "max":
        agg = s[by_score[starts]]
    elif how == "first":
        agg = s[starts]
    elif how == "mean":
        agg = np.add.reduceat(s, starts) / counts
    else:
        top = s[by_score] * (local < k)  # local rank within the document after sorting
        agg = np.add.reduceat(top, starts) / np.minimum(counts, k)
    return agg, best.astype(np.int64)


def tokenize_with_offsets(tokenizer: Any, texts: Sequence[str]) -> list[TokenizedText]:
    """Tokenize texts (no special tokens, no truncation) keeping each token's character range.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` loaded without truncation
    (:func:`crossrank.text.tokenization.load_tokenizer`).

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        Without truncation (else long texts lose tokens).
    texts : sequence of str
        The texts.

    Returns
    -------
    list of TokenizedText
        One per text: ids int32 ``[n_tokens]`` and character offsets int64 ``[n_tokens, 2]``
        (``[start, end)`` of each token in the text).
    """
    if not texts:
        return []
    encs = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    out = []
    for e in encs:
        ids = np.asarray(e.ids, dtype=np.int32)
        offs = np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2)
        out.append(TokenizedText(ids, offs))
    return out


def char_span(offsets: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """Character range ``[start_char, end_char)`` of tokens ``[start, end)``: from the first token's
    start to the last token's end (``(0, 0)`` for an empty range).

    Parameters
    ----------
    offsets : np.ndarray
        int [n_tokens, 2], the tokenizer's offsets of the whole document.
    """
    if end <= start:
        return (0, 0)
    return int(offsets[start, 0]), int(offsets[end - 1, 1])


class LazyWindows(Sequence["Window | None"]):
    """The winning windows of one query's documents, each computed on first access and kept.

    A reranker knows each winner's token range; its character range needs the document's tokenizer
    offsets, which cost a second tokenization, and ``rank`` reads the ``top_k`` rows only. Subclasses
    say how one row is computed (:meth:`_compute`); indexing, slicing and the cache live here. Reads may
    come from several threads: a race computes the same value twice, which is harmless.
    """

    def __init__(self, n: int) -> None:
        self._n = n
        self._done: dict[int, Window] = {}

    def _compute(self, i: int) -> Window:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Window | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[Window | None]: ...

    def __getitem__(self, i: int | slice) -> Window | list[Window | None] | None:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"window index {i} out of range for {self._n} documents")
        i %= self._n
        got = self._done.get(i)
        if got is None:
            got = self._done[i] = self._compute(i)
        return got
