"""`crossrank search INDEX_DIR "query" -k 10`: query a saved BM25 index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search a saved BM25 index",
        description="Print the top-k documents of each query: a table, or JSON with --json.",
    )
    p.add_argument("index", type=Path, metavar="INDEX_DIR", help="a directory written by `crossrank index`")
    p.add_argument("queries", nargs="+", metavar="QUERY", help="one or more query texts")
    p.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON: [{query, results: [{id, score}]}]")
    p.add_argument("--threads", type=int, default=None, help="threads (default: the CPU quota)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import StateError
    from ..retrieve.bm25 import BM25Index

    try:
        index = BM25Index.load(args.index)
    except StateError as exc:
        print(f"crossrank search: error: {exc}", file=sys.stderr)
        return 2
    res = index.search(args.queries, k=args.k, num_threads=args.threads)
    if args.json:
        out = [
            {
                "query": q,
                "results": [
                    {"id": i.item() if hasattr(i, "item") else i, "score": float(s)}
                    for i, s in zip(res.ids[row], res.scores[row], strict=True)
                ],
            }
            for row, q in enumerate(args.queries)
        ]
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    for row, q in enumerate(args.queries):
        print(f"# {q}")
        for rank, (i, s) in enumerate(zip(res.ids[row], res.scores[row], strict=True), 1):
            print(f"{rank:>4}  {float(s):10.4f}  {i}")
    return 0
