"""MaxSim benchmarks: crossrank's kernel side by side with NumPy (einsum + max) and PyTorch CPU.

Run:  PYTHONPATH=python python -m pytest bench/test_bench_maxsim.py -q --benchmark-group-by=group -s
Data: SciFact from $CROSSRANK_DATASETS and all-MiniLM-L6-v2 from $CROSSRANK_MODELS for the
"scifact-100" group (skipped when absent); the other groups use seeded random unit vectors.

Every implementation scores the same query against the same documents and uses the same threads
(THREADS, default the CPU quota): crossrank via num_threads, torch via torch.set_num_threads, NumPy
through its BLAS (OpenBLAS uses every core it sees). "torch" is the einsum/bmm form the brief names;
"torch-matmul" is torch's fastest form we found (one GEMM over all padded document tokens). Peers get documents as one zero-padded
[n_docs, max_len, dim] tensor plus a length mask (their natural batched form); crossrank gets
PackedDocs. Packing/padding happens outside the timed region for everyone. GFLOP/s counts
2 * nq * total_real_doc_tokens * dim; the "sgemm" group measures the machine's fp32 matmul in the
same run, and the summary printed at the end (with -s) gives each result as a % of it.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from crossrank import _core
from crossrank.rerank.maxsim import PackedDocs, maxsim

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CROSSRANK_DATASETS", REPO.parent / "shared" / "datasets"))
MODELS = Path(os.environ.get("CROSSRANK_MODELS", REPO.parent / "shared" / "models"))
THREADS = int(os.environ.get("CROSSRANK_BENCH_THREADS", _core.default_num_threads()))
GFLOPS: dict[str, float] = {}


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class Case:
    """One query and a set of documents in every implementation's form."""

    def __init__(self, query: np.ndarray, docs: list[np.ndarray]) -> None:
        self.query = query
        self.docs = docs
        dim = query.shape[1]
        self.lengths = np.array([len(d) for d in docs])
        width = max(1, int(self.lengths.max()))
        self.padded = np.zeros((len(docs), width, dim), np.float32)
        for i, d in enumerate(docs):
            self.padded[i, : len(d)] = d
        self.mask = np.arange(width)[None, :] < self.lengths[:, None]  # [n_docs, width]
        self.flops = 2.0 * query.shape[0] * float(self.lengths.sum()) * dim
        self.packed = {dt: PackedDocs(docs, dtype=dt) for dt in ("fp32", "fp16", "bf16")}
        self.t_query = torch.from_numpy(query)
        self.t_padded = torch.from_numpy(self.padded)
        self.t_mask = torch.from_numpy(self.mask)


@cache
def synthetic(nq: int, n_docs: int, mean_len: int, dim: int) -> Case:
    rng = np.random.default_rng(nq * 7 + n_docs + dim)
    lengths = np.clip(rng.normal(mean_len, mean_len / 4, n_docs).astype(int), 1, 2 * mean_len)
    return Case(unit(rng, nq, dim), [unit(rng, int(n), dim) for n in lengths])


@cache
def scifact_case() -> Case:
    """100 SciFact documents and one query as MiniLM token vectors (ColBERT framing, doc_maxlen 180)."""
    if not (DATASETS / "scifact").is_dir() or not (MODELS / "all-MiniLM-L6-v2").is_dir():
        pytest.skip("SciFact or all-MiniLM-L6-v2 not found (set CROSSRANK_DATASETS / CROSSRANK_MODELS)")
    from crossrank.eval.datasets import load_beir
    from crossrank.rerank.colbert import ColBERTReranker

    ds = load_beir(DATASETS / "scifact")
    docs = ds.documents()[:100]
    query = next(iter(ds.queries.values()))
    enc = ColBERTReranker(MODELS / "all-MiniLM-L6-v2", doc_maxlen=180, query_maxlen=32, dtype="fp32")
    (q,) = enc.encode_queries([query])
    vecs, _ = enc.encode_documents(docs)
    return Case(q, vecs)


def numpy_einsum(case: Case) -> np.ndarray:
    sim = np.einsum("qd,ntd->nqt", case.query, case.padded, optimize=True)
    sim = np.where(case.mask[:, None, :], sim, -np.inf)
    best = sim.max(axis=2)
    return np.where(case.lengths[:, None] > 0, best, 0.0).sum(axis=1)


def torch_bmm(case: Case) -> np.ndarray:
    with torch.inference_mode():
        sim = torch.einsum("qd,ntd->nqt", case.t_query, case.t_padded)
        sim = sim.masked_fill(~case.t_mask[:, None, :], float("-inf"))
        return sim.amax(dim=2).sum(dim=1).numpy()


def torch_matmul(case: Case) -> np.ndarray:
    # torch's best form here: one GEMM [n_docs * width, dim] x [dim, nq], then mask + max + sum.
    with torch.inference_mode():
        n, width, dim = case.t_padded.shape
        sim = (case.t_padded.reshape(n * width, dim) @ case.t_query.T).reshape(n, width, -1)
        sim = sim.masked_fill(~case.t_mask[:, :, None], float("-inf"))
        return sim.amax(dim=1).sum(dim=1).numpy()


def run_impl(impl: str, case: Case):
    if impl.startswith("crossrank"):
        packed = case.packed[impl.split("-")[1]]
        return lambda: maxsim(case.query, packed, num_threads=THREADS)
    if impl == "numpy-einsum":
        return lambda: numpy_einsum(case)
    if impl == "torch":
        return lambda: torch_bmm(case)
    if impl == "torch-matmul":
        return lambda: torch_matmul(case)
    raise ValueError(impl)


def _record(benchmark, key: str, flops: float) -> None:
    median = benchmark.stats.stats.median
    GFLOPS[key] = flops / median / 1e9
    benchmark.extra_info.update(gflops=round(GFLOPS[key], 1), threads=THREADS, simd=_core.simd_active())


@pytest.fixture(autouse=True)
def _torch_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(old)


FP32_IMPLS = ["crossrank-fp32", "numpy-einsum", "torch", "torch-matmul"]
SHAPES = {
    "colbert-q32-1000x128-d128": (32, 1000, 128, 128),
    "minilm-q32-100x180-d384": (32, 100, 180, 384),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("impl", FP32_IMPLS)
def test_fp32(benchmark, impl, shape):
    case = synthetic(*SHAPES[shape])
    benchmark.group = f"maxsim-fp32-{shape}"
    fn = run_impl(impl, case)
    got = benchmark(fn)
    np.testing.assert_allclose(got, numpy_einsum(case), rtol=1e-4, atol=1e-4)
    _record(benchmark, f"fp32 {shape} {impl}", case.flops)


@pytest.mark.parametrize("impl", ["crossrank-fp32", "crossrank-fp16", "crossrank-bf16", "torch-matmul"])
def test_storage_memory_bound(benchmark, impl):
    # Many documents, short query: the fp32 buffer (~150 MB) streams from DRAM every call.
    case = synthetic(4, 6000, 48, 128)
    benchmark.group = "maxsim-storage-memory-bound-q4-6000x48-d128"
    got = benchmark.pedantic(run_impl(impl, case), rounds=10, iterations=1, warmup_rounds=1)
    np.testing.assert_allclose(got, numpy_einsum(case), rtol=0, atol=4e-3 * 4)
    _record(benchmark, f"memory-bound {impl}", case.flops)


@pytest.mark.parametrize(
    "impl", ["crossrank-fp32", "crossrank-fp16", "crossrank-bf16", "numpy-einsum", "torch", "torch-matmul"]
)
def test_scifact_100_candidates(benchmark, impl):
    case = scifact_case()
    benchmark.group = "maxsim-scifact-100-candidates-q32-d384"
    got = benchmark(run_impl(impl, case))
    np.testing.assert_allclose(got, numpy_einsum(case), rtol=0, atol=4e-3 * 32)
    _record(benchmark, f"scifact-100 {impl}", case.flops)
    benchmark.extra_info["mean_doc_tokens"] = float(case.lengths.mean())


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_sgemm(benchmark, impl):
    rng = np.random.default_rng(0)
    n = 1024
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    benchmark.group = "sgemm-1024"
    benchmark(lambda: a @ b if impl == "numpy" else ta @ tb)
    _record(benchmark, f"sgemm {impl}", 2.0 * n**3)


def test_zz_summary():
    """Print GFLOP/s and % of the best sgemm measured in this run (run with -s to see it)."""
    sgemm = max((v for k, v in GFLOPS.items() if k.startswith("sgemm")), default=0.0)
    if not sgemm:
        pytest.skip("run the sgemm group in the same session for the summary")
    print(f"\nbest sgemm: {sgemm:.1f} GFLOP/s ({THREADS} threads, simd {_core.simd_active()})")
    for key, value in GFLOPS.items():
        print(f"{key:60s} {value:8.1f} GFLOP/s  {100 * value / sgemm:6.1f}% of sgemm")
