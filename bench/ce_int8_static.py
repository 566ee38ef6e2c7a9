"""Static vs dynamic int8 cross-encoder: ranking fidelity against fp32 and speed against peers, one run.

Fidelity: the first ``--queries`` SciFact *test* queries, BM25 (crossrank) top 100 each; per query the
overlap of the fp32 and int8 top-10 sets and the Spearman correlation of the 100 scores. The static graph
is calibrated on SciFact *train* queries (never the test ones), by
:func:`crossrank.models.quantize_static.quantize_static_int8`, in a scratch copy of the model folder.

Speed (pairs/s, the same ``--speed-queries`` x 100 pairs, same weights, same max_length, same threads):
crossrank static int8, dynamic int8 and fp32 on ONNX Runtime, crossrank's OpenVINO "bf16" path (the
precision OpenVINO actually ran is read back from the compiled model), sentence-transformers
CrossEncoder fp32 and bf16 autocast (needs the PyTorch checkpoint in the model folder or its parent),
fastembed ``TextCrossEncoder`` and FlashRank when installed and able to load the ONNX file offline.

Fraction of peak: a 1024^3 MatMulInteger (u8 x s8 -> s32) and a 1024^3 fp32 MatMul in ONNX Runtime at
the same thread count give the machine's int8 and fp32 ops/s in this run; each crossrank path's
achieved ops/s (2 x MACs of its dense layers and attention over the padded tokens it ran) is divided by
the peak of its precision.

    nice -n 10 python bench/ce_int8_static.py --model /work/runs/ce-b --json bench/ce_int8_static.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossrank import CrossEncoder
from crossrank.models.quantize_static import quantize_static_int8, ranking_fidelity
from scifact_candidates import bm25_candidates

DEPTH = 100


def workload(dataset: Path, n: int) -> list[tuple[str, list[str]]]:
    """The first ``n`` SciFact test queries with BM25's top ``DEPTH`` candidates (texts)."""
    return bm25_candidates(dataset, n, DEPTH)[1]


def peak_ops(threads: int, n: int = 1024, reps: int = 5) -> dict[str, float]:
    """ops/s of a square int8 MatMulInteger and an fp32 MatMul in ONNX Runtime (best of ``reps``)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for name, op, ta, tb in (
        ("int8", "MatMulInteger", TensorProto.UINT8, TensorProto.INT8),
        ("fp32", "MatMul", TensorProto.FLOAT, TensorProto.FLOAT),
    ):
        a = helper.make_tensor_value_info("a", ta, [n, n])
        b = helper.make_tensor_value_info("b", tb, [n, n])
        y = helper.make_tensor_value_info(
            "y", TensorProto.INT32 if name == "int8" else TensorProto.FLOAT, [n, n]
        )
        graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"])], "peak", [a, b], [y])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        feeds: dict[str, np.ndarray]
        if name == "int8":
            feeds = {
                "a": rng.integers(0, 255, (n, n), dtype=np.uint8),
                "b": rng.integers(-127, 127, (n, n), dtype=np.int8),
            }
        else:
            feeds = {
                "a": rng.standard_normal((n, n), np.float32),
                "b": rng.standard_normal((n, n), np.float32),
            }
        sess.run(None, feeds)
        best = min(_timed(lambda s=sess, f=feeds: s.run(None, f)) for _ in range(reps))
        out[name] = 2.0 * n**3 / best
    return out


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def model_ops(config: dict[str, Any], real_tokens: int, rows: int, padded_tokens: int) -> float:
    """Multiply-adds x 2 of a BERT encoder over the padded batches (dense layers + attention)."""
    h = int(config["hidden_size"])
    ff = int(config["intermediate_size"])
    layers = int(config["num_hidden_layers"])
    dense = 2.0 * (4 * h * h + 2 * h * ff) * padded_tokens * layers
    seq = padded_tokens / max(rows, 1)
    attn = 2.0 * 2 * h * seq * padded_tokens * layers
    return dense + attn


def scores(ce: CrossEncoder, work: list[tuple[str, list[str]]]) -> list[np.ndarray]:
    return [
        np.asarray(s.scores, np.float64) for s in ce.score_batch([q for q, _ in work], [d for _, d in work])
    ]


def speed_crossrank(ce: CrossEncoder, work: list[tuple[str, list[str]]], reps: int) -> dict[str, Any]:
    ce.score_batch([work[0][0]], [work[0][1][:16]])  # warm-up (shapes, allocator)
    best, stats = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        res = ce.score_batch([q for q, _ in work], [d for _, d in work])
        dt = time.perf_counter() - t
        if dt < best:
            best, stats = dt, [r.stats for r in res]
    n = sum(len(d) for _, d in work)
    return {"pairs_per_s": n / best, "seconds": best, "stats": stats}


def speed_st(
    ckpt: Path, work: list[tuple[str, list[str]]], max_length: int, threads: int, bf16: bool, reps: int
) -> float:
    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    torch.set_num_threads(threads)
    model = STCrossEncoder(str(ckpt), max_length=max_length, device="cpu")
    pairs = [(q, d) for q, docs in work for d in docs]

    def run() -> None:
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model.predict(pairs, batch_size=32, show_progress_bar=False)
        else:
            model.predict(pairs, batch_size=32, show_progress_bar=False)

    model.predict(pairs[:8], batch_size=8, show_progress_bar=False)
    best = min(_timed(run) for _ in range(reps))
    return len(pairs) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", type=Path, required=True, help="cross-encoder folder (model.onnx or onnx/model.onnx)"
    )
    ap.add_argument("--dataset", type=Path, default=Path("/work/shared/datasets/scifact"))
    ap.add_argument("--queries", type=int, default=30, help="test queries for fidelity")
    ap.add_argument("--speed-queries", type=int, default=4, help="test queries (x100 pairs) for speed")
    ap.add_argument("--calibration-queries", type=int, default=24)
    ap.add_argument("--holdout-queries", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    src = args.model / "onnx" if (args.model / "onnx" / "model.onnx").is_file() else args.model
    ckpt = next((d for d in (args.model, args.model.parent) if (d / "model.safetensors").is_file()), None)
    work_dir = Path(tempfile.mkdtemp(prefix="ce_int8_static."))
    folder = work_dir / "model"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model_int8*", "int8_static.json"))
    res: dict[str, Any] = {"model": str(args.model), "max_length": args.max_length, "threads": args.threads}

    from crossrank.models.export import quantize_onnx

    quantize_onnx(folder / "model.onnx", folder / "model_int8.onnx")
    t = time.perf_counter()
    rep = quantize_static_int8(
        folder,
        args.dataset,
        split="train",
        calibration_queries=args.calibration_queries,
        holdout_queries=args.holdout_queries,
        depth=DEPTH,
        max_length=args.max_length,
        num_threads=args.threads,
    )
    res["calibration"] = {k: v for k, v in rep.calibration.items() if k != "query_ids"}
    res["heldout_fidelity"] = {k: v for k, v in rep.fidelity.items() if k != "query_ids"}
    res["calibration_seconds"] = time.perf_counter() - t
    print("held-out (train) fidelity:", res["heldout_fidelity"], flush=True)

    work = workload(args.dataset, args.queries)
    kw = {"max_length": args.max_length, "num_threads": args.threads, "activation": None}
    fp32 = CrossEncoder(folder, backend="onnxruntime", precision="fp32", **kw)
    ref = scores(fp32, work)
    ces = {"int8-static": CrossEncoder(folder, backend="onnxruntime", precision="int8", **kw)}
    # The dynamic graph by name: precision="int8" on the folder would pick the static sibling.
    ces["int8-dynamic"] = CrossEncoder(
        folder, backend="onnxruntime", precision="int8", onnx_file="model_int8.onnx", **kw
    )
    res["fidelity_test"] = {}
    for name, ce in ces.items():
        assert "int8" in ce.backend.onnx_path.name  # type: ignore[attr-defined]
        res["fidelity_test"][name] = ranking_fidelity(ref, scores(ce, work))
        res["fidelity_test"][name]["graph"] = ce.backend.onnx_path.name  # type: ignore[attr-defined]
        print(name, res["fidelity_test"][name], flush=True)

    speed_work = work[: args.speed_queries]
    peak = peak_ops(args.threads)
    res["peak_ops_per_s"] = peak
    config = json.loads((folder / "config.json").read_text())
    speed: dict[str, Any] = {}
    ov = CrossEncoder(folder, backend="openvino", precision="bf16", **kw)
    try:
        compiled = ov.backend._compiled  # type: ignore[attr-defined]
        res["openvino_ran_precision"] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    except Exception as exc:
        res["openvino_ran_precision"] = f"unknown ({exc})"
    for name, ce, prec in (
        ("crossrank int8-static (ORT)", ces["int8-static"], "int8"),
        ("crossrank int8-dynamic (ORT)", ces["int8-dynamic"], "int8"),
        ("crossrank fp32 (ORT)", fp32, "fp32"),
        ("crossrank OpenVINO 'bf16' path", ov, "fp32"),
    ):
        s = speed_crossrank(ce, speed_work, args.reps)
        st = s.pop("stats")
        ops = model_ops(
            config, st[0]["real_tokens"], st[0]["rows"], st[0]["padded_tokens"]
        )  # one call: its stats
        s["ops_per_s"] = ops / s["seconds"]
        s["fraction_of_peak"] = s["ops_per_s"] / peak[prec]
        s["peak_precision"] = prec
        speed[name] = s
        print(name, s, flush=True)
    if ckpt is not None:
        for bf16 in (False, True):
            name = f"sentence-transformers {'bf16 autocast' if bf16 else 'fp32'}"
            speed[name] = {
                "pairs_per_s": speed_st(ckpt, speed_work, args.max_length, args.threads, bf16, args.reps)
            }
            print(name, speed[name], flush=True)
    else:
        res["sentence_transformers"] = (
            "skipped: no PyTorch checkpoint (model.safetensors) beside the ONNX graph"
        )
    for peer, mod in (("fastembed TextCrossEncoder", "fastembed"), ("FlashRank", "flashrank")):
        import importlib.util

        if importlib.util.find_spec(mod) is None:
            speed[peer] = {"skipped": f"{mod} is not installed here (not measured)"}
    res["speed"] = speed
    base = speed["crossrank int8-static (ORT)"]["pairs_per_s"]
    res["ratios"] = {
        "int8-static / OpenVINO bf16 path": base / speed["crossrank OpenVINO 'bf16' path"]["pairs_per_s"],
        "int8-static / int8-dynamic": base / speed["crossrank int8-dynamic (ORT)"]["pairs_per_s"],
        "int8-static / fp32 ORT": base / speed["crossrank fp32 (ORT)"]["pairs_per_s"],
    }
    if "sentence-transformers bf16 autocast" in speed:
        res["ratios"]["int8-static / sentence-transformers bf16 autocast"] = (
            base / speed["sentence-transformers bf16 autocast"]["pairs_per_s"]
        )
        res["ratios"]["int8-static / sentence-transformers fp32"] = (
            base / speed["sentence-transformers fp32"]["pairs_per_s"]
        )
    print(json.dumps(res["ratios"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))
    shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
