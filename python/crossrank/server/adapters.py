"""Adapt crossrank's models to the server protocols (:mod:`crossrank.server.model`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .model import PairScores


class CrossEncoderModel:
    """A :class:`crossrank.CrossEncoder` as a :class:`~crossrank.server.model.RerankModel`.

    Parameters
    ----------
    encoder
        The cross-encoder; its activation gives ``PairScores.relevance``.
    name
        Reported in responses and ``/health``.
    """

    def __init__(self, encoder: Any, name: str) -> None:
        self.encoder = encoder
        self.name = name
        self.max_length = int(encoder.max_length)

    @classmethod
    def load(
        cls,
        model: str,
        *,
        max_length: int | None = None,
        max_batch_tokens: int | None = None,
        num_threads: int | None = None,
    ) -> CrossEncoderModel:
        """Load a cross-encoder by path or hub id (see :class:`crossrank.CrossEncoder`)."""
        try:
            from ..cross_encoder import CrossEncoder
        except ImportError as exc:  # pragma: no cover - until the cross-encoder lands
            raise ImportError(f"crossrank.CrossEncoder is not available: {exc}") from exc
        kwargs: dict[str, Any] = {"max_length": max_length, "num_threads": num_threads}
        if max_batch_tokens is not None:
            kwargs["max_batch_tokens"] = max_batch_tokens
        return cls(CrossEncoder(model, **kwargs), name=str(model))

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> PairScores:
        raise NotImplementedError

    def truncate_document(self, text: str, max_tokens: int) -> tuple[str, bool]:
        raise NotImplementedError


class EmbedderModel:
    """A :class:`crossrank.Embedder` as an :class:`~crossrank.server.model.EmbedModel`."""

    def __init__(self, embedder: Any, name: str) -> None:
        self.embedder = embedder
        self.name = name

    @classmethod
    def load(cls, model: str, *, num_threads: int | None = None) -> EmbedderModel:
        try:
            from ..dense import Embedder  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise ImportError(
                f"--embed-model needs crossrank's dense Embedder, which this build lacks ({exc})"
            ) from exc
        return cls(Embedder(model, num_threads=num_threads), name=str(model))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.embedder.encode(list(texts)), dtype=np.float32)
