"""Load test of ``crossrank serve`` on loopback, against in-process scoring of the same pairs.

For each phase, N concurrent clients each send M Cohere ``/v2/rerank`` requests of one SciFact
query with 100 candidates (its judged documents plus seeded random ones). Reported per phase:
throughput (requests/s and pairs/s), latency p50/p95/p99, failed requests, and the server's RSS
before and after. The in-process baseline scores the same requests' pairs with the same model
adapter (``CrossEncoder.predict`` under it), one query at a time, in this process, before the
server starts (so the two never compete for the CPU). Both sides are measured warm: every
distinct request is scored once before timing starts (the document-token cache is full).

Bounded: every phase stops issuing requests after ``--max-seconds``, and the server is stopped
(SIGTERM) at the end. Loopback only.

Examples
--------
Throughput (32 clients) and latency (16 clients) with a MiniLM-sized cross-encoder::

    python bench/load_test_server.py --build minilm --model /tmp/minilm-ce --phases 32x2,16x4

RSS soak with the tiny model (10,048 requests after a first phase at the same load)::

    python bench/load_test_server.py --build tiny --model /tmp/tiny-ce --docs 10 --phases 32x40,32x157,32x157 \
        --soak --no-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]


def crossrank_src() -> list[str]:
    """The source tree when it holds a developer build of the compiled module, else nothing (the
    installed package is used): a source tree without _core would shadow a working install."""
    pkg = REPO / "python" / "crossrank"
    return [str(pkg.parent)] if any(pkg.glob("_core*.so")) or any(pkg.glob("_core*.pyd")) else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_requests(dataset: Path, n: int, docs: int, seed: int) -> list[tuple[str, list[str]]]:
    """Return ``n`` (query, candidates) pairs: judged documents first, then seeded random ones."""
    sys.path[:0] = crossrank_src()
    from crossrank.eval.datasets import load_beir

    ds = load_beir(dataset)
    texts = ds.documents()
    index = {d: i for i, d in enumerate(ds.doc_ids)}
    rng = random.Random(seed)
    qids = sorted(ds.queries)
    out = []
    for k in range(n):
        qid = qids[k % len(qids)]
        chosen = [index[d] for d in ds.qrels.get(qid, {}) if d in index][:docs]
        pool = set(chosen)
        while len(chosen) < docs:
            j = rng.randrange(len(texts))
            if j not in pool:
                pool.add(j)
                chosen.append(j)
        rng.shuffle(chosen)
        out.append((ds.queries[qid], [texts[j] for j in chosen]))
    return out


def build_model(kind: str, out: Path) -> Path:
    """Build and export a seeded cross-encoder into ``out`` (skipped when it is already there).

    ``minilm``: all-MiniLM-L6-v2 (from CROSSRANK_MODELS) with a seeded one-label head, as the
    cross-encoder fixtures build it, exported fp32 with graph optimization. ``tiny``: the tests' seeded tiny
    BERT (hidden 32, 2 layers).
    """
    if (out / "model.onnx").exists():
        return out
    sys.path[:0] = [*crossrank_src(), str(REPO / "tests")]
    import torch
    import transformers

    from crossrank.models.export import export_model

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        if kind == "tiny":
            from model_fixtures import build_tiny_bert

            build_tiny_bert(ckpt, num_labels=1, seed=0)
            export_model(ckpt, out, int8=True)
        elif kind == "minilm":
            src = Path(os.environ.get("CROSSRANK_MODELS", "/work/shared/models")) / "all-MiniLM-L6-v2"
            torch.manual_seed(1234)
            model = transformers.BertForSequenceClassification.from_pretrained(str(src), num_labels=1).eval()
            with torch.no_grad():
                model.classifier.weight.normal_(0.0, 0.5)
                model.classifier.bias.zero_()
            model.save_pretrained(str(ckpt))
            transformers.AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(ckpt))
            export_model(ckpt, out, optimize=True)  # fp32: the same graph in both paths
        else:
            raise ValueError(f"--build must be 'tiny' or 'minilm', got {kind!r}")
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def in_process_baseline(args: argparse.Namespace, requests: list[tuple[str, list[str]]]) -> dict:
    """Score every request's pairs in this process, one request (query) at a time."""
    sys.path[:0] = [*crossrank_src(), str(REPO / "tests")]  # tests/ for py:server_fakes:...
    from crossrank.cli.serve import load_models
    from crossrank.server import ServedReranker

    ns = argparse.Namespace(
        model=args.model,
        embed_model=None,
        max_length=args.max_length,
        max_batch_tokens=args.max_batch_tokens,
        num_threads=None,
        precision=None,
    )
    reranker, _ = load_models(ns)
    model = ServedReranker(reranker)  # what the server's inference thread calls, one request per step
    # Warm-up pass over every request: the model's document-token cache then holds all candidates,
    # the same steady state the server reaches after its warm-up (which also sends every request once).
    for query, docs in requests:
        model.score_items([(0, query, d) for d in docs])
    t0 = time.perf_counter()
    pairs = 0
    for query, docs in requests:
        model.score_items([(0, query, d) for d in docs])
        pairs += len(docs)
    elapsed = time.perf_counter() - t0
    return {"requests": len(requests), "pairs": pairs, "seconds": elapsed, "pairs_per_s": pairs / elapsed}


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [*crossrank_src(), str(REPO / "tests"), env.get("PYTHONPATH", "")]
        )
        cmd = [sys.executable, "-m", "crossrank", "serve", "--model", args.model, "--port", str(self.port)]
        cmd += ["--max-wait-ms", str(args.max_wait_ms), "--log-level", "warning"]
        # Closed loop: a request waits for everyone's pairs ahead of it (Little's law), so the
        # deadline must exceed clients x docs / throughput on a slow machine.
        cmd += ["--request-timeout-s", str(args.request_timeout_s)]
        if args.max_length:
            cmd += ["--max-length", str(args.max_length)]
        if args.max_batch_tokens:
            cmd += ["--max-batch-tokens", str(args.max_batch_tokens)]
        # The server's log goes to a file: an unread pipe would fill up and block the server.
        self.log = tempfile.NamedTemporaryFile(prefix="crossrank-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; its log: {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start in 120 s")
            time.sleep(0.2)
        self.ps = psutil.Process(self.proc.pid)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


async def run_phase(
    url: str, bodies: list[bytes], docs: int, clients: int, per_client: int, max_seconds: float
) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    pairs_done = 0
    stop_at = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker(cid: int) -> None:
            nonlocal pairs_done
            for j in range(per_client):
                if time.monotonic() > stop_at:
                    return
                body, n = bodies[(cid * per_client + j) % len(bodies)], docs
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        "/v2/rerank", content=body, headers={"content-type": "application/json"}
                    )
                    ok = r.status_code == 200 and len(r.json()["results"]) == n
                    key = "ok" if ok else f"status_{r.status_code}"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                dt = time.perf_counter() - t0
                if key == "ok":
                    latencies.append(dt)
                    pairs_done += n
                else:
                    errors[key] = errors.get(key, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        elapsed = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests_ok": len(latencies),
        "failed": sum(errors.values()),
        "errors": errors,
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "pairs_per_s": pairs_done / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", required=True, help="model for crossrank serve (a directory or py:module:callable)"
    )
    p.add_argument(
        "--build",
        choices=["tiny", "minilm"],
        default=None,
        help="first build and export this model into --model",
    )
    p.add_argument(
        "--dataset", default=os.environ.get("CROSSRANK_DATASETS", "/work/shared/datasets") + "/scifact"
    )
    p.add_argument("--phases", default="32x8,16x8", help="comma-separated CLIENTSxREQUESTS_PER_CLIENT")
    p.add_argument("--docs", type=int, default=100)
    p.add_argument(
        "--distinct", type=int, default=64, help="distinct (query, candidates) requests to cycle through"
    )
    p.add_argument("--max-seconds", type=float, default=300, help="per-phase time bound")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--request-timeout-s", type=float, default=900.0, help="the server's per-request deadline")
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--max-batch-tokens", type=int, default=None)
    p.add_argument("--no-baseline", action="store_true", help="skip the in-process comparison")
    p.add_argument(
        "--soak", action="store_true", help="report RSS growth from the end of the first phase to the end"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.build:
        build_model(args.build, Path(args.model))
    requests = build_requests(Path(args.dataset), args.distinct, args.docs, args.seed)
    bodies = [json.dumps({"model": "m", "query": q, "documents": d}).encode() for q, d in requests]
    report: dict = {"model": args.model, "docs_per_request": args.docs, "cpu_count": os.cpu_count()}
    if not args.no_baseline:
        report["in_process"] = in_process_baseline(args, requests)
        print(f"in-process: {report['in_process']['pairs_per_s']:.1f} pairs/s", flush=True)

    server = Server(args)
    try:
        report["rss_start_mb"] = server.rss_mb()
        # Warm-up: every distinct request once (8 clients), so the measured phases see warm caches.
        warm = asyncio.run(
            run_phase(server.url, bodies, args.docs, 8, -(-len(bodies) // 8), args.max_seconds)
        )
        report["warmup_failed"] = warm["failed"]
        report["rss_after_warmup_mb"] = server.rss_mb()
        report["phases"] = []
        for spec in args.phases.split(","):
            clients, per = (int(x) for x in spec.lower().split("x"))
            res = asyncio.run(run_phase(server.url, bodies, args.docs, clients, per, args.max_seconds))
            res["rss_after_mb"] = server.rss_mb()
            if "in_process" in report:
                res["vs_in_process"] = res["pairs_per_s"] / report["in_process"]["pairs_per_s"]
            report["phases"].append(res)
            print(
                f"{clients:3d} clients: {res['requests_ok']} ok, {res['failed']} failed, "
                f"{res['pairs_per_s']:.1f} pairs/s ({res.get('vs_in_process', float('nan')):.2f}x in-process), "
                f"p50 {res['p50_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms "
                f"(p99/p50 {res['p99_ms'] / res['p50_ms']:.2f}), RSS {res['rss_after_mb']:.0f} MB",
                flush=True,
            )
        report["rss_end_mb"] = server.rss_mb()
        # Soak: measured from after the first phase, which reaches the load's own batch shapes
        # (ONNX Runtime keeps memory per shape) and fills the caches.
        base = report["phases"][0]["rss_after_mb"] if args.soak else report["rss_start_mb"]
        report["rss_growth"] = report["rss_end_mb"] / base - 1
        print(
            f"RSS: start {report['rss_start_mb']:.0f} MB, after warm-up {report['rss_after_warmup_mb']:.0f} MB, "
            f"end {report['rss_end_mb']:.0f} MB; growth {100 * report['rss_growth']:.1f}% "
            f"(from {'the end of the first phase' if args.soak else 'start'})",
            flush=True,
        )
    finally:
        report["server_exit"] = server.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    failed = sum(ph["failed"] for ph in report["phases"]) + report["warmup_failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
