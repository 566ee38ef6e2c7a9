"""Smoke-test an installed crossrank wheel in a venv without a compiler, CMake or PyTorch.

Run with that venv's python (``.ci/run`` starts it under ``env -i`` with PATH = the venv's bin only):

    python .ci/wheel_smoke.py --no-build-tools FIXTURE_DIR   # FIXTURE_DIR from .ci/wheel_fixture.py
    python .ci/wheel_smoke.py --no-cross-encoder             # where no fixture can be made (no torch)

Checks, each failing with a message:

* with ``--no-build-tools`` (.ci/run): no compiler or build tool is reachable (gcc, cc, c++, g++, clang,
  cmake, ninja, make) and PyTorch is not installed, so nothing can have been built or exported on the
  spot (cibuildwheel's test environments have both, so it does not pass this flag);
* ``crossrank`` and its compiled core are imported from this venv's site-packages (not a source tree);
* ``crossrank info`` (the installed console script) runs and reports this version and its SIMD paths;
* BM25: build, search, save and load equal a plain-Python Lucene BM25 over the analyzer's terms;
* MaxSim on every SIMD path this CPU has equals NumPy (the wheel's run-time dispatch);
* a cross-encoder rerank of the exported tiny model equals transformers' logits on the same weights
  (``FIXTURE_DIR/expected.json``) within 1e-4, and ranks in the same order.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np

BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "clang", "clang++", "cmake", "ninja", "make")


def check(cond: bool, what: str) -> None:
    if not cond:
        sys.exit(f"wheel smoke: FAILED: {what}")
    print(f"  ok  {what}")


def no_toolchain() -> None:
    found = {t: shutil.which(t) for t in BUILD_TOOLS}
    check(not any(found.values()), f"no compiler/CMake on PATH={os.environ.get('PATH')!r}: {found}")
    check(importlib.util.find_spec("torch") is None, "PyTorch is not installed in this venv")


def installed_from_site_packages() -> None:
    import crossrank
    from crossrank import _core

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for mod in (crossrank, _core):
        path = Path(mod.__file__ or "").resolve()
        check(site in path.parents, f"{mod.__name__} loads from this venv ({path})")
    check(Path(_core.__file__ or "").suffix in (".so", ".pyd"), "the core is a compiled extension")
    heavy = sorted(m for m in ("onnxruntime", "faiss", "torch", "fastapi") if m in sys.modules)
    check(not heavy, f"import crossrank stays light (loaded: {heavy})")


def cli_info() -> dict:
    import crossrank

    exe = shutil.which("crossrank")
    check(
        exe is not None and Path(sys.prefix).resolve() in Path(exe).resolve().parents,
        f"the crossrank console script is this venv's ({exe})",
    )
    out = subprocess.run([exe or "crossrank", "info"], capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"`crossrank info` exits 0 (stderr: {out.stderr.strip()[-300:]})")
    info = json.loads(out.stdout)
    check(info["version"] == crossrank.__version__, f"crossrank info reports version {info['version']}")
    check(
        "scalar" in info["simd_compiled"] and info["simd_active"] in info["simd_available"],
        f"SIMD: compiled {info['simd_compiled']}, available {info['simd_available']}, "
        f"active {info['simd_active']}",
    )
    print(f"      crossrank info: {json.dumps(info)}")
    return info


def lucene_bm25(docs: list[list[str]], query: list[str], k1: float, b: float) -> list[float]:
    """The obvious Lucene BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), length-normalised tf."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    scores = []
    for d in docs:
        s = 0.0
        for term in query:
            df = sum(term in other for other in docs)
            tf = d.count(term)
            if df == 0 or tf == 0:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            s += idf * tf / (tf + k1 * (1.0 - b + b * len(d) / avgdl))
        scores.append(s)
    return scores


def bm25() -> None:
    from crossrank import Analyzer, BM25Index

    texts = [
        "BM25 ranks documents by term frequency and inverse document frequency.",
        "Paris is the capital and most populous city of France.",
        "Cross-encoders read the query and the document together to rank documents.",
        "The Eiffel Tower in Paris was completed in 1889.",
        "Dense retrieval embeds queries and documents as vectors.",
    ]
    ids = [f"d{i}" for i in range(len(texts))]
    query = "how do rankers score documents in Paris"
    index = BM25Index.build(texts, ids=ids, variant="lucene", k1=1.2, b=0.75)
    hits = index.search([query], k=len(texts))
    an = Analyzer()
    ref = lucene_bm25([an.analyze(t) for t in texts], an.analyze(query), 1.2, 0.75)
    got = dict(zip(hits.ids[0].tolist(), hits.scores[0].tolist(), strict=True))
    check(
        all(abs(got[i] - r) < 1e-5 for i, r in zip(ids, ref, strict=True)),
        f"BM25 scores equal the Python reference ({got})",
    )
    order = sorted(range(len(texts)), key=lambda i: (-ref[i], i))
    check(hits.ids[0].tolist() == [ids[i] for i in order], "BM25 order equals the reference order")
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "idx")
        again = BM25Index.load(Path(tmp) / "idx").search([query], k=3)
    check(again.ids[0].tolist() == hits.ids[0][:3].tolist(), "BM25 save + load gives the same top 3")


def maxsim(info: dict) -> None:
    from crossrank import _core
    from crossrank.rerank.maxsim import PackedDocs, maxsim

    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((int(n), 48)).astype(np.float32) for n in rng.integers(1, 40, 25)]
    query = rng.standard_normal((9, 48)).astype(np.float32)
    ref = np.array(
        [float((query.astype(np.float64) @ d.T.astype(np.float64)).max(axis=1).sum()) for d in docs]
    )
    packed = PackedDocs(docs, dtype="fp32")
    try:
        for isa in info["simd_available"]:
            if isa not in info["simd_compiled"]:
                continue
            _core.simd_force(isa)
            got = maxsim(query, packed)
            check(bool(np.allclose(got, ref, rtol=1e-5, atol=1e-4)), f"MaxSim on the {isa} path equals NumPy")
    finally:
        _core.simd_force(None)


def cross_encoder(fixture: Path) -> None:
    from crossrank import CrossEncoder

    expected = json.loads((fixture / "expected.json").read_text())
    query, documents = expected["query"], expected["documents"]
    ref = np.asarray(expected["logits"], dtype=np.float64)
    ce = CrossEncoder(fixture / "model", activation=None, precision="fp32", max_length=128)
    scores = ce.score(query, documents)
    diff = float(np.max(np.abs(scores.scores - ref)))
    check(diff < 1e-4, f"cross-encoder logits equal transformers' within 1e-4 (max diff {diff:.2e})")
    rows = ce.rank(query, documents, 5)
    want = sorted(range(len(documents)), key=lambda i: (-ref[i], i))[:5]
    check([r["corpus_id"] for r in rows] == want, f"cross-encoder rank order equals the reference ({want})")
    check(all(isinstance(r["score"], float) for r in rows), "rank scores are Python floats")


def main() -> None:
    parser = argparse.ArgumentParser(description="Smoke-test an installed crossrank wheel.")
    parser.add_argument("fixture", nargs="?", type=Path, help="folder written by .ci/wheel_fixture.py")
    parser.add_argument("--no-build-tools", action="store_true", help="require no compiler/CMake/torch")
    parser.add_argument("--no-cross-encoder", action="store_true", help="skip the cross-encoder check")
    args = parser.parse_args()
    if (args.fixture is None) != args.no_cross_encoder:
        parser.error("give FIXTURE_DIR or --no-cross-encoder (exactly one)")
    print(f"wheel smoke: python {sys.version.split()[0]} at {sys.executable}")
    if args.no_build_tools:
        no_toolchain()
    installed_from_site_packages()
    info = cli_info()
    bm25()
    maxsim(info)
    if args.fixture is not None:
        cross_encoder(args.fixture)
    else:
        print("  --  cross-encoder check not run (--no-cross-encoder)")
    print("wheel smoke: all checks passed")


if __name__ == "__main__":
    main()
