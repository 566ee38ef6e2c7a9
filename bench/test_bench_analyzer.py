"""Analyzer throughput on SciFact (title + text, ~7.8 MB): crossrank vs bm25s vs regex + PyStemmer.

Every implementation lowercases, removes English stopwords and stems with Snowball English.
Run: PYTHONPATH=python CROSSRANK_DATASETS=../shared/datasets python -m pytest bench/test_bench_analyzer.py \
         --benchmark-group-by=group --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import crossrank

DATASETS = Path(
    os.environ.get("CROSSRANK_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)


@pytest.fixture(scope="module")
def scifact_texts() -> list[str]:
    path = DATASETS / "scifact" / "corpus.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (set CROSSRANK_DATASETS)")
    with open(path, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    return [f"{d.get('title') or ''} {d.get('text') or ''}" for d in docs]


def _crossrank(num_threads: int) -> Callable[[list[str]], object]:
    def run(texts: list[str]) -> object:
        # A fresh analyzer per round: the stem cache starts cold, as when indexing a new corpus.
        return crossrank.Analyzer().analyze_batch(texts, num_threads=num_threads)

    return run


def _bm25s(texts: list[str]) -> object:
    import bm25s
    import Stemmer

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False, return_ids=True
    )


def _regex_pystemmer(texts: list[str]) -> object:
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    stop = crossrank.text.analyzer.ENGLISH_STOPWORDS
    word = re.compile(r"[^\W_]+")
    return [[stem(w) for w in word.findall(t.lower()) if w not in stop] for t in texts]


IMPLEMENTATIONS = {
    "crossrank-1thread": _crossrank(1),
    "crossrank-2threads": _crossrank(2),
    "bm25s": _bm25s,
    "regex+pystemmer": _regex_pystemmer,
}


@pytest.mark.benchmark(group="analyze scifact (title+text)")
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_analyze_scifact(benchmark, scifact_texts: list[str], impl: str) -> None:
    if impl == "bm25s":
        pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    benchmark.pedantic(IMPLEMENTATIONS[impl], args=(scifact_texts,), rounds=5, iterations=1, warmup_rounds=1)
