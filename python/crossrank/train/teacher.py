"""A teacher's scored TREC run for distillation: read, checked against the train queries, put on a logit scale.

Distillation losses (KL over softmax, MarginMSE) compare *logit-scale* scores. A run written by
``crossrank eval --reranker CROSS_ENCODER`` holds the cross-encoder's sigmoid probabilities instead (the
activation sentence-transformers applies to one-label models). Fed as they are, probabilities squeeze every
margin into (-1, 1) and the KL target becomes nearly uniform: the student learns almost nothing. So a run
whose scores all lie in [0, 1] is read as probabilities and distilled as their logits (``auto``);
``raw`` keeps the scores exactly as written, ``probability`` forces the logit mapping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TEACHER_SCALES", "TeacherRun", "load_teacher", "probability_to_logit"]

TEACHER_SCALES = ("auto", "raw", "probability")
# A probability of exactly 0 or 1 (a saturated float32 sigmoid) maps to the logit of this margin.
_EPS = 1e-7


def probability_to_logit(p: float) -> float:
    """``log(p / (1 - p))``, with ``p`` clipped to ``[1e-7, 1 - 1e-7]`` so 0 and 1 stay finite."""
    q = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(q / (1.0 - q))


@dataclass(frozen=True)
class TeacherRun:
    """A teacher's scores per train query, on the scale the losses use.

    Attributes
    ----------
    scores : dict
        ``{qid: {doc_id: score}}`` for the train queries the run covers.
    scale : {"raw", "probability"}
        How the file's scores were read: as they are, or as probabilities mapped to logits.
    queries, positives : int
        Train queries the run scores, and judged positives of those queries it scores (a group's
        positive without a teacher score is left out of the distillation loss).
    train_queries, train_positives : int
        The totals, for the coverage message.
    """

    scores: dict[str, dict[str, float]]
    scale: str
    queries: int
    positives: int
    train_queries: int
    train_positives: int

    def describe(self) -> str:
        """One line for the log: coverage and scale."""
        how = (
            "probabilities, distilled as their logits" if self.scale == "probability" else "scores as written"
        )
        return (
            f"teacher run scores {self.queries} of {self.train_queries} train queries and "
            f"{self.positives} of their {self.train_positives} judged positives; read as {how}"
        )

    def report(self) -> dict[str, object]:
        """The figures ``training.json`` keeps."""
        return {
            "scale": self.scale,
            "queries": self.queries,
            "train_queries": self.train_queries,
            "positives": self.positives,
            "train_positives": self.train_positives,
        }


def load_teacher(
    path: str | Path,
    train_qids: Iterable[str],
    positives: Mapping[str, Iterable[str]],
    scale: str = "auto",
) -> TeacherRun:
    """Read a scored TREC run and keep the train queries' scores on a logit scale.

    Parameters
    ----------
    path
        The run (``qid Q0 doc rank score tag`` lines), e.g. ``crossrank eval``'s ``runs/<row>.trec``.
    train_qids
        The queries training draws groups from.
    positives
        Judged positives per train query (for the coverage figure).
    scale
        ``auto`` (probabilities when every kept score lies in [0, 1], else raw), ``raw`` or
        ``probability`` (then every kept score must lie in [0, 1]).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        An unknown ``scale``, a run that scores none of the train queries, or ``probability`` with a
        score outside [0, 1]. A malformed line is reported by the TREC reader.
    """
    from ..eval.trec import read_run

    if scale not in TEACHER_SCALES:
        raise ValueError(f"teacher scale must be one of {', '.join(TEACHER_SCALES)}; got {scale!r}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"teacher run {p} not found")
    run = read_run(p)
    qids = list(train_qids)
    kept = {q: dict(run[q]) for q in qids if q in run}
    if not kept:
        raise ValueError(f"teacher run {p} scores none of the {len(qids)} train queries")
    values = [s for docs in kept.values() for s in docs.values()]
    in_unit = all(0.0 <= s <= 1.0 for s in values)
    if scale == "probability" and not in_unit:
        bad = next(s for s in values if not 0.0 <= s <= 1.0)
        raise ValueError(f"teacher run {p}: scale 'probability' but a score is {bad!r}, outside [0, 1]")
    resolved = "probability" if scale == "probability" or (scale == "auto" and in_unit) else "raw"
    if resolved == "probability":
        kept = {q: {d: probability_to_logit(s) for d, s in docs.items()} for q, docs in kept.items()}
    pos = {q: set(positives.get(q, ())) for q in qids}
    return TeacherRun(
        scores=kept,
        scale=resolved,
        queries=len(kept),
        positives=sum(len(pos[q] & kept[q].keys()) for q in kept),
        train_queries=len(qids),
        train_positives=sum(len(v) for v in pos.values()),
    )
