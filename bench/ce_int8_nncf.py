"""OpenVINO int8 via NNCF post-training quantization vs fp32 and ONNX Runtime int8: fidelity and speed.

Fidelity: the first ``--queries`` SciFact *test* queries, crossrank BM25 top 100 each, scored as raw
logits (``activation=None``; the model folder's ``calibration.json`` is not applied by
:class:`~crossrank.CrossEncoder`) by ONNX Runtime fp32 (the reference) and by each int8 graph, on the
same packed batches (crossrank's tokenizer and packer). Per query: overlap of the two top-10 sets and
Spearman correlation of the 100 scores (:func:`crossrank.models.quantize_static.ranking_fidelity`),
plus the maximum absolute logit error.

Calibration: the first ``--calibration-queries`` SciFact *train* queries (never test) x their BM25 top
``--calibration-depth``, packed by crossrank's packer into batches of at most 2048 tokens and recorded
(the recording helpers of :mod:`crossrank.models.quantize_static`). The same recorded batches calibrate

* every NNCF variant: ``nncf.quantize(model_type=TRANSFORMER, preset=MIXED, target_device=CPU)`` on the
  OpenVINO model read from ``model.onnx``, the pooler and classifier head always kept fp32
  (``ignored_scope``); the variants differ in SmoothQuant's alpha, in which MatMuls stay fp32 and in
  NNCF's overflow fix (7-bit weights against the int16 saturation of u8 x s8 products without VNNI);
  each is saved as an OpenVINO IR (``.xml``/``.bin``) and run by ``CrossEncoder(backend="openvino",
  precision="fp32", onnx_file=<the .xml>)`` -- crossrank's OpenVINO backend reads IR as well as ONNX,
  and the f32 hint only sets the precision of the layers NNCF left unquantized;
* crossrank's ONNX Runtime static int8 graph (QDQ, per-channel, FFN output MatMuls fp32:
  :data:`~crossrank.models.quantize_static.STATIC_INT8_DEFAULTS`).

ONNX Runtime dynamic int8 is ``crossrank export --int8``'s graph (``quantize_onnx``).

What OpenVINO ran: ``INFERENCE_PRECISION_HINT`` read back from each compiled model, the FakeQuantize
nodes (activations) and int8 constants (weights) NNCF left in the model, and the compiled (runtime) model's layers counted by type and runtime precision
(``u8``/``i8`` FullyConnected = int8 GEMMs).

Speed: pairs/s on the first ``--speed-queries`` test queries x 100 pairs at ``--speed-max-length``,
``--threads`` threads, best of ``--reps`` after one untimed pass over the same pairs; achieved ops/s
divided by the peak of its precision measured in the run: ONNX Runtime's 1024^3 MatMulInteger (int8) and
MatMul (fp32) (``peak_ops`` / ``model_ops`` of ``bench/ce_int8_static.py``), and OpenVINO's 1024^3 MatMul with
the bf16 hint for the bf16 path (``peak_openvino_bf16``; int8 graphs with bf16 elsewhere count against int8).

    cd /work/main && nice -n 15 .venv/bin/python bench/ce_int8_nncf.py --model /work/runs/ce-full \\
        --queries 10 --calibration-queries 8 --calibration-depth 40 --max-length 256 --speed-queries 2 \\
        --reps 3 --variants sq0.95,sq0.95-ffn-attn-fp32,sq0.95-ffn-attn-fp32-overflowfix \\
        --json /tmp/ce_int8_nncf.json

That run took 18 minutes at nice 15 on a 2-core AVX2 CPU (no VNNI) that was otherwise nearly idle;
each NNCF variant took about one minute (two passes over the 40 calibration batches: SmoothQuant's
statistics, then the quantizers' ranges, plus fast bias correction). While a training job held both
cores, a run with two of the variants took 50 minutes, 30 of them recording the calibration batches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ce_int8_static import model_ops, peak_ops, scores, speed_st, workload
from crossrank import CrossEncoder
from crossrank.models.export import quantize_onnx
from crossrank.models.onnx_session import cpu_has_bf16
from crossrank.models.quantize_static import (
    STATIC_INT8_DEFAULTS,
    STATIC_INT8_FILE,
    _calibration_pairs,
    _ort_static,
    _record,
    ranking_fidelity,
)

Feeds = list[dict[str, np.ndarray]]
Work = list[tuple[str, list[str]]]

# OpenVINO names of the head (ONNX Gemm -> MatMul "/inner/.../Gemm/WithoutBiases" + Add): kept fp32.
HEAD_FP32 = (r".*/pooler/.*", r".*/classifier/.*")
FFN_OUTPUT = r".*/layer\.\d+/output/dense/.*"
# Attention score and context MatMuls (activation x activation).
ATTENTION_MATMULS = r".*/attention/self/MatMul(_1)?$"
CALIBRATION_BATCH_TOKENS = 2048


@dataclass(frozen=True)
class Variant:
    """One NNCF configuration: SmoothQuant alpha for MatMuls (negative = off), extra fp32 MatMuls, and
    NNCF's ``OverflowFix`` (``enable``: every int8 weight uses half the range, 7 bits, so that the u8 x s8
    pair sums of CPUs without VNNI cannot saturate; ``first_layer_only`` is NNCF's default)."""

    name: str
    smooth_quant: float
    keep_fp32: tuple[str, ...] = field(default_factory=tuple)
    overflow_fix: str = "first_layer_only"


VARIANTS: dict[str, Variant] = {
    "sq0.95": Variant("sq0.95", 0.95),  # NNCF's defaults for transformers
    "nosq": Variant("nosq", -1.0),
    "sq0.5": Variant("sq0.5", 0.5),
    "sq0.95-ffn-fp32": Variant("sq0.95-ffn-fp32", 0.95, (FFN_OUTPUT,)),
    "sq0.95-ffn-attn-fp32": Variant("sq0.95-ffn-attn-fp32", 0.95, (FFN_OUTPUT, ATTENTION_MATMULS)),
    "sq0.95-overflowfix": Variant("sq0.95-overflowfix", 0.95, overflow_fix="enable"),
    # With VNNI (or AMX) the u8 x s8 sums cannot saturate: every layer keeps its 8 weight bits.
    "sq0.95-nooverflowfix": Variant("sq0.95-nooverflowfix", 0.95, overflow_fix="disable"),
    "sq0.8": Variant("sq0.8", 0.8),
    "sq0.95-ffn-fp32-nooverflowfix": Variant("sq0.95-ffn-fp32-nooverflowfix", 0.95, (FFN_OUTPUT,), "disable"),
    "sq0.95-ffn-attn-fp32-overflowfix": Variant(
        "sq0.95-ffn-attn-fp32-overflowfix", 0.95, (FFN_OUTPUT, ATTENTION_MATMULS), "enable"
    ),
}


def say(*args: Any) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def make_ce(
    folder: Path, backend: str, precision: str, onnx_file: str, max_length: int, threads: int
) -> CrossEncoder:
    return CrossEncoder(
        folder,
        backend=backend,
        precision=precision,
        onnx_file=onnx_file,
        max_length=max_length,
        num_threads=threads,
        activation=None,
    )


def calibration_feeds(
    folder: Path, dataset: Path, n_queries: int, depth: int, max_length: int, threads: int
) -> tuple[Feeds, dict[str, Any]]:
    """Record crossrank's packed batches of the train queries' BM25 candidates (int64 model inputs)."""
    queries, cands, info = _calibration_pairs(dataset, "train", n_queries, depth)
    ce = make_ce(folder, "openvino", "fp32", "model.onnx", max_length, threads)
    ce.max_batch_tokens = max(CALIBRATION_BATCH_TOKENS, max_length)
    rec, _ = _record(ce, queries, cands)
    names = rec.input_names
    feeds = [{k: np.asarray(f[k], np.int64) for k in names} for f in rec.feeds]
    info = {
        "split": "train",
        "queries": len(queries),
        "query_ids": info["query_ids"],
        "depth": depth,
        "pairs": sum(map(len, cands)),
        "batches": len(feeds),
        "max_length": max_length,
        "batch_tokens": ce.max_batch_tokens,
    }
    return feeds, info


def nncf_quantize(onnx_path: Path, feeds: Feeds, variant: Variant, out_xml: Path) -> dict[str, Any]:
    """Quantize the OpenVINO model of ``onnx_path`` with NNCF and save it as IR; return what was done."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    t = time.perf_counter()
    model = ov.Core().read_model(str(onnx_path))
    ignored = [*HEAD_FP32, *variant.keep_fp32]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(patterns=ignored, validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            overflow_fix=OverflowFix(variant.overflow_fix),
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=variant.smooth_quant),
        ),
    )
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    ops = quantized.get_ops()
    fq = [op for op in ops if op.get_type_name() == "FakeQuantize"]  # activation quantizers
    # NNCF stores the quantized weights as int8 constants (+ Convert and scale), not as FakeQuantize.
    w8 = [
        op for op in ops if op.get_type_name() == "Constant" and op.get_output_element_type(0) == ov.Type.i8
    ]
    return {
        "smooth_quant_matmul_alpha": variant.smooth_quant,
        "overflow_fix": variant.overflow_fix,
        "ignored_patterns": ignored,
        "fake_quantize_nodes": len(fq),
        "int8_constants": len(w8),
        "quantize_seconds": time.perf_counter() - t,
    }


def runtime_precisions(ce: CrossEncoder) -> dict[str, Any]:
    """What the compiled OpenVINO model runs: its precision hint and layers by type and precision."""
    compiled = ce.backend._compiled  # type: ignore[attr-defined]
    layers: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind in ("Const", "Input", "Output"):
            continue
        layers[f"{kind}:{info['runtimePrecision'].astype(str)}"] += 1
    fc = {k: v for k, v in layers.items() if k.startswith(("FullyConnected", "MatMul", "Subgraph"))}
    return {
        "inference_precision_hint": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
        "gemm_layers": dict(sorted(fc.items())),
        "int8_fully_connected": sum(v for k, v in fc.items() if k.endswith((":u8", ":i8"))),
        "layers": dict(sorted(layers.items())),
    }


def timed(ce: CrossEncoder, work: Work, reps: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Best-of-``reps`` pairs/s after one untimed pass over the same pairs; also that pass's scores."""
    qs, ds = [q for q, _ in work], [d for _, d in work]
    warm = [np.asarray(s.scores, np.float64) for s in ce.score_batch(qs, ds)]
    best, stats = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        res = ce.score_batch(qs, ds)
        dt = time.perf_counter() - t
        if dt < best:
            best, stats = dt, res[0].stats
    assert stats is not None
    n = sum(len(d) for d in ds)
    return {"pairs_per_s": n / best, "seconds": best, "stats": dict(stats)}, warm


def peak_openvino_bf16(threads: int, n: int = 1024, reps: int = 5) -> float:
    """ops/s of a square MatMul compiled by OpenVINO with the bf16 precision hint (best of ``reps``).

    ONNX Runtime has no bf16 MatMul on the CPU, so the bf16 path's peak comes from the engine that runs it.
    """
    import openvino as ov
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "peak", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(model.SerializeToString()),
        "CPU",
        {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads},
    )
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)]
    request = compiled.create_infer_request()
    request.infer(feeds)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        request.infer(feeds)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def add_ops(s: dict[str, Any], config: dict[str, Any], peak: dict[str, float], prec: str) -> None:
    st = s.pop("stats")
    ops = model_ops(config, int(st["real_tokens"]), int(st["rows"]), int(st["padded_tokens"]))
    s["ops_per_s"] = ops / s["seconds"]
    s["fraction_of_peak"] = s["ops_per_s"] / peak[prec]
    s["peak_precision"] = prec
    s["padded_tokens"] = int(st["padded_tokens"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("/work/runs/ce-full"), help="cross-encoder folder")
    default_ds = Path(os.environ.get("CROSSRANK_DATASETS", "/work/shared/datasets")) / "scifact"
    ap.add_argument("--dataset", type=Path, default=default_ds, help="BEIR SciFact folder")
    ap.add_argument("--queries", type=int, default=10, help="test queries (x BM25 top 100) for fidelity")
    ap.add_argument("--calibration-queries", type=int, default=16, help="train queries that calibrate")
    ap.add_argument("--calibration-depth", type=int, default=40, help="BM25 candidates per train query")
    ap.add_argument("--max-length", type=int, default=256, help="tokens per pair: calibration, fidelity")
    ap.add_argument("--speed-queries", type=int, default=2, help="test queries (x100 pairs) for speed")
    ap.add_argument("--speed-max-length", type=int, help="tokens per pair for speed (default --max-length)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--variants",
        default="sq0.95,sq0.95-ffn-attn-fp32,sq0.95-ffn-attn-fp32-overflowfix",
        help=f"comma-separated NNCF variants of {', '.join(VARIANTS)}",
    )
    ap.add_argument("--no-ort-int8", action="store_true", help="skip ONNX Runtime static/dynamic int8")
    ap.add_argument(
        "--holdout-queries",
        type=int,
        default=0,
        help="also measure fidelity on this many train queries after the calibration ones (to choose on)",
    )
    ap.add_argument(
        "--hints",
        choices=["both", "fp32", "bf16"],
        default="both",
        help="OpenVINO precision of the layers NNCF leaves unquantized (bf16 only where the CPU has it)",
    )
    ap.add_argument(
        "--sentence-transformers",
        action="store_true",
        help="also time sentence-transformers CrossEncoder fp32 and bf16 autocast on the checkpoint",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    variants = [VARIANTS[v] for v in args.variants.split(",") if v]
    speed_len = args.speed_max_length or args.max_length
    t_start = time.perf_counter()

    src = args.model / "onnx" if (args.model / "onnx" / "model.onnx").is_file() else args.model
    work_dir = Path(tempfile.mkdtemp(prefix="ce_int8_nncf."))
    folder = work_dir / "model"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model_int8*", "int8_static.json", "*.xml"))
    res: dict[str, Any] = {
        "model": str(args.model),
        "dataset": str(args.dataset),
        "max_length": args.max_length,
        "speed_max_length": speed_len,
        "threads": args.threads,
        "reps": args.reps,
        "fidelity_reference": "crossrank fp32 (ONNX Runtime), raw logits",
    }
    try:
        import nncf
        import onnxruntime as ort
        import openvino as ov

        res["versions"] = {
            "nncf": nncf.__version__,
            "openvino": ov.__version__,
            "onnxruntime": ort.__version__,
        }
        res["cpu_capabilities"] = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))

        t = time.perf_counter()
        feeds, res["calibration"] = calibration_feeds(
            folder,
            args.dataset,
            args.calibration_queries,
            args.calibration_depth,
            args.max_length,
            args.threads,
        )
        res["calibration"]["record_seconds"] = time.perf_counter() - t
        say("calibration", {k: v for k, v in res["calibration"].items() if k != "query_ids"})

        graphs: dict[str, tuple[str, str, str]] = {  # name -> (backend, precision, file)
            "ORT fp32": ("onnxruntime", "fp32", "model.onnx"),
            "OpenVINO fp32": ("openvino", "fp32", "model.onnx"),
        }
        bf16 = cpu_has_bf16()
        if bf16:  # crossrank's default CPU path on this machine: the one the int8 bars compare with
            graphs["OpenVINO bf16"] = ("openvino", "bf16", "model.onnx")
        res["nncf"] = {}
        for v in variants:
            xml = f"model_nncf_{v.name}.xml"
            say("nncf.quantize", v)
            res["nncf"][v.name] = nncf_quantize(folder / "model.onnx", feeds, v, folder / xml)
            say(res["nncf"][v.name])
            if args.hints != "bf16" or not bf16:
                graphs[f"OpenVINO NNCF int8 {v.name}"] = ("openvino", "fp32", xml)
            if bf16 and args.hints != "fp32":  # the layers NNCF left unquantized in bf16, not fp32
                graphs[f"OpenVINO NNCF int8 {v.name} + bf16"] = ("openvino", "bf16", xml)
        if not args.no_ort_int8:
            t = time.perf_counter()
            quantize_onnx(folder / "model.onnx", folder / "model_int8.onnx")
            _ort_static(folder / "model.onnx", folder / STATIC_INT8_FILE, feeds, STATIC_INT8_DEFAULTS)
            res["ort_int8_build_seconds"] = time.perf_counter() - t
            res["ort_static_settings"] = STATIC_INT8_DEFAULTS
            graphs["ORT int8 static"] = ("onnxruntime", "int8", STATIC_INT8_FILE)
            graphs["ORT int8 dynamic"] = ("onnxruntime", "int8", "model_int8.onnx")
        del feeds

        work = workload(args.dataset, args.queries)
        res["fidelity_queries"] = {"split": "test", "queries": len(work), "depth": 100}
        ces = {
            name: make_ce(folder, b, p, f, args.max_length, args.threads)
            for name, (b, p, f) in graphs.items()
        }
        res["openvino_runtime"] = {
            name: runtime_precisions(ce) for name, ce in ces.items() if ce.backend.name == "openvino"
        }
        say("runtime", json.dumps(res["openvino_runtime"], indent=None)[:2000])

        t = time.perf_counter()
        ref = scores(ces["ORT fp32"], work)
        res["fidelity_test"] = {}
        for name, ce in ces.items():
            if name in ("ORT fp32", "OpenVINO fp32"):  # OpenVINO fp32: checked on the speed pairs below
                continue
            res["fidelity_test"][name] = ranking_fidelity(ref, scores(ce, work))
            say(name, res["fidelity_test"][name])
        res["fidelity_seconds"] = time.perf_counter() - t
        if args.holdout_queries:
            # Train queries after the calibration ones (never test): where a variant may be chosen.
            n_cal = args.calibration_queries
            qs, cands, _ = _calibration_pairs(args.dataset, "train", n_cal + args.holdout_queries, 100)
            held = list(zip(qs[n_cal:], cands[n_cal:], strict=True))
            res["fidelity_train_holdout_queries"] = len(held)
            ref_h = scores(ces["ORT fp32"], held)
            res["fidelity_train_holdout"] = {}
            for name, ce in ces.items():
                if name in ("ORT fp32", "OpenVINO fp32"):
                    continue
                res["fidelity_train_holdout"][name] = ranking_fidelity(ref_h, scores(ce, held))
                say("held-out train:", name, res["fidelity_train_holdout"][name])

        res["peak_ops_per_s"] = peak = peak_ops(args.threads)
        if bf16:
            peak["bf16"] = peak_openvino_bf16(args.threads)
        config = json.loads((folder / "config.json").read_text())
        speed_work = work[: args.speed_queries]
        speed: dict[str, Any] = {}
        speed_scores: dict[str, list[np.ndarray]] = {}
        for name, (b, p, f) in graphs.items():
            ce = (
                ces[name]
                if speed_len == args.max_length
                else make_ce(folder, b, p, f, speed_len, args.threads)
            )
            speed[name], speed_scores[name] = timed(ce, speed_work, args.reps)
            prec = "int8" if "int8" in name else ("bf16" if p == "bf16" else "fp32")
            add_ops(speed[name], config, peak, prec)
            say(name, speed[name])
        res["speed"] = speed
        if args.sentence_transformers and (args.model / "config.json").is_file():
            # The same weights in PyTorch (the checkpoint beside onnx/): the issue's peer for the 2.5x bar.
            for label, use_bf16 in (("fp32", False), ("bf16 autocast", True)):
                if use_bf16 and not bf16:
                    continue
                pps = speed_st(args.model, speed_work, speed_len, args.threads, use_bf16, args.reps)
                res.setdefault("sentence_transformers", {})[label] = {"pairs_per_s": pps}
                say("sentence-transformers", label, f"{pps:.2f} pairs/s")
        res["speed_pairs_fidelity_vs_ORT_fp32"] = {
            name: ranking_fidelity(speed_scores["ORT fp32"], s) for name, s in speed_scores.items()
        }
        bases = [("vs_OpenVINO_fp32", "OpenVINO fp32"), ("vs_ORT_fp32", "ORT fp32")]
        if "OpenVINO bf16" in speed:
            bases.append(("vs_OpenVINO_bf16", "OpenVINO bf16"))
        for key, base in bases:
            for name in speed:
                speed[name][key] = speed[name]["pairs_per_s"] / speed[base]["pairs_per_s"]
        res["table"] = [
            {
                "variant": name,
                "fidelity_on": fidelity_source(res, name),
                **{
                    k: fidelity_row(res, name).get(k)
                    for k in ("top10_overlap_mean", "top10_overlap_min", "spearman_mean", "max_abs_err")
                },
                "pairs_per_s": speed[name]["pairs_per_s"],
                "vs_OpenVINO_fp32": speed[name]["vs_OpenVINO_fp32"],
                "vs_ORT_fp32": speed[name]["vs_ORT_fp32"],
                "vs_OpenVINO_bf16": speed[name].get("vs_OpenVINO_bf16"),
            }
            for name in graphs
        ]
        res["total_seconds"] = time.perf_counter() - t_start
        print_table(res["table"])
        for label, row in res.get("sentence_transformers", {}).items():
            print(f"sentence-transformers {label}: {row['pairs_per_s']:.2f} pairs/s")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=float))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def fidelity_source(res: dict[str, Any], name: str) -> str:
    if name == "ORT fp32":
        return "reference"
    if name in res["fidelity_test"]:
        return f"{res['fidelity_queries']['queries']} test queries"
    return f"speed queries ({res['speed_pairs_fidelity_vs_ORT_fp32'][name]['queries']})"


def fidelity_row(res: dict[str, Any], name: str) -> dict[str, Any]:
    if name == "ORT fp32":
        return {}
    return res["fidelity_test"].get(name) or res["speed_pairs_fidelity_vs_ORT_fp32"][name]


def print_table(rows: list[dict[str, Any]]) -> None:
    def fmt(x: Any, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    print(
        "| variant | fidelity on | top-10 overlap mean / min | Spearman | max abs err | pairs/s "
        "| vs OV fp32 | vs ORT fp32 | vs OV bf16 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['fidelity_on']} | {fmt(r['top10_overlap_mean'], '.3f')} / {fmt(r['top10_overlap_min'], '.2f')} "
            f"| {fmt(r['spearman_mean'], '.4f')} | {fmt(r['max_abs_err'], '.3f')} | {r['pairs_per_s']:.2f} "
            f"| {r['vs_OpenVINO_fp32']:.2f} | {r['vs_ORT_fp32']:.2f} | {fmt(r['vs_OpenVINO_bf16'], '.2f')} |"
        )


if __name__ == "__main__":
    main()
