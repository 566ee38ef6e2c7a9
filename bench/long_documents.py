"""NDCG@10 of max-over-windows against plain truncation, all-MiniLM-L6-v2 as the window scorer.

Reranks BM25 top-100 candidates with :class:`crossrank.rerank.dense.DenseReranker`:

* ``bm25``: the first stage alone;
* ``truncate@256`` (``--with-full``): the reranker as it ships (the model reads the first 256 tokens);
* ``first``: plain truncation to the first window (``window_size`` tokens);
* ``max`` / ``mean`` / ``topk_mean`` (k=3): windows of ``window_size`` tokens every ``window_stride``
  tokens, aggregated per document. All window rows come from one pass of per-window scores.

SciFact: BM25 from ``crossrank.BM25Index`` (lucene, k1=0.9, b=0.4) over title + text. TREC DL19/DL20
passage: the ``runs/bm25_top100.trec`` candidate lists shipped with the data sets; nDCG@10 over all
grades. Usage::

    PYTHONPATH=python python bench/long_documents.py --datasets /work/shared/datasets \\
        --model /work/shared/models/all-MiniLM-L6-v2 [--only scifact,dl19,dl20] [--window 128 --stride 64] \\
        [--k 100] [--max-queries N] [--with-full] [--precision fp32|auto]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from crossrank import BM25Index, evaluate
from crossrank.eval.datasets import load_beir, read_qrels, read_queries
from crossrank.eval.trec import read_run
from crossrank.models.embedder import Embedder
from crossrank.rerank.dense import DenseReranker
from crossrank.text.windows import aggregate_windows

MODES = ("first", "max", "mean", "topk_mean")


def scifact_candidates(
    root: Path, k: int, max_queries: int | None
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str], dict]:
    ds = load_beir(root)
    texts = ds.documents()
    index = BM25Index.build(texts, ids=ds.doc_ids, variant="lucene", k1=0.9, b=0.4)
    qids = sorted(ds.queries, key=lambda q: (len(q), q))[:max_queries]
    ds.qrels = {q: ds.qrels[q] for q in qids}
    res = index.search([ds.queries[q] for q in qids], k=k)
    cands = {q: [str(d) for d in res.ids[i]] for i, q in enumerate(qids)}
    bm25 = {
        q: {str(d): float(s) for d, s in zip(res.ids[i], res.scores[i], strict=True)}
        for i, q in enumerate(qids)
    }
    corpus = dict(zip(ds.doc_ids, texts, strict=True))
    return ds.queries, cands, corpus, {"bm25": bm25, "qrels": ds.qrels}


def trec_candidates(
    root: Path, k: int, max_queries: int | None
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str], dict]:
    queries = read_queries(root / "queries.jsonl")
    qrels = read_qrels(root / "qrels" / "test.tsv")
    run = read_run(root / "runs" / "bm25_top100.trec")
    judged = sorted((q for q in run if q in qrels), key=lambda q: (len(q), q))[:max_queries]
    cands = {q: sorted(run[q], key=lambda d: -run[q][d])[:k] for q in judged}
    qrels = {q: qrels[q] for q in judged}
    need = {d for ds in cands.values() for d in ds}
    corpus: dict[str, str] = {}
    with open(root / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["_id"] in need:
                title, text = row.get("title") or "", row.get("text") or ""
                corpus[row["_id"]] = f"{title} {text}" if title and text else title or text
    bm25 = {q: {d: run[q][d] for d in cands[q]} for q in cands}
    return {q: queries[q] for q in cands}, cands, corpus, {"bm25": bm25, "qrels": qrels}


def rerank(
    name: str,
    queries: dict,
    cands: dict,
    corpus: dict,
    extra: dict,
    embedder: Embedder,
    window: int,
    stride: int,
    full: bool,
) -> dict[str, float]:
    truncating = DenseReranker(embedder)
    windowed = DenseReranker(embedder, window_size=window, window_stride=stride)
    runs: dict[str, dict[str, dict[str, float]]] = {
        m: {} for m in (("truncate@256",) if full else ()) + MODES
    }
    n_windows = n_docs = 0
    t0 = time.perf_counter()
    for q, docs in cands.items():
        texts = [corpus[d] for d in docs]
        if full:
            plain = truncating.score(queries[q], texts)
            runs["truncate@256"][q] = dict(zip(docs, plain.scores.tolist(), strict=True))
        ws = windowed.score_windows(queries[q], texts)
        n_windows += len(ws.window_scores)
        n_docs += len(docs)
        for m in MODES:
            agg, _ = aggregate_windows(ws.window_scores, ws.window_offsets, m, 3)  # type: ignore[arg-type]
            runs[m][q] = dict(zip(docs, agg.tolist(), strict=True))
    elapsed = time.perf_counter() - t0
    out = {"bm25": evaluate(extra["bm25"], extra["qrels"], ["nDCG@10"]).aggregate["nDCG@10"]}
    for m, run in runs.items():
        out[m] = evaluate(run, extra["qrels"], ["nDCG@10"]).aggregate["nDCG@10"]
    print(
        f"{name}: {len(cands)} queries, {n_docs} candidates, {n_windows / max(n_docs, 1):.2f} windows/candidate "
        f"(window {window}, stride {stride}), {elapsed:.0f} s"
    )
    for m, v in out.items():
        print(f"  {m:>13}: nDCG@10 = {v:.4f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=Path("/work/shared/datasets"))
    ap.add_argument("--model", type=Path, default=Path("/work/shared/models/all-MiniLM-L6-v2"))
    ap.add_argument("--only", default="scifact,dl19,dl20")
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--stride", type=int, default=64)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--max-queries", type=int, default=None, help="first N judged queries (by id)")
    ap.add_argument("--with-full", action="store_true", help="add the reranker as shipped (256 tokens)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    embedder = Embedder(args.model, precision=args.precision, num_threads=args.threads)
    loaders = {
        "scifact": lambda: scifact_candidates(args.datasets / "scifact", args.k, args.max_queries),
        "dl19": lambda: trec_candidates(args.datasets / "trec-dl19-passage-rerank", args.k, args.max_queries),
        "dl20": lambda: trec_candidates(args.datasets / "trec-dl20-passage-rerank", args.k, args.max_queries),
    }
    for name in args.only.split(","):
        queries, cands, corpus, extra = loaders[name]()
        rerank(name, queries, cands, corpus, extra, embedder, args.window, args.stride, args.with_full)


if __name__ == "__main__":
    main()
