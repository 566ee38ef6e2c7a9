"""Two int8 routes beyond NNCF post-training quantization (``ce_int8_nncf.py``), measured for fidelity and speed.

Both start from an exported cross-encoder folder (the HF checkpoint with ``onnx/model.onnx`` beside it) and
are judged like the PTQ graphs: top-10 overlap and Spearman of the scores of BM25's top 100 against
ONNX Runtime fp32 raw logits, on crossrank's own packed batches. Every choice here is made on **train**
queries: the fidelity queries are SciFact train queries ``--holdout-start`` .. ``+ --holdout`` (far from the
first ones, which calibrate and train); test queries are never read.

``--route weight-only``
    ``nncf.compress_weights`` (per-channel int8 weights, symmetric and asymmetric; pooler and classifier
    kept) run by OpenVINO with the bf16 hint and ``DYNAMIC_QUANTIZATION_GROUP_SIZE`` in {0 (off: weights
    are decompressed to bf16), 32, 128}: with a group size, the CPU plugin quantizes each activation row
    per group of that many channels on the fly and runs the int8 GEMM (the LLM path of OpenVINO).
``--route qat``
    Quantization-aware fine-tuning: ``nncf.quantize`` on the PyTorch model (SmoothQuant 0.95, mixed preset,
    head kept), then ``--epochs`` passes over the first ``--train-queries`` train queries x BM25 top
    ``--depth`` (crossrank's packed batches), minimising the squared error between the fake-quantized
    model's logits and the fp32 model's; dropout off, AdamW (no weight decay) on weights and quantizer
    ranges, ``--accum`` batches per step. After PTQ and after each epoch the model is converted to
    OpenVINO (``ov.convert_model``) and measured with the bf16 hint for the layers left unquantized.

Speed: pairs/s on the first two fidelity queries x 100 pairs, 2 threads, best of 3 (``timed`` of
``ce_int8_nncf.py``), next to OpenVINO bf16 (crossrank's default path on a CPU with bf16 units) in the same
run. Needs the ``[quantize]`` extra, and torch + transformers for ``qat``.

    cd bench && PYTHONPATH=../python python ce_int8_routes.py --model /work/runs/ce-bf16 --route qat \\
        --epochs 2 --lr 2e-6 --json ce_int8_qat.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ce_int8_nncf import HEAD_FP32, calibration_feeds, make_ce, say, timed
from ce_int8_static import scores
from crossrank.models.quantize_static import _calibration_pairs, ranking_fidelity

Work = list[tuple[str, list[str]]]
MAX_LENGTH = 256
THREADS = 2
FIDELITY_KEYS = ("top10_overlap_mean", "top10_overlap_min", "spearman_mean", "max_abs_err")


def measure(
    folder: Path, graph: str, ref: list[np.ndarray], held: Work, config: dict[str, str] | None = None
) -> dict[str, Any]:
    """Fidelity against ``ref`` and speed of one OpenVINO graph of ``folder``, bf16 for what is not int8."""
    ce = make_ce(folder, "openvino", "bf16", graph, MAX_LENGTH, THREADS)
    if config:  # extra CPU-plugin properties: recompile the same graph with them
        import openvino as ov

        backend = ce.backend
        base = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1}
        core = ov.Core()
        backend._compiled = core.compile_model(  # type: ignore[attr-defined]
            core.read_model(str(folder / graph)), "CPU", {**base, "PERFORMANCE_HINT": "LATENCY", **config}
        )
        backend._local = type(backend._local)()  # type: ignore[attr-defined]  # drop the old request
    fid = ranking_fidelity(ref, scores(ce, held))
    row: dict[str, Any] = {k: fid[k] for k in FIDELITY_KEYS}
    row["pairs_per_s"] = timed(ce, held[:2], 3)[0]["pairs_per_s"]
    return row


def weight_only(folder: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Compress the weights both ways; the graphs and CPU properties to measure."""
    import nncf
    import openvino as ov

    graphs = {}
    for mode in ("int8_sym", "int8_asym"):
        compressed = nncf.compress_weights(
            ov.Core().read_model(str(folder / "model.onnx")),
            mode=getattr(nncf.CompressWeightsMode, mode.upper()),
            ignored_scope=nncf.IgnoredScope(patterns=list(HEAD_FP32), validate=False),
        )
        ov.save_model(compressed, str(folder / f"{mode}.xml"), compress_to_fp16=False)
        for group in (0, 32, 128):
            graphs[f"{mode}, dynamic group {group}"] = (
                f"{mode}.xml",
                {"DYNAMIC_QUANTIZATION_GROUP_SIZE": str(group)},
            )
    return graphs


def qat(args: argparse.Namespace, folder: Path, ref: list[np.ndarray], held: Work) -> dict[str, Any]:
    """PTQ on the PyTorch model, then fine-tune it towards the fp32 logits; a row after PTQ and each epoch."""
    import nncf
    import openvino as ov
    import torch
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    feeds, info = calibration_feeds(folder, args.dataset, args.train_queries, args.depth, MAX_LENGTH, THREADS)
    batches = [{k: torch.from_numpy(v) for k, v in f.items()} for f in feeds]
    fp32 = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    with torch.no_grad():
        targets = [fp32(**b).logits.float() for b in batches]
    calibration = batches[:: max(1, len(batches) // 40)][:40]
    quantized = nncf.quantize(
        fp32,
        nncf.Dataset(calibration),
        model_type=nncf.ModelType.TRANSFORMER,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(patterns=[r".*pooler.*", r".*classifier.*"], validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=0.95)
        ),
    )
    out: dict[str, Any] = {"training_data": {k: v for k, v in info.items() if k != "query_ids"}}

    def row(tag: str) -> None:
        quantized.eval()
        ov.save_model(ov.convert_model(quantized, example_input=dict(batches[0])), str(folder / f"{tag}.xml"))
        out[tag] = measure(folder, f"{tag}.xml", ref, held)
        say(tag, out[tag])

    row("ptq")
    params = [p for p in quantized.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng(0)
    quantized.eval()  # dropout off; the weights and the quantizers' ranges still learn
    for epoch in range(args.epochs):
        losses = []
        for i, j in enumerate(rng.permutation(len(batches))):
            loss = (quantized(**batches[j]).logits.float() - targets[j]).pow(2).mean()
            (loss / args.accum).backward()
            losses.append(loss.item())
            if (i + 1) % args.accum == 0 or i + 1 == len(batches):  # the last step may be short
                opt.step()
                opt.zero_grad()
        out[f"epoch{epoch + 1}_mean_loss"] = float(np.mean(losses))
        row(f"qat_epoch{epoch + 1}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="cross-encoder folder (checkpoint + onnx/)")
    repo = Path(__file__).resolve().parents[1]
    default_ds = Path(os.environ.get("CROSSRANK_DATASETS", repo.parent / "shared" / "datasets")) / "scifact"
    ap.add_argument("--dataset", type=Path, default=default_ds)
    ap.add_argument("--route", choices=["weight-only", "qat"], required=True)
    ap.add_argument("--holdout", type=int, default=30, help="train queries the fidelity is measured on")
    ap.add_argument("--holdout-start", type=int, default=700, help="index of the first of them")
    ap.add_argument("--train-queries", type=int, default=48, help="qat: first train queries it learns on")
    ap.add_argument("--depth", type=int, default=40, help="qat: BM25 candidates per training query")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-6)
    ap.add_argument("--accum", type=int, default=2, help="qat: packed batches per optimizer step")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.route == "qat" and args.train_queries > args.holdout_start:
        ap.error("--train-queries must end before --holdout-start")

    src = args.model / "onnx" if (args.model / "onnx" / "model.onnx").is_file() else args.model
    work_dir = Path(tempfile.mkdtemp(prefix="ce_int8_routes."))
    folder = work_dir / "model"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model_int8*", "*.xml", "int8_*"))
    t0 = time.perf_counter()
    try:
        qs, cands, _ = _calibration_pairs(args.dataset, "train", args.holdout_start + args.holdout, 100)
        held = list(zip(qs[args.holdout_start :], cands[args.holdout_start :], strict=True))
        ref = scores(make_ce(folder, "onnxruntime", "fp32", "model.onnx", MAX_LENGTH, THREADS), held)
        res: dict[str, Any] = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "fidelity_queries": len(held),
        }
        res["OpenVINO bf16"] = measure(folder, "model.onnx", ref, held)
        say("OpenVINO bf16", res["OpenVINO bf16"])
        if args.route == "weight-only":
            for name, (graph, config) in weight_only(folder).items():
                res[name] = measure(folder, graph, ref, held, config)
                say(name, res[name])
        else:
            res.update(qat(args, folder, ref, held))
        res["total_seconds"] = time.perf_counter() - t0
        bf16 = res["OpenVINO bf16"]["pairs_per_s"]
        for name, row in res.items():
            if isinstance(row, dict) and "pairs_per_s" in row:
                row["vs_OpenVINO_bf16"] = row["pairs_per_s"] / bf16
                print(
                    f"{name:34s} overlap {row['top10_overlap_mean']:.3f} (min {row['top10_overlap_min']:.1f})"
                    f"  spearman {row['spearman_mean']:.4f}  {row['pairs_per_s']:6.1f} pairs/s"
                    f"  {row['vs_OpenVINO_bf16']:.2f}x bf16"
                )
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=float))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
