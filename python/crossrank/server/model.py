"""What the server computes per pair (:class:`PairScores`) and the model protocols it relies on.

The server serves any reranker with the :class:`crossrank.types.Reranker` protocol through one adapter,
:class:`crossrank.server.adapters.ServedReranker`. A reranker that can also report its raw scores and
per-pair token counts (crossrank's :class:`~crossrank.CrossEncoder`) meets :class:`PairPredictor` as
well, and the adapter uses that. ``/embed`` is served by an :class:`EmbedModel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class PairScores:
    """Scores of ``n`` query-document pairs, sliceable per request.

    Attributes
    ----------
    logits : numpy.ndarray of float32, shape (n,)
        Raw scores (TEI's ``raw_scores``): a cross-encoder's output before its activation; for a
        reranker without an activation, the same as ``relevance``.
    relevance : numpy.ndarray of float32, shape (n,)
        What the reranker's ``rank`` returns as ``score`` (a cross-encoder's calibrated 0-1 relevance).
    truncated : numpy.ndarray of bool, shape (n,)
        Whether some of the pair did not reach the model.
    num_tokens : numpy.ndarray of int64, shape (n,), or None
        Tokens fed to the model per pair (special tokens included); None when the reranker does not
        report them. When it reports only a total per query, the query's first row carries the total
        and its other rows 0, so the sum over one request's rows is exact.
    """

    logits: np.ndarray
    relevance: np.ndarray
    truncated: np.ndarray
    num_tokens: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.logits)
        for name in ("relevance", "truncated", "num_tokens"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"PairScores.{name} has {len(value)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, index: slice) -> PairScores:
        tokens = None if self.num_tokens is None else self.num_tokens[index]
        return PairScores(self.logits[index], self.relevance[index], self.truncated[index], tokens)

    @staticmethod
    def concat(parts: Sequence[PairScores]) -> PairScores:
        """Join the rows of several results (token counts are kept only when every part has them)."""
        tokens = (
            np.concatenate([p.num_tokens for p in parts if p.num_tokens is not None]).astype(np.int64)
            if parts and all(p.num_tokens is not None for p in parts)
            else None
        )
        return PairScores(
            np.concatenate([p.logits for p in parts]).astype(np.float32),
            np.concatenate([p.relevance for p in parts]).astype(np.float32),
            np.concatenate([p.truncated for p in parts]).astype(bool),
            tokens,
        )


@runtime_checkable
class PairPredictor(Protocol):
    """Optional, beside :class:`crossrank.types.Reranker`: a pair scorer that reports details.

    crossrank's :class:`~crossrank.CrossEncoder` meets it: ``predict(pairs, return_details=True)``
    returns an object with ``scores`` (after the activation), ``logits`` (float32 ``[n, num_labels]``),
    ``truncated`` (bool ``[n]``) and ``n_tokens`` (int ``[n]``), packing every pair of every query into
    one plan, as its ``score_batch`` does. The server then answers TEI's ``raw_scores`` with the logits
    and reports token usage.
    """

    num_labels: int

    def predict(self, pairs: Any, *, return_details: bool = ...) -> Any:
        """Score ``(query, document)`` pairs; with ``return_details=True`` give the details above."""
        ...


@runtime_checkable
class EmbedModel(Protocol):
    """A dense text embedder as the server sees it.

    Optional capabilities, looked up by name (a model without one gets 422 for the option that
    needs it, never a silent no-op):

    * ``prompts``: dict of prompt name -> prefix (``prompt_name``; sentence-transformers' prompts);
    * ``matryoshka_dims``: ``"any"`` or a sequence of sizes (``dimensions``: the first N values,
      then normalized); None or absent: the vectors cannot be shortened;
    * ``left_truncation = True``: ``embed(texts, truncation_direction="left")`` keeps each text's end;
    * ``count_tokens(texts, truncation_direction=...)``: tokens per text (OpenAI's ``usage``);
    * ``max_length`` and ``input_lengths(texts)`` (tokens per text before truncation): a request that
      does not ask for truncation and holds a longer text is refused with 413, as TEI does. A model
      without them is trusted to take texts of any length.
    """

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 embeddings of shape (len(texts), dim) (the server L2-normalizes on request)."""
        ...
