"""`crossrank rerank-run`: rerank a TREC run (or parquet pairs), in process or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rerank-run",
        help="rerank a first-stage TREC run with any reranker (in process, or on Ray with --ray)",
        description="Rerank each query's top --depth candidates of RUN (a TREC run, or a .parquet table with "
        "columns qid, docid and optionally score or rank) using the texts in DATASET_DIR (a BEIR folder: "
        "corpus.jsonl, queries.jsonl), and write the reranked run to -o (TREC, or parquet with scores and "
        "truncation flags when it ends in .parquet). Finished chunks are kept in OUT.parts/: after a crash "
        "the same command resumes where it stopped. With --ray ADDRESS the chunks are scored by a Ray Data "
        "actor pool (one model load per actor); the results equal the in-process ones.",
    )
    p.add_argument("run", metavar="RUN", help="first-stage run: RUN.trec or RUN.parquet")
    p.add_argument("dataset", metavar="DATASET_DIR", help="BEIR folder with corpus.jsonl and queries.jsonl")
    p.add_argument(
        "--reranker", required=True, help="reranker spec: MODEL, dense:MODEL, colbert:MODEL, llm:URL@MODEL"
    )
    p.add_argument("-o", "--out", required=True, help="output: a TREC run, or .parquet")
    p.add_argument("--depth", type=int, default=100, help="candidates reranked per query (default 100)")
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: HOST:PORT of a cluster head, ray://HOST:PORT, 'auto', or 'local' (start one here)",
    )
    p.add_argument("--actors", type=int, default=1, help="Ray Data actor pool size (with --ray; default 1)")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs per actor = its inference threads")
    p.add_argument("--chunk-queries", type=int, default=8, help="queries per chunk (unit of resumption)")
    p.add_argument(
        "--threads", type=int, default=None, help="inference threads in process (default: CPU quota)"
    )
    p.add_argument(
        "--precision", default=None, choices=["auto", "fp32", "bf16", "fp16", "int8"], help="model precision"
    )
    p.add_argument(
        "--max-length", type=int, default=None, help="model token limit (per pair for a cross-encoder)"
    )
    p.add_argument("--format", dest="fmt", default=None, choices=["trec", "parquet"], help="default: from -o")
    p.add_argument("--tag", default="crossrank", help="run name in the TREC output's last column")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..ray.rerank_run import rerank_run

    if args.depth < 1:
        raise ValueError(f"--depth must be >= 1, got {args.depth}")
    options: dict[str, Any] = {}
    if args.precision is not None:
        options["precision"] = args.precision
    if args.max_length is not None:
        options["max_length"] = args.max_length
    try:
        rerank_run(
            args.run,
            args.dataset,
            args.reranker,
            args.out,
            depth=args.depth,
            address=args.ray,
            actors=args.actors,
            cpus_per_actor=args.cpus_per_actor,
            chunk_queries=args.chunk_queries,
            num_threads=args.threads,
            options=options,
            fmt=args.fmt,
            tag=args.tag,
        )
    except (ValueError, FileNotFoundError, ImportError):
        raise
    except Exception as exc:  # a worker died, the cluster went away...: finished chunks are kept
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"crossrank rerank-run: error: stopped ({type(exc).__name__}: {first}); finished chunks are kept in "
            f"{args.out}.parts: run the same command again to resume",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    from ..cli import main

    sys.exit(main(["rerank-run", *sys.argv[1:]]))
