"""``crossrank.train.train(...)``: the whole run, from dataset folder to a servable model folder."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "train"]


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    output : Path
        The model folder (loads with ``crossrank.CrossEncoder``).
    report : dict
        Everything in ``training.json``: settings, data counts, per-step losses, dev history, test
        figures (when asked), timings.
    """

    output: Path
    report: dict[str, Any]


def checkpoint_dir(output: str | Path) -> Path:
    """Where a run writing ``output`` keeps its checkpoints: the sibling ``<output>.checkpoints``."""
    out = Path(output)
    return out.with_name(out.name + ".checkpoints")


def _log(msg: str) -> None:
    print(f"[crossrank train] {msg}", file=sys.stderr, flush=True)


def train(
    base_model: str,
    dataset: str,
    output: str,
    *,
    recipe: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    reuse: bool = False,
    keep_checkpoints: bool = False,
    show_progress: bool | None = None,
    **settings: Any,
) -> TrainResult:
    """Fine-tune a cross-encoder and write a model folder that ``crossrank.CrossEncoder`` loads.

    Parameters
    ----------
    base_model : str
        Local Hugging Face checkpoint of an encoder (or a one-label cross-encoder to continue from).
    dataset : str
        BEIR folder with ``qrels/train.tsv`` (or pass ``qrels=`` and ``queries=``).
    output : str
        Output folder. Checkpoints go to the sibling ``<output>.checkpoints`` (removed at the end
        unless ``keep_checkpoints``).
    recipe : str, optional
        Start from a named recipe (:data:`crossrank.train.config.RECIPES`); ``settings`` override it.
    resume : bool
        Continue from the last checkpoint of an interrupted run with the same settings.
    overwrite : bool
        Replace an existing output folder.
    reuse : bool
        If ``output`` already holds a finished model trained with the same settings (its
        ``training.json``), return it without training: what a cached set-up step needs. An output
        trained with other settings is still a ``FileExistsError`` (pass ``overwrite``).
    keep_checkpoints : bool
        Keep the checkpoint folder after success.
    show_progress : bool, optional
        tqdm bar (default: when stderr is a terminal).
    **settings
        Any :class:`TrainConfig` field (epochs, lr, max_length, negatives, depth, first_stage, loss,
        teacher, distill, seed, checkpoint_every, eval_every, patience, bf16, dropout, threads, ...).

    Returns
    -------
    TrainResult

    Raises
    ------
    FileNotFoundError
        Missing dataset / train split / base checkpoint / teacher run; ``resume`` without a checkpoint.
    FileExistsError
        ``output`` exists (pass ``overwrite=True``), or with ``reuse`` was trained with other settings.
    ValueError
        A setting out of range, a base model that is not an encoder, no usable training query.
    ImportError
        torch or transformers missing (``pip install "crossrank[train]"``).
    crossrank.train.checkpoints.CheckpointError
        A checkpoint could not be written (e.g. disk full); the previous one is kept.
    """
    t_wall = time.perf_counter()
    cfg = TrainConfig(base_model=str(base_model), dataset=str(dataset), output=str(output))
    if recipe is not None:
        cfg = cfg.with_recipe(recipe)
    unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    cfg = dataclasses.replace(cfg, **settings)
    cfg.validate()
    out = Path(output)
    if reuse and not overwrite and out.exists():
        return _reuse(out, cfg, recipe)
    if out.exists() and not overwrite and not resume:
        raise FileExistsError(f"output {out} exists; pass overwrite=True (--overwrite) to replace it")
    ckpt = checkpoint_dir(out)
    if not resume and ckpt.exists():
        shutil.rmtree(ckpt)  # a fresh run never mixes with an older run's checkpoints

    from .._common import resolve_threads
    from ..text.packing import PairTemplate
    from ..text.tokenization import TextEncoder, load_tokenizer
    from .batching import TokenTable
    from .data import load_train_data
    from .evaluate_dev import DevSet
    from .loop import TrainingSetup, cpu_has_bf16, run_loop
    from .model import import_torch, load_base_model
    from .negatives import FirstStage, mine_candidates

    torch, _ = import_torch()
    threads = resolve_threads(cfg.threads)
    torch.set_num_threads(threads)
    bf16 = cpu_has_bf16() if cfg.bf16 is None else bool(cfg.bf16)

    data = load_train_data(
        cfg.dataset,
        qrels=cfg.qrels,
        queries=cfg.queries,
        dev_queries=cfg.dev_queries,
        seed=cfg.seed,
        max_queries=cfg.max_queries,
    )
    summary = data.summary()
    _log(f"data: {summary}")
    if data.skipped.get("no_positive"):
        _log(f"skipped {len(data.skipped['no_positive'])} queries without a judged positive")
    teacher = None
    if cfg.teacher is not None:
        from .teacher import load_teacher

        teacher = load_teacher(
            cfg.teacher, data.train_qids, {q: data.positives(q) for q in data.train_qids}, cfg.teacher_scale
        )
        _log(teacher.describe())

    model, base_root = load_base_model(cfg.base_model, seed=cfg.seed, dropout=cfg.dropout)
    tokenizer = load_tokenizer(base_root / "tokenizer.json")
    template = PairTemplate.from_tokenizer(tokenizer)
    limit = int(getattr(model.config, "max_position_embeddings", cfg.max_length) or cfg.max_length)
    if cfg.max_length > limit:
        raise ValueError(f"max_length={cfg.max_length} exceeds what {cfg.base_model} reads ({limit} tokens)")

    t0 = time.perf_counter()
    stage = FirstStage(
        cfg.first_stage,  # type: ignore[arg-type]  # validated by cfg.validate()
        data.doc_ids,
        data.docs,
        dense_model=cfg.dense_model,
        num_threads=threads,
    )
    qids = data.train_qids + data.dev_qids
    candidates = mine_candidates(stage, data.queries, qids, max(cfg.depth, cfg.dev_depth))
    train_cands = {q: candidates[q][: cfg.depth] for q in data.train_qids}
    _log(
        f"mined {cfg.first_stage} top {cfg.depth} for {len(qids)} queries in {time.perf_counter() - t0:.1f} s"
    )

    positives = {q: data.positives(q) for q in qids}
    needed = {d for q in qids for d in positives[q]}
    needed.update(d for q in data.train_qids for d in train_cands[q])
    needed.update(d for q in data.dev_qids for d in candidates[q][: cfg.dev_depth])
    text_of = dict(zip(data.doc_ids, data.docs, strict=True))
    tokens = TokenTable(TextEncoder(tokenizer, cache_tokens=0), cfg.max_length)
    tokens.add("q", qids, [data.queries[q] for q in qids])
    doc_keys = sorted(needed)
    tokens.add("d", doc_keys, [text_of[d] for d in doc_keys])

    dev = DevSet(data.dev_qids, candidates, data.qrels, cfg.dev_depth) if data.dev_qids else None
    dev_first = dev.first_stage_ndcg(candidates) if dev is not None else None
    if dev_first is not None:
        _log(f"dev: {len(data.dev_qids)} queries, first stage NDCG@10 {dev_first:.4f}")

    setup = TrainingSetup(
        config=cfg,
        model=model,
        template=template,
        tokens=tokens,
        train_qids=data.train_qids,
        positives=positives,
        candidates=train_cands,
        dev=dev,
        teacher=teacher.scores if teacher is not None else None,
        checkpoint_dir=ckpt,
        bf16=bf16,
        threads=threads,
        show_progress=sys.stderr.isatty() if show_progress is None else show_progress,
    )
    ckpt.mkdir(parents=True, exist_ok=True)
    loop = run_loop(setup, resume=resume, log=_log)

    calibration = None
    if dev is not None:
        from .evaluate_dev import score_pairs

        pairs = list(dict.fromkeys(dev.pairs + [(q, d) for q in dev.qids for d in positives[q]]))
        known = loop.best_dev_logits  # the kept weights' dev logits: only the missing positives are scored
        todo = pairs if known is None else pairs[len(dev.pairs) :]
        logits = score_pairs(
            model,
            todo,
            tokens,
            template,
            max_length=cfg.max_length,
            max_batch_tokens=cfg.max_batch_tokens,
            bf16=bf16,
        )
        if known is not None:
            logits = np.concatenate([known, logits])
        labels = np.array([1 if data.qrels[q].get(d, 0) > 0 else 0 for q, d in pairs], np.int64)
        if 0 < labels.sum() < len(labels):
            calibration = (logits, labels)

    from .._core import __version__

    report: dict[str, Any] = {
        "crossrank_version": __version__,
        "recipe": recipe,
        "config": dataclasses.asdict(cfg),
        "data": summary,
        "skipped_queries": data.skipped,
        "loss": cfg.loss_description,
        "teacher": teacher.report() if teacher is not None else None,
        "bf16": bf16,
        "threads": threads,
        "steps": loop.steps,
        "total_steps": loop.total_steps,
        "stopped_early": loop.stopped_early,
        "resumed_from": loop.resumed_from,
        "losses": loop.losses,
        "first_loss": loop.losses[0] if loop.losses else None,
        "last_loss": loop.losses[-1] if loop.losses else None,
        "dev_first_stage": dev_first,
        "dev_history": loop.dev_history,
        "best_dev": loop.best_dev,
        "best_step": loop.best_step,
        "pairs": loop.pairs,
        "train_seconds": loop.train_seconds,
        "pairs_per_second": loop.pairs_per_second,
    }
    if cfg.test:
        report["test"] = _test_figures(cfg, model, data, stage, tokenizer, template, bf16)
    report["wall_seconds"] = time.perf_counter() - t_wall

    from .output import model_card, write_output

    path, _ = write_output(
        out,
        model=model,
        base_root=base_root,
        calibration=calibration,
        card=model_card(report),
        report=report,
        overwrite=True,
    )
    if not keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    _log(f"wrote {path} ({report['wall_seconds']:.0f} s)")
    return TrainResult(path, report)


def _reuse(out: Path, cfg: TrainConfig, recipe: str | None) -> TrainResult:
    """Return the finished model in ``out`` if it was trained with ``cfg``'s settings."""
    import json

    report_path = out / "training.json"
    if not (report_path.is_file() and (out / "onnx" / "model.onnx").is_file()):
        raise FileExistsError(
            f"output {out} exists but holds no finished crossrank train model "
            "(no training.json / onnx/model.onnx); pass overwrite=True (--overwrite) to replace it"
        )
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        saved = TrainConfig(**report["config"]).fingerprint()
    except (ValueError, KeyError, TypeError) as exc:
        raise FileExistsError(f"{report_path} cannot be read ({exc}); pass --overwrite to retrain") from exc
    wanted = cfg.fingerprint()
    differ = sorted(k for k in wanted if saved.get(k) != wanted[k])
    if differ:
        detail = ", ".join(f"{k}={saved.get(k)!r} (asked {wanted[k]!r})" for k in differ)
        raise FileExistsError(
            f"output {out} was trained with other settings: {detail}; pass overwrite=True (--overwrite)"
        )
    _log(f"reusing {out}: trained earlier with the same settings (recipe {recipe or report.get('recipe')})")
    return TrainResult(out, report)


def _test_figures(
    cfg: TrainConfig, model: Any, data: Any, stage: Any, tokenizer: Any, template: Any, bf16: bool
) -> dict[str, Any]:
    """NDCG@10 of the first stage and of its reranking on the test split (reported, never selected on)."""
    from ..eval.datasets import read_qrels, read_queries
    from ..eval.evaluate import evaluate
    from ..text.tokenization import TextEncoder
    from .batching import TokenTable
    from .evaluate_dev import score_pairs

    root = Path(cfg.dataset)
    if not (root / "qrels" / "test.tsv").is_file():
        return {}
    qrels = read_qrels(root / "qrels" / "test.tsv")
    queries = {q: t for q, t in read_queries(root / "queries.jsonl").items() if q in qrels}
    qids = sorted(queries)
    ranked = dict(zip(qids, stage.search([queries[q] for q in qids], cfg.test_depth), strict=True))
    text_of = dict(zip(data.doc_ids, data.docs, strict=True))
    tokens = TokenTable(TextEncoder(tokenizer, cache_tokens=0), cfg.max_length)
    tokens.add("q", qids, [queries[q] for q in qids])
    docs = sorted({d for q in qids for d in ranked[q]})
    tokens.add("d", docs, [text_of[d] for d in docs])
    pairs = [(q, d) for q in qids for d in ranked[q]]
    logits = score_pairs(
        model,
        pairs,
        tokens,
        template,
        max_length=cfg.max_length,
        max_batch_tokens=cfg.max_batch_tokens,
        bf16=bf16,
    )
    first = {q: {d: float(-r) for r, d in enumerate(ranked[q])} for q in qids}
    rer: dict[str, dict[str, float]] = {q: {} for q in qids}
    for (q, d), s in zip(pairs, logits, strict=True):
        rer[q][d] = float(s)
    return {
        "queries": len(qids),
        "first_stage": evaluate(first, qrels, ["nDCG@10"]).aggregate["nDCG@10"],
        "reranked": evaluate(rer, qrels, ["nDCG@10"]).aggregate["nDCG@10"],
    }
