"""Old vs new crossrank on the same data, each in its own process, rounds alternated (regression check).

Usage (build the old tree first: ``git worktree add /tmp/old REV`` + a CMake build that drops ``_core``
into ``/tmp/old/python/crossrank``)::

    python bench/regress_old_new.py --old /tmp/old/python [--ce-model DIR --precision fp32]

Reports the best-of-rounds time of BM25 search (SciFact, 300 queries, top-100, 1 thread), MaxSim
(32 x 384 query vs 1,000 documents x 180 tokens, fp32) and, with ``--ce-model``, CrossEncoder.rank over
4 queries x 100 BM25 candidates at max_length 512.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DATASETS = Path(
    os.environ.get("CROSSRANK_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)

# Runs inside the old or the new tree: imports are tried at both layouts.
CODE = r"""
import sys, time, json
import numpy as np
from crossrank import BM25Index
try:
    from crossrank.eval.datasets import load_beir
    from crossrank.rerank.maxsim import PackedDocs, maxsim
except ImportError:
    from crossrank.datasets import load_beir
    from crossrank import PackedDocs, maxsim
ds = load_beir(sys.argv[1])
texts = ds.documents()
idx = BM25Index.build(texts, variant="lucene", k1=0.9, b=0.4)
qs = list(ds.queries.values())[:300]
out = {}
best = 1e9
for _ in range(7):
    t0 = time.perf_counter(); idx.search(qs, k=100, num_threads=1); best = min(best, time.perf_counter() - t0)
out["bm25_ms"] = best * 1e3
rng = np.random.default_rng(0)
docs = PackedDocs([rng.standard_normal((180, 384)).astype(np.float32) for _ in range(1000)], dtype="fp32")
q = rng.standard_normal((32, 384)).astype(np.float32)
best = 1e9
for _ in range(30):
    t0 = time.perf_counter(); maxsim(q, docs); best = min(best, time.perf_counter() - t0)
out["maxsim_ms"] = best * 1e3
if sys.argv[2]:
    from crossrank import CrossEncoder
    ce = CrossEncoder(sys.argv[2], precision=sys.argv[3], max_length=512)
    hits = idx.search(qs[:4], k=100)
    cands = [[texts[int(i)] for i in row] for row in hits.ids]
    ce.rank(qs[0], cands[0][:10])
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        for qq, c in zip(qs[:4], cands):
            ce.rank(qq, c)
        best = min(best, time.perf_counter() - t0)
    out["ce_pairs_per_s"] = sum(map(len, cands)) / best
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="python/ folder of the old tree (holding crossrank/)")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parents[1] / "python"))
    ap.add_argument("--ce-model", default="", help="a cross-encoder folder both versions can load")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    res: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        for name, path in (("old", args.old), ("new", args.new)):
            cmd = [sys.executable, "-c", CODE, str(DATASETS / "scifact"), args.ce_model, args.precision]
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            res[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for key, better in (("bm25_ms", min), ("maxsim_ms", min), ("ce_pairs_per_s", max)):
        if key in res["new"][0]:
            old = better(r[key] for r in res["old"])
            new = better(r[key] for r in res["new"])
            print(f"{key}: old {old:.2f}  new {new:.2f}  new/old {new / old:.3f}")


if __name__ == "__main__":
    main()
