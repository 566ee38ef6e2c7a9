"""BM25 at scale: crossrank (exhaustive and pruned) against bm25s, PISA and tantivy on one corpus.

Run:  PYTHONPATH=python python bench/bm25_scale.py [--sizes 100000 1000000] [--out bench/bm25_scale]

The corpus is synthetic and deterministic: documents of 60 tokens drawn i.i.d. from a Zipf law
(exponent 1.0) over 1,000,000 term ranks, seed 0; 1,000 queries of 2 to 6 distinct terms drawn from
the same law, seed 1. Token ``i`` is the word ``t<i>``. Every engine gets the same tokens: crossrank
and bm25s their ids, PISA and tantivy the words joined by spaces (no stemming, no stopwords: every
token is a term). Scoring: BM25, k1 = 0.9, b = 0.4 (Lucene's IDF where the engine lets us choose).

Timing: one query per call, single thread, exact top-k, at k = 10 and k = 1000. The engines are
interleaved query by query (engine order rotated each query) so that load from other processes on
a shared machine hits them alike; compare ratios within one run. Reported per engine and k: mean,
p50 and p99 latency in microseconds; per engine: build time, index size on disk and the process's
resident memory growth while building (peak RSS of the whole process is reported once). Results go
to ``<out>.json`` and a plot of latency against corpus size to ``<out>.png``.

crossrank's index is built from the token ids directly (no Python token lists); bm25s gets the
same ids (``bm25s.tokenization.Tokenized``). PISA goes through ``pyterrier_pisa`` (its own text
indexer, block_simdbp encoding) and is queried through its C++ entry point, one query per call,
with block-max WAND and MaxScore. tantivy's Python bindings count all matches, so it never prunes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 1_000_000
DOC_LEN = 60
N_QUERIES = 1000
EXPONENT = 1.0
K1, B = 0.9, 0.4
KS = (10, 1000)


def zipf_cdf(vocab: int = VOCAB, s: float = EXPONENT) -> np.ndarray:
    w = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** s
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def corpus(n_docs: int, seed: int = 0) -> np.ndarray:
    """Token ids (n_docs, DOC_LEN) uint32, deterministic for (n_docs, seed)."""
    cdf = zipf_cdf()
    rng = np.random.default_rng(seed)
    out = np.empty((n_docs, DOC_LEN), dtype=np.uint32)
    step = 100_000
    for start in range(0, n_docs, step):
        u = rng.random((min(step, n_docs - start), DOC_LEN))
        out[start : start + len(u)] = np.searchsorted(cdf, u, side="right")
    return np.minimum(out, VOCAB - 1)


def queries(seed: int = 1, n: int = N_QUERIES) -> list[list[int]]:
    """n queries of 2 to 6 distinct Zipf-drawn term ids."""
    cdf = zipf_cdf()
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    for _ in range(n):
        want = int(rng.integers(2, 7))
        q: list[int] = []
        while len(q) < want:
            t = min(int(np.searchsorted(cdf, rng.random(), side="right")), VOCAB - 1)
            if t not in q:
                q.append(t)
        out.append(q)
    return out


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# ---------------------------------------------------------------------------------------- engines
class Engine:
    """One engine's index over the corpus: build() then search(query_ids, k)."""

    name = ""
    build_s = 0.0
    size_bytes = 0
    rss_growth = 0

    def search(self, q: list[int], k: int) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


def build_crossrank(tokens: np.ndarray, work: Path) -> dict[str, Engine]:
    from crossrank import BM25Index
    from crossrank.retrieve.bm25 import _check_params

    t0 = time.perf_counter()
    r0 = rss()
    index = BM25Index._empty(_check_params("lucene", K1, B, 0.5), None, "position")
    snap = index._snap
    used = np.unique(tokens)
    words = [f"t{i}" for i in used.tolist()]
    vocab = snap.vocab
    ids, _ = vocab.map_tokens(words, np.array([0, len(words)], dtype=np.int64), True)
    remap = np.zeros(VOCAB, dtype=np.uint32)
    remap[used] = ids
    term_ids = remap[tokens.reshape(-1)]
    offsets = np.arange(0, tokens.size + 1, DOC_LEN, dtype=np.int64)
    index._snap = index._grown(snap, vocab, term_ids, offsets, 1, None)
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    path = work / "crossrank"
    index.save(path)
    size = dir_size(path)
    shutil.rmtree(path)
    engines: dict[str, Engine] = {}
    for strategy in ("exhaustive", "pruned", "auto"):
        e = Engine()
        e.name = f"crossrank-{strategy}"
        e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth
        view = index._snap.view

        def search(q: list[int], k: int, view: Any = view, strategy: str = strategy) -> Any:
            qi = remap[q]
            return view.search(qi, np.array([0, len(qi)], dtype=np.int64), k, 1, strategy)

        e.search = search  # type: ignore[method-assign]
        engines[e.name] = e
    return engines


def build_bm25s(tokens: np.ndarray, work: Path) -> dict[str, Engine]:
    import bm25s
    from bm25s.tokenization import Tokenized

    t0 = time.perf_counter()
    r0 = rss()
    used = np.unique(tokens)
    remap = np.zeros(VOCAB, dtype=np.int64)
    remap[used] = np.arange(len(used))
    ids = remap[tokens].tolist()
    vocab = {f"t{t}": i for i, t in enumerate(used.tolist())}
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B, backend="numba")
    retriever.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
    del ids
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    path = work / "bm25s"
    retriever.save(str(path))
    size = dir_size(path)
    shutil.rmtree(path)
    e = Engine()
    e.name = "bm25s-numba"
    e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth
    inverse = {i: w for w, i in vocab.items()}

    def search(q: list[int], k: int) -> Any:
        toks = [[inverse[int(remap[t])] for t in q if f"t{t}" in vocab]]
        return retriever.retrieve(toks, k=k, n_threads=1, show_progress=False)

    e.search = search  # type: ignore[method-assign]
    search([int(used[0]), int(used[1])], 10)  # JIT warm-up
    return {e.name: e}


def build_pisa(tokens: np.ndarray, work: Path) -> dict[str, Engine]:
    os.environ.setdefault("JAVA_TOOL_OPTIONS", "-Xmx2g")
    import pyterrier_pisa as pp
    from pyterrier_pisa import _pisathon

    path = work / "pisa"
    t0 = time.perf_counter()
    r0 = rss()
    index = pp.PisaIndex(str(path), stemmer="none", stops="none", threads=1)

    def docs() -> Any:
        for i, row in enumerate(tokens):
            yield {"docno": str(i), "text": " ".join(f"t{t}" for t in row.tolist())}

    index.index(docs())
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    size = dir_size(path)
    engines: dict[str, Engine] = {}
    for algo in ("block_max_wand", "maxscore", "block_max_maxscore"):
        retr = index.bm25(k1=K1, b=B, num_results=max(KS), threads=1, query_algorithm=algo)
        ctxt = retr._ctxt
        e = Engine()
        e.name = f"pisa-{algo}"
        e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth
        n = max(KS)
        bufs = (
            np.empty(n, dtype=np.int32),
            np.empty(n, dtype=object),
            np.empty(n, dtype=np.int32),
            np.empty(n, dtype=np.float32),
        )

        def search(q: list[int], k: int, ctxt: Any = ctxt, algo: str = algo, bufs: Any = bufs) -> Any:
            return _pisathon.retrieve(
                ctxt,
                algo,
                [(0, " ".join(f"t{t}" for t in q))],
                k=k,
                threads=1,
                query_weighted=0,
                pretokenised=False,
                result_qidxs=bufs[0],
                result_docnos=bufs[1],
                result_ranks=bufs[2],
                result_scores=bufs[3],
            )

        e.search = search  # type: ignore[method-assign]
        engines[e.name] = e
    return engines


def build_tantivy(tokens: np.ndarray, work: Path) -> dict[str, Engine]:
    import tantivy

    path = work / "tantivy"
    path.mkdir()
    t0 = time.perf_counter()
    r0 = rss()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", stored=False, tokenizer_name="whitespace")
    schema = sb.build()
    index = tantivy.Index(schema, path=str(path))
    writer = index.writer(heap_size=500_000_000, num_threads=1)
    for row in tokens:
        writer.add_document(tantivy.Document(body=" ".join(f"t{t}" for t in row.tolist())))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    build_s = time.perf_counter() - t0
    growth = rss() - r0
    size = dir_size(path)
    e = Engine()
    e.name = "tantivy"
    e.build_s, e.size_bytes, e.rss_growth = build_s, size, growth

    def search(q: list[int], k: int) -> Any:
        query = index.parse_query(" ".join(f"t{t}" for t in q), ["body"])
        return searcher.search(query, k)

    e.search = search  # type: ignore[method-assign]
    return {e.name: e}


BUILDERS: dict[str, Callable[[np.ndarray, Path], dict[str, Engine]]] = {
    "crossrank": build_crossrank,
    "bm25s": build_bm25s,
    "pisa": build_pisa,
    "tantivy": build_tantivy,
}


# ---------------------------------------------------------------------------------------- timing
def time_interleaved(engines: dict[str, Engine], qs: list[list[int]], k: int) -> dict[str, np.ndarray]:
    names = list(engines)
    lat = {n: np.empty(len(qs)) for n in names}
    for e in engines.values():  # warm-up
        for q in qs[:20]:
            e.search(q, k)
    for i, q in enumerate(qs):
        rot = i % len(names)
        for name in names[rot:] + names[:rot]:
            t0 = time.perf_counter()
            engines[name].search(q, k)
            lat[name][i] = time.perf_counter() - t0
    return lat


def check_crossrank(engines: dict[str, Engine], qs: list[list[int]], k: int) -> None:
    """The pruned and automatic strategies return exactly the exhaustive result (ids and bits)."""
    ref = engines["crossrank-exhaustive"]
    for name in ("crossrank-pruned", "crossrank-auto"):
        for q in qs:
            a, b = ref.search(q, k), engines[name].search(q, k)
            if not (
                np.array_equal(a[0], b[0]) and np.array_equal(a[1].view(np.uint32), b[1].view(np.uint32))
            ):
                raise SystemExit(f"{name} differs from exhaustive on query {q} at k={k}")


def run_size(
    n_docs: int, engines_wanted: list[str], work: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    t0 = time.perf_counter()
    tokens = corpus(n_docs)
    qs = queries()
    log(f"[{n_docs}] corpus generated in {time.perf_counter() - t0:.1f}s")
    engines: dict[str, Engine] = {}
    notes: dict[str, str] = {}
    for name in engines_wanted:
        try:
            built = BUILDERS[name](tokens, work)
        except Exception as exc:  # an engine that cannot run here is reported, not fatal
            notes[name] = f"{type(exc).__name__}: {exc}"
            log(f"[{n_docs}] {name}: FAILED {notes[name]}")
            continue
        engines.update(built)
        e = next(iter(built.values()))
        log(f"[{n_docs}] {name}: built in {e.build_s:.1f}s, {e.size_bytes / 2**20:.0f} MiB on disk")
        gc.collect()
    del tokens
    gc.collect()
    result: dict[str, Any] = {"n_docs": n_docs, "notes": notes, "engines": {}}
    for k in KS:
        if "crossrank-exhaustive" in engines:
            check_crossrank(engines, qs[:200], k)
        lat = time_interleaved(engines, qs, k)
        for name, v in lat.items():
            us = v * 1e6
            row = result["engines"].setdefault(
                name,
                {
                    "build_s": engines[name].build_s,
                    "index_bytes": engines[name].size_bytes,
                    "rss_growth_bytes": engines[name].rss_growth,
                },
            )
            row[f"k{k}"] = {
                "mean_us": float(us.mean()),
                "p50_us": float(np.percentile(us, 50)),
                "p99_us": float(np.percentile(us, 99)),
            }
            log(
                f"[{n_docs}] k={k:<5} {name:<28} mean {us.mean():9.0f}  p50 {np.percentile(us, 50):9.0f}  "
                f"p99 {np.percentile(us, 99):9.0f} us"
            )
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KS), figsize=(6 * len(KS), 4.5))
    names = sorted({n for r in results for n in r["engines"]})
    for ax, k in zip(axes, KS, strict=True):
        for name in names:
            pts = [
                (r["n_docs"], r["engines"][name][f"k{k}"]["mean_us"]) for r in results if name in r["engines"]
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("documents")
        ax.set_ylabel("mean latency per query (µs)")
        ax.set_title(f"BM25 top-{k}, one thread, synthetic Zipf corpus")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--engines", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    ap.add_argument("--out", default=str(Path(__file__).with_name("bm25_scale")))
    ap.add_argument(
        "--work", default=None, help="scratch directory for on-disk indexes (default: a temp dir)"
    )
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    results = []
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for n in args.sizes:
            work = Path(tmp) / str(n)
            work.mkdir()
            results.append(run_size(n, args.engines, work, log))
            shutil.rmtree(work, ignore_errors=True)
            gc.collect()
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
