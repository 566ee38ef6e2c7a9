"""Groups of (query, positive, negatives) and their token-budgeted, length-sorted batches.

A *group* is one judged positive with its sampled negatives (the unit of the listwise loss). A training
*step* takes ``groups_per_step`` groups; its pairs are packed exactly as at inference
(:func:`crossrank.text.packing.plan_pairs`: longest-first truncation, sort by length, micro-batches under
``max_batch_tokens``), so no padding is wasted and memory stays bounded. Across an epoch, groups are
shuffled, then sorted by length inside windows of a few steps, so a step's pairs have similar lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..text.packing import Batch, PairTemplate, plan_pairs
from ..text.tokenization import TextEncoder

__all__ = ["Group", "StepBatches", "TokenTable", "epoch_groups", "pack_step", "step_order"]


@dataclass(frozen=True)
class Group:
    """One listwise group: a query, its documents (the positive first) and their labels.

    Attributes
    ----------
    qid : str
        Query id.
    doc_ids : tuple of str
        Documents; ``doc_ids[0]`` is the judged positive.
    labels : tuple of float
        1.0 for the positive, 0.0 for negatives.
    teacher : tuple of float, optional
        A teacher's score of each document (NaN where the teacher's run has none).
    """

    qid: str
    doc_ids: tuple[str, ...]
    labels: tuple[float, ...]
    teacher: tuple[float, ...] | None = None


class TokenTable:
    """Token ids (no special tokens) of queries and documents, tokenized once and kept.

    Parameters
    ----------
    encoder : crossrank.text.tokenization.TextEncoder
        The model's tokenizer wrapper.
    max_length : int
        Pairs are cut to this many tokens, so only the first ``max_length + 1`` ids of a text are kept.

    Not shared across threads.
    """

    def __init__(self, encoder: TextEncoder, max_length: int) -> None:
        self.encoder = encoder
        self.max_length = max_length
        self._ids: dict[tuple[str, str], np.ndarray] = {}

    def add(self, kind: str, keys: Sequence[str], texts: Sequence[str]) -> None:
        """Tokenize texts not seen yet (``kind`` is "q" or "d")."""
        todo = [(k, t) for k, t in zip(keys, texts, strict=True) if (kind, k) not in self._ids]
        if not todo:
            return
        ids = self.encoder.encode([t for _, t in todo], max_tokens=self.max_length, cache=False)
        for (k, _), arr in zip(todo, ids, strict=True):
            self._ids[kind, k] = arr

    def get(self, kind: str, key: str) -> np.ndarray:
        """The ids of a query ("q") or document ("d") added before."""
        return self._ids[kind, key]


def epoch_groups(
    qids: Sequence[str],
    positives: dict[str, list[str]],
    candidates: dict[str, list[str]],
    n_negatives: int,
    seed: int,
    epoch: int,
) -> list[Group]:
    """Build the epoch's groups: one per (query, positive), with freshly drawn negatives.

    Parameters
    ----------
    qids : sequence of str
        Training queries.
    positives : dict of str to list of str
        Judged positives per query (also the exclusion set).
    candidates : dict of str to list of str
        First-stage candidates per query.
    n_negatives : int
        Negatives per positive.
    seed, epoch : int
        The draw uses ``numpy.random.default_rng([seed, epoch])``.
    """
    from .negatives import sample_negatives

    rng = np.random.default_rng([seed, epoch])
    groups = []
    for qid in qids:
        pos = positives[qid]
        exclude = set(pos)
        for p in pos:
            negs = sample_negatives(candidates.get(qid, []), exclude, n_negatives, rng)
            groups.append(Group(qid, (p, *negs), (1.0,) + (0.0,) * len(negs)))
    return groups


def step_order(
    groups: Sequence[Group],
    tokens: TokenTable,
    groups_per_step: int,
    seed: int,
    epoch: int,
    sort_window: int = 16,
) -> list[list[int]]:
    """Cut an epoch into steps: shuffle, sort by length within windows of steps, shuffle the steps.

    Parameters
    ----------
    groups : sequence of Group
        The epoch's groups.
    tokens : TokenTable
        Token ids (for lengths).
    groups_per_step : int
        Groups per optimizer step.
    seed, epoch : int
        Seed of the permutation (with ``epoch``).
    sort_window : int
        Steps per length-sorting window (1: no sorting).
    """
    rng = np.random.default_rng([seed, epoch, 1])
    order = rng.permutation(len(groups))
    lengths = np.array(
        [
            len(tokens.get("q", g.qid)) + int(np.mean([len(tokens.get("d", d)) for d in g.doc_ids]))
            for g in groups
        ]
    )
    span = max(1, groups_per_step * sort_window)
    sorted_order = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        sorted_order.extend(chunk[np.argsort(lengths[chunk], kind="stable")].tolist())
    steps = [sorted_order[i : i + groups_per_step] for i in range(0, len(sorted_order), groups_per_step)]
    perm = rng.permutation(len(steps))
    return [steps[int(i)] for i in perm]


@dataclass
class StepBatches:
    """The packed pairs of one step.

    Attributes
    ----------
    batches : list of Batch
        Micro-batches (length-sorted, under the token budget).
    n_pairs : int
        Pairs in the step.
    group_index, slot : numpy.ndarray
        int64 [n_pairs]: each pair's group (within the step) and position in the group.
    labels : numpy.ndarray
        float32 [n_groups, width]: labels, padded with 0.
    mask : numpy.ndarray
        bool [n_groups, width]: which slots hold a pair.
    teacher : numpy.ndarray
        float32 [n_groups, width]: teacher scores (NaN where missing or padding).
    real_tokens : int
        Non-padding tokens in the step.
    """

    batches: list[Batch]
    n_pairs: int
    group_index: np.ndarray
    slot: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    teacher: np.ndarray
    real_tokens: int


def pack_step(
    groups: Sequence[Group],
    tokens: TokenTable,
    template: PairTemplate,
    *,
    max_length: int,
    max_batch_tokens: int,
) -> StepBatches:
    """Pack a step's groups into micro-batches.

    Parameters
    ----------
    groups : sequence of Group
        The step's groups.
    tokens : TokenTable
        Token ids of their queries and documents.
    template : PairTemplate
        The model's special tokens.
    max_length : int
        Tokens per pair (specials included).
    max_batch_tokens : int
        Upper bound of rows x padded length per micro-batch.
    """
    q_ids, d_ids, gi, slot = [], [], [], []
    width = max(len(g.doc_ids) for g in groups)
    labels = np.zeros((len(groups), width), np.float32)
    mask = np.zeros((len(groups), width), bool)
    teacher = np.full((len(groups), width), np.nan, np.float32)
    for i, g in enumerate(groups):
        if g.teacher is not None:
            teacher[i, : len(g.teacher)] = g.teacher
        q = tokens.get("q", g.qid)
        for j, (d, y) in enumerate(zip(g.doc_ids, g.labels, strict=True)):
            q_ids.append(q)
            d_ids.append(tokens.get("d", d))
            gi.append(i)
            slot.append(j)
            labels[i, j] = y
            mask[i, j] = True
    plan = plan_pairs(
        q_ids, d_ids, template, max_length=max_length, max_batch_tokens=max_batch_tokens, buckets=8
    )
    batches = list(plan)
    return StepBatches(
        batches=batches,
        n_pairs=len(q_ids),
        group_index=np.asarray(gi, np.int64),
        slot=np.asarray(slot, np.int64),
        labels=labels,
        mask=mask,
        teacher=teacher,
        real_tokens=int(plan.n_tokens.sum()),
    )
