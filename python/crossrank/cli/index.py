"""`crossrank index DATASET_DIR -o INDEX_DIR`: build a BM25 index of a BEIR corpus and save it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build a BM25 index of a BEIR-layout corpus (title + text) and save it",
        description="Index DATASET_DIR/corpus.jsonl (title + ' ' + text per document) with BM25 and save "
        "the index to INDEX_DIR (memory-mappable; open it with BM25Index.load or `crossrank search`).",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="folder with corpus.jsonl (BEIR layout)")
    p.add_argument(
        "-o", "--output", type=Path, required=True, metavar="INDEX_DIR", help="where to save the index"
    )
    p.add_argument(
        "--variant",
        default="lucene",
        choices=["robertson", "lucene", "atire", "bm25l", "bm25+"],
        help="BM25 variant",
    )
    p.add_argument("--k1", type=float, default=1.5, help="term-frequency saturation (default 1.5)")
    p.add_argument("--b", type=float, default=0.75, help="length normalisation in [0, 1] (default 0.75)")
    p.add_argument("--delta", type=float, default=0.5, help="bm25l / bm25+ lower bound (default 0.5)")
    p.add_argument("--no-stem", action="store_true", help="disable the Snowball English stemmer")
    p.add_argument(
        "--stopwords",
        default="english",
        metavar="english|none|FILE",
        help="'english' (default), 'none', or a file with one stopword per line",
    )
    p.add_argument("--no-lowercase", action="store_true", help="keep letter case")
    p.add_argument(
        "--cjk", default="bigram", choices=["bigram", "unigram"], help="CJK/Thai terms (default bigram)"
    )
    p.add_argument("--threads", type=int, default=None, help="threads (default: the CPU quota)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _stopwords(spec: str) -> str | list[str] | None:
    if spec == "english":
        return "english"
    if spec == "none":
        return None
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--stopwords {spec!r}: expected 'english', 'none' or an existing file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"--stopwords {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return [w.strip() for w in text.splitlines() if w.strip()]


def run(args: argparse.Namespace) -> int:
    from ..eval.datasets import doc_text, read_corpus
    from ..retrieve.bm25 import BM25Index
    from ..retrieve.bm25_io import FORMAT_NAME
    from ..text.analyzer import Analyzer
    from ._output import check_output_dir

    # A bad output path fails before the corpus is indexed.
    check_output_dir(args.output, "-o", replaces=FORMAT_NAME)
    corpus = args.dataset / "corpus.jsonl"
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus} not found: expected a BEIR folder with corpus.jsonl")
    analyzer = Analyzer(
        lowercase=not args.no_lowercase,
        stopwords=_stopwords(args.stopwords),
        stemmer=None if args.no_stem else "english",
        cjk=args.cjk,
    )
    t0 = time.perf_counter()
    ids, titles, texts = read_corpus(corpus)
    docs = [doc_text(t, x) for t, x in zip(titles, texts, strict=True)]
    index = BM25Index.build(
        docs,
        ids=ids,
        variant=args.variant,
        k1=args.k1,
        b=args.b,
        delta=args.delta,
        analyzer=analyzer,
        num_threads=args.threads,
        show_progress=not args.no_progress,
    )
    index.save(args.output)
    print(f"{index!r} saved to {args.output} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
