"""Deterministic fake models for the server tests (loaded by ``--model py:server_fakes:make_model``).

The fake's score of a pair is an obvious function of the texts (word overlap, hash-free), so a
test can compute the expected response itself. Two fakes:

- :class:`FakeReranker` has only the reranker protocol (``score``, ``score_batch``, ``rank``), like a
  dense, ColBERT or LLM reranker: the server calls its ``score_batch`` once per step. It counts those
  calls and records their queries.
- :class:`FakeCrossEncoder` adds ``predict(pairs, return_details=True)`` with raw logits and token
  counts, like crossrank's CrossEncoder, so the server reports raw scores and usage.

Environment knobs for subprocess servers: ``FAKE_DELAY_S`` (seconds per inference step),
``FAKE_MAX_LENGTH`` (tokens per pair). A document equal to ``RAISE`` makes the step raise, to test
that one failing step does not kill the worker.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from crossrank.rerank.base import RerankerBase
from crossrank.types import Scores

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


class FakeReranker(RerankerBase):
    """Scores ``sigmoid(fake_logit)``; counts a pair as ``len(words) + 3`` tokens.

    ``calls`` lists the queries of each ``score_batch`` call the server made (one per inference step).
    """

    name = "fake-reranker"

    def __init__(self, *, delay_s: float = 0.0, max_length: int = 64) -> None:
        self.delay_s = delay_s
        self.max_length = max_length
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def _pairs(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(d == RAISE for _, d in pairs):
            raise RuntimeError("fake model asked to fail")
        logits = np.array([fake_logit(q, d) for q, d in pairs], dtype=np.float32)
        full = np.array([len(words(q)) + len(words(d)) + 3 for q, d in pairs], dtype=np.int64)
        return logits, full > self.max_length, np.minimum(full, self.max_length)

    def _score_many(self, queries: list[str], documents_per_query: list[list[str]]) -> list[Scores]:
        with self._lock:
            self.calls.append(list(queries))
        pairs = [(q, d) for q, docs in zip(queries, documents_per_query, strict=True) for d in docs]
        logits, truncated, _ = self._pairs(pairs)
        relevance = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        out, at = [], 0
        for docs in documents_per_query:
            n = len(docs)
            out.append(Scores(relevance[at : at + n], truncated[at : at + n]))
            at += n
        return out

    def truncate_document(self, text: str, max_tokens: int) -> tuple[str, bool]:
        w = text.split()
        return " ".join(w[:max_tokens]), len(w) > max_tokens


class FakeCrossEncoder(FakeReranker):
    """:class:`FakeReranker` plus crossrank's ``CrossEncoder.predict(..., return_details=True)``."""

    num_labels = 1

    def predict(self, pairs: Sequence[tuple[str, str]], *, return_details: bool = False) -> object:
        logits, truncated, n_tokens = self._pairs(pairs)
        scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        if not return_details:
            return scores
        return SimpleNamespace(scores=scores, logits=logits[:, None], truncated=truncated, n_tokens=n_tokens)


class FakeEmbedModel:
    """Embeds a text as its (length, word count, vowel count, 1) vector.

    Its "tokens" are the words plus two specials; a text of more than ``max_length`` of them is too long
    (the server refuses it unless truncation is asked for; the fake itself never cuts).
    """

    name = "fake-embedder"

    def __init__(self, max_length: int = 64) -> None:
        self.max_length = max_length

    def input_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [[len(t), len(t.split()), sum(c in "aeiou" for c in t), 1.0] for t in texts], dtype=np.float32
        )


def _delay() -> float:
    return float(os.environ.get("FAKE_DELAY_S", "0"))


def _max_length() -> int:
    return int(os.environ.get("FAKE_MAX_LENGTH", "64"))


def make_model() -> FakeCrossEncoder:
    return FakeCrossEncoder(delay_s=_delay(), max_length=_max_length())


def make_protocol_model() -> FakeReranker:
    return FakeReranker(delay_s=_delay(), max_length=_max_length())


def make_embed_model() -> FakeEmbedModel:
    return FakeEmbedModel(max_length=_max_length())
