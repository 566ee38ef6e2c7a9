"""Cross-encoder reranking: crossrank vs sentence-transformers on SciFact BM25 top-100 (issue 3 bars).

Workload: the first ``CROSSRANK_BENCH_QUERIES`` (default 50) SciFact test queries, BM25 top-100 from
bm25s (Lucene variant, k1=0.9 b=0.4, English stemmer and stopwords, title + text), reranked by the
MiniLM-L6 cross-encoder architecture: the all-MiniLM-L6-v2 encoder with a seeded one-label head (the
exact cost of cross-encoder/ms-marco-MiniLM-L-6-v2), max_length 512, the same threads everywhere.

Implementations (one group, side by side): sentence-transformers ``CrossEncoder`` in its default setup
(torch fp32) and with torch bf16 autocast; crossrank on ONNX Runtime fp32, ONNX Runtime int8 and
OpenVINO bf16. ``test_summary`` prints the ratios against the bars of issue 3:

* crossrank fp32 >= 2x sentence-transformers fp32;
* crossrank's fastest low-precision path >= 1.2x sentence-transformers bf16 autocast, top-10 overlap
  with crossrank fp32 >= 0.95;
* fp32 GFLOP/s >= 70% of sgemm GFLOP/s measured in the same run (bf16 path vs a bf16 matmul);
* tokenization + packing <= 5% of rerank wall time (cold document cache);
* peak RSS reranking 1,000 candidates of ~2,000 words against the max_batch_tokens bound (subprocess).

Run::

    PYTHONPATH=python python -m pytest bench/test_bench_cross_encoder.py -q -s --benchmark-group-by=group
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server_process import CROSSRANK_ROOT

N_QUERIES = int(os.environ.get("CROSSRANK_BENCH_QUERIES", "50"))
DEPTH = 100
MAX_LENGTH = int(os.environ.get("CROSSRANK_BENCH_MAX_LENGTH", "512"))
ROUNDS = int(os.environ.get("CROSSRANK_BENCH_ROUNDS", "1"))
IMPLS = [
    "sentence-transformers-fp32",
    "sentence-transformers-bf16-autocast",
    "crossrank-fp32",
    "crossrank-openvino-fp32",
    "crossrank-int8",
    "crossrank-openvino-bf16",
]
LOW_PRECISION = ("crossrank-int8", "crossrank-openvino-bf16")
RESULTS: dict[str, dict[str, Any]] = {}


def _threads() -> int:
    from crossrank import _core

    return int(_core.default_num_threads())


@pytest.fixture(scope="module")
def workload(datasets_dir: Path) -> list[tuple[str, list[str]]]:
    """(query, BM25 top-100 document texts) for the first N_QUERIES SciFact test queries."""
    bm25s = pytest.importorskip("bm25s")
    stemmer_mod = pytest.importorskip("Stemmer")
    from crossrank.eval.datasets import load_beir

    ds = load_beir(datasets_dir / "scifact", split="test")
    docs = ds.documents()
    stemmer = stemmer_mod.Stemmer("english")
    corpus_tokens = bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    retriever.index(corpus_tokens, show_progress=False)
    qids = sorted(ds.queries, key=int)[:N_QUERIES]
    q_texts = [ds.queries[q] for q in qids]
    q_tokens = bm25s.tokenize(q_texts, stopwords="en", stemmer=stemmer, show_progress=False)
    hits, _ = retriever.retrieve(q_tokens, k=DEPTH, show_progress=False, n_threads=1)
    return [(q, [docs[int(i)] for i in row]) for q, row in zip(q_texts, hits, strict=True)]


def _make_runner(impl: str, ckpt: Path, onnx_dir: Path):
    threads = _threads()
    if impl.startswith("sentence-transformers"):
        st = pytest.importorskip("sentence_transformers")
        import torch

        torch.set_num_threads(threads)
        model = st.CrossEncoder(str(ckpt), max_length=MAX_LENGTH, device="cpu")
        bf16 = impl.endswith("bf16-autocast")

        def run(work: list[tuple[str, list[str]]]) -> list[list[int]]:
            out = []
            for q, docs in work:
                if bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        ranked = model.rank(q, docs, top_k=10, batch_size=32)
                else:
                    ranked = model.rank(q, docs, top_k=10, batch_size=32)
                out.append([int(r["corpus_id"]) for r in ranked])
            return out

        return run, None

    from crossrank import CrossEncoder

    if impl == "crossrank-openvino-bf16":
        pytest.importorskip("openvino")
        ce = CrossEncoder(
            onnx_dir, backend="openvino", precision="bf16", max_length=MAX_LENGTH, num_threads=threads
        )
    else:
        precision = "int8" if impl == "crossrank-int8" else "fp32"
        ce = CrossEncoder(
            onnx_dir, backend="onnxruntime", precision=precision, max_length=MAX_LENGTH, num_threads=threads
        )

    def run_ce(work: list[tuple[str, list[str]]]) -> list[list[int]]:
        return [[r["corpus_id"] for r in ce.rank(q, docs, top_k=10)] for q, docs in work]

    return run_ce, ce


@pytest.mark.slow
@pytest.mark.parametrize("impl", IMPLS)
def test_rerank_scifact(
    benchmark, impl: str, workload, minilm_ce_checkpoint: Path, minilm_ce_onnx: Path
) -> None:
    run, _ce = _make_runner(impl, minilm_ce_checkpoint, minilm_ce_onnx)
    run(workload[:1])  # warm-up: first shapes, allocator
    benchmark.group = f"rerank scifact {len(workload)}x{DEPTH} max_length={MAX_LENGTH}"
    benchmark.extra_info.update({"impl": impl, "threads": _threads(), "pairs": len(workload) * DEPTH})
    rankings = benchmark.pedantic(run, args=(workload,), rounds=ROUNDS, iterations=1)
    seconds = benchmark.stats.stats.min
    RESULTS[impl] = {"pairs_per_s": len(workload) * DEPTH / seconds, "seconds": seconds, "top10": rankings}
    benchmark.extra_info["pairs_per_s"] = RESULTS[impl]["pairs_per_s"]


def _matmul_gflops(dtype: str, threads: int) -> float:
    """Best GFLOP/s of a (8192 x 384) @ (384 x 1536) matmul (MiniLM's FFN shape) with torch and NumPy."""
    import torch

    torch.set_num_threads(threads)
    m, k, n = 8192, 384, 1536
    flops = 2.0 * m * k * n
    best = 0.0
    tdt = torch.float32 if dtype == "fp32" else torch.bfloat16
    a = torch.randn(m, k, dtype=tdt)
    b = torch.randn(k, n, dtype=tdt)
    for _ in range(3):
        torch.matmul(a, b)
    for _ in range(10):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, flops / (time.perf_counter() - t) / 1e9)
    if dtype == "fp32":
        an, bn = a.numpy(), b.numpy()
        for _ in range(10):
            t = time.perf_counter()
            an @ bn
            best = max(best, flops / (time.perf_counter() - t) / 1e9)
    return best


def _model_flops(config: dict[str, Any], lengths: np.ndarray, rows: np.ndarray) -> float:
    """FLOPs of a BERT encoder on batches of ``rows[i]`` x ``lengths[i]`` tokens.

    Per layer and token: Q, K, V, output projections 4 h^2 multiply-adds, feed-forward 2 h f, attention
    scores and weighted values 2 L h; a multiply-add is 2 FLOPs. The classifier head is negligible.
    """
    h = int(config["hidden_size"])
    f = int(config["intermediate_size"])
    n = int(config["num_hidden_layers"])
    lengths = lengths.astype(np.float64)
    rows = rows.astype(np.float64)
    return float(np.sum(2.0 * n * rows * lengths * (4 * h * h + 2 * h * f + 2 * lengths * h)))


def _flops_of_run(ce: Any, work: list[tuple[str, list[str]]]) -> tuple[float, float]:
    """(executed FLOPs on padded batches, useful FLOPs on real tokens) of ranking ``work`` with ``ce``."""
    from crossrank.text.packing import plan_pairs

    executed = useful = 0.0
    for q, docs in work:
        qi = ce._query_encoder.encode([q], max_tokens=ce.max_query_length)
        di = ce.encoder.encode(docs, max_tokens=ce._doc_token_limit(len(qi[0])))
        plan = plan_pairs(qi, di, ce.template, **ce._plan_options(ce.max_batch_size))
        executed += _model_flops(ce.files.config, plan.batch_lengths, plan.batch_sizes)
        useful += _model_flops(ce.files.config, plan.row_tokens, np.ones_like(plan.row_tokens))
    return executed, useful


@pytest.mark.slow
@pytest.mark.parametrize(("impl", "dtype"), [("crossrank-fp32", "fp32"), ("crossrank-openvino-bf16", "bf16")])
def test_gflops_vs_matmul(
    impl: str, dtype: str, workload, minilm_ce_checkpoint: Path, minilm_ce_onnx: Path
) -> None:
    threads = _threads()
    _, ce = _make_runner(impl, minilm_ce_checkpoint, minilm_ce_onnx)
    work = workload[: max(1, min(10, len(workload)))]
    ce.rank(*work[0])  # warm-up
    peak = _matmul_gflops(dtype, threads)
    t = time.perf_counter()
    infer = 0.0
    for q, docs in work:
        infer += ce.score(q, docs).stats["infer_s"]
    wall = time.perf_counter() - t
    executed, useful = _flops_of_run(ce, work)
    RESULTS[f"gflops-{dtype}"] = {
        "matmul_gflops": peak,
        "useful_gflops_wall": useful / wall / 1e9,
        "executed_gflops_infer": executed / infer / 1e9,
    }


@pytest.mark.slow
def test_tokenize_pack_share(workload, minilm_ce_onnx: Path) -> None:
    from crossrank import CrossEncoder

    ce = CrossEncoder(minilm_ce_onnx, backend="onnxruntime", precision="fp32", max_length=MAX_LENGTH)
    work = workload[: max(1, min(10, len(workload)))]
    ce.rank(*work[0])
    ce.encoder.cache.clear()  # cold: every document tokenized
    tok = pack = total = 0.0
    for q, docs in work:
        s = ce.score(q, docs).stats
        tok += s["tokenize_s"]
        pack += s["pack_s"]
        total += s["total_s"]
    RESULTS["share"] = {"tokenize": tok / total, "pack": pack / total, "tokenize+pack": (tok + pack) / total}


@pytest.mark.slow
def test_peak_rss_long_documents(minilm_ce_onnx: Path) -> None:
    pytest.importorskip("psutil")
    script = Path(__file__).with_name("rss_cross_encoder.py")
    n_docs = int(os.environ.get("CROSSRANK_BENCH_RSS_DOCS", "1000"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([CROSSRANK_ROOT, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, str(script), str(minilm_ce_onnx), "--docs", str(n_docs), "--words", "2000"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    RESULTS["rss"] = json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_summary() -> None:
    """Print the ratios against issue 3's bars (not asserted: timings on a shared machine are noisy)."""
    if not RESULTS:
        pytest.skip("run the benchmarks of this file first (same session)")
    lines = [f"threads={_threads()} queries={N_QUERIES} depth={DEPTH} max_length={MAX_LENGTH}"]
    for impl in IMPLS:
        if impl in RESULTS:
            lines.append(f"  {impl:38s} {RESULTS[impl]['pairs_per_s']:8.1f} pairs/s")
    st32 = RESULTS.get("sentence-transformers-fp32")
    stbf = RESULTS.get("sentence-transformers-bf16-autocast")
    cr32 = RESULTS.get("crossrank-fp32")
    for name in ("crossrank-fp32", "crossrank-openvino-fp32"):
        r32 = RESULTS.get(name)
        if st32 and r32:
            lines.append(
                f"{name} vs sentence-transformers fp32: {r32['pairs_per_s'] / st32['pairs_per_s']:.2f}x (bar 2x)"
            )
    if cr32:
        for impl in LOW_PRECISION:
            r = RESULTS.get(impl)
            if not r:
                continue
            overlap = np.mean(
                [
                    len(set(a) & set(b)) / max(1, len(b))
                    for a, b in zip(r["top10"], cr32["top10"], strict=True)
                ]
            )
            vs = (
                f", {r['pairs_per_s'] / stbf['pairs_per_s']:.2f}x sentence-transformers bf16 (bar 1.2x)"
                if stbf
                else ""
            )
            lines.append(f"{impl}: top-10 overlap with fp32 {overlap:.3f} (bar 0.95){vs}")
    for dtype in ("fp32", "bf16"):
        g = RESULTS.get(f"gflops-{dtype}")
        if g:
            lines.append(
                f"{dtype}: useful {g['useful_gflops_wall']:.1f} GFLOP/s over wall time, executed "
                f"{g['executed_gflops_infer']:.1f} GFLOP/s over inference time, matmul {g['matmul_gflops']:.1f} "
                f"GFLOP/s -> {g['useful_gflops_wall'] / g['matmul_gflops']:.0%} / "
                f"{g['executed_gflops_infer'] / g['matmul_gflops']:.0%} (bar 70%)"
            )
    if "share" in RESULTS:
        s = RESULTS["share"]
        lines.append(
            f"tokenize {s['tokenize']:.1%} + pack {s['pack']:.1%} = {s['tokenize+pack']:.1%} of rerank wall time (bar 5%)"
        )
    if "rss" in RESULTS:
        r = RESULTS["rss"]
        lines.append(
            f"peak RSS {r['peak_rss_mb']:.0f} MB (baseline {r['baseline_rss_mb']:.0f} MB after loading, "
            f"+{r['peak_rss_mb'] - r['baseline_rss_mb']:.0f} MB while ranking {r['docs']} docs of {r['words']} "
            f"words; bound from max_batch_tokens={r['max_batch_tokens']}: {r['bound_mb']:.0f} MB)"
        )
    print("\n" + "\n".join(lines))
