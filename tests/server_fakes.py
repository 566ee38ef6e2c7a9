"""Deterministic fake models for the server tests (loaded by ``--model py:server_fakes:make_model``).

The fake's score of a pair is an obvious function of the texts (word overlap, hash-free), so a
test can compute the expected response itself. Environment knobs for subprocess servers:
``FAKE_DELAY_S`` (seconds per inference step), ``FAKE_MAX_LENGTH`` (tokens per pair).
A document equal to ``RAISE`` makes the step raise, to test that one failing step does not
kill the worker.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import numpy as np

from crossrank.server.model import PairScores

RAISE = "__crossrank_fake_raise__"


def words(text: str) -> list[str]:
    return text.lower().split()


def fake_logit(query: str, doc: str) -> float:
    """Word overlap minus a small length penalty: distinct values for distinct documents."""
    q, d = set(words(query)), words(doc)
    overlap = sum(1 for w in d if w in q)
    return float(overlap) - 0.01 * len(d) - 0.001 * len(doc)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class FakeRerankModel:
    """Scores with :func:`fake_logit`; counts a pair as ``len(words) + 3`` tokens."""

    name = "fake-reranker"

    def __init__(self, *, delay_s: float = 0.0, max_length: int = 64) -> None:
        self.delay_s = delay_s
        self.max_length = max_length

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> PairScores:
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(d == RAISE for _, d in pairs):
            raise RuntimeError("fake model asked to fail")
        logits = np.array([fake_logit(q, d) for q, d in pairs], dtype=np.float32)
        full = np.array([len(words(q)) + len(words(d)) + 3 for q, d in pairs], dtype=np.int64)
        return PairScores(
            logits=logits,
            relevance=(1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32),
            truncated=full > self.max_length,
            num_tokens=np.minimum(full, self.max_length),
        )

    def truncate_document(self, text: str, max_tokens: int) -> tuple[str, bool]:
        w = text.split()
        return " ".join(w[:max_tokens]), len(w) > max_tokens


class FakeEmbedModel:
    """Embeds a text as its (length, word count, vowel count, 1) vector."""

    name = "fake-embedder"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [[len(t), len(t.split()), sum(c in "aeiou" for c in t), 1.0] for t in texts], dtype=np.float32
        )


def make_model() -> FakeRerankModel:
    return FakeRerankModel(
        delay_s=float(os.environ.get("FAKE_DELAY_S", "0")),
        max_length=int(os.environ.get("FAKE_MAX_LENGTH", "64")),
    )


def make_embed_model() -> FakeEmbedModel:
    return FakeEmbedModel()
