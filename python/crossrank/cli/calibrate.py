"""`crossrank calibrate MODEL DATASET_DIR`: fit temperature / Platt scaling of a cross-encoder's logits.

Pairs are the model's own candidates: the BM25 top ``--depth`` documents of each judged query, scored by
the cross-encoder (raw logits), labelled 1 where the qrels grade them > 0. Queries are split (seeded) into
a fitting part and a held-out part; the calibration is fitted on the first, the log-loss before and after
is reported on the second, and the calibration is written as ``calibration.json`` beside the model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit temperature or Platt scaling of a cross-encoder on a BEIR dataset's qrels",
        description="Score the BM25 top --depth candidates of each judged query with MODEL, fit a calibration "
        "of its logits on part of the queries, report the held-out log-loss before and after, and save "
        "calibration.json beside the model (or at --output).",
    )
    p.add_argument("model", metavar="MODEL", help="cross-encoder: model directory, .onnx file or hub id")
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="BEIR folder (corpus, queries, qrels)")
    p.add_argument("--method", default="platt", choices=["platt", "temperature"], help="default: platt")
    p.add_argument("--depth", type=int, default=20, help="BM25 candidates per query (default 20)")
    p.add_argument("--split", default="test", help="qrels split (default test)")
    p.add_argument(
        "--holdout", type=float, default=0.5, help="fraction of queries held out for the report (default 0.5)"
    )
    p.add_argument("--max-queries", type=int, default=None, help="use at most this many judged queries")
    p.add_argument("--seed", type=int, default=0, help="seed of the query split (default 0)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="where to write the calibration (default: beside MODEL)",
    )
    p.add_argument("--threads", type=int, default=None, help="threads (default: the CPU quota)")
    p.set_defaults(func=run)


def _default_output(model: str) -> Path:
    path = Path(model)
    if path.is_dir():
        return path / "calibration.json"
    if path.is_file():
        return path.parent / "calibration.json"
    raise ValueError(
        f"MODEL {model!r} is not a local directory or file: pass --output for the calibration file"
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..eval.datasets import load_beir
    from ..rerank.calibration import Calibrator, log_loss
    from ..rerank.cross_encoder import CrossEncoder
    from ..retrieve.bm25 import BM25Index
    from ._output import check_output_file

    if args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    if not 0.0 < args.holdout < 1.0:
        raise ValueError(f"--holdout must be in (0, 1), got {args.holdout}")
    output = args.output if args.output is not None else _default_output(args.model)
    output = check_output_file(output, "--output", dir_name="calibration.json")  # before any work
    t0 = time.perf_counter()
    ds = load_beir(args.dataset, split=args.split)
    qids = sorted(ds.queries)[: args.max_queries]
    if len(qids) < 2:
        raise ValueError(
            f"need at least 2 judged queries in {args.dataset} (split {args.split}), got {len(qids)}"
        )
    index = BM25Index.build(ds.documents(), num_threads=args.threads, show_progress=False)
    hits = index.search([ds.queries[q] for q in qids], k=args.depth, num_threads=args.threads)
    docs = ds.documents()
    ce = CrossEncoder(args.model, activation="none", num_threads=args.threads)
    pairs, labels, owner = [], [], []
    for qi, qid in enumerate(qids):
        rel = ds.qrels.get(qid, {})
        for d in hits.ids[qi].tolist():
            pairs.append((ds.queries[qid], docs[d]))
            labels.append(int(rel.get(ds.doc_ids[d], 0) > 0))
            owner.append(qi)
    logits = np.asarray(ce.predict(pairs), dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(args.seed)
    n_hold = max(1, min(len(qids) - 1, round(args.holdout * len(qids))))
    held = np.zeros(len(qids), dtype=bool)
    held[rng.permutation(len(qids))[:n_hold]] = True
    is_held = held[np.asarray(owner)]
    cal = Calibrator.fit(logits[~is_held], y[~is_held], method=args.method)
    report = {
        "model": str(args.model),
        "dataset": str(args.dataset),
        "method": cal.method,
        "a": cal.a,
        "b": cal.b,
        "pairs_fit": int((~is_held).sum()),
        "pairs_held_out": int(is_held.sum()),
        "positives_held_out": int(y[is_held].sum()),
        "held_out_log_loss_before": log_loss(logits[is_held], y[is_held]) if is_held.any() else None,
        "held_out_log_loss_after": log_loss(logits[is_held], y[is_held], a=cal.a, b=cal.b)
        if is_held.any() and y[is_held].size
        else None,
        "output": str(output),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    cal.save(output)
    print(json.dumps(report, indent=2))
    print(f"calibration saved to {output}", file=sys.stderr)
    return 0
