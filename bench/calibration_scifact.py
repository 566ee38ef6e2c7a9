"""Held-out log-loss before and after calibration on SciFact (issue 7, "Calibration").

Pairs: for every judged test query, the top ``--depth`` SciFact documents by the scorer, labelled 1 when
the qrels mark them relevant. Queries are split in two halves (seeded): temperature and Platt scaling are
fitted on one half and the mean log-loss of ``sigmoid(score)`` (before) and of the calibrated probability
(after) is measured on the other.

Scorer: all-MiniLM-L6-v2 (ONNX, mean pooling, cosine) -- the only trained relevance model available
offline here; no trained cross-encoder checkpoint is (see shared/models/README.md). A cosine is not a
logit, so "before" (``sigmoid(cosine)``) is badly calibrated by construction; swap in a cross-encoder's
logits when one is available (``scores_fn``).

    PYTHONPATH=python python bench/calibration_scifact.py --dataset ../shared/datasets/scifact \
        --model ../shared/models/all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from crossrank.eval.datasets import load_beir
from crossrank.rerank.calibration import Calibrator, log_loss


def embed(texts: list[str], model_dir: Path, *, batch: int = 64, max_len: int = 256) -> np.ndarray:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings, float32 (n, 384)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(
        str(model_dir / "onnx" / "model.onnx"), opts, providers=["CPUExecutionProvider"]
    )
    encs = tok.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encs], kind="stable")  # sort by token length: little padding
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for s in range(0, len(texts), batch):
        idx = order[s : s + batch]
        width = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : len(encs[i].ids)] = encs[i].ids
            mask[r, : len(encs[i].ids)] = 1
        hidden = sess.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--cache", type=Path, help="an .npz keeping the query x document scores between runs")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ds = load_beir(args.dataset, split="test")
    qids = sorted(ds.queries)
    if args.cache and args.cache.exists():
        sims = np.load(args.cache)["sims"]
    else:
        doc_emb = embed(ds.documents(), args.model)
        q_emb = embed([ds.queries[q] for q in qids], args.model)
        sims = q_emb @ doc_emb.T
        if args.cache:
            np.savez(args.cache, sims=sims)
    top = np.argsort(-sims, axis=1, kind="stable")[:, : args.depth]
    rng = np.random.default_rng(args.seed)
    fit_half = set(rng.permutation(len(qids))[: len(qids) // 2].tolist())
    parts: dict[str, tuple[list[float], list[int]]] = {"fit": ([], []), "held_out": ([], [])}
    for qi, qid in enumerate(qids):
        x, y = parts["fit" if qi in fit_half else "held_out"]
        rel = ds.qrels.get(qid, {})
        for d in top[qi]:
            x.append(float(sims[qi, d]))
            y.append(int(rel.get(ds.doc_ids[d], 0) > 0))
    xf, yf = np.array(parts["fit"][0]), np.array(parts["fit"][1])
    xh, yh = np.array(parts["held_out"][0]), np.array(parts["held_out"][1])
    report: dict[str, object] = {
        "scorer": "all-MiniLM-L6-v2 cosine (bi-encoder stand-in)",
        "depth": args.depth,
        "pairs_fit": int(xf.size),
        "pairs_held_out": int(xh.size),
        "positives_held_out": int(yh.sum()),
        "held_out_log_loss_before": log_loss(xh, yh),
        # a constant predictor at the fitting half's positive rate: what calibration must beat to be useful
        "held_out_log_loss_base_rate": log_loss(
            np.zeros_like(xh), yh, b=float(np.log(yf.mean() / (1 - yf.mean())))
        ),
    }
    for method in ("temperature", "platt"):
        try:
            cal = Calibrator.fit(xf, yf, method=method)  # type: ignore[arg-type]
        except ValueError as e:  # temperature scaling cannot fit uncentred scores such as cosines
            report[f"held_out_log_loss_{method}"] = f"not applicable: {e}"
            continue
        report[f"{method}_a"] = cal.a
        report[f"{method}_b"] = cal.b
        report[f"held_out_log_loss_{method}"] = log_loss(xh, yh, a=cal.a, b=cal.b)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
