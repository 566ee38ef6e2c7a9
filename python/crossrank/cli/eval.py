"""`crossrank eval DATASET`: the NDCG@10 / latency table of BM25, dense, hybrid and reranked pipelines.

Full-retrieval datasets (BEIR folders) get the rows BM25, Dense (with ``--dense``), Hybrid (RRF)
(with ``--dense``), Hybrid + <reranker> and Hybrid + <reranker> (fused) (with ``--reranker``; the
reranked list RRF-fused with the first stage's, as ``Pipeline(rerank_fusion="rrf")`` ranks it, computed
from the two measured rows; ``--rerank-fusion none`` leaves it out). Rows are named by
the reranker's kind: cross-encoder, dense rerank, ColBERT, LLM. Re-ranking-only datasets (a ``runs/``
folder, like TREC DL) rerank a given first-stage run instead of retrieving (the only run there, else
``--run``, default bm25_top100): rows "<run> (given run)", <run> + dense rerank (with ``--dense``),
<run> + <reranker> (with ``--reranker``), one row per distinct pipeline; binary measures count grade
>= 2 there when the qrels are graded (``trec_eval -l 2``, as TREC DL reports them).

Latency is measured per query (``Pipeline.search`` one query at a time) and excludes indexing,
which is reported separately; rows with a reranker also report the rerank pairs/s reached. Outputs
in ``--out``: ``runs/<row>.trec``, ``report.json`` and ``ndcg_vs_latency.png`` (needs matplotlib:
``pip install "crossrank[plot]"``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .eval_plot import save_plot
from .eval_rows import (
    PlannedRow,
    Run,
    dedupe,
    fuse_runs,
    model_key,
    model_label,
    model_root,
    pairs_per_second,
    pick_run,
    reranker_kind,
    same_model,
    same_model_note,
    trained_model_note,
    trained_recipe,
)

MEASURES = ["nDCG@10", "R@100", "RR@10"]
HEADERS = [
    "Method",
    "NDCG@10",
    "Recall@100",
    "MRR@10",
    "Latency mean (ms)",
    "Latency p95 (ms)",
    "Rerank pairs/s",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate BM25 / dense / hybrid / reranked pipelines on a BEIR dataset",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("dataset", help="BEIR folder, .zip file, or download URL of one")
    p.add_argument(
        "--dense", metavar="MODEL", help="bi-encoder for the Dense and Hybrid rows (folder or hub id)"
    )
    p.add_argument(
        "--reranker",
        metavar="MODEL",
        help="second stage: a cross-encoder, 'dense:MODEL' (bi-encoder rescoring) or 'llm:BASE_URL@MODEL'",
    )
    p.add_argument("--depth", type=int, default=100, help="candidates per retriever / reranked (default 100)")
    p.add_argument(
        "--rerank-depth",
        type=int,
        default=None,
        metavar="N",
        help="rerank only each query's first N candidates; the rest keep their first-stage order below "
        "them (Pipeline's rerank_depth; default: all --depth). The rows say 'top N'",
    )
    p.add_argument(
        "--fusion", default="rrf", choices=["rrf", "minmax", "zscore", "sum"], help="hybrid fusion"
    )
    p.add_argument("--weights", type=float, nargs=2, metavar=("BM25", "DENSE"), help="fusion weights")
    p.add_argument(
        "--rerank-fusion",
        default="rrf",
        choices=["rrf", "none"],
        help="also report each rerank row RRF-fused with its first stage (Pipeline's rerank_fusion), "
        "as a '(fused)' row (default rrf; none: no fused rows)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default ./crossrank-eval-<dataset>)"
    )
    p.add_argument("--max-queries", type=int, default=None, help="evaluate only the first N judged queries")
    p.add_argument("--split", default="test", help="qrels split (default test)")
    p.add_argument(
        "--run",
        default=None,
        help="re-ranking datasets: which runs/<RUN>.trec to rerank (default: the only run there, "
        "else bm25_top100)",
    )
    p.add_argument("--k1", type=float, default=0.9, help="BM25 k1 (default 0.9, Anserini's BEIR setting)")
    p.add_argument("--b", type=float, default=0.4, help="BM25 b (default 0.4)")
    p.add_argument("--rel-threshold", type=int, default=None, help="relevance grade for binary measures")
    p.add_argument("--precision", default="auto", help="model precision: auto, fp32, bf16, int8")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: CPU quota)")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached corpus embeddings")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.set_defaults(func=run)


def _log(msg: str) -> None:
    print(f"[crossrank eval] {msg}", file=sys.stderr, flush=True)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class _RunRetriever:
    """Serve a fixed first-stage run as a retriever (query text -> the run's candidates)."""

    def __init__(self, run: dict[str, dict[str, float]], queries: dict[str, str]) -> None:
        from ..eval.evaluate import rank_documents

        self._by_text = {text: qid for qid, text in queries.items()}
        self._ranked = {qid: rank_documents(docs) for qid, docs in run.items()}
        self._run = run

    def search(self, queries: Sequence[str], k: int = 100) -> Any:
        from ..retrieve.fusion import FusedResults

        k = min(k, max((len(r) for r in self._ranked.values()), default=0))  # never wider than the run
        ids = np.full((len(queries), k), None, dtype=object)
        scores = np.full((len(queries), k), -np.inf)
        for r, q in enumerate(queries):
            qid = self._by_text.get(q)
            ranked = self._ranked.get(qid, []) if qid is not None else []
            for c, d in enumerate(ranked[:k]):
                ids[r, c], scores[r, c] = d, self._run[qid][d]  # type: ignore[index]
        return FusedResults(ids, scores)


def _embedder(model: str, args: argparse.Namespace, embedders: dict[str, Any]) -> Any:
    """One Embedder per model (``../x`` and ``/abs/x`` share one)."""
    from ..models.embedder import Embedder

    key = model_key(model)
    if key not in embedders:
        embedders[key] = Embedder(model, precision=args.precision, num_threads=args.threads)
    return embedders[key]


def load_reranker(spec: str, args: argparse.Namespace, embedders: dict[str, Any]) -> Any:
    """Turn ``--reranker`` into a reranker (:func:`crossrank.rerank.spec.load_reranker` reads the spec).

    A ``dense:`` reranker shares its :class:`~crossrank.Embedder` with the Dense stage when both name
    one model, so the corpus is embedded once.
    """
    from ..rerank.spec import load_reranker as load_spec
    from ..rerank.spec import parse_reranker_spec

    kind, target = parse_reranker_spec(spec)
    if kind == "dense":
        from ..rerank.dense import DenseReranker

        return DenseReranker(_embedder(target, args, embedders))
    if kind == "llm":
        return load_spec(spec)  # no local model: precision and threads do not apply
    return load_spec(spec, precision=args.precision, num_threads=args.threads)


def _model_digest(files: Any) -> str:
    """SHA-256 of what decides a model's vectors: the ONNX graph, its external data, the tokenizer.

    Content, not path and mtime: embedding a corpus takes minutes and hashing ~100 MB a fraction of a
    second, and a model folder that is copied, re-downloaded or re-provisioned keeps its vectors.
    """
    from .._common import sha256_bytes, sha256_file

    onnx = Path(files.onnx_path)
    paths = [onnx, *sorted(p for p in onnx.parent.glob(onnx.name + "*") if p != onnx and p.is_file())]
    paths.append(Path(files.tokenizer_path))
    return sha256_bytes("".join(f"{path.name}:{sha256_file(path)}\n" for path in paths).encode())


def _corpus_vectors(emb: Any, texts: list[str], use_cache: bool) -> tuple[np.ndarray, float, bool]:
    """Embed the corpus, reusing a cached copy keyed by model content, precision, pooling and texts."""
    from ..models.hub import cache_dir

    t0 = time.perf_counter()
    if not use_cache:
        return emb.encode_documents(texts, show_progress=True), time.perf_counter() - t0, False
    h = hashlib.sha256()
    h.update(f"{_model_digest(emb.files)}|{emb.session.precision}|{emb.session.name}".encode())
    h.update(f"{emb.pooling}|{emb.normalize}|{emb.max_length}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    path = cache_dir() / "embeddings" / f"{h.hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            vecs = np.load(path)
        except (OSError, ValueError):  # a damaged file is recomputed, not trusted
            vecs = None
        if vecs is not None and vecs.shape[0] == len(texts):
            return vecs, time.perf_counter() - t0, True
    vecs = emb.encode_documents(texts, show_progress=True)
    elapsed = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(path)
    return vecs, elapsed, False


def _measure(
    name: str, pipe: Any, queries: dict[str, str]
) -> tuple[Run, np.ndarray, dict[str, float] | None]:
    """Run the pipeline one query at a time; return the run, per-query latencies (s) and rerank pairs/s."""
    from tqdm.auto import tqdm

    run: Run = {}
    lat = np.zeros(len(queries))
    pairs, rerank_s = 0, 0.0
    for i, (qid, text) in enumerate(tqdm(list(queries.items()), desc=name, unit="q", leave=False)):
        res = pipe.search(text)
        lat[i] = res.timings["total"]
        if "rerank" in res.timings:
            pairs += res.candidates
            rerank_s += res.timings["rerank"]
        scores = np.asarray(res.scores, dtype=np.float64)
        run[qid] = dict(zip(map(str, res.ids), scores.tolist(), strict=True))
    return run, lat, pairs_per_second(pairs, rerank_s) if pipe.reranker is not None else None


def _print_table(rows: list[dict[str, Any]]) -> None:
    def fmt(v: float | None, scale: float = 1.0, digits: int = 4) -> str:
        return "—" if v is None else f"{v * scale:.{digits}f}"

    lines = [HEADERS]
    for r in rows:
        m = r["metrics"]
        lat = r["latency_ms"]
        lines.append(
            [
                r["name"],
                fmt(m["nDCG@10"]),
                fmt(m["R@100"]),
                fmt(m["RR@10"]),
                fmt(lat["mean"], digits=1) if lat else "—",
                fmt(lat["p95"], digits=1) if lat else "—",
                f"{r['rerank']['pairs_per_s']:.0f}" if r.get("rerank") else "—",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = []
    for j, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(line)) + " |")
        if j == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\n".join(out))


def _latency(lat: np.ndarray) -> dict[str, float]:
    return {"mean": float(lat.mean() * 1e3), "p95": float(np.percentile(lat, 95) * 1e3)}


def _plan_rerank_only(
    root: Path,
    args: argparse.Namespace,
    queries: dict[str, str],
    doc_text: dict[Hashable, str],
    rerankers: list[tuple[Any, str]],
) -> tuple[list[PlannedRow], str]:
    """Rows of a re-ranking-only set: the given run, then each reranker on it."""
    from ..eval.trec import read_run
    from ..pipeline import Pipeline

    run_path, why = pick_run(root / "runs", args.run)
    _log(why)
    first = _RunRetriever(read_run(run_path), queries)
    label = run_path.stem  # as on disk: "bm25_top20", not "BM25_TOP20"
    given = PlannedRow(
        f"{label} (given run)", ("run", label), label, Pipeline([first], depth=args.depth, top_k=args.depth)
    )
    rows = [given]
    for rr, spec in rerankers:
        kind = reranker_kind(rr)
        rows.append(
            PlannedRow(
                f"{label}{_top(args)} + {kind}",
                ("run", label, kind, str(model_root(rr) or spec)),
                model_label(spec),
                Pipeline(
                    [first],
                    documents=doc_text,
                    reranker=rr,
                    depth=args.depth,
                    top_k=args.depth,
                    rerank_depth=args.rerank_depth,
                ),
                reranker=rr,
                first=given,
                rerank_only=True,
            )
        )
    return rows, run_path.stem


def _top(args: argparse.Namespace) -> str:
    """`` top N`` in a rerank row's name when only the first N candidates are reranked."""
    n = args.rerank_depth
    return "" if n is None or n >= args.depth else f" top {n}"


def run(args: argparse.Namespace) -> int:
    from .. import BM25Index
    from ..eval.datasets import fetch_dataset, load_beir
    from ..eval.evaluate import evaluate
    from ..eval.trec import write_run
    from ..pipeline import Pipeline
    from ..rerank.dense import DenseReranker
    from ..retrieve.dense import DenseRetriever
    from ._output import check_output_dir

    if args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    if args.rerank_depth is not None:
        if not 1 <= args.rerank_depth <= args.depth:
            raise ValueError(f"--rerank-depth must be in 1..--depth ({args.depth}), got {args.rerank_depth}")
        if args.reranker is None:
            raise ValueError(
                "--rerank-depth needs --reranker (it says how many candidates the reranker scores)"
            )
    if args.max_queries is not None and args.max_queries < 1:
        raise ValueError(f"--max-queries must be >= 1, got {args.max_queries}")
    if args.reranker is not None:
        from ..rerank.spec import parse_reranker_spec

        parse_reranker_spec(args.reranker)  # a malformed spec fails before any work
    if args.out is not None:
        check_output_dir(args.out, "--out")  # a bad output path fails before any work
    t_all = time.perf_counter()
    root = fetch_dataset(args.dataset)
    ds = load_beir(root, split=args.split)
    if not ds.qrels:
        raise ValueError(f"{root} has no qrels/{args.split}.tsv: nothing to evaluate against")
    queries = dict(list(ds.queries.items())[: args.max_queries] if args.max_queries else ds.queries.items())
    if not queries:
        raise ValueError(
            f"{root}: no judged queries found (do queries.jsonl ids match qrels/{args.split}.tsv?)"
        )
    qrels = {q: ds.qrels[q] for q in queries}
    rerank_only = (root / "runs").is_dir()
    graded = max((g for j in qrels.values() for g in j.values()), default=1) > 1
    rel = args.rel_threshold if args.rel_threshold is not None else (2 if rerank_only and graded else 1)
    out = args.out or check_output_dir(Path(f"crossrank-eval-{root.name}"), "--out")
    texts = ds.documents()
    doc_text: dict[Hashable, str] = dict(zip(ds.doc_ids, texts, strict=True))
    _log(f"{root.name}: {len(ds.doc_ids)} documents, {len(queries)} queries, binary relevance >= {rel}")

    index_s: dict[str, float] = {}
    embedders: dict[str, Any] = {}
    emb = _embedder(args.dense, args, embedders) if args.dense else None
    reranker = load_reranker(args.reranker, args, embedders) if args.reranker else None
    notes: list[str] = []
    given_run: str | None = None
    planned: list[PlannedRow]

    if rerank_only:
        rerankers: list[tuple[Any, str]] = []
        if emb is not None:
            rerankers.append((DenseReranker(emb), f"dense:{args.dense}"))
        if reranker is not None:
            rerankers.append((reranker, args.reranker))
        planned, given_run = _plan_rerank_only(root, args, queries, doc_text, rerankers)
    else:
        t0 = time.perf_counter()
        bm25 = BM25Index.build(texts, ids=ds.doc_ids, k1=args.k1, b=args.b, num_threads=args.threads)
        index_s["BM25"] = time.perf_counter() - t0
        _log(f"BM25 index built in {index_s['BM25']:.1f} s")
        first_row = PlannedRow(
            "BM25", ("bm25",), "BM25", Pipeline([bm25], depth=args.depth, top_k=args.depth)
        )
        planned = [first_row]
        first_stage: list[Any] = [bm25]
        weights = list(args.weights) if args.weights else None
        if emb is not None:
            vecs, secs, cached = _corpus_vectors(emb, texts, not args.no_cache)
            index_s["Dense"] = secs
            _log(
                f"corpus embedded in {secs:.1f} s"
                + (" (cached)" if cached else f" ({len(texts) / secs:.0f} docs/s)")
            )
            dense = DenseRetriever.build(emb, texts, ds.doc_ids, vectors=vecs)
            planned.append(
                PlannedRow(
                    "Dense", ("dense",), "Dense", Pipeline([dense], depth=args.depth, top_k=args.depth)
                )
            )
            name = "Hybrid (RRF)" if args.fusion == "rrf" else f"Hybrid ({args.fusion})"
            first_row = PlannedRow(
                name,
                ("hybrid",),
                name,
                Pipeline(
                    [bm25, dense], fusion=args.fusion, weights=weights, depth=args.depth, top_k=args.depth
                ),
            )
            planned.append(first_row)
            first_stage = [bm25, dense]
            if isinstance(reranker, DenseReranker) and reranker.embedder is emb:
                reranker.add_to_cache(texts, vecs)  # the corpus is embedded already
            if reranker is not None and same_model(emb, reranker):
                notes.append(same_model_note(args.dense, args.reranker))
        if reranker is not None:
            trained = trained_model_note(reranker, args.reranker)
            if trained:
                notes.append(trained)
            base = "Hybrid" if len(first_stage) > 1 else "BM25"
            kind = reranker_kind(reranker)
            recipe = trained_recipe(reranker)  # the table itself says when a shortened recipe made the model
            planned.append(
                PlannedRow(
                    f"{base}{_top(args)} + {kind}" + (f" [{recipe} recipe]" if recipe else ""),
                    (base, kind),
                    kind,
                    Pipeline(
                        first_stage,
                        fusion=args.fusion,
                        weights=weights if len(first_stage) > 1 else None,
                        documents=doc_text,
                        reranker=reranker,
                        depth=args.depth,
                        top_k=args.depth,
                        rerank_depth=args.rerank_depth,
                    ),
                    reranker=reranker,
                    first=first_row,
                )
            )
    planned = dedupe(planned)

    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    runs: dict[int, Run] = {}

    def add_row(name: str, run_: Run, lat: np.ndarray | None, started: float, **extra: Any) -> None:
        ev = evaluate(run_, qrels, MEASURES, rel_threshold=rel)
        write_run(run_, out / "runs" / f"{_slug(name)}.trec", tag=_slug(name)[:40] or "crossrank")
        rows.append(
            {
                "name": name,
                "metrics": ev.aggregate,
                "latency_ms": None if lat is None else _latency(lat),
                "index_s": index_s.get(name.split(" ")[0]),
                "per_query": {"nDCG@10": ev.per_query["nDCG@10"]},
                "wall_s": time.perf_counter() - started,
                **extra,
            }
        )
        _log(f"{name}: NDCG@10 {ev.aggregate['nDCG@10']:.4f} ({time.perf_counter() - started:.1f} s)")

    for row in planned:
        t0 = time.perf_counter()
        run_, lat, rerank = _measure(row.name, row.pipeline, queries)
        runs[id(row)] = run_
        rr_kind = reranker_kind(row.reranker) if row.reranker is not None else None
        given = row.reranker is None and rerank_only
        extra = {"reranker": rr_kind, "rerank": rerank, "rerank_only": row.rerank_only}
        add_row(row.name, run_, None if given else lat, t0, **extra)
        if row.first is not None and args.rerank_fusion != "none":
            t0 = time.perf_counter()
            fused, fuse_s = fuse_runs(run_, runs[id(row.first)], depth=args.depth)
            add_row(
                row.name + " (fused)", fused, lat + fuse_s, t0, fused_from=[row.name, row.first.name], **extra
            )

    print()
    _print_table(rows)
    for note in notes:
        print(note)
    total = time.perf_counter() - t_all
    report = {
        "dataset": str(root),
        "split": args.split,
        "documents": len(ds.doc_ids),
        "queries": len(queries),
        "rel_threshold": rel,
        "rerank_only": rerank_only,
        "run": given_run,
        "depth": args.depth,
        "dense": args.dense,
        "reranker": args.reranker,
        "fusion": args.fusion,
        "rerank_fusion": args.rerank_fusion,
        "rerank_depth": args.rerank_depth,
        "bm25": {"k1": args.k1, "b": args.b},
        "index_s": index_s,
        "rows": rows,
        "notes": notes,
        "total_s": total,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plotted = False
    if not args.no_plot:
        plotted = save_plot(rows, out / "ndcg_vs_latency.png", f"{root.name}: NDCG@10 vs latency")
        if not plotted:
            _log('no plot: matplotlib is missing (pip install "crossrank[plot]")')
    print(
        f"\nwrote {out / 'report.json'}, {out / 'runs'}/"
        + (f", {out / 'ndcg_vs_latency.png'}" if plotted else "")
    )
    print(f"total {total:.1f} s")
    return 0
