"""Training settings and the named recipes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["RECIPES", "TrainConfig"]

# Named recipes: overrides of the defaults. "scifact" is the study of issue 11 (the defaults). "quick" is
# what the README's main job trains in its set-up (about a quarter of "scifact"'s compute: every train
# query, 3 BM25 negatives, 256 tokens, one epoch). It was chosen on the dev split carved from the train
# queries, never on test: against the same settings at 128 tokens with 7 negatives (equal compute), dev
# NDCG@10 0.6401 vs 0.5798 (BM25 top 30: 0.6323). Evaluated every 50 steps, it was best at its last step,
# so the recipe measures dev once, at the end (a dev pass took 2-6 min in the contended runs here).
# Figures: bench/RESULTS.md, "crossrank train on SciFact".
RECIPES: dict[str, dict[str, Any]] = {
    "scifact": {},
    "quick": {
        "epochs": 1,
        "negatives": 3,
        "max_length": 256,
        "lr": 6e-5,
        "eval_every": 0,
        "checkpoint_every": 50,
    },
}


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in checkpoints and the model card).

    Attributes
    ----------
    base_model, dataset, output : str
        Checkpoint folder to start from, dataset folder, output model folder.
    epochs, lr, max_length : int, float, int
        Passes over the training groups, peak learning rate, tokens per pair.
    negatives, depth : int
        Hard negatives per positive, first-stage candidates they are drawn from.
    first_stage : {"bm25", "dense", "hybrid"}
        Where negatives (and dev candidates) come from; ``dense_model`` for dense / hybrid.
    loss : {"listwise", "bce"}
        Loss without a teacher.
    teacher, distill : str, {"kl", "margin-mse"}
        Scored TREC run of a teacher and the distillation loss (replaces ``loss``).
    label_weight : float
        With a teacher: share of the label loss (``loss``) mixed into the distillation loss,
        ``(1 - w) * distill + w * label`` (Hinton et al.'s soft + hard targets). 0 (default) distils only.
    teacher_scale : {"auto", "raw", "probability"}
        How the teacher's scores are read: ``probability`` maps them to logits (a cross-encoder's
        sigmoid outputs, as ``crossrank eval`` writes them), ``raw`` keeps them, ``auto`` (default)
        picks ``probability`` when every score lies in [0, 1]. See :mod:`crossrank.train.teacher`.
    groups_per_step : int
        Groups (one positive + its negatives) per optimizer step.
    max_batch_tokens : int
        Micro-batch token budget (rows x padded length).
    warmup : float
        Fraction of the steps with a linear warm-up (then linear decay to 0).
    weight_decay, grad_clip : float
        AdamW weight decay (not on biases / LayerNorm) and gradient-norm clip (0 = off).
    bf16 : bool or None
        bf16 autocast; None = when the CPU has bf16 units (or a CUDA GPU is used).
    dropout : bool
        Keep the checkpoint's dropout while training (False: all dropout off).
    threads : int or None
        Torch threads; None = the CPU quota.
    seed : int
        Seeds the head, negatives, data order and dropout.
    checkpoint_every, eval_every : int
        Steps between checkpoints / dev evaluations (0 = only at the end).
    patience : int or None
        Stop after this many dev evaluations without improvement.
    dev_queries : float or int
        Dev split (fraction or count of the train queries).
    dev_depth : int
        First-stage candidates reranked per dev query.
    qrels, queries : str or None
        TREC/BEIR judgements and queries file instead of the BEIR train split.
    max_queries : int or None
        Use only the first N train queries.
    max_steps : int or None
        Stop after this many steps (the schedule still spans the full run).
    test : bool
        Also rerank the test split's first stage with the result (reported only, never used to select).
    test_depth : int
        Candidates per test query.
    """

    base_model: str
    dataset: str
    output: str
    epochs: int = 2
    lr: float = 3e-5
    max_length: int = 256
    negatives: int = 7
    depth: int = 100
    first_stage: str = "bm25"
    dense_model: str | None = None
    loss: str = "listwise"
    teacher: str | None = None
    distill: str | None = None
    label_weight: float = 0.0
    teacher_scale: str = "auto"
    groups_per_step: int = 4
    max_batch_tokens: int = 8192
    warmup: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    bf16: bool | None = None
    dropout: bool = False
    threads: int | None = None
    seed: int = 0
    checkpoint_every: int = 100
    eval_every: int = 100
    patience: int | None = None
    dev_queries: float | int = 0.1
    dev_depth: int = 30
    qrels: str | None = None
    queries: str | None = None
    max_queries: int | None = None
    max_steps: int | None = None
    test: bool = False
    test_depth: int = 100

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        ints = {
            "epochs": (self.epochs, 1),
            "max_length": (self.max_length, 8),
            "negatives": (self.negatives, 0),
            "depth": (self.depth, 1),
            "groups_per_step": (self.groups_per_step, 1),
            "max_batch_tokens": (self.max_batch_tokens, self.max_length),
            "checkpoint_every": (self.checkpoint_every, 0),
            "eval_every": (self.eval_every, 0),
            "dev_depth": (self.dev_depth, 1),
            "test_depth": (self.test_depth, 1),
        }
        for name, (value, low) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name, optional in (
            ("patience", self.patience),
            ("max_queries", self.max_queries),
            ("max_steps", self.max_steps),
            ("threads", self.threads),
        ):
            if optional is not None and (
                isinstance(optional, bool) or not isinstance(optional, int) or optional < 1
            ):
                raise ValueError(f"{name} must be an int >= 1 or None, got {optional!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0")
        if self.first_stage not in ("bm25", "dense", "hybrid"):
            raise ValueError(f"first_stage must be 'bm25', 'dense' or 'hybrid', got {self.first_stage!r}")
        if self.first_stage != "bm25" and not self.dense_model:
            raise ValueError(f"first_stage={self.first_stage!r} needs dense_model (a bi-encoder)")
        if self.loss not in ("listwise", "bce"):
            raise ValueError(f"loss must be 'listwise' or 'bce', got {self.loss!r}")
        if (self.teacher is None) != (self.distill is None):
            raise ValueError("teacher (a scored TREC run) and distill ('kl' or 'margin-mse') go together")
        if self.distill is not None and self.distill not in ("kl", "margin-mse"):
            raise ValueError(f"distill must be 'kl' or 'margin-mse', got {self.distill!r}")
        if isinstance(self.label_weight, bool) or not (
            isinstance(self.label_weight, (int, float)) and 0.0 <= self.label_weight <= 1.0
        ):
            raise ValueError(f"label_weight must be in [0, 1], got {self.label_weight!r}")
        if self.label_weight > 0 and self.teacher is None:
            raise ValueError("label_weight mixes labels into a distillation loss: it needs a teacher")
        if self.teacher_scale not in ("auto", "raw", "probability"):
            raise ValueError(
                f"teacher_scale must be 'auto', 'raw' or 'probability', got {self.teacher_scale!r}"
            )
        if (
            self.loss == "listwise"
            and self.negatives == 0
            and (self.teacher is None or self.label_weight > 0)
        ):
            raise ValueError("the listwise loss needs negatives >= 1 (a group of one carries no signal)")

    @property
    def loss_name(self) -> str:
        """The loss actually used (the distillation loss when a teacher is given)."""
        return self.distill if self.distill is not None else self.loss

    @property
    def loss_description(self) -> str:
        """The loss as the report and model card name it, e.g. ``kl`` or ``0.5 kl + 0.5 listwise``."""
        if self.label_weight == 0:
            return self.loss_name
        return f"{1 - self.label_weight:g} {self.loss_name} + {self.label_weight:g} {self.loss}"

    def with_recipe(self, name: str) -> TrainConfig:
        """Return a copy with the named recipe's settings (see :data:`RECIPES`).

        Parameters
        ----------
        name : str
            A key of :data:`RECIPES`.
        """
        if name not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}; got {name!r}")
        return dataclasses.replace(self, **RECIPES[name])

    def fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        skip = {
            "output",
            "checkpoint_every",
            "eval_every",
            "patience",
            "threads",
            "test",
            "test_depth",
            "max_steps",
        }
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        if out["label_weight"] == 0:
            # Left out at its default, so checkpoints written before the setting existed still resume.
            del out["label_weight"]
        return out
