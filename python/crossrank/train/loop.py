"""The training loop: optimizer, warm-up/decay schedule, steps, dev evaluation, checkpoints, progress."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .batching import Group, StepBatches, TokenTable, epoch_groups, pack_step, step_order
from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .evaluate_dev import DevSet, score_pairs
from .forward import forward_pairs
from .losses import training_loss

__all__ = ["LoopResult", "TrainingSetup", "cpu_has_bf16", "group_scores", "run_loop"]

# Test aid: seconds to sleep after each step, so a test can kill -9 a run mid-way.
_STEP_DELAY_ENV = "CROSSRANK_TRAIN_STEP_DELAY"


def cpu_has_bf16() -> bool:
    """True when bf16 autocast is worth it: a CUDA GPU, or a CPU with AVX512-BF16 / AMX units."""
    import torch

    if torch.cuda.is_available():
        return True
    from .._build_info import build_info

    available = set(build_info().get("simd_available", []))
    return bool(available & {"avx512bf16", "amx"})


@dataclass
class TrainingSetup:
    """What the loop trains on (built by :mod:`crossrank.train.api`)."""

    config: TrainConfig
    model: Any
    template: Any
    tokens: TokenTable
    train_qids: list[str]
    positives: dict[str, list[str]]
    candidates: dict[str, list[str]]
    dev: DevSet | None
    teacher: dict[str, dict[str, float]] | None
    checkpoint_dir: Path
    bf16: bool
    threads: int
    show_progress: bool = True


@dataclass
class LoopResult:
    """What the loop did: per-step losses, dev history, the best step, timing."""

    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    dev_history: list[dict[str, float]] = field(default_factory=list)
    best_step: int | None = None
    best_dev: float | None = None
    steps: int = 0
    total_steps: int = 0
    pairs: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    resumed_from: int | None = None
    # Logits of the dev pairs under the kept weights (None after a resume that kept older weights):
    # calibration reuses them instead of scoring the dev set once more.
    best_dev_logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def pairs_per_second(self) -> float:
        """Training throughput of this process (pairs / seconds spent in steps)."""
        return self.pairs / self.train_seconds if self.train_seconds > 0 else 0.0


def _attach_teacher(groups: list[Group], teacher: dict[str, dict[str, float]]) -> list[Group]:
    out = []
    for g in groups:
        run = teacher.get(g.qid, {})
        out.append(Group(g.qid, g.doc_ids, g.labels, tuple(float(run.get(d, math.nan)) for d in g.doc_ids)))
    return out


def _optimizer(torch: Any, model: Any, cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    warm = int(cfg.warmup * total_steps)

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0 at total_steps
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def group_scores(torch: Any, logits: Any, step: StepBatches) -> Any:
    """The step's pair logits laid out as ``[n_groups, width]`` (0 in padding slots; see ``step.mask``)."""
    g, w = step.labels.shape
    return (
        torch.zeros(g * w, dtype=torch.float32)
        .index_put((torch.from_numpy(step.group_index * w + step.slot),), logits)
        .view(g, w)
    )


def _train_step(torch: Any, s: TrainingSetup, step: StepBatches) -> float:
    cfg = s.config
    logits = forward_pairs(s.model, step.batches, step.n_pairs, bf16=s.bf16)
    loss = training_loss(
        cfg.loss_name,
        group_scores(torch, logits, step),
        torch.from_numpy(step.labels),
        torch.from_numpy(step.teacher),
        torch.from_numpy(step.mask),
        label_loss=cfg.loss,
        label_weight=cfg.label_weight,
    )
    loss.backward()
    return float(loss.detach())


def _dev_eval(s: TrainingSetup) -> tuple[float, np.ndarray]:
    assert s.dev is not None
    cfg = s.config
    logits = score_pairs(
        s.model,
        s.dev.pairs,
        s.tokens,
        s.template,
        max_length=cfg.max_length,
        max_batch_tokens=cfg.max_batch_tokens,
        bf16=s.bf16,
    )
    return s.dev.evaluate(logits), logits


def _save_best(torch: Any, model: Any, path: Path) -> None:
    from .._common import atomic_directory

    with atomic_directory(path, overwrite=True) as tmp:
        torch.save(model.state_dict(), tmp / "model.pt")


def run_loop(s: TrainingSetup, *, resume: bool, log: Any = None) -> LoopResult:
    """Train ``s.model`` in place; on return it holds the best dev weights (or the last ones).

    Parameters
    ----------
    s : TrainingSetup
        Model, data and settings.
    resume : bool
        Continue from ``s.checkpoint_dir / "last"``.
    log : callable, optional
        ``log(message)`` for progress lines (default: stderr).
    """
    import torch
    from tqdm.auto import tqdm

    say = log or (lambda m: print(f"[crossrank train] {m}", file=sys.stderr, flush=True))
    cfg = s.config
    n_groups = sum(len(s.positives[q]) for q in s.train_qids)
    steps_per_epoch = math.ceil(n_groups / cfg.groups_per_step)
    total_steps = steps_per_epoch * cfg.epochs
    stop_at = min(total_steps, cfg.max_steps) if cfg.max_steps else total_steps
    opt, sched = _optimizer(torch, s.model, cfg, total_steps)
    res = LoopResult(total_steps=total_steps)
    epoch, in_epoch, bad_evals = 0, 0, 0
    last = s.checkpoint_dir / "last"
    best_path = s.checkpoint_dir / "best"
    if resume:
        if not (last / "manifest.json").is_file():
            raise FileNotFoundError(
                f"resume: no checkpoint at {last}; start without --resume (or check -o / the output path)"
            )
        state = load_checkpoint(last, model=s.model, optimizer=opt, scheduler=sched)
        if state.get("config") != json.loads(json.dumps(cfg.fingerprint())):
            raise ValueError(
                f"resume: checkpoint {last} was written with other settings; resume with the same "
                "settings (or train again without --resume)"
            )
        epoch, in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        res.losses = [float(x) for x in state["losses"]]
        res.dev_history = list(state["dev_history"])
        res.best_step, res.best_dev = state["best_step"], state["best_dev"]
        res.pairs = int(state["pairs"])
        res.train_seconds = float(state["train_seconds"])
        bad_evals = int(state["bad_evals"])
        res.resumed_from = len(res.losses)
        say(f"resumed from step {res.resumed_from} (epoch {epoch + 1}, step {in_epoch} of it)")
    step = len(res.losses)
    s.model.train()
    delay = float(os.environ.get(_STEP_DELAY_ENV, "0") or 0)
    bar = tqdm(
        total=stop_at,
        initial=step,
        desc="train",
        unit="step",
        disable=not s.show_progress,
        dynamic_ncols=True,
    )

    def checkpoint() -> None:
        save_checkpoint(
            last,
            model=s.model,
            optimizer=opt,
            scheduler=sched,
            state={
                "config": cfg.fingerprint(),
                "epoch": epoch,
                "step_in_epoch": in_epoch,
                "losses": res.losses,
                "dev_history": res.dev_history,
                "best_step": res.best_step,
                "best_dev": res.best_dev,
                "bad_evals": bad_evals,
                "pairs": res.pairs,
                "train_seconds": res.train_seconds,
            },
        )

    def evaluate_now() -> bool:
        """Dev evaluation; returns True when patience is exhausted."""
        nonlocal bad_evals
        if s.dev is None:
            return False
        t0 = time.perf_counter()
        score, logits = _dev_eval(s)
        res.dev_history.append({"step": step, "ndcg@10": score, "seconds": time.perf_counter() - t0})
        if res.best_dev is None or score > res.best_dev:
            res.best_dev, res.best_step, bad_evals = score, step, 0
            res.best_dev_logits = logits
            _save_best(torch, s.model, best_path)
        else:
            bad_evals += 1
        say(f"step {step}: dev NDCG@10 {score:.4f} (best {res.best_dev:.4f} at step {res.best_step})")
        return cfg.patience is not None and bad_evals >= cfg.patience

    stop = False
    first_step, last_line = step, time.perf_counter()
    t_start = last_line
    try:
        while epoch < cfg.epochs and step < stop_at and not stop:
            groups = epoch_groups(s.train_qids, s.positives, s.candidates, cfg.negatives, cfg.seed, epoch)
            if s.teacher is not None:
                groups = _attach_teacher(groups, s.teacher)
            order = step_order(groups, s.tokens, cfg.groups_per_step, cfg.seed, epoch)
            while in_epoch < len(order) and step < stop_at:
                t0 = time.perf_counter()
                packed = pack_step(
                    [groups[i] for i in order[in_epoch]],
                    s.tokens,
                    s.template,
                    max_length=cfg.max_length,
                    max_batch_tokens=cfg.max_batch_tokens,
                )
                loss = _train_step(torch, s, packed)
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                res.step_seconds.append(time.perf_counter() - t0)
                res.train_seconds += res.step_seconds[-1]
                res.pairs += packed.n_pairs
                res.losses.append(loss)
                step += 1
                in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{res.pairs_per_second:.1f}", epoch=epoch + 1)
                if not s.show_progress and time.perf_counter() - last_line >= 60:
                    # Without a bar (logs, CI): one line a minute with the same figures.
                    last_line = time.perf_counter()
                    eta = (stop_at - step) * (last_line - t_start) / max(1, step - first_step)
                    say(
                        f"step {step}/{stop_at} loss {loss:.4f} (mean of last 20 "
                        f"{np.mean(res.losses[-20:]):.4f}), {res.pairs_per_second:.2f} pairs/s, ETA {eta / 60:.1f} min"
                    )
                if in_epoch == len(order):
                    epoch, in_epoch = epoch + 1, 0
                if cfg.eval_every and step % cfg.eval_every == 0 and step < stop_at and evaluate_now():
                    res.stopped_early = True
                    stop = True
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < stop_at:
                    checkpoint()
                if delay:
                    time.sleep(delay)
                if stop or in_epoch == 0:
                    break
    finally:
        bar.close()
    res.steps = step
    if not res.dev_history or res.dev_history[-1]["step"] != step:
        evaluate_now()
    if res.best_step is not None and res.best_step != step:
        s.model.load_state_dict(torch.load(best_path / "model.pt", map_location="cpu", weights_only=True))
        say(f"kept the best dev checkpoint (step {res.best_step}, NDCG@10 {res.best_dev:.4f})")
    return res
