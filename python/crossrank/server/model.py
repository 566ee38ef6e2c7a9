"""What the server needs from a model: the :class:`RerankModel` and :class:`EmbedModel` protocols.

The server never imports a concrete model class; ``crossrank serve`` adapts the
:class:`crossrank.CrossEncoder` (see :mod:`crossrank.server.adapters`) and tests plug in a
deterministic fake. Keeping the surface this small keeps the batching logic testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class PairScores:
    """Scores of ``n`` query-document pairs, sliceable per request.

    Attributes
    ----------
    logits : numpy.ndarray of float32, shape (n,)
        Raw model outputs (before any activation).
    relevance : numpy.ndarray of float32, shape (n,)
        Calibrated 0-1 relevance (the model's activation applied to ``logits``).
    truncated : numpy.ndarray of bool, shape (n,)
        Whether the pair was cut to the model's maximum length.
    num_tokens : numpy.ndarray of int64, shape (n,)
        Tokens fed to the model for each pair (after truncation, special tokens included).
    """

    logits: np.ndarray
    relevance: np.ndarray
    truncated: np.ndarray
    num_tokens: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.logits)
        for name in ("relevance", "truncated", "num_tokens"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"PairScores.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, index: slice) -> PairScores:
        return PairScores(
            self.logits[index], self.relevance[index], self.truncated[index], self.num_tokens[index]
        )


@runtime_checkable
class RerankModel(Protocol):
    """A cross-encoder as the server sees it."""

    #: Name reported in responses and ``/health``.
    name: str
    #: Most tokens of one pair (query + document + special tokens).
    max_length: int

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> PairScores:
        """Score ``pairs`` (called on the inference thread with the merged pairs of one step)."""
        ...

    def truncate_document(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """Return the prefix of ``text`` made of its first ``max_tokens`` tokens, and whether it was cut."""
        ...


@runtime_checkable
class EmbedModel(Protocol):
    """A dense text embedder as the server sees it."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 embeddings of shape (len(texts), dim) (the server L2-normalizes on request)."""
        ...
