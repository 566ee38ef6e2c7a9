"""Packed postings (format 2) vs plain postings (format 1): search time and index size, old vs new.

Usage (the old tree: ``git archive <rev> python bench | tar -x -C /tmp/old`` plus its built
``_core`` in ``/tmp/old/python/crossrank``)::

    PYTHONPATH=python python bench/bm25_codec_old_new.py --old /tmp/old/python [--rounds 7]

Each tree runs in its own process, the processes alternated (old, new, old, new, ...); each process
times every case ``--rounds`` times and the best round of all processes is kept; the spread columns
give each tree's slowest process best over its fastest (the run-to-run noise; ``--new`` set to the
old tree measures the old-vs-old noise of the ratio itself). Times are the
calling thread's CPU time (``time.thread_time``; one search thread runs on the caller), which a
loaded machine inflates much less than wall time. Cases: SciFact
(5,183 documents, 300 test queries, analysed once; search only) and the 100k-document synthetic
Zipf corpus of ``bench/bm25_scale.py`` (1,000 queries), one batched call per case on one thread,
strategies exhaustive / pruned / auto, k = 10, 100 (SciFact) or 10, 1000 (synthetic). It also
reports the saved index's postings bytes (``docs`` + ``tfs`` or the packed arrays, + ``impacts``)
per posting, and checks that old and new return the same ids and score bits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CROSSRANK_DATASETS", REPO.parent / "shared" / "datasets"))

CODE = r"""
import json, sys, tempfile, time, hashlib
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[3])  # bench/ (bm25_scale)
from crossrank import BM25Index
from crossrank.eval.datasets import load_beir
from crossrank.retrieve.bm25 import _check_params
import bm25_scale as S

rounds = int(sys.argv[2])
out = {"times": {}, "sizes": {}, "digest": {}}

def postings_bytes(index):
    with tempfile.TemporaryDirectory() as d:
        index.save(Path(d) / "ix")
        m = json.loads((Path(d) / "ix" / "manifest.json").read_text())
        names = ("docs", "tfs", "impacts", "block_ptr", "block_last", "block_off", "packed_postings")
        b = sum(Path(d, "ix", e["file"]).stat().st_size for n, e in m["arrays"].items() if n in names)
        total = sum(p.stat().st_size for p in (Path(d) / "ix").iterdir())
    return b, total

def run(name, index, qt, qo, ks):
    view = index._snap.view
    nnz = int(index._term_ptr[-1])
    b, total = postings_bytes(index)
    out["sizes"][name] = {"postings": nnz, "postings_bytes": b, "index_bytes": total}
    for strategy in ("exhaustive", "pruned", "auto"):
        for k in ks:
            key = f"{name} {strategy} k={k}"
            ids, sc = view.search(qt, qo, k, 1, strategy)
            out["digest"][key] = hashlib.sha256(ids.tobytes() + sc.tobytes()).hexdigest()
            best = 1e9
            for _ in range(rounds):
                t0 = time.thread_time(); view.search(qt, qo, k, 1, strategy); best = min(best, time.thread_time() - t0)
            out["times"][key] = best

ds = load_beir(sys.argv[1])
index = BM25Index.build(ds.documents(), variant="lucene", k1=0.9, b=0.4)
qs = list(ds.queries.values())[:300]
qt, qo = index._analyze_to_ids(index._vocab, qs, False, 1)
run("scifact", index, np.ascontiguousarray(qt, dtype=np.uint32), qo, (10, 100))

tokens = S.corpus(100_000)
index = BM25Index._empty(_check_params("lucene", S.K1, S.B, 0.5), None, "position")
snap = index._snap
used = np.unique(tokens)
words = [f"t{i}" for i in used.tolist()]
ids, _ = snap.vocab.map_tokens(words, np.array([0, len(words)], dtype=np.int64), True)
remap = np.zeros(S.VOCAB, dtype=np.uint32)
remap[used] = ids
index._snap = index._grown(snap, snap.vocab, remap[tokens.reshape(-1)], np.arange(0, tokens.size + 1, S.DOC_LEN, dtype=np.int64), 1, None)
qs = S.queries()
qt = np.concatenate([remap[q] for q in qs]).astype(np.uint32)
qo = np.concatenate([[0], np.cumsum([len(q) for q in qs])]).astype(np.int64)
run("zipf100k", index, qt, qo, (10, 1000))
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the old tree's python/ directory")
    ap.add_argument("--new", default=str(REPO / "python"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--processes", type=int, default=2, help="processes per tree (alternated)")
    args = ap.parse_args()
    scifact = DATASETS / "scifact"
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(args.processes):
        for label, path in (("old", args.old), ("new", args.new)):
            env = {**os.environ, "PYTHONPATH": path}
            res = subprocess.run(
                [sys.executable, "-c", CODE, str(scifact), str(args.rounds), str(REPO / "bench")],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    old, new = runs["old"], runs["new"]
    same = all(o["digest"] == n["digest"] for o in old for n in new)
    print(f"old and new results identical (ids and score bits): {same}")
    for name in old[0]["sizes"]:
        so, sn = old[0]["sizes"][name], new[0]["sizes"][name]
        n = so["postings"]
        print(
            f"{name}: {n:,} postings; postings bytes/posting old {so['postings_bytes'] / n:.2f} "
            f"new {sn['postings_bytes'] / n:.2f}; index on disk old {so['index_bytes']:,} B "
            f"new {sn['index_bytes']:,} B ({sn['index_bytes'] / so['index_bytes']:.2f}x)"
        )
    # Spread: each tree's slowest process best over its fastest one (run-to-run noise of one tree).
    print("case | old ms | new ms | new / old | old spread | new spread")
    for key in old[0]["times"]:
        po = [r["times"][key] for r in old]
        pn = [r["times"][key] for r in new]
        to, tn = min(po) * 1e3, min(pn) * 1e3
        print(
            f"{key} | {to:.2f} | {tn:.2f} | {tn / to:.3f} | {max(po) / min(po):.2f} | {max(pn) / min(pn):.2f}"
        )


if __name__ == "__main__":
    main()
