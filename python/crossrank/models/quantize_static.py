"""Static int8 for cross-encoders, calibrated on the model's own inputs and checked for ranking fidelity.

:func:`quantize_static_int8` turns the fp32 ``model.onnx`` of an exported cross-encoder folder into
``model_int8_static.onnx`` plus a manifest, ``int8_static.json``:

1. *Inputs*: the first-stage candidates of a BEIR dataset's calibration queries (BM25 top ``depth`` of
   the ``train`` or ``dev`` split -- never the split you report fidelity on), packed into batches by
   crossrank's own tokenizer and packer (a :class:`~crossrank.CrossEncoder` on the fp32 graph, whose
   batches are recorded), so activation ranges are those the model meets in service.
2. *Graph*: ONNX Runtime ``quantize_static`` in QDQ form, per-channel int8 weights, uint8 activations.
   Only the MatMuls with a weight are quantized, except the FFN output layers (measured most sensitive);
   Softmax, LayerNormalization, GELU, the attention score/context MatMuls (activation x activation) and
   the classifier head (the pooler and classifier ``Gemm`` nodes) stay fp32. Measured choices are in :data:`STATIC_INT8_DEFAULTS`.
3. *Fidelity*: the queries after the calibration ones (held out, same split) are scored by the fp32 and
   the int8 graph on the same packed batches; per query the overlap of the two top-10 sets and the
   Spearman correlation of the candidate scores are recorded with the calibration in the manifest.

:func:`static_int8_fidelity` reads the manifest back; ``CrossEncoder(precision="auto")`` runs the static
graph only when its recorded mean top-10 overlap is at least :data:`FAITHFUL_TOP10_OVERLAP`.

Needs ``onnx`` (the ``export`` extra); PyTorch is not needed.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._common import atomic_write_json, check_int, manifest_body, read_manifest_file, sha256_file
from ..errors import CrossrankError, StateError, missing_extra

__all__ = [
    "FAITHFUL_TOP10_OVERLAP",
    "STATIC_INT8_DEFAULTS",
    "STATIC_INT8_FILE",
    "STATIC_INT8_MANIFEST",
    "CalibrationDataError",
    "StaticInt8Report",
    "quantize_static_int8",
    "ranking_fidelity",
    "static_int8_fidelity",
]

STATIC_INT8_FILE = "model_int8_static.onnx"
STATIC_INT8_MANIFEST = "int8_static.json"
_FORMAT = "crossrank-int8-static"
_VERSION = 1
# ``precision="auto"`` picks the static int8 graph at or above this mean top-10 overlap with fp32.
FAITHFUL_TOP10_OVERLAP = 0.98
_CALIBRATION_BATCH_TOKENS = 2048

# Settings measured on the SciFact-trained MiniLM-L6 cross-encoder (.cache/train-scifact-quick), calibrated
# on 6 SciFact train queries x BM25 top 40 at max_length 128, held out: the next 6 train queries
# (/tmp experiments of this change; bench/RESULTS.md, "Static int8 cross-encoder"):
# * every weight MatMul int8: top-10 overlap 0.82 (min 0.5), Spearman 0.78, max abs error 0.43;
# * the FFN output layers (GELU's long-tailed activations, per-tensor uint8) kept fp32: overlap 0.92
#   (min 0.8), Spearman 0.97, max abs error 0.12 -- the default below;
# * attention score/context MatMuls (activation x activation) are never quantized; minmax ranges; one
#   weight scale per output column.
# OpenVINO NNCF (nncf 3.4) installed, but not measured in time on the shared CPU: untried.
STATIC_INT8_DEFAULTS: dict[str, Any] = {
    "calibrate": "minmax",
    "per_channel": True,
    "quantize_attention_matmuls": False,
    # regex of MatMul node names left in fp32: the FFN output layers (BERT export names)
    "keep_fp32_pattern": r"layer\.\d+/output/dense",
}


class CalibrationDataError(CrossrankError, ValueError):
    """The calibration dataset is missing, unreadable or has no usable queries (the message names it)."""


@dataclass
class StaticInt8Report:
    """What :func:`quantize_static_int8` wrote: the graph, its calibration and its measured fidelity."""

    model_dir: str
    graph: str
    method: str
    settings: dict[str, Any]
    calibration: dict[str, Any]
    fidelity: dict[str, Any]
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)


class _Recorder:
    """Wraps an inference backend; keeps every fed batch and its outputs (the packer's real batches)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.input_names = inner.input_names
        self.feeds: list[dict[str, np.ndarray]] = []
        self.outputs: list[np.ndarray] = []

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.inner.run(feeds)
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        self.outputs.append(np.asarray(out[0], dtype=np.float32))
        return list(out)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (average ranks for ties)."""

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x), np.float64)
        r[order] = np.arange(len(x), dtype=np.float64)
        xs = x[order]
        i = 0
        while i < len(xs):  # average the ranks of tied values
            j = i
            while j + 1 < len(xs) and xs[j + 1] == xs[i]:
                j += 1
            if j > i:
                r[order[i : j + 1]] = (i + j) / 2.0
            i = j + 1
        return r

    if len(a) < 2:
        return 1.0
    ra, rb = ranks(np.asarray(a, np.float64)), ranks(np.asarray(b, np.float64))
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb else 0.0
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def ranking_fidelity(
    reference: list[np.ndarray], candidate: list[np.ndarray], *, k: int = 10
) -> dict[str, float]:
    """Compare per-query scores of a low-precision model with the fp32 reference.

    Parameters
    ----------
    reference, candidate : list of numpy.ndarray
        Per query, the scores of the same candidate documents (same order) by fp32 and by the other model.
    k : int
        Top-k of the overlap (``|top_k(ref) & top_k(cand)| / min(k, n)``; ties broken by position).

    Returns
    -------
    dict
        ``top10_overlap_mean``, ``top10_overlap_min`` (named for k=10; the value is for ``k``),
        ``spearman_mean``, ``max_abs_err`` and ``queries``.
    """
    overlaps, rhos, err = [], [], 0.0
    for ref, got in zip(reference, candidate, strict=True):
        ref = np.asarray(ref, np.float64).ravel()
        got = np.asarray(got, np.float64).ravel()
        if ref.size == 0:
            continue
        kk = min(k, ref.size)
        top_r = set(np.argsort(-ref, kind="stable")[:kk].tolist())
        top_g = set(np.argsort(-got, kind="stable")[:kk].tolist())
        overlaps.append(len(top_r & top_g) / kk)
        rhos.append(_spearman(ref, got))
        err = max(err, float(np.max(np.abs(ref - got))))
    if not overlaps:
        raise ValueError("ranking_fidelity needs at least one query with candidates")
    return {
        "top10_overlap_mean": float(np.mean(overlaps)),
        "top10_overlap_min": float(np.min(overlaps)),
        "spearman_mean": float(np.mean(rhos)),
        "max_abs_err": err,
        "queries": len(overlaps),
    }


def _calibration_pairs(
    dataset: str | os.PathLike[str], split: str, n_queries: int, depth: int
) -> tuple[list[str], list[list[str]], dict[str, Any]]:
    """The split's first ``n_queries`` judged queries (file order) and their BM25 top-``depth`` documents."""
    from ..eval.datasets import load_beir
    from ..retrieve.bm25 import BM25Index

    root = Path(dataset)
    if not root.is_dir():
        raise CalibrationDataError(f"calibration dataset {root} does not exist (expected a BEIR folder)")
    try:
        ds = load_beir(root, split=split)
    except (FileNotFoundError, ValueError) as exc:
        raise CalibrationDataError(f"calibration dataset {root}: {exc}") from exc
    if not (root / "qrels" / f"{split}.tsv").is_file():
        raise CalibrationDataError(
            f"calibration dataset {root} has no qrels/{split}.tsv: calibrate on a train or dev split, "
            "never on the queries you report results for"
        )
    docs = ds.documents()
    qids = list(ds.queries)[:n_queries]
    if not docs or len(qids) < 2:
        raise CalibrationDataError(
            f"calibration dataset {root} (split {split!r}) has {len(docs)} documents and {len(ds.queries)} "
            "judged queries; at least 1 document and 2 queries are needed"
        )
    index = BM25Index.build(docs, show_progress=False)
    texts = [ds.queries[q] for q in qids]
    hits = index.search(texts, k=min(depth, len(docs)))
    cands = [[docs[int(i)] for i in row if int(i) >= 0] for row in hits.ids]
    info = {"dataset": str(root.resolve()), "split": split, "query_ids": qids, "depth": depth}
    return texts, cands, info


def _record(ce: Any, queries: list[str], cands: list[list[str]]) -> tuple[_Recorder, list[np.ndarray]]:
    """Score each query's candidates through ``ce`` with a recording backend; fp32 scores per query."""
    rec = _Recorder(ce.backend)
    ce.backend = rec
    try:
        scores = [np.asarray(s.scores, np.float32) for s in ce.score_batch(queries, cands)]
    finally:
        ce.backend = rec.inner
    return rec, scores


@dataclass
class _Calibration:
    """What both int8 makers start from: checked settings, the split's queries (calibration ones first,
    then held-out ones) with their BM25 candidates, and an fp32 ONNX Runtime cross-encoder whose packed
    batches :func:`_record` captures."""

    src: Path
    settings: dict[str, Any]
    queries: list[str]
    cands: list[list[str]]
    info: dict[str, Any]
    n_cal: int
    ce: Any

    def summary(self, batches: int | None = None) -> dict[str, Any]:
        """The manifest's ``calibration`` entry."""
        out = {
            "dataset": self.info["dataset"],
            "split": self.info["split"],
            "depth": self.info["depth"],
            "max_length": self.ce.max_length,
            "query_ids": self.info["query_ids"][: self.n_cal],
            "pairs": sum(map(len, self.cands[: self.n_cal])),
            "packed_by": "crossrank.CrossEncoder (its tokenizer and packer)",
        }
        if batches is not None:
            out["batches"] = batches
        return out


def _prepare_calibration(
    root: Path,
    calibration: str | os.PathLike[str],
    *,
    split: str,
    calibration_queries: int,
    holdout_queries: int,
    depth: int,
    onnx_file: str,
    max_length: int | None,
    settings: dict[str, Any] | None,
    defaults: dict[str, Any],
    num_threads: int | None,
) -> _Calibration:
    """Check the arguments and load the calibration inputs (see :class:`_Calibration`)."""
    from ..rerank.cross_encoder import CrossEncoder

    src = root / onnx_file
    if not src.is_file():
        raise FileNotFoundError(f"model_dir {root} has no {onnx_file} (export the model first)")
    check_int(calibration_queries, "calibration_queries", minimum=1)
    check_int(holdout_queries, "holdout_queries", minimum=0)
    check_int(depth, "depth", minimum=1)
    conf = {**defaults, **(settings or {})}
    unknown = set(conf) - set(defaults)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(defaults)}")
    queries, cands, info = _calibration_pairs(
        calibration, split, calibration_queries + holdout_queries, depth
    )
    n_cal = min(calibration_queries, len(queries) - (1 if holdout_queries else 0))
    # Small batches bound the calibration's memory (every MatMul input of a batch is held at once).
    ce = CrossEncoder(
        root,
        backend="onnxruntime",
        precision="fp32",
        onnx_file=onnx_file,
        num_threads=num_threads,
        max_length=max_length,
    )
    ce.max_batch_tokens = max(_CALIBRATION_BATCH_TOKENS, ce.max_length)
    return _Calibration(src, conf, queries, cands, info, n_cal, ce)


def _weight_matmuls(model: Any, attention_too: bool) -> list[str]:
    """MatMul node names to quantize: those with a constant (initializer) input, plus attention if asked."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names = []
    for n in model.graph.node:
        if n.op_type != "MatMul":
            continue
        if attention_too or any(x in consts for x in n.input):
            names.append(n.name)
    return names


class _Reader:
    """ONNX Runtime calibration reader over recorded batches (only the graph's inputs)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]], names: list[str]) -> None:
        self._it = iter([{k: f[k].astype(np.int64) for k in names} for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _ort_static(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]], settings: dict[str, Any]) -> None:
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as exc:
        raise missing_extra(getattr(exc, "name", None) or "onnx", "export") from exc

    model = onnx.load(str(src), load_external_data=False)
    names = [i.name for i in model.graph.input]
    nodes = _weight_matmuls(model, bool(settings["quantize_attention_matmuls"]))
    if settings.get("keep_fp32_pattern"):
        import re

        keep = re.compile(str(settings["keep_fp32_pattern"]))
        nodes = [n for n in nodes if not keep.search(n)]
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if settings["calibrate"] not in methods:
        raise ValueError(f"calibrate must be one of {', '.join(methods)}; got {settings['calibrate']!r}")
    reader = _Reader(feeds, names)
    CalibrationDataReader.register(_Reader)
    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=nodes,
        per_channel=bool(settings["per_channel"]),
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=methods[settings["calibrate"]],
        # (not CalibMaxIntermediateOutputs: ONNX Runtime 1.32 drops the batches it clears unreduced)
        extra_options={"MatMulConstBOnly": not settings["quantize_attention_matmuls"]},
    )


def quantize_static_int8(
    model_dir: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    *,
    split: str = "train",
    calibration_queries: int = 32,
    holdout_queries: int = 32,
    depth: int = 100,
    onnx_file: str = "model.onnx",
    max_length: int | None = None,
    settings: dict[str, Any] | None = None,
    num_threads: int | None = None,
    verbose: bool = False,
) -> StaticInt8Report:
    """Write ``model_int8_static.onnx`` and ``int8_static.json`` into an exported cross-encoder folder.

    Parameters
    ----------
    model_dir : str or PathLike
        A cross-encoder model folder with ``onnx_file`` (fp32) and ``tokenizer.json``
        (``crossrank export`` writes one).
    calibration : str or PathLike
        A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
    split : str
        Which judged queries calibrate (``train`` or ``dev``; keep the test split for reporting).
    calibration_queries : int
        Queries whose BM25 candidates calibrate the activation ranges (the first ones of the split).
    holdout_queries : int
        The following queries, scored by fp32 and int8 to record the fidelity (0 records none, and
        ``precision="auto"`` then never picks the graph).
    depth : int
        BM25 candidates per query.
    onnx_file : str
        The fp32 graph in ``model_dir``.
    max_length : int, optional
        Tokens per pair while calibrating and measuring (the :class:`~crossrank.CrossEncoder` default
        when None); use the length you serve with.
    settings : dict, optional
        Overrides of :data:`STATIC_INT8_DEFAULTS`.
    num_threads : int, optional
        Inference threads while recording; None = the CPU quota.
    verbose : bool
        Print progress.

    Returns
    -------
    StaticInt8Report

    Raises
    ------
    CalibrationDataError
        The calibration folder is missing, is not a BEIR folder, lacks the split, or has too few queries.
    FileNotFoundError
        ``model_dir`` has no ``onnx_file``.
    ValueError
        Bad counts or settings.
    crossrank.errors.StateError
        The quantized graph's scores are not finite.
    """
    from ..rerank.cross_encoder import CrossEncoder

    t0 = time.perf_counter()
    root = Path(model_dir)
    cal = _prepare_calibration(
        root,
        calibration,
        split=split,
        calibration_queries=calibration_queries,
        holdout_queries=holdout_queries,
        depth=depth,
        onnx_file=onnx_file,
        max_length=max_length,
        settings=settings,
        defaults=STATIC_INT8_DEFAULTS,
        num_threads=num_threads,
    )
    src, conf, queries, cands, info, n_cal, ce = (
        cal.src,
        cal.settings,
        cal.queries,
        cal.cands,
        cal.info,
        cal.n_cal,
        cal.ce,
    )
    say = print if verbose else (lambda *a, **k: None)
    rec_cal, _ = _record(ce, queries[:n_cal], cands[:n_cal])
    say(f"calibration: {n_cal} queries, {sum(map(len, cands[:n_cal]))} pairs, {len(rec_cal.feeds)} batches")

    dst = root / STATIC_INT8_FILE
    tmp = root / f".{STATIC_INT8_FILE}.{os.getpid()}.onnx"
    try:
        _ort_static(src, tmp, rec_cal.feeds, conf)
        fidelity: dict[str, Any] = {}
        if holdout_queries and len(queries) > n_cal:
            hq, hc = queries[n_cal:], cands[n_cal:]
            _, ref = _record(ce, hq, hc)
            ce8 = CrossEncoder(
                root,
                backend="onnxruntime",
                precision="int8",
                onnx_file=tmp.name,
                num_threads=num_threads,
                max_length=max_length,
            )
            got = [np.asarray(s.scores, np.float32) for s in ce8.score_batch(hq, hc)]
            if not all(np.all(np.isfinite(g)) for g in got):
                raise StateError(f"the static int8 graph of {root} gives non-finite scores; not written")
            fidelity = ranking_fidelity(ref, got)
            fidelity["query_ids"] = info["query_ids"][n_cal:]
            say(
                f"held-out fidelity: top-10 overlap {fidelity['top10_overlap_mean']:.4f} "
                f"(min {fidelity['top10_overlap_min']:.2f}), Spearman {fidelity['spearman_mean']:.4f}"
            )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    calib = cal.summary(batches=len(rec_cal.feeds))
    report = StaticInt8Report(
        model_dir=str(root),
        graph=STATIC_INT8_FILE,
        method="onnxruntime-qdq",
        settings=conf,
        calibration=calib,
        fidelity=fidelity,
        files=[STATIC_INT8_FILE, STATIC_INT8_MANIFEST],
    )
    report.seconds = time.perf_counter() - t0
    body = manifest_body(
        _FORMAT,
        _VERSION,
        graph=STATIC_INT8_FILE,
        graph_sha256=sha256_file(dst),
        source=onnx_file,
        source_sha256=sha256_file(src),
        **{k: v for k, v in asdict(report).items() if k not in ("model_dir", "graph", "files", "seconds")},
    )
    atomic_write_json(root / STATIC_INT8_MANIFEST, body)
    return report


def static_int8_fidelity(onnx_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the recorded fidelity of the static int8 graph beside ``onnx_path``, or None.

    None when the folder has no readable ``int8_static.json``, its graph is missing, or it was made
    from another graph file than ``onnx_path`` (the manifest also holds both graphs' SHA-256).

    Parameters
    ----------
    onnx_path : str or PathLike
        The fp32 graph (``model.onnx``) of a model folder.
    """
    path = Path(onnx_path)
    man = path.with_name(STATIC_INT8_MANIFEST)
    if not man.is_file():
        return None
    try:
        body, _ = read_manifest_file(man, _FORMAT, _VERSION)
    except (StateError, ValueError, OSError):
        return None
    graph = path.with_name(str(body.get("graph", STATIC_INT8_FILE)))
    if not graph.is_file() or body.get("source") != path.name:
        return None
    fid = body.get("fidelity")
    return dict(fid) if isinstance(fid, dict) else None
