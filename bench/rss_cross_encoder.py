"""Peak RSS of reranking many long documents with crossrank (run in its own process by the benchmark).

Usage::

    PYTHONPATH=python python bench/rss_cross_encoder.py MODEL_DIR --docs 1000 --words 2000

Makes ``--docs`` documents of ``--words`` words (seeded, from a fixed English vocabulary), loads the
model, warms it up, records the RSS (baseline), ranks all documents for one query, and prints one JSON
line: baseline and peak RSS (MB), and the activation bound that ``max_batch_tokens`` implies::

    bound = 4 bytes * max_batch_tokens * (8 * hidden + intermediate + 2 * heads * max_length)

(an estimate: a handful of live hidden-size tensors, the feed-forward activation, and the attention
scores and probabilities of the largest batch; ONNX Runtime reuses its buffers between layers). It does
not depend on the number of documents: that is the point of cutting batches by a token budget.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

import numpy as np

WORDS = [
    "the",
    "of",
    "and",
    "in",
    "to",
    "a",
    "is",
    "with",
    "for",
    "that",
    "by",
    "cells",
    "protein",
    "were",
    "as",
    "on",
    "from",
    "was",
    "patients",
    "this",
    "are",
    "expression",
    "study",
    "gene",
    "human",
    "an",
    "at",
    "be",
    "or",
    "which",
    "these",
    "results",
    "not",
    "associated",
    "increased",
    "between",
    "has",
    "cancer",
    "risk",
    "treatment",
    "function",
    "response",
    "disease",
    "clinical",
    "levels",
    "mice",
    "effect",
    "analysis",
    "role",
    "data",
    "found",
    "using",
    "tumor",
    "activity",
    "level",
    "cell",
    "high",
    "after",
    "during",
    "both",
    "two",
    "than",
    "may",
    "its",
    "also",
    "have",
    "showed",
    "specific",
    "factor",
]


def peak_rss_mb() -> float:
    """Peak RSS of this process image in MB.

    VmHWM (Linux) belongs to the current address space. ru_maxrss does not: Linux carries it across
    exec(), so a script started from a big parent (pytest with torch loaded) would report the
    parent's peak — which is what an earlier run of this benchmark measured (3.2 GB).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--words", type=int, default=2000)
    ap.add_argument("--max-batch-tokens", type=int, default=8192)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args(argv)

    import psutil

    from crossrank import CrossEncoder
    from crossrank.rerank.base import ranked_from_scores

    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(WORDS, size=args.words)) for _ in range(args.docs)]
    ce = CrossEncoder(
        args.model_dir, backend=args.backend, precision=args.precision, max_batch_tokens=args.max_batch_tokens
    )
    ce.rank("warm up", ["a short document"])
    baseline = psutil.Process().memory_info().rss / 2**20
    scored = ce.score("what increases cancer risk in patients?", docs)
    ranked = ranked_from_scores(scored, docs, 10)
    peak = peak_rss_mb()
    cfg = ce.files.config
    bound = (
        4
        * args.max_batch_tokens
        * (8 * cfg["hidden_size"] + cfg["intermediate_size"] + 2 * cfg["num_attention_heads"] * ce.max_length)
        / 2**20
    )
    s = scored.stats
    print(
        json.dumps(
            {
                "docs": args.docs,
                "words": args.words,
                "max_batch_tokens": args.max_batch_tokens,
                "max_length": ce.max_length,
                "baseline_rss_mb": baseline,
                "peak_rss_mb": peak,
                "bound_mb": bound,
                "truncated": int(s.get("truncated", 0)),
                "seconds": s.get("total_s", 0.0),
                "top": ranked[0]["corpus_id"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
