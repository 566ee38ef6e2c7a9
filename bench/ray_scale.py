"""Ray Serve and Ray Data against crossrank's single-process paths, measured side by side in one run.

Serve: ``crossrank serve`` (one process, its CPU quota in threads) and two Ray Serve applications on one
local Ray cluster — 1 model replica x 2 CPUs and 2 replicas x 1 CPU — all up at once and idle but the
one under load; the phases are interleaved (serve, ray 1x2, ray 2x1, repeated ``--rounds`` times) so
the other agents' load on this shared machine hits every configuration alike. The load is
``bench/load_test_server.py``'s: N closed-loop clients sending Cohere ``/v2/rerank`` requests of one
SciFact query with ``--docs`` candidates.

Ray Data: ``crossrank rerank-run`` of a DL19 BM25 run at ``--depth``, in process and with ``--ray``
(2 actors x 1 CPU), twice each, interleaved. Pairs/s includes model loading (and actor start-up).

Example::

    python bench/ray_scale.py --build minilm --model /tmp/minilm-ce --docs 50 --phases 16x3 --rounds 2 \
        --json bench/ray_scale.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "python"), str(HERE.parent / "tests")]

import load_test_server as lt  # noqa: E402


def _deploy(model: str, args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    import ray
    from ray import serve

    from crossrank.ray.serve import serve_app

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = lt.free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    opts: tuple[str, ...] = (
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--request-timeout-s",
        str(args.request_timeout_s),
    )
    if args.max_length:
        opts += ("--max-length", str(args.max_length))
    one = serve_app(model, replicas=1, cpus_per_replica=2, options=opts)
    two = serve_app(model, replicas=2, cpus_per_replica=1, options=opts)
    serve.run_many(
        [
            serve.RunTarget(one, name="r1x2", route_prefix="/r1x2"),
            serve.RunTarget(two, name="r2x1", route_prefix="/r2x1"),
        ]
    )
    base = f"http://127.0.0.1:{port}"
    return base, {"ray_1x2": f"{base}/r1x2", "ray_2x1": f"{base}/r2x1"}


def serve_bench(args: argparse.Namespace) -> dict:
    import httpx
    import orjson

    requests = lt.build_requests(args.dataset, args.requests, args.docs, args.seed)
    bodies = [orjson.dumps({"model": "m", "query": q, "documents": d}) for q, d in requests]
    ns = argparse.Namespace(**vars(args))
    server = lt.Server(ns)
    try:
        _, ray_urls = _deploy(args.model, args)
        urls = {"crossrank_serve": server.url, **ray_urls}
        for name, url in urls.items():  # warm-up: every distinct request once
            for body in bodies:
                r = httpx.post(
                    f"{url}/v2/rerank",
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=600,
                )
                assert r.status_code == 200, (name, r.status_code, r.text[:200])
        results: dict[str, list[dict]] = {k: [] for k in urls}
        clients, per_client = (int(x) for x in args.phases.split("x"))
        for rnd in range(args.rounds):
            for name, url in urls.items():
                res = asyncio.run(lt.run_phase(url, bodies, args.docs, clients, per_client, args.max_seconds))
                res["round"] = rnd
                results[name].append(res)
                print(f"[round {rnd}] {name}: {res['pairs_per_s']:.1f} pairs/s, p95 {res['p95_ms']:.0f} ms, "
                      f"failed {res['failed']}", flush=True)  # fmt: skip
    finally:
        server.stop()
        from ray import serve

        serve.shutdown()  # frees the replicas' CPUs for the Ray Data part
    summary = {k: statistics.median(r["pairs_per_s"] for r in v) for k, v in results.items()}
    return {
        "phases": results,
        "median_pairs_per_s": summary,
        "ratio_ray_1x2_over_serve": summary["ray_1x2"] / summary["crossrank_serve"],
        "ratio_ray_2x1_over_1x2": summary["ray_2x1"] / summary["ray_1x2"],
    }


def rerank_run_bench(args: argparse.Namespace) -> dict:
    from crossrank.ray.rerank_run import rerank_run

    root = args.rerank_dataset
    run = root / "runs" / "bm25_top100.trec"
    out: dict[str, list[float]] = {"in_process": [], "ray_2x1": []}
    steady: dict[str, list[float]] = {"in_process": [], "ray_2x1": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name in out:
                kw = {"address": "local", "actors": 2, "cpus_per_actor": 1.0} if name != "in_process" else {}
                stamps: list[float] = []
                s = rerank_run(
                    run,
                    root,
                    args.model,
                    Path(tmp) / f"{name}{rnd}.trec",
                    options={"max_length": args.max_length} if args.max_length else None,
                    depth=args.depth,
                    chunk_queries=4,
                    progress=False,
                    on_chunk=lambda done, total, stamps=stamps: stamps.append(time.perf_counter()),
                    **kw,
                )
                out[name].append(s.pairs_per_s)
                # after the first chunk: no model loading or actor start-up left in the window
                per_chunk = 4 * args.depth
                rate = per_chunk * (len(stamps) - 1) / (stamps[-1] - stamps[0])
                steady[name].append(rate)
                print(f"[round {rnd}] rerank-run {name}: {s.pairs_per_s:.1f} pairs/s overall, "
                      f"{rate:.1f} after the first chunk ({s.pairs} pairs)", flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in out.items()}
    med_steady = {k: statistics.median(v) for k, v in steady.items()}
    return {
        "pairs_per_s": out,
        "steady_pairs_per_s": steady,
        "median": med,
        "median_steady": med_steady,
        "ratio_ray_over_in_process": med["ray_2x1"] / med["in_process"],
        "ratio_ray_over_in_process_steady": med_steady["ray_2x1"] / med_steady["in_process"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--build", choices=["tiny", "minilm"], default=None)
    p.add_argument("--dataset", type=Path, default=Path("/work/shared/datasets/scifact"))
    p.add_argument(
        "--rerank-dataset", type=Path, default=Path("/work/shared/datasets/trec-dl19-passage-rerank")
    )
    p.add_argument("--requests", type=int, default=16, help="distinct requests")
    p.add_argument("--docs", type=int, default=50)
    p.add_argument("--phases", default="16x3", help="CLIENTSxREQUESTS_PER_CLIENT of one phase")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--depth", type=int, default=20, help="rerank-run depth")
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--max-length", type=int, default=None, help="model token limit per pair (all paths)")
    p.add_argument("--request-timeout-s", type=float, default=900.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--skip-serve", action="store_true")
    p.add_argument("--skip-rerank-run", action="store_true")
    args = p.parse_args()
    args.max_batch_tokens = None
    args.seed = 0
    if args.build:
        lt.build_model(args.build, Path(args.model))
    t0 = time.time()
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_serve:
        report["serve"] = serve_bench(args)
    if not args.skip_rerank_run:
        report["rerank_run"] = rerank_run_bench(args)
    report["wall_s"] = time.time() - t0
    print(json.dumps({k: v for k, v in report.items() if k != "args"}, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
