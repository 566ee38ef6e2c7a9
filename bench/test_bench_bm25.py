"""BM25 benchmarks: crossrank side by side with bm25s (numba and numpy backends) and rank_bm25.

Run:  PYTHONPATH=python python -m pytest bench/test_bench_bm25.py -q --benchmark-group-by=group
Data: SciFact from $CROSSRANK_DATASETS (default ../shared/datasets); skipped when absent.

Same settings everywhere: title + " " + text, lowercase, English stopwords, Snowball English
stemmer, lucene k1=0.9 b=0.4, top-100, one thread unless the group says otherwise. Query groups feed
every implementation the SAME token lists (bm25s's tokenizer output) so only retrieval is timed;
the "text" group times crossrank end to end (analysis included) against bm25s tokenize + retrieve.
rank_bm25 is timed on the first RANK_BM25_QUERIES queries only (it scores every document in
Python); compare per-query figures (extra_info["queries"] gives the count per round).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from crossrank import BM25Index
from crossrank.eval.datasets import load_beir

bm25s = pytest.importorskip("bm25s")
Stemmer = pytest.importorskip("Stemmer")

from server_process import CROSSRANK_ROOT  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CROSSRANK_DATASETS", REPO.parent / "shared" / "datasets"))
K, K1, B = 100, 0.9, 0.4
RANK_BM25_QUERIES = 10

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except ImportError:
    HAVE_NUMBA = False


@cache
def scifact():
    path = DATASETS / "scifact"
    if not path.is_dir():
        pytest.skip(f"SciFact not found at {path} (set CROSSRANK_DATASETS)")
    ds = load_beir(path)
    docs = ds.documents()
    queries = list(ds.queries.values())
    stemmer = Stemmer.Stemmer("english")
    doc_tokens = bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    query_tokens = bm25s.tokenize(
        queries, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    return docs, queries, doc_tokens, query_tokens


@cache
def crossrank_tokens_index():
    _, _, doc_tokens, _ = scifact()
    return BM25Index.from_tokens(doc_tokens, variant="lucene", k1=K1, b=B)


@cache
def crossrank_text_index():
    docs, *_ = scifact()
    return BM25Index.build(docs, variant="lucene", k1=K1, b=B)


@cache
def bm25s_index(backend: str):
    _, _, doc_tokens, _ = scifact()
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B, backend=backend)
    retriever.index(doc_tokens, show_progress=False)
    return retriever


def bm25s_retrieve(retriever, query_tokens):
    return retriever.retrieve(query_tokens, k=K, n_threads=1, show_progress=False)


IMPLS = ["crossrank", "bm25s-numba", "bm25s-numpy", "rank_bm25"]


@pytest.mark.benchmark(group="bm25-query-tokens-top100-1thread")
@pytest.mark.parametrize("impl", IMPLS)
def test_query_throughput(benchmark, impl: str) -> None:
    _, _, doc_tokens, query_tokens = scifact()
    query_tokens = [q for q in query_tokens if q]
    if impl == "crossrank":
        index = crossrank_tokens_index()
        run = lambda: index.search_tokens(query_tokens, k=K, num_threads=1)  # noqa: E731
        n = len(query_tokens)
    elif impl.startswith("bm25s"):
        backend = impl.split("-")[1]
        if backend == "numba" and not HAVE_NUMBA:
            pytest.skip("numba not installed (pip install numba)")
        retriever = bm25s_index(backend)
        bm25s_retrieve(retriever, query_tokens[:2])  # JIT warm-up
        run = lambda: bm25s_retrieve(retriever, query_tokens)  # noqa: E731
        n = len(query_tokens)
    else:
        rank_bm25 = pytest.importorskip("rank_bm25")
        okapi = rank_bm25.BM25Okapi(doc_tokens, k1=K1, b=B)
        subset = query_tokens[:RANK_BM25_QUERIES]

        def run():
            return [np.argsort(-okapi.get_scores(q), kind="stable")[:K] for q in subset]

        n = len(subset)
    benchmark.extra_info["queries"] = n
    benchmark(run)
    benchmark.extra_info["queries_per_second"] = n / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="bm25-query-text-top100-1thread")
@pytest.mark.parametrize("impl", ["crossrank", "bm25s-numba"])
def test_query_text_end_to_end(benchmark, impl: str) -> None:
    _, queries, _, _ = scifact()
    if impl == "crossrank":
        index = crossrank_text_index()
        run = lambda: index.search(queries, k=K, num_threads=1)  # noqa: E731
    else:
        if not HAVE_NUMBA:
            pytest.skip("numba not installed (pip install numba)")
        retriever = bm25s_index("numba")
        stemmer = Stemmer.Stemmer("english")

        def run():
            qt = bm25s.tokenize(
                queries, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
            )
            return bm25s_retrieve(retriever, qt)

        run()
    benchmark.extra_info["queries"] = len(queries)
    benchmark(run)
    benchmark.extra_info["queries_per_second"] = len(queries) / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="bm25-query-threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_query_threads(benchmark, threads: int) -> None:
    _, _, _, query_tokens = scifact()
    queries = [q for q in query_tokens if q] * 8  # enough work per call for thread start-up to vanish
    index = crossrank_tokens_index()
    benchmark.extra_info["queries"] = len(queries)
    benchmark(index.search_tokens, queries, k=K, num_threads=threads)
    benchmark.extra_info["queries_per_second"] = len(queries) / benchmark.stats.stats.mean


@pytest.mark.benchmark(group="bm25-index-scifact-1thread")
@pytest.mark.parametrize("impl", ["crossrank", "bm25s"])
def test_indexing(benchmark, impl: str) -> None:
    """Tokenize + index SciFact from raw texts (same settings), one thread."""
    docs, *_ = scifact()
    if impl == "crossrank":
        run = lambda: BM25Index.build(docs, variant="lucene", k1=K1, b=B, num_threads=1)  # noqa: E731
    else:
        stemmer = Stemmer.Stemmer("english")

        def run():
            tokens = bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False)
            retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
            retriever.index(tokens, show_progress=False)
            return retriever

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


_FOOTPRINT = r"""
import json, sys
from pathlib import Path
impl, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])

def hwm_kib(key="VmHWM"):  # peak resident set of this process (reset by exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

from crossrank.eval.datasets import load_beir
docs = load_beir(data).documents()
base = hwm_kib()
if impl == "crossrank":
    from crossrank import BM25Index
    BM25Index.build(docs, variant="lucene", k1=0.9, b=0.4).save(out)
else:
    import bm25s, Stemmer
    tokens = bm25s.tokenize(docs, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
    r = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    r.index(tokens, show_progress=False)
    r.save(out)
peak = hwm_kib()
size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
print(json.dumps({"peak_rss_mib": peak / 1024, "peak_rss_before_indexing_mib": base / 1024, "index_bytes": size}))
"""


@pytest.mark.benchmark(group="bm25-footprint-scifact")
@pytest.mark.parametrize("impl", ["crossrank", "bm25s"])
def test_footprint(benchmark, impl: str, tmp_path: Path) -> None:
    """Peak RSS of building + saving (measured in a fresh subprocess) and index size on disk."""
    scifact()  # skip early when the data is absent
    env = {**os.environ, "PYTHONPATH": CROSSRANK_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", _FOOTPRINT, impl, str(DATASETS / "scifact"), str(tmp_path / "ix")]

    def run():
        return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)

    info = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(info)
    print(f"\n{impl}: {info}")
