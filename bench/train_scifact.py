"""Issue 11's quality check: train a cross-encoder on SciFact's train split, evaluate on its test split.

Trains with ``crossrank.train.train`` (recipe ``scifact`` = the study's settings, or ``quick``; flags
override them), unless ``--model`` names an already trained folder. Then, on the 300 SciFact test queries
(never used for training or selection), with crossrank's own first stages, fusion and evaluation:

* BM25 (Lucene, k1=0.9, b=0.4), Dense (all-MiniLM-L6-v2) and Hybrid = RRF(BM25, Dense), each top
  ``--depth``, built with ``crossrank.Pipeline`` exactly as ``crossrank eval`` builds its rows;
* CE reranking BM25 top ``--depth`` and Hybrid top ``--depth`` (``crossrank.CrossEncoder`` on the
  exported ONNX graph; each (query, document) pair is scored once and shared by both rows);
* Hybrid + CE fused = RRF(CE on Hybrid, Hybrid) (``crossrank.cli.eval_rows.fuse_runs``, as ``crossrank
  eval`` fuses);
* a paired bootstrap (10,000 resamples of the queries) of fused minus hybrid NDCG@10, with its 95%
  interval.

``--bm25-only`` keeps the BM25 rows alone (no corpus embedding, no Dense / Hybrid / fused rows).

The CE reranks in tiers of depth (10, 20, 30, 50, up to ``--rerank-depth``), shallow first, each tier
scoring only the pairs the last did not and printing its table when done, so a long run that is stopped
still gives every finished depth; the scores are saved after every chunk (``--json`` + ``--reuse-scores``
resume).

    PYTHONPATH=python python bench/train_scifact.py --recipe quick --out .cache/train-scifact-quick
    PYTHONPATH=python python bench/train_scifact.py --model .cache/train-scifact-quick --depth 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def log(msg: str) -> None:
    print(f"[train_scifact] {msg}", file=sys.stderr, flush=True)


def bootstrap(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of mean(a - b) over queries: mean, 95% percentile interval, P(diff <= 0)."""
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "mean_diff": float(d.mean()),
        "ci95_low": float(lo),
        "ci95_high": float(hi),
        "p_le_0": float((means <= 0).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=str(SHARED / "datasets" / "scifact"))
    p.add_argument("--base", default=str(SHARED / "models" / "all-MiniLM-L6-v2"), help="base checkpoint")
    p.add_argument("--dense", default=str(SHARED / "models" / "all-MiniLM-L6-v2"), help="bi-encoder")
    p.add_argument("--model", help="evaluate this trained folder (skip training)")
    p.add_argument("--out", default=str(REPO / ".cache" / "train-scifact"), help="where training writes")
    p.add_argument("--recipe", default="scifact", choices=["scifact", "quick"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-length", type=int, help="training max_length")
    p.add_argument("--negatives", type=int)
    p.add_argument("--max-queries", type=int)
    p.add_argument("--depth", type=int, default=100, help="candidates per first stage")
    p.add_argument("--rerank-depth", type=int, help="candidates reranked by the CE (default --depth)")
    p.add_argument("--ce-max-length", type=int, help="inference max_length (default: the training one)")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="write the figures here (and the CE scores beside, .scores.json)")
    p.add_argument("--reuse-scores", action="store_true", help="reuse the .scores.json of an earlier run")
    p.add_argument(
        "--bm25-only",
        action="store_true",
        help="only the BM25 first stage and its rerank (no dense stage: ~25%% fewer pairs at depth 100)",
    )
    args = p.parse_args(argv)

    import crossrank
    from crossrank.cli.eval import _corpus_vectors
    from crossrank.cli.eval_rows import fuse_runs
    from crossrank.eval.datasets import load_beir
    from crossrank.eval.evaluate import evaluate

    rd = args.rerank_depth or args.depth
    figures: dict = {"depth": args.depth, "rerank_depth": rd}
    if args.model:
        model = Path(args.model)
    else:
        from crossrank.train import train

        overrides = {
            k: v
            for k, v in {
                "epochs": args.epochs,
                "lr": args.lr,
                "max_length": args.max_length,
                "negatives": args.negatives,
                "max_queries": args.max_queries,
                "threads": args.threads,
            }.items()
            if v is not None
        }
        t0 = time.perf_counter()
        result = train(args.base, args.dataset, args.out, recipe=args.recipe, overwrite=True, **overrides)
        figures["train_wall_seconds"] = time.perf_counter() - t0
        model = result.output
    report = json.loads((model / "training.json").read_text())
    figures["training"] = {
        k: report.get(k)
        for k in (
            "steps",
            "pairs",
            "train_seconds",
            "wall_seconds",
            "pairs_per_second",
            "best_dev",
            "dev_first_stage",
            "best_step",
            "bf16",
            "threads",
        )
    }
    figures["training"]["config"] = report["config"]

    ds = load_beir(args.dataset, split="test")
    qids = list(ds.queries)
    queries = [ds.queries[q] for q in qids]
    texts = ds.documents()
    text_of = dict(zip(ds.doc_ids, texts, strict=True))
    log(f"{len(qids)} test queries, {len(texts)} documents")

    bm25 = crossrank.BM25Index.build(texts, ids=ds.doc_ids, k1=0.9, b=0.4, num_threads=args.threads)
    d = args.depth
    first = {"BM25": crossrank.Pipeline([bm25], depth=d, top_k=d)}
    if not args.bm25_only:
        emb = crossrank.Embedder(args.dense, num_threads=args.threads)
        vecs, secs, cached = _corpus_vectors(emb, texts, True)
        log(f"corpus embedded in {secs:.1f} s{' (cached)' if cached else ''}")
        dense = crossrank.DenseRetriever.build(emb, texts, ds.doc_ids, vectors=vecs)
        first["Dense"] = crossrank.Pipeline([dense], depth=d, top_k=d)
        first["Hybrid (RRF)"] = crossrank.Pipeline([bm25, dense], fusion="rrf", depth=d, top_k=d)
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for name, pipe in first.items():
        res = pipe.search_batch(queries)
        runs[name] = {
            q: {str(i): float(s) for i, s in zip(r.ids, r.scores, strict=True)}
            for q, r in zip(qids, res, strict=True)
        }

    ce_len = args.ce_max_length or int(report["config"]["max_length"])
    ce = crossrank.CrossEncoder(str(model), max_length=ce_len, num_threads=args.threads, activation=None)
    figures["ce_backend"] = repr(ce.backend)
    qtext = dict(zip(qids, queries, strict=True))
    scores: dict[tuple[str, str], float] = {}
    saved = Path(args.json).with_suffix(".scores.json") if args.json else None
    if args.reuse_scores and saved is not None and saved.is_file():
        scores = {(q, doc): v for q, doc, v in json.loads(saved.read_text())}
        log(f"reusing {len(scores)} scores from {saved}")
    scored, ce_secs = 0, 0.0

    def score_missing(pairs: list[tuple[str, str]]) -> None:
        """CE-score the pairs not scored yet, saving after every chunk (a killed run resumes)."""
        nonlocal scored, ce_secs
        todo = [pair for pair in pairs if pair not in scores]
        chunk = 2000
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            t0 = time.perf_counter()
            out = np.asarray(ce.predict([(qtext[q], text_of[doc]) for q, doc in part]), np.float64)
            ce_secs += time.perf_counter() - t0
            scores.update(zip(part, out.reshape(-1).tolist(), strict=True))
            scored += len(part)
            log(f"  {start + len(part)}/{len(todo)} new pairs, {scored / ce_secs:.1f} pairs/s")
            if saved is not None:
                tmp = saved.with_name(saved.name + ".tmp")
                tmp.write_text(json.dumps([[q, doc, v] for (q, doc), v in scores.items()]))
                tmp.replace(saved)

    # Rerank depths in tiers, shallow first: each tier scores only the pairs the last one did not, and
    # its figures are printed as soon as it is done, so a long run gives every finished depth.
    tiers = sorted({t for t in (10, 20, 30, 50, 100) if t < rd} | {rd})
    reranked = tuple(name for name in ("BM25", "Hybrid (RRF)") if name in first)  # --bm25-only: BM25 alone
    figures["reranked_lists"] = list(reranked)
    figures["by_rerank_depth"] = {}
    evals: dict = {}
    for tier in tiers:
        # Pipeline order (best first, its tie-breaks) is the dicts' insertion order.
        top = {name: {q: list(runs[name][q])[:tier] for q in qids} for name in reranked}
        pairs = sorted({(q, doc) for name in top for q in qids for doc in top[name][q]})
        log(
            f"rerank depth {tier}: {len(pairs)} unique pairs ({' and '.join(reranked)}) at max_length {ce_len}"
        )
        score_missing(pairs)
        tier_runs = {name: runs[name] for name in first}
        for base in reranked:
            tier_runs[f"{base} + CE"] = {q: {doc: scores[q, doc] for doc in top[base][q]} for q in qids}
        if "Hybrid (RRF)" in reranked:
            # Fuse over the reranked candidates (as `crossrank eval` does); hybrid ranks below the depth
            # can not reach the top 10 of an RRF of two lists that both hold the top `tier`.
            hybrid_top = {
                q: {doc: runs["Hybrid (RRF)"][q][doc] for doc in top["Hybrid (RRF)"][q]} for q in qids
            }
            tier_runs["Hybrid + CE (fused)"], _ = fuse_runs(
                tier_runs["Hybrid (RRF) + CE"], hybrid_top, depth=tier
            )
        evals = {name: evaluate(run, ds.qrels, ["nDCG@10"]) for name, run in tier_runs.items()}
        per = {
            name: np.array([e.per_query["nDCG@10"].get(q, 0.0) for q in qids]) for name, e in evals.items()
        }
        fig = {
            "ce_pairs": len(pairs),
            "ndcg@10": {name: e.aggregate["nDCG@10"] for name, e in evals.items()},
            "bootstrap_ce_bm25_vs_bm25": bootstrap(per["BM25 + CE"], per["BM25"]),
        }
        if "Hybrid + CE (fused)" in per:
            fig["bootstrap_fused_vs_hybrid"] = bootstrap(per["Hybrid + CE (fused)"], per["Hybrid (RRF)"])
        figures["by_rerank_depth"][tier] = fig
        print(
            f"\nSciFact test, {len(qids)} queries, first-stage depth {d}, CE reranks top {tier}, CE max_length {ce_len}"
        )
        print("| row | NDCG@10 |\n|---|---|")
        for name, v in fig["ndcg@10"].items():
            print(f"| {name} | {v:.4f} |")
        for label, key in (
            ("BM25 + CE - BM25", "bootstrap_ce_bm25_vs_bm25"),
            ("fused - hybrid", "bootstrap_fused_vs_hybrid"),
        ):
            if key in fig:
                b = fig[key]
                print(
                    f"{label}: {b['mean_diff']:+.4f}, 95% CI [{b['ci95_low']:+.4f}, {b['ci95_high']:+.4f}], "
                    f"P(<=0) {b['p_le_0']:.4f}",
                    flush=True,
                )
        if args.json:  # every finished tier is on disk
            Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    figures.update(figures["by_rerank_depth"][rd])
    figures["ce_pairs_scored"] = scored
    figures["ce_pairs_per_second"] = scored / ce_secs if scored else None
    t = figures["training"]
    print(
        f"\ntraining: {t['steps']} steps, {t['pairs']} pairs, {t['train_seconds']:.0f} s in steps, "
        f"{t['wall_seconds']:.0f} s wall, {t['pairs_per_second']:.2f} pairs/s; "
        + (
            f"dev NDCG@10 {t['dev_first_stage']:.4f} -> {t['best_dev']:.4f}"
            if t.get("best_dev") is not None
            else "no dev split"
        )
    )
    if scored:
        print(f"CE scoring: {scored} pairs at {scored / ce_secs:.1f} pairs/s ({figures['ce_backend']})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
