"""Sharded first stages against one index, in one process, rounds alternated (best of rounds).

Usage::

    python bench/sharded_first_stage.py [--dataset scifact] [--threads 2] [--rounds 3] [--ray]

Reports, for 1, 2, 4 and 7 shards against one :class:`BM25Index`: build time (shards built on
``--threads`` threads, or as Ray tasks on a local 2-CPU cluster with ``--ray``), the time of an
``add`` of 10% more documents (every shard's impacts follow the new global statistics), and the
search time of the collection's queries (top-100); and it checks that every sharded result equals
the single index's. Also a flat :class:`ShardedDenseIndex` against one flat :class:`DenseIndex`
(random unit vectors, 100,000 x 128, 200 queries, top-100).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from crossrank.eval.datasets import load_beir
from crossrank.retrieve.bm25 import BM25Index
from crossrank.retrieve.dense import DenseIndex
from crossrank.retrieve.sharded_bm25 import ShardedBM25Index
from crossrank.retrieve.sharded_dense import ShardedDenseIndex

DATASETS = Path(
    os.environ.get("CROSSRANK_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)


def best(rounds: int, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """(best time of ``rounds`` calls of ``fn(*args, **kwargs)``, the last result)."""
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args()
    if args.ray:
        from crossrank.ray import connect

        connect("local", num_cpus=2, _node_ip_address="127.0.0.1")
    ds = load_beir(DATASETS / args.dataset, judged_only=False)
    texts = ds.documents()
    queries = list(ds.queries.values())
    cut = int(len(texts) * 0.9)
    th = args.threads
    print(f"{args.dataset}: {len(texts)} docs, {len(queries)} queries, top-100, {th} threads")

    t_build, single = best(args.rounds, BM25Index.build, texts[:cut], num_threads=th)
    t_search, ref = best(args.rounds, single.search, queries, k=100, num_threads=th)
    print(f"{'index':>10} {'build s':>8} {'add s':>8} {'search s':>9}  equal")
    single.add(texts[cut:], num_threads=th)
    ref_after = single.search(queries, k=100, num_threads=th)
    print(f"{'single':>10} {t_build:8.3f} {'':>8} {t_search:9.3f}")
    for n in (1, 2, 4, 7):
        build = ShardedBM25Index.build
        tb, sh = best(args.rounds, build, texts[:cut], num_shards=n, num_threads=th, ray=bool(args.ray))
        ts, hits = best(args.rounds, sh.search, queries, k=100, num_threads=th)
        equal = bool((hits.ids == ref.ids).all() and np.array_equal(hits.scores, ref.scores))
        t = time.perf_counter()
        sh.add(texts[cut:], num_threads=th)
        ta = time.perf_counter() - t
        after = sh.search(queries, k=100, num_threads=th)
        equal = equal and bool(
            (after.ids == ref_after.ids).all() and np.array_equal(after.scores, ref_after.scores)
        )
        print(f"{f'{n} shards':>10} {tb:8.3f} {ta:8.3f} {ts:9.3f}  {equal}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((100_000, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, len(x), 200)] + 0.1 * rng.standard_normal((200, 128)).astype(np.float32)
    one = DenseIndex.build(x)
    t1, r1 = best(args.rounds, one.search, q, 100)
    print(f"dense flat 100000x128, 200 queries: single {t1:.3f} s")
    for n in (2, 4, 7):
        sd = ShardedDenseIndex.build(x, num_shards=n)
        tn, rn = best(args.rounds, sd.search, q, 100)
        same = bool((rn.ids == r1.ids).all() and np.abs(rn.scores - r1.scores).max() <= 1e-6)
        print(f"dense {n} shards: {tn:.3f} s ({tn / t1:.2f}x of single)  equal {same}")


if __name__ == "__main__":
    main()
