"""`crossrank export MODEL_DIR -o OUT`: Hugging Face checkpoint → verified ONNX model directory."""

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
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import StateError
    from ..models.export import describe, export_model
    from ._output import check_output_dir

    check_output_dir(args.output, "-o")  # a bad output path fails before the export starts
    try:
        report = export_model(
            args.model,
            args.output,
            task=args.task,
            int8=args.int8,
            optimize=args.optimize,
            opset=args.opset,
            verbose=True,
        )
    except StateError as exc:  # a graph failed verification: nothing of it was written
        print(f"crossrank export: error: {exc}", file=sys.stderr)
        return 1
    print(describe(report))
    return 0
