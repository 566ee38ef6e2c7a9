"""Capacity model: model replicas and cores for a query rate, a candidate depth and a p95 latency target.

Inputs are measured, not assumed: the per-core scoring rate ``r`` (pairs/s of one inference thread) and
the thread-scaling efficiency ``e(c)`` (pairs/s of one c-thread replica over c single-thread replicas).

Model (per model replica with ``c`` cores):

* capacity ``mu = c * r * e(c)`` pairs/s; ``e(1) = 1``, ``e(c) = e2 ** log2(c)`` from the measured ``e2``;
* one query's work is ``depth`` pairs, so its service time alone is ``S = depth / mu``;
* each replica is treated as an M/M/1 queue (Poisson arrivals; the router spreads queries evenly): the
  sojourn time is exponential with mean ``S / (1 - rho)``, so ``p95 = ln(20) * S / (1 - rho)``. This is
  pessimistic for a batching server (merged requests share one step), so it sizes on the safe side;
* the highest utilization that meets the target is ``rho* = 1 - ln(20) * S / target``; below zero, ``c``
  cores per replica are too few for the target at this depth (one query alone is too slow);
* replicas ``= ceil(qps * depth / (rho* * mu))``, cores ``= replicas * c``; the ``c`` that needs the fewest
  cores wins.

``--check`` predicts the saturated throughput of the configurations ``bench/ray_scale.py`` measured
(``crossrank serve`` with 2 threads, Ray 1 replica x 2 CPUs, 2 x 1) from the per-core rate measured
*offline* (``rerank-run`` in process, after its first chunk) and compares it with what was measured over
HTTP. ``--nodes`` extrapolates on paper to a cluster.

Examples::

    python bench/capacity_model.py --json bench/ray_scale.json --check
    python bench/capacity_model.py --json bench/ray_scale.json --qps 50 --depth 100 --p95-ms 500
    python bench/capacity_model.py --json bench/ray_scale.json --nodes 8,16,32,64 --cores-per-node 16
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

LN20 = math.log(20.0)  # p95 of an exponential over its mean


@dataclass(frozen=True)
class Plan:
    """One sizing: ``replicas`` replicas of ``cores`` cores each."""

    cores_per_replica: int
    replicas: int
    utilization: float
    service_ms: float
    replica_pairs_per_s: float

    @property
    def cores(self) -> int:
        return self.cores_per_replica * self.replicas


def efficiency(c: int, e2: float) -> float:
    """Thread-scaling efficiency of a ``c``-thread replica (1 for one thread)."""
    return 1.0 if c <= 1 else e2 ** math.log2(c)


def replica_rate(c: int, r: float, e2: float) -> float:
    """Pairs/s of one replica with ``c`` cores."""
    return c * r * efficiency(c, e2)


def plan(qps: float, depth: int, p95_ms: float, r: float, e2: float, c: int) -> Plan | None:
    """Replicas of ``c`` cores for ``qps`` queries/s of ``depth`` pairs at p95 <= ``p95_ms``; None when
    one query alone is too slow on ``c`` cores."""
    mu = replica_rate(c, r, e2)
    s = depth / mu
    rho = 1.0 - LN20 * s / (p95_ms / 1000.0)
    if rho <= 0:
        return None
    replicas = max(1, math.ceil(qps * depth / (rho * mu)))
    return Plan(c, replicas, rho, s * 1000.0, mu)


def best_plan(qps: float, depth: int, p95_ms: float, r: float, e2: float, choices: list[int]) -> Plan | None:
    """The feasible plan with the fewest cores (ties: fewer, larger replicas)."""
    plans = [p for c in choices if (p := plan(qps, depth, p95_ms, r, e2, c)) is not None]
    return min(plans, key=lambda p: (p.cores, p.replicas)) if plans else None


def max_qps(
    cores: int, depth: int, p95_ms: float, r: float, e2: float, choices: list[int]
) -> tuple[float, int]:
    """Highest rate ``cores`` cores sustain at the target, and the replica size that gets it."""
    best = (0.0, 0)
    for c in choices:
        n = cores // c
        mu = replica_rate(c, r, e2)
        rho = 1.0 - LN20 * (depth / mu) / (p95_ms / 1000.0)
        if n >= 1 and rho > 0:
            best = max(best, (n * rho * mu / depth, c))
    return best


def measured(report: dict) -> dict[str, float]:
    """The figures a ``bench/ray_scale.py`` JSON report holds."""
    serve = report["serve"]["median_pairs_per_s"]
    run = report["rerank_run"]
    return {
        "serve_2t": serve["crossrank_serve"],
        "ray_1x2": serve["ray_1x2"],
        "ray_2x1": serve["ray_2x1"],
        "offline_2t": run["median_steady"]["in_process"],
        "docs": float(report["args"]["docs"]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=None, help="a bench/ray_scale.py report (the measured rates)")
    p.add_argument("--per-core", type=float, default=None, help="pairs/s of one core (default: from --json)")
    p.add_argument("--e2", type=float, default=None, help="2-thread efficiency (default: from --json)")
    p.add_argument("--qps", type=float, default=None)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--p95-ms", type=float, default=500.0)
    p.add_argument("--cores", default="1,2,4,8,16", help="replica sizes to consider")
    p.add_argument("--check", action="store_true", help="predict the measured configurations")
    p.add_argument("--nodes", default=None, help="comma-separated node counts to extrapolate to")
    p.add_argument("--cores-per-node", type=int, default=16)
    p.add_argument("--reserve-cores", type=int, default=1, help="per node, for the proxy, gateway, raylet")
    args = p.parse_args(argv)
    choices = [int(x) for x in args.cores.split(",")]
    m = measured(json.loads(args.json.read_text())) if args.json else None
    # Per-core rate from the offline (no HTTP) in-process run with 2 threads, and e(2) from Ray 1x2 vs 2x1.
    r = args.per_core or (m["offline_2t"] / 2 if m else None)
    e2 = args.e2 or (m["ray_1x2"] / m["ray_2x1"] if m else 1.0)
    if r is None:
        p.error("give --per-core or --json")
    print(f"per-core rate r = {r:.1f} pairs/s, 2-thread efficiency e2 = {e2:.3f}")
    if args.check:
        if m is None:
            p.error("--check needs --json")
        # Saturated closed-loop throughput is the capacity; r*2 assumes e(2) = 1 for the offline figure.
        offline_e = 1.0
        rows = [
            ("crossrank serve (1 process, 2 threads)", 2 * r * offline_e, m["serve_2t"]),
            ("Ray Serve 1 replica x 2 CPUs", 2 * r * offline_e, m["ray_1x2"]),
            ("Ray Serve 2 replicas x 1 CPU", 2 * r, m["ray_2x1"]),
        ]
        print("| configuration | predicted pairs/s | measured pairs/s | measured / predicted |")
        print("|---|---|---|---|")
        for name, pred, got in rows:
            print(f"| {name} | {pred:.1f} | {got:.1f} | {got / pred:.2f} |")
    if args.qps is not None:
        best = best_plan(args.qps, args.depth, args.p95_ms, r, e2, choices)
        if best is None:
            print(f"no replica size in {choices} scores {args.depth} pairs within {args.p95_ms} ms p95")
        else:
            print(
                f"{args.qps} q/s x {args.depth} pairs at p95 <= {args.p95_ms} ms: {best.replicas} replicas x "
                f"{best.cores_per_replica} cores = {best.cores} cores (utilization {best.utilization:.2f}, "
                f"one query alone {best.service_ms:.0f} ms)"
            )
    if args.nodes:
        print(
            f"| nodes | usable cores | max q/s at depth {args.depth}, p95 <= {args.p95_ms:.0f} ms | replica size |"
        )
        print("|---|---|---|---|")
        for n in (int(x) for x in args.nodes.split(",")):
            usable = n * (args.cores_per_node - args.reserve_cores)
            # Replicas do not span nodes: size within one node's usable cores.
            fit = [c for c in choices if c <= args.cores_per_node - args.reserve_cores]
            q, c = max_qps(usable, args.depth, args.p95_ms, r, e2, fit)
            print(f"| {n} | {usable} | {q:.1f} | {c} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
