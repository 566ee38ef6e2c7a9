"""Model selection on the dev split: NDCG@10 of reranking the first stage's candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..eval.evaluate import evaluate
from ..text.packing import PairTemplate, plan_pairs
from .batching import TokenTable
from .forward import forward_pairs

__all__ = ["DevSet", "score_pairs"]


def score_pairs(
    model: Any,
    pairs: Sequence[tuple[str, str]],
    tokens: TokenTable,
    template: PairTemplate,
    *,
    max_length: int,
    max_batch_tokens: int,
    bf16: bool,
    chunk: int = 512,
) -> np.ndarray:
    """Logits (float32) of (query id, doc id) pairs with the PyTorch model in eval mode.

    Parameters
    ----------
    model : torch module
        The cross-encoder.
    pairs : sequence of (str, str)
        (query id, document id), both in ``tokens``.
    tokens : TokenTable
        Token ids.
    template : PairTemplate
        Special tokens.
    max_length, max_batch_tokens : int
        As in training.
    bf16 : bool
        bf16 autocast.
    chunk : int
        Pairs planned at once.
    """
    import torch

    was_training = model.training
    model.eval()
    out = np.zeros(len(pairs), np.float32)
    try:
        with torch.inference_mode():
            for start in range(0, len(pairs), chunk):
                part = pairs[start : start + chunk]
                plan = plan_pairs(
                    [tokens.get("q", q) for q, _ in part],
                    [tokens.get("d", d) for _, d in part],
                    template,
                    max_length=max_length,
                    max_batch_tokens=max_batch_tokens,
                    buckets=8,
                )
                logits = forward_pairs(model, list(plan), len(part), bf16=bf16)
                out[start : start + len(part)] = logits.numpy()
    finally:
        model.train(was_training)
    return out


class DevSet:
    """Dev queries with their first-stage candidates, scored by the model being trained.

    Parameters
    ----------
    qids : sequence of str
        Dev query ids (drawn from the train queries).
    candidates : dict of str to list of str
        First-stage ranking per query (best first); the top ``depth`` are reranked.
    qrels : dict of str to dict of str to int
        Judgements of the dev queries.
    depth : int
        Candidates reranked per query.

    Not shared across threads.
    """

    def __init__(
        self,
        qids: Sequence[str],
        candidates: dict[str, list[str]],
        qrels: dict[str, dict[str, int]],
        depth: int,
    ) -> None:
        self.qids = list(qids)
        self.depth = depth
        self.qrels = {q: qrels[q] for q in self.qids}
        self.pairs = [(q, d) for q in self.qids for d in candidates.get(q, [])[:depth]]

    def first_stage_ndcg(self, candidates: dict[str, list[str]]) -> float:
        """NDCG@10 of the first stage alone on the dev queries."""
        run = {
            q: {d: float(-r) for r, d in enumerate(candidates.get(q, [])[: self.depth])} for q in self.qids
        }
        return float(evaluate(run, self.qrels, ["nDCG@10"]).aggregate["nDCG@10"])

    def evaluate(self, logits: np.ndarray) -> float:
        """NDCG@10 of the reranked candidates given one logit per pair of :attr:`pairs`."""
        run: dict[str, dict[str, float]] = {q: {} for q in self.qids}
        for (q, d), s in zip(self.pairs, logits, strict=True):
            run[q][d] = float(s)
        return float(evaluate(run, self.qrels, ["nDCG@10"]).aggregate["nDCG@10"])

    def labels(self) -> np.ndarray:
        """1 where a pair's document is judged relevant, else 0 (for calibration)."""
        return np.array([1 if self.qrels[q].get(d, 0) > 0 else 0 for q, d in self.pairs], np.int64)
