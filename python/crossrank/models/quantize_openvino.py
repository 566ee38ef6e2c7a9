"""OpenVINO int8 for cross-encoders: NNCF post-training quantization, calibrated on the model's own inputs.

:func:`quantize_openvino_int8` turns the fp32 ``model.onnx`` of an exported cross-encoder folder into an
OpenVINO model with int8 weights and activations, saved as the folder ``int8_openvino/`` beside it:
``model.xml`` + ``model.bin`` (OpenVINO IR) and ``manifest.json`` (settings, calibration, measured fidelity).

1. *Inputs*: as for :func:`~crossrank.models.quantize_static.quantize_static_int8`: the BM25 candidates of
   a BEIR dataset's train (or dev) queries, packed into batches by crossrank's own tokenizer and packer.
2. *Model*: ``nncf.quantize`` with NNCF's transformer settings (SmoothQuant on the MatMuls, alpha 0.95,
   mixed preset: symmetric int8 weights, asymmetric activations), every MatMul int8 except the pooler and
   the classifier head (kept in the inference precision).
3. *Fidelity*: the queries after the calibration ones are scored by the fp32 graph and by the int8 model
   on the same packed batches; top-10 overlap and Spearman are recorded in the manifest.

Why an OpenVINO path beside ONNX Runtime's static graph (measured on a trained SciFact MiniLM-L6
cross-encoder, 256 tokens, 2 threads; ``bench/RESULTS.md``): on a CPU with VNNI and bf16 units (AMD Zen 5)
this model runs at 1.5-1.7x OpenVINO's bf16 path and agrees better with fp32 (top-10 overlap 0.93 vs 0.89)
than ONNX Runtime's int8 graphs, which run slower than bf16 there. Without VNNI its u8 x s8 products cannot
beat fp32, so ``crossrank export --int8-static`` picks this engine only where the CPU has VNNI
(:func:`cpu_has_vnni`). The layers left unquantized run in bf16 where the CPU has bf16 units, else fp32.

The save is one directory swap (:func:`crossrank._common.atomic_directory`): a kill at any moment leaves
the old ``int8_openvino/`` or the new one, with its manifest. Needs ``openvino`` and ``nncf``
(``pip install "crossrank[quantize]"``); PyTorch is not needed.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .._common import atomic_directory, manifest_body, read_manifest_file, sha256_file, write_json
from ..errors import StateError, missing_extra
from .quantize_static import StaticInt8Report, _prepare_calibration, _record, ranking_fidelity

__all__ = [
    "OPENVINO_INT8_DEFAULTS",
    "OPENVINO_INT8_DIR",
    "cpu_has_vnni",
    "openvino_int8_fidelity",
    "openvino_int8_graph",
    "quantize_openvino_int8",
]

OPENVINO_INT8_DIR = "int8_openvino"
_FORMAT = "crossrank-int8-openvino"
_VERSION = 1

# Measured choices (bench/ce_int8_nncf.py, bench/RESULTS.md "int8 on a CPU with VNNI"): SmoothQuant 0.95
# kept the most fidelity among 0.5 / 0.8 / 0.95 / off on held-out train queries; keeping the FFN output
# layers in bf16 raised the overlap to 0.95 but cost 15% of the speed. The head is never quantized.
OPENVINO_INT8_DEFAULTS: dict[str, Any] = {
    "smooth_quant_alpha": 0.95,
    "keep_unquantized": [r".*/pooler/.*", r".*/classifier/.*"],
}


def cpu_has_vnni() -> bool:
    """Return True when the CPU has int8 dot-product units (AVX-512 VNNI, AVX-VNNI or AMX int8)."""
    from .onnx_session import cpu_flags

    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def _nncf_quantize(onnx_path: Path, feeds: list[dict[str, np.ndarray]], settings: dict[str, Any]) -> Any:
    try:
        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )
    except ImportError as exc:
        raise missing_extra(getattr(exc, "name", None) or "nncf", "quantize") from exc

    import logging

    nncf.set_log_level(logging.WARNING)  # not one INFO line per operator it leaves unquantized
    model = ov.Core().read_model(str(onnx_path))
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(patterns=list(settings["keep_unquantized"]), validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=float(settings["smooth_quant_alpha"]))
        ),
    )


def quantize_openvino_int8(
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
    """Write ``int8_openvino/`` (OpenVINO int8 IR + manifest) into an exported cross-encoder folder.

    Parameters
    ----------
    model_dir : str or PathLike
        A cross-encoder model folder with ``onnx_file`` (fp32) and ``tokenizer.json``.
    calibration : str or PathLike
        A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
    split : str
        Which judged queries calibrate (``train`` or ``dev``; keep the test split for reporting).
    calibration_queries : int
        Queries whose BM25 candidates calibrate the quantizers (the first ones of the split).
    holdout_queries : int
        The following queries, scored by fp32 and int8 to record the fidelity (0 records none, and
        ``precision="auto"`` then never picks the model).
    depth : int
        BM25 candidates per query.
    onnx_file : str
        The fp32 graph in ``model_dir``.
    max_length : int, optional
        Tokens per pair while calibrating and measuring (the :class:`~crossrank.CrossEncoder` default
        when None); use the length you serve with.
    settings : dict, optional
        Overrides of :data:`OPENVINO_INT8_DEFAULTS`.
    num_threads : int, optional
        Inference threads; None = the CPU quota.
    verbose : bool
        Print progress.

    Returns
    -------
    StaticInt8Report
        ``graph`` is ``int8_openvino/model.xml``; ``method`` is ``openvino-nncf``.

    Raises
    ------
    crossrank.models.quantize_static.CalibrationDataError
        The calibration folder is missing, is not a BEIR folder, lacks the split, or has too few queries.
    FileNotFoundError
        ``model_dir`` has no ``onnx_file``.
    ValueError
        Bad counts or settings.
    FileExistsError
        ``model_dir/int8_openvino`` holds something that is not a saved int8 model (never deleted).
    ImportError
        ``openvino`` or ``nncf`` is not installed.
    crossrank.errors.StateError
        The quantized model's scores are not finite (nothing is written).
    """
    from .onnx_session import OpenVINOBackend, resolve_threads

    t0 = time.perf_counter()
    root = Path(model_dir)
    threads = resolve_threads(num_threads)
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
        defaults=OPENVINO_INT8_DEFAULTS,
        num_threads=threads,
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
    feeds = [{k: np.asarray(f[k], np.int64) for k in rec_cal.input_names} for f in rec_cal.feeds]
    say(f"calibration: {n_cal} queries, {sum(map(len, cands[:n_cal]))} pairs, {len(feeds)} batches")
    quantized = _nncf_quantize(src, feeds, conf)
    del feeds, rec_cal

    import openvino as ov

    calib = cal.summary()
    graph = f"{OPENVINO_INT8_DIR}/model.xml"
    report = StaticInt8Report(
        model_dir=str(root),
        graph=graph,
        method="openvino-nncf",
        settings=conf,
        calibration=calib,
        fidelity={},
        files=[f"{OPENVINO_INT8_DIR}/{n}" for n in ("model.xml", "model.bin", "manifest.json")],
    )
    with atomic_directory(root / OPENVINO_INT8_DIR, overwrite=True, replaces=_FORMAT) as tmp:
        ov.save_model(quantized, str(tmp / "model.xml"), compress_to_fp16=False)
        if holdout_queries and len(queries) > n_cal:
            hq, hc = queries[n_cal:], cands[n_cal:]
            _, ref = _record(ce, hq, hc)
            ce.backend = OpenVINOBackend(tmp / "model.xml", num_threads=threads, precision="int8")
            got = [np.asarray(s.scores, np.float32) for s in ce.score_batch(hq, hc)]
            if not all(np.all(np.isfinite(g)) for g in got):
                raise StateError(f"the OpenVINO int8 model of {root} gives non-finite scores; not written")
            report.fidelity = ranking_fidelity(ref, got)
            report.fidelity["query_ids"] = info["query_ids"][n_cal:]
            say(
                f"held-out fidelity: top-10 overlap {report.fidelity['top10_overlap_mean']:.4f} "
                f"(min {report.fidelity['top10_overlap_min']:.2f}), "
                f"Spearman {report.fidelity['spearman_mean']:.4f}"
            )
        report.seconds = time.perf_counter() - t0
        body = manifest_body(
            _FORMAT,
            _VERSION,
            graph="model.xml",
            weights="model.bin",
            weights_sha256=sha256_file(tmp / "model.bin"),
            source=onnx_file,
            source_sha256=sha256_file(src),
            **{k: v for k, v in asdict(report).items() if k not in ("model_dir", "graph", "files")},
        )
        write_json(tmp / "manifest.json", body)  # last: the directory swap publishes it with the model
    return report


def _manifest(onnx_path: Path) -> dict[str, Any] | None:
    folder = onnx_path.with_name(OPENVINO_INT8_DIR)
    try:
        body, _ = read_manifest_file(folder / "manifest.json", _FORMAT, _VERSION)
    except (StateError, ValueError, OSError):
        return None
    if body.get("source") != onnx_path.name or not (folder / str(body.get("graph"))).is_file():
        return None
    return body


def openvino_int8_graph(onnx_path: str | os.PathLike[str]) -> Path | None:
    """Return the OpenVINO int8 model (``int8_openvino/model.xml``) made from ``onnx_path``, or None.

    None when there is no readable ``int8_openvino/manifest.json``, its model is missing, or it was made
    from another graph file than ``onnx_path``.

    Parameters
    ----------
    onnx_path : str or PathLike
        The fp32 graph (``model.onnx``) of a model folder.
    """
    path = Path(onnx_path)
    body = _manifest(path)
    return None if body is None else path.with_name(OPENVINO_INT8_DIR) / str(body["graph"])


def openvino_int8_fidelity(onnx_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the recorded fidelity of the OpenVINO int8 model beside ``onnx_path``, or None.

    Parameters
    ----------
    onnx_path : str or PathLike
        The fp32 graph (``model.onnx``) of a model folder.
    """
    body = _manifest(Path(onnx_path))
    fid = None if body is None else body.get("fidelity")
    return dict(fid) if isinstance(fid, dict) and fid else None
