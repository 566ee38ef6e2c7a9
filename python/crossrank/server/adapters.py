"""Adapt crossrank's models to the server protocols (:mod:`crossrank.server.model`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .model import PairScores

# A first guess of characters per token when cutting a document to a token count; grown x4 when short.
_CHARS_PER_TOKEN = 6


class CrossEncoderModel:
    """A :class:`crossrank.CrossEncoder` as a :class:`~crossrank.server.model.RerankModel`.

    ``relevance`` is exactly what ``CrossEncoder.rank`` returns as ``score`` (the model's own
    activation; for two-label models the softmax probability of label 1), so a client of the
    server sees the in-process scores. ``logits`` (TEI's ``raw_scores``) are the raw output of the
    one label, or of label 1 for two-label models.

    Parameters
    ----------
    encoder
        The cross-encoder (one or two labels).
    name
        Reported in responses and ``/health``.

    Raises
    ------
    ValueError
        When the model has more than two labels (a reranker needs one relevance score).
    """

    def __init__(self, encoder: Any, name: str) -> None:
        labels = int(getattr(encoder, "num_labels", 1))
        if labels > 2:
            raise ValueError(
                f"a rerank server needs a one- or two-label cross-encoder; this one has {labels} labels"
            )
        self.encoder = encoder
        self.name = name
        self.num_labels = labels
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
        """Load a cross-encoder by directory, ``.onnx`` file or hub id (see :class:`crossrank.CrossEncoder`)."""
        from ..rerank.cross_encoder import CrossEncoder

        kwargs: dict[str, Any] = {"max_length": max_length, "num_threads": num_threads}
        if max_batch_tokens is not None:
            kwargs["max_batch_tokens"] = max_batch_tokens
        return cls(CrossEncoder(model, **kwargs), name=str(model))

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> PairScores:
        """Score the merged pairs of one step (the CrossEncoder sorts and token-budgets them)."""
        pred = self.encoder.predict(list(pairs), return_details=True)
        logits = np.asarray(pred.logits, dtype=np.float32).reshape(len(pairs), self.num_labels)
        if self.num_labels == 1:
            relevance = np.asarray(pred.scores, dtype=np.float32).reshape(len(pairs))
            raw = logits[:, 0]
        else:
            # As CrossEncoder.rank: the probability of label 1 ("relevant").
            z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
            e = np.exp(z)
            relevance = (e[:, 1] / e.sum(axis=1)).astype(np.float32)
            raw = logits[:, 1]
        return PairScores(
            logits=np.ascontiguousarray(raw),
            relevance=relevance,
            truncated=np.asarray(pred.truncated, dtype=bool),
            num_tokens=np.asarray(pred.n_tokens, dtype=np.int64),
        )

    def truncate_document(self, text: str, max_tokens: int) -> tuple[str, bool]:
        """Cut ``text`` after the character end of its ``max_tokens``-th token (no special tokens).

        Long texts are tokenized as a growing prefix, dropping the pieces of the prefix's last
        (possibly cut) word, so a 1 MB document costs about as much as a page.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        tokenizer = self.encoder.encoder.tokenizer
        budget = (max_tokens + 1) * _CHARS_PER_TOKEN + 64
        while True:
            prefix = text[:budget]
            enc = tokenizer.encode(prefix, add_special_tokens=False)
            n = len(enc.ids)
            if len(prefix) == len(text):
                if n <= max_tokens:
                    return text, False
                return text[: enc.offsets[max_tokens - 1][1]], True
            words = enc.word_ids
            keep = n
            while keep > 0 and words[keep - 1] == words[-1]:
                keep -= 1
            if keep > max_tokens:
                return text[: enc.offsets[max_tokens - 1][1]], True
            budget *= 4


class EmbedderModel:
    """A :class:`crossrank.Embedder` as an :class:`~crossrank.server.model.EmbedModel`."""

    def __init__(self, embedder: Any, name: str) -> None:
        self.embedder = embedder
        self.name = name

    @classmethod
    def load(cls, model: str, *, num_threads: int | None = None) -> EmbedderModel:
        """Load a sentence-transformers model exported to ONNX (see :class:`crossrank.Embedder`)."""
        from ..models.embedder import Embedder

        # Raw vectors: the server L2-normalizes per request (TEI's "normalize", default true).
        return cls(Embedder(model, num_threads=num_threads, normalize=False), name=str(model))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.embedder.encode(list(texts)), dtype=np.float32)
