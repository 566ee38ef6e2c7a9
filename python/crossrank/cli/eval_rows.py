"""The rows of ``crossrank eval``: which run to rerank, row names, the same-model note, fused rows.

Kept apart from the command so each rule has one small function a test can call directly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_RUN = "bm25_top100"
"""The run a re-ranking set's ``runs/`` folder is reranked with when it holds several and none is chosen."""

Run = dict[str, dict[str, float]]


def pick_run(runs_dir: Path, name: str | None) -> tuple[Path, str]:
    """Choose the first-stage run to rerank; return its path and a line saying why it was chosen.

    Parameters
    ----------
    runs_dir : Path
        The dataset's ``runs/`` folder (``*.trec`` files).
    name : str, optional
        ``--run``: a run's file name without ``.trec`` (a trailing ``.trec`` is accepted). None picks the
        only run, else :data:`DEFAULT_RUN` when present.

    Raises
    ------
    FileNotFoundError
        The named run does not exist, or the folder holds no run (the message lists those present).
    ValueError
        Several runs, none named and no :data:`DEFAULT_RUN` among them (the message lists them all).
    """
    have = sorted(p.stem for p in runs_dir.glob("*.trec") if p.is_file())
    listing = ", ".join(have) if have else "(none)"
    if name is not None:
        path = runs_dir / (name if name.endswith(".trec") else f"{name}.trec")
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; --run one of: {listing}")
        return path, f"reranking runs/{path.name} (--run)"
    if not have:
        raise FileNotFoundError(f"{runs_dir} holds no .trec run to rerank")
    if len(have) == 1:
        return runs_dir / f"{have[0]}.trec", f"reranking runs/{have[0]}.trec, the only run in {runs_dir}"
    if DEFAULT_RUN in have:
        others = ", ".join(h for h in have if h != DEFAULT_RUN)
        return (
            runs_dir / f"{DEFAULT_RUN}.trec",
            f"reranking runs/{DEFAULT_RUN}.trec (the default; --run picks another: {others})",
        )
    raise ValueError(f"{runs_dir} holds {len(have)} runs; choose one with --run: {listing}")


def reranker_kind(reranker: Any) -> str:
    """The row label of a reranker: "cross-encoder", "dense rerank", "ColBERT", "LLM" (else its class)."""
    names = {c.__name__ for c in type(reranker).__mro__}
    for cls, label in (
        ("CrossEncoder", "cross-encoder"),
        ("DenseReranker", "dense rerank"),
        ("ColBERTReranker", "ColBERT"),
        ("LLMReranker", "LLM"),
        ("LLMPointwiseReranker", "LLM"),
    ):
        if cls in names:
            return label
    return type(reranker).__name__


def model_root(model: Any) -> Path | None:
    """The resolved local folder a reranker or embedder loaded its model from (None when unknown)."""
    files = getattr(model, "files", None)
    if files is None and getattr(model, "embedder", None) is not None:
        files = getattr(model.embedder, "files", None)
    root = getattr(files, "root", None)
    return Path(root).expanduser().resolve() if root is not None else None


def model_key(spec: str) -> str:
    """Identity of a model argument: a local path resolved (``../x`` equals ``/abs/x``), else the hub id."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def same_model(a: Any, b: Any) -> bool:
    """True when two loaded models (embedder / reranker) read the same model folder."""
    ra, rb = model_root(a), model_root(b)
    return ra is not None and ra == rb


def same_model_note(dense_spec: str, reranker_spec: str) -> str:
    """The one-line note printed under the table when the reranker reuses the dense stage's model."""
    return (
        f"note: the reranker ({reranker_spec}) is the Dense stage's own model ({dense_spec}); it repeats "
        "the Dense ranking, so its row shows no reranking gain. Rerank with a cross-encoder "
        "(e.g. one made by `crossrank train`) to measure one."
    )


def _training_report(reranker: Any) -> tuple[Path | None, dict[str, Any] | None]:
    """``training.json`` of a reranker's model folder (path, parsed or None when unreadable)."""
    root = model_root(reranker)
    path = root / "training.json" if root is not None else None
    if path is None or not path.is_file():
        return None, None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return path, None
    return path, report if isinstance(report, dict) else None


def trained_recipe(reranker: Any) -> str | None:
    """The named ``crossrank train`` recipe that made the reranker's model (None: not trained by it)."""
    _, report = _training_report(reranker)
    recipe = report.get("recipe") if report is not None else None
    return recipe if isinstance(recipe, str) else None


def trained_model_note(reranker: Any, spec: str) -> str | None:
    """One line under the table saying how a reranker made by ``crossrank train`` was trained.

    Readers of the table must see whether its "+ cross-encoder" rows come from a shortened recipe, and
    that the model was selected on train queries only. None when the folder holds no ``training.json``.
    """
    path, r = _training_report(reranker)
    if path is None:
        return None
    try:
        if r is None:
            raise ValueError("not a JSON object")
        c, d = r["config"], r["data"]
        recipe = r.get("recipe") or "custom settings"
        line = (
            f"note: the reranker ({spec}) was made by `crossrank train` ({recipe} recipe: "
            f"{d['train_queries']} train queries, {c['epochs']} epoch(s), {c['negatives']} {c['first_stage']} "
            f"negatives per positive, max_length {c['max_length']}, lr {c['lr']:g}; {r['pairs']:,} pairs in "
            f"{r['train_seconds'] / 60:.1f} min)"
        )
        if r.get("best_dev") is not None and r.get("dev_first_stage") is not None:
            line += (
                f"; selected on {d['dev_queries']} dev queries carved from train (dev NDCG@10 "
                f"{c['first_stage']} {r['dev_first_stage']:.4f} -> reranked {r['best_dev']:.4f})"
            )
        return line
    except (ValueError, KeyError, TypeError) as exc:
        return f"note: {path} cannot be read ({exc}); how the reranker was trained is unknown"


def model_label(spec: str) -> str:
    """A short name of a model argument for a row name (the folder's name, or the hub id)."""
    path = Path(spec.removeprefix("dense:")).expanduser()
    return path.resolve().name if path.exists() else spec.removeprefix("dense:")


def fuse_runs(reranked: Run, first: Run, *, depth: int, k: float = 60.0) -> tuple[Run, np.ndarray]:
    """The fused row from two measured rows: each query's reranked list RRF-fused with its first stage.

    This is what ``Pipeline(..., rerank_fusion="rrf")`` computes (the same function, ties broken by
    first-stage position), without running the reranker a second time. Queries are fused one at a
    time so the time is per query.

    Parameters
    ----------
    reranked : dict
        The rerank row's run ``{query id: {doc id: score}}``, holding every candidate.
    first : dict
        The first-stage row's run over the same candidates, in first-stage order (as measured).
    depth : int
        Documents kept per query.
    k : float
        RRF constant (the pipelines' ``rrf_k``).

    Raises
    ------
    ValueError
        A query's two lists hold different documents (they were not measured over the same candidates).
    """
    from ..pipeline import rrf_with_first_stage

    out: Run = {}
    secs = np.zeros(len(reranked))
    for i, (qid, docs) in enumerate(reranked.items()):
        t0 = time.perf_counter()
        cands = list(first.get(qid, {}))
        if set(cands) != set(docs):
            raise ValueError(f"query {qid!r}: the reranked and first-stage lists hold different documents")
        fused = rrf_with_first_stage(np.array([docs[d] for d in cands], dtype=np.float64), k)
        order = np.argsort(-fused, kind="stable")[:depth]
        out[qid] = {cands[j]: float(fused[j]) for j in order.tolist()}
        secs[i] = time.perf_counter() - t0
    return out, secs


def pairs_per_second(pairs: int, seconds: float) -> dict[str, float] | None:
    """The rerank throughput entry of a row (None when nothing was reranked)."""
    if pairs <= 0:
        return None
    return {"pairs": pairs, "seconds": seconds, "pairs_per_s": pairs / seconds if seconds > 0 else 0.0}


@dataclass
class PlannedRow:
    """A pipeline to measure: its row name, identity key and the label that tells it apart."""

    name: str
    key: tuple[Any, ...]
    label: str
    pipeline: Any
    reranker: Any = None
    first: PlannedRow | None = None  # the first-stage row this one reranks (for the fused row)
    rerank_only: bool = False  # latency excludes the first stage (a given run)


def dedupe(rows: list[PlannedRow]) -> list[PlannedRow]:
    """One row per distinct pipeline (same ``key``: the first is kept); rows sharing a name get ``(label)``.

    Two rows with one key are the same pipeline (e.g. ``--dense M --reranker dense:M`` on a re-ranking
    set). Rows with different keys but one name are named by what differs, their ``label``.
    """
    seen: set[tuple[Any, ...]] = set()
    kept: list[PlannedRow] = []
    for row in rows:
        if row.key not in seen:
            seen.add(row.key)
            kept.append(row)
    counts: dict[str, int] = {}
    for row in kept:
        counts[row.name] = counts.get(row.name, 0) + 1
    for row in kept:
        if counts[row.name] > 1:
            row.name = f"{row.name} ({row.label})"
    return kept
