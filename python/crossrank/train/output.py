"""The output model folder: HF checkpoint, verified ONNX graph, Platt calibration and a model card.

Everything is written to a temporary sibling and swapped in by rename, so a failed export never leaves
a half-written model where ``CrossEncoder(out)`` or ``crossrank serve --model out`` would find it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .._common import atomic_directory

__all__ = ["model_card", "write_output"]

# Tokenizer files copied from the base checkpoint (whichever exist).
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spm.model",
    "merges.txt",
    "vocab.json",
)


def write_output(
    out: str | os.PathLike[str],
    *,
    model: Any,
    base_root: Path,
    calibration: tuple[np.ndarray, np.ndarray] | None,
    card: str,
    report: dict[str, Any],
    overwrite: bool,
) -> tuple[Path, Any]:
    """Write the trained model folder; return (folder, export report).

    Parameters
    ----------
    out : path-like
        Output folder.
    model : transformers model
        The trained cross-encoder.
    base_root : Path
        The base checkpoint (tokenizer files are copied from it).
    calibration : (logits, labels) or None
        Dev pairs to fit Platt scaling on (``calibration.json``); None skips it.
    card : str
        README.md text.
    report : dict
        Written as ``training.json``.
    overwrite : bool
        Replace an existing folder.

    Raises
    ------
    crossrank.errors.StateError
        The ONNX graph does not match PyTorch within 1e-4 (nothing is written).
    FileExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    from ..models.export import export_model
    from ..rerank.calibration import Calibrator

    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        for name in _TOKENIZER_FILES:
            if (base_root / name).is_file():
                shutil.copy2(base_root / name, tmp / name)
        _mark_cross_encoder(tmp)
        _record_max_length(tmp, report.get("config", {}).get("max_length"))
        # The graph goes to onnx/ (where hub layouts keep it); the exporter copies tokenizer files there.
        export = export_model(tmp, tmp / "onnx", task="cross-encoder", atol=1e-4)
        if calibration is not None:
            logits, labels = calibration
            try:
                cal = Calibrator.fit(logits, labels, method="platt")
            except ValueError as exc:  # e.g. a model whose logits do not rise with relevance on dev
                report = {**report, "calibration": {"skipped": str(exc)}}
            else:
                cal.save(tmp / "calibration.json")
                report = {**report, "calibration": cal.to_dict()}
        report = {**report, "export": {"max_abs_err": getattr(export, "max_abs_err", None)}}
        (tmp / "training.json").write_text(
            json.dumps(report, indent=1, default=float) + "\n", encoding="utf-8"
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return Path(out), export


def _mark_cross_encoder(folder: Path) -> None:
    """Record what the folder is, so loaders pick the sigmoid activation (as sentence-transformers)."""
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["sentence_transformers"] = {"activation_fn": "torch.nn.modules.activation.Sigmoid"}
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def _record_max_length(folder: Path, max_length: object) -> None:
    """Make the trained length the loaders' default (``model_max_length``), not the base model's 512."""
    path = folder / "tokenizer_config.json"
    if not isinstance(max_length, int) or not path.is_file():
        return
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["model_max_length"] = max_length
    path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def model_card(report: dict[str, Any]) -> str:
    """The README.md of the trained model (data, settings, dev and test figures, training time).

    Parameters
    ----------
    report : dict
        The run's report (see :func:`crossrank.train.api.train`).
    """
    cfg = report["config"]
    data = report["data"]
    lines = [
        f"# Cross-encoder fine-tuned from `{Path(cfg['base_model']).name}`",
        "",
        "Trained with `crossrank train` (crossrank "
        f'{report["crossrank_version"]}). Load it with `crossrank.CrossEncoder("<this folder>")` or '
        "serve it with `crossrank serve --model <this folder>`. `calibration.json` maps logits to "
        "probabilities (Platt scaling fitted on the dev split).",
        "",
        "## Data",
        "",
        f"- Dataset: `{cfg['dataset']}` ({data['documents']} documents)",
        f"- Train: {data['train_queries']} queries, {data['train_positives']} judged positives",
        f"- Dev (carved from the train queries, never from test): {data['dev_queries']} queries",
        f"- Skipped queries: {data['skipped'] or 'none'}",
        f"- Hard negatives: {cfg['negatives']} per positive from {cfg['first_stage']} top {cfg['depth']}, "
        "judged positives excluded, redrawn each epoch",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in (
        "epochs",
        "lr",
        "max_length",
        "groups_per_step",
        "warmup",
        "weight_decay",
        "seed",
        "dev_depth",
        "teacher",
        "distill",
        "label_weight",
    ):
        lines.append(f"| {key} | {cfg.get(key, 0.0)} |")
    if report.get("teacher"):
        t = report["teacher"]
        lines.append(
            f"| teacher scores | read as {t['scale']}; {t['queries']} of {t['train_queries']} train queries, "
            f"{t['positives']} of {t['train_positives']} positives |"
        )
    lines += [
        f"| loss | {report['loss']} |",
        f"| bf16 autocast | {report['bf16']} |",
        f"| dropout | {cfg['dropout']} |",
        f"| threads | {report['threads']} |",
        "",
        "## Results",
        "",
        "| split | first stage NDCG@10 | reranked NDCG@10 |",
        "|---|---|---|",
        f"| dev ({cfg['first_stage']} top {cfg['dev_depth']}) | {_fmt(report.get('dev_first_stage'))} | "
        f"{_fmt(report.get('best_dev'))} (step {report.get('best_step')}) |",
    ]
    test = report.get("test")
    if test:
        lines.append(
            f"| test ({cfg['first_stage']} top {cfg['test_depth']}; reported, not used for selection) | "
            f"{_fmt(test['first_stage'])} | {_fmt(test['reranked'])} |"
        )
    lines += [
        "",
        "## Training",
        "",
        f"- Steps: {report['steps']} of {report['total_steps']}"
        + (" (stopped early on dev)" if report.get("stopped_early") else ""),
        f"- Training time: {report['train_seconds']:.0f} s in steps, {report['wall_seconds']:.0f} s wall "
        f"(mining, dev evaluation and export included); {report['pairs_per_second']:.1f} pairs/s",
        f"- First / last loss: {_fmt(report['first_loss'])} / {_fmt(report['last_loss'])}",
        "",
    ]
    return "\n".join(lines)
