"""`crossrank export MODEL_DIR -o OUT`: Hugging Face checkpoint → verified ONNX model directory.

``--int8-static --calibration DATASET_DIR`` adds a calibrated int8 model: ONNX Runtime's static graph
(:func:`crossrank.models.quantize_static.quantize_static_int8`) or, with ``--int8-engine openvino`` (the
``auto`` choice on CPUs with VNNI), OpenVINO's NNCF model
(:func:`crossrank.models.quantize_openvino.quantize_openvino_int8`); on an already exported folder only that.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a Hugging Face checkpoint to ONNX (verified against PyTorch)",
        description=(
            "Export a Hugging Face checkpoint to an ONNX model directory crossrank loads: model.onnx (fp32, "
            "dynamic batch/sequence axes) plus tokenizer and config; optionally model_int8.onnx and "
            'model_optimized.onnx. Needs pip install "crossrank[export]".'
        ),
    )
    p.add_argument(
        "model", metavar="MODEL_DIR", help="checkpoint directory (or hub id transformers can load)"
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    p.add_argument(
        "--task",
        choices=["cross-encoder", "embedding", "token-embedding", "causal-lm-reranker"],
        default="cross-encoder",
        help=(
            "cross-encoder: logits [batch, labels]; embedding/token-embedding: last_hidden_state; "
            "causal-lm-reranker: a Qwen2/Qwen3 LLM reranker as prefix.onnx + model.onnx (key/value cache)"
        ),
    )
    p.add_argument("--int8", action="store_true", help="also write model_int8.onnx (dynamic int8)")
    p.add_argument("--optimize", action="store_true", help="also write model_optimized.onnx (ORT fusions)")
    p.add_argument(
        "--int8-static",
        action="store_true",
        help=(
            "also write model_int8_static.onnx: static int8 calibrated on --calibration's first-stage "
            "candidates, with its measured fidelity in int8_static.json (cross-encoders). When MODEL_DIR "
            "is already an exported folder (model.onnx, no PyTorch weights) only this step runs"
        ),
    )
    p.add_argument(
        "--calibration",
        metavar="DATASET_DIR",
        help="BEIR folder whose --calibration-split queries' BM25 candidates calibrate --int8-static",
    )
    p.add_argument(
        "--int8-engine",
        choices=["auto", "onnxruntime", "openvino"],
        default="auto",
        help=(
            "which int8 --int8-static makes: onnxruntime (model_int8_static.onnx) or openvino (NNCF, "
            "int8_openvino/; needs crossrank[quantize]); auto = openvino where the CPU has VNNI and "
            "openvino + nncf are installed, else onnxruntime"
        ),
    )
    p.add_argument(
        "--calibration-split", default="train", help="judged split to calibrate on (default train)"
    )
    p.add_argument("--calibration-queries", type=int, default=32, help="queries that calibrate (default 32)")
    p.add_argument(
        "--holdout-queries", type=int, default=32, help="following queries that measure fidelity (default 32)"
    )
    p.add_argument(
        "--calibration-depth", type=int, default=100, help="BM25 candidates per query (default 100)"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import sys
    from pathlib import Path

    from ..errors import StateError
    from ..models.export import describe, export_model
    from ._output import check_output_dir

    if args.int8_static and not args.calibration:
        print("crossrank export: error: --int8-static needs --calibration DATASET_DIR", file=sys.stderr)
        return 2
    if args.calibration and not args.int8_static:
        print("crossrank export: error: --calibration only applies with --int8-static", file=sys.stderr)
        return 2
    if args.int8_static and args.task != "cross-encoder":
        print("crossrank export: error: --int8-static applies to --task cross-encoder", file=sys.stderr)
        return 2
    out = check_output_dir(args.output, "-o")  # a bad output path fails before the export starts
    src = Path(args.model)
    onnx_only = (src / "model.onnx").is_file() and not any(
        (src / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")
    )
    try:
        if args.int8_static and onnx_only:  # already exported: copy it, then only quantize
            if src.resolve() != out.resolve():
                shutil.copytree(src, out, dirs_exist_ok=True)
        else:
            report = export_model(
                args.model,
                args.output,
                task=args.task,
                int8=args.int8,
                optimize=args.optimize,
                opset=args.opset,
                verbose=True,
            )
            print(describe(report))
        if args.int8_static:
            from ..models.quantize_openvino import quantize_openvino_int8
            from ..models.quantize_static import CalibrationDataError, quantize_static_int8

            quantize = (
                quantize_openvino_int8
                if _int8_engine(args.int8_engine) == "openvino"
                else quantize_static_int8
            )
            try:
                rep = quantize(
                    out,
                    args.calibration,
                    split=args.calibration_split,
                    calibration_queries=args.calibration_queries,
                    holdout_queries=args.holdout_queries,
                    depth=args.calibration_depth,
                    verbose=True,
                )
            except (CalibrationDataError, ValueError) as exc:
                print(f"crossrank export: error: {exc}", file=sys.stderr)
                return 2
            manifest = "int8_static.json" if rep.method == "onnxruntime-qdq" else "its manifest"
            print(f"wrote {out / rep.graph} and {manifest} ({rep.seconds:.0f} s)")
    except StateError as exc:  # a graph failed verification: nothing of it was written
        print(f"crossrank export: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _int8_engine(choice: str) -> str:
    """Resolve ``--int8-engine auto``: OpenVINO's NNCF int8 where the CPU has VNNI and both are installed."""
    if choice != "auto":
        return choice
    import importlib.util

    from ..models.quantize_openvino import cpu_has_vnni

    installed = all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))
    return "openvino" if installed and cpu_has_vnni() else "onnxruntime"
