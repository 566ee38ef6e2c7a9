"""Measure ONNX Runtime dynamic int8 settings on this CPU: speed and error against fp32.

Usage (an exported cross-encoder directory, e.g. from ``crossrank export CKPT -o DIR --optimize``)::

    PYTHONPATH=python python bench/int8_settings.py DIR [--threads 2] [--pairs 256]

For each setting (signed / unsigned weights, per-tensor / per-channel scales, reduce_range) and each
source graph (plain ``model.onnx`` and the fused ``model_optimized.onnx`` when present) it quantizes
the graph, runs a 32 x 128 batch of SciFact (query, abstract) pairs and prints seq/s (median of 7) and
the logit errors against the fp32 graph on ``--pairs`` pairs (max abs, mean abs, max abs / logit std).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _pairs(n: int) -> list[tuple[str, str]]:
    root = Path(
        os.environ.get("CROSSRANK_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    docs = []
    with (root / "scifact" / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            docs.append((d.get("title", "") + " " + d["text"]).strip())
            if len(docs) >= n:
                break
    queries = []
    with (root / "scifact" / "queries.jsonl").open() as f:
        for line in f:
            queries.append(json.loads(line)["text"])
            if len(queries) >= n:
                break
    return [(queries[i % len(queries)], docs[i]) for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--pairs", type=int, default=256)
    args = ap.parse_args(argv)

    from crossrank.models.export import quantize_onnx
    from crossrank.models.onnx_session import OnnxRuntimeBackend, resolve_threads
    from crossrank.text.packing import PairTemplate, plan_pairs
    from crossrank.text.tokenization import TextEncoder

    threads = resolve_threads(args.threads)
    enc = TextEncoder.from_file(args.model_dir)
    template = PairTemplate.from_tokenizer(enc.tokenizer)
    pairs = _pairs(args.pairs)
    q = enc.encode([p[0] for p in pairs], max_tokens=128, cache=False)
    d = enc.encode([p[1] for p in pairs], max_tokens=512)
    # Accuracy set: every pair at max_length 256; speed batch: 32 rows x 128 tokens.
    acc_plan = plan_pairs(q, d, template, max_length=256, max_batch_tokens=8192)
    speed = plan_pairs(q[:32], d[:32], template, max_length=128, max_batch_tokens=32 * 128, buckets=[128])
    sb = speed.batch(0)
    assert sb.input_ids.shape == (32, 128), sb.input_ids.shape
    sfeeds = {
        "input_ids": sb.input_ids,
        "attention_mask": sb.attention_mask,
        "token_type_ids": sb.token_type_ids,
    }

    def run_all(be: OnnxRuntimeBackend) -> np.ndarray:
        outs = []
        for b in acc_plan:
            feeds = {
                "input_ids": b.input_ids,
                "attention_mask": b.attention_mask,
                "token_type_ids": b.token_type_ids,
            }
            outs.append(be.run(feeds)[0][:, 0])
        return acc_plan.unsort(outs)

    def seq_per_s(be: OnnxRuntimeBackend) -> float:
        be.run(sfeeds)
        times = []
        for _ in range(7):
            t = time.perf_counter()
            be.run(sfeeds)
            times.append(time.perf_counter() - t)
        return 32 / statistics.median(times)

    sources = [("plain", args.model_dir / "model.onnx")]
    if (args.model_dir / "model_optimized.onnx").is_file():
        sources.append(("fused", args.model_dir / "model_optimized.onnx"))
    ref_be = OnnxRuntimeBackend(sources[0][1], num_threads=threads)
    ref = run_all(ref_be)
    std = float(ref.std())
    print(f"threads={threads} pairs={len(pairs)} logit std={std:.3f}")
    print(f"{'graph':6} {'setting':34} {'seq/s':>7} {'max_err':>8} {'mean_err':>8} {'max/std':>7}")
    for name, path in sources:
        be = OnnxRuntimeBackend(path, num_threads=threads)
        err = np.abs(run_all(be) - ref)
        print(
            f"{name:6} {'fp32':34} {seq_per_s(be):7.1f} {err.max():8.4f} {err.mean():8.4f} {err.max() / std:7.4f}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in sources:
            for wt in ("qint8", "quint8"):
                for pc in (False, True):
                    for rr in (False, True):
                        out = Path(tmp) / f"{name}_{wt}_{pc}_{rr}.onnx"
                        try:
                            quantize_onnx(path, out, weight_type=wt, per_channel=pc, reduce_range=rr)
                            be = OnnxRuntimeBackend(out, num_threads=threads, precision="int8")
                        except Exception as exc:
                            print(f"{name:6} {wt} per_channel={pc} reduce_range={rr}: failed: {exc}")
                            continue
                        err = np.abs(run_all(be) - ref)
                        setting = f"{wt} per_channel={int(pc)} reduce_range={int(rr)}"
                        print(
                            f"{name:6} {setting:34} {seq_per_s(be):7.1f} {err.max():8.4f} "
                            f"{err.mean():8.4f} {err.max() / std:7.4f}"
                        )
                        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
