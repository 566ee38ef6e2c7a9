"""crossrank's cross-encoder against fastembed's TextCrossEncoder and FlashRank's Ranker: same ONNX graph, offline.

Workload: the first ``--queries`` SciFact *test* queries, BM25 (crossrank) top ``--docs`` (100) each. Every
engine scores the same (query, document) pairs with the same fp32 graph file (``<model>/onnx/model.onnx``),
the same max_length (``--max-length``; default: the model's own limit, its tokenizer's
``model_max_length`` capped by its position embeddings) and the same ONNX Runtime intra-op thread count.

Speed: one warm-up pass, then the best of ``--reps`` full passes; pairs/s = pairs / seconds of that pass;
ratios are crossrank pairs/s over the peer's. Faithfulness: every engine's scores against crossrank's raw
logits on the plain graph (``activation=None``; ``CrossEncoder`` never applies ``calibration.json``):
max abs difference and per-query top-10 overlap. FlashRank returns sigmoid(logit): it is compared on that
scale (crossrank's logits through a sigmoid), and on the logit scale after inverting its float32 sigmoid.

Engines (one ``score()`` call per query unless said otherwise, as the peers' APIs take one query):

- crossrank fp32 plain graph: ``CrossEncoder(backend="onnxruntime", precision="fp32", cache_tokens=0)``
  whose backend is replaced by ``load_backend(..., fuse=False)``: crossrank's default fp32 path runs an
  offline-fused copy of the graph, this row runs ``model.onnx`` itself, as the peers. The reference.
- crossrank fp32 plain graph, ``score_batch``: all queries in one call (batches packed across queries).
- crossrank fp32 default: the graph crossrank picks by default (the fused copy when the fusions apply).
- fastembed ``TextCrossEncoder``: registered with ``add_custom_model`` and loaded from a scratch folder
  (``specific_model_path``; graph symlinked, tokenizer files copied, ``model_max_length`` set to the
  max_length, the only truncation knob it reads); ``threads`` = ``--threads``; its default batch size 64.
- FlashRank ``Ranker``: a scratch ``cache_dir/<name>/`` folder, ``<name>`` added to
  ``flashrank.Config.model_file_map`` (it only loads names in that map); ``max_length`` = max_length; its
  ONNX Runtime session (built without options) is replaced by one on the same file with
  ``intra_op_num_threads`` = ``--threads``. One batch per query (all documents, as FlashRank does).

crossrank's document token cache is off (``cache_tokens=0``): the timed passes repeat the same documents,
which the peers re-tokenize every time. Session settings that still differ: crossrank turns intra-op
thread spinning off, the peers keep ONNX Runtime's default (on). The peers run with
``HF_HUB_OFFLINE=1`` in a subprocess of ``--peer-python``, a separate venv (fastembed needs
huggingface-hub<2; crossrank's venv has 2.x) that imports only the peer and NumPy.

    python3 -m venv /work/venv-peers && /work/venv-peers/bin/pip install fastembed flashrank numpy
    nice -n 15 .venv/bin/python bench/ce_peers_onnx.py --model /work/runs/ce-full --queries 10 \\
        --json bench/ce_peers_onnx.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scifact_candidates import Work, bm25_candidates

if TYPE_CHECKING:
    from crossrank import CrossEncoder

Runner = Callable[[], list[np.ndarray]]

PEERS = ("fastembed", "flashrank")
PEER_LABELS = {"fastembed": "fastembed TextCrossEncoder", "flashrank": "FlashRank Ranker"}
REFERENCE = "crossrank fp32 plain graph"
FOLDER_NAME = "crossrank-ce-fp32"  # FlashRank's model_name; fastembed's folder
FASTEMBED_NAME = "local/crossrank-ce-fp32"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
TOP_K = 10


# ---------------------------------------------------------------------------------------- shared helpers
def versions(names: tuple[str, ...]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def time_passes(run: Runner, reps: int) -> tuple[list[np.ndarray], list[float]]:
    """Scores of a warm-up pass, then the seconds of ``reps`` timed passes."""
    scores = run()
    seconds = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t)
    return scores, seconds


def session_threads(session: Any) -> int:
    return int(session.get_session_options().intra_op_num_threads)


# ---------------------------------------------------------------------------------------- peer workers
def fastembed_runner(
    work: Work, folder: Path, threads: int, batch_size: int
) -> tuple[Runner, dict[str, Any]]:
    from fastembed.common.model_description import ModelSource
    from fastembed.rerank.cross_encoder import TextCrossEncoder

    TextCrossEncoder.add_custom_model(
        FASTEMBED_NAME, sources=ModelSource(hf=FASTEMBED_NAME), model_file="model.onnx"
    )
    enc = TextCrossEncoder(
        FASTEMBED_NAME,
        cache_dir=str(folder.parent / "fastembed_cache"),
        threads=threads,
        providers=["CPUExecutionProvider"],
        specific_model_path=str(folder),
        local_files_only=True,
    )
    inner = enc.model
    info = {
        "graph": os.path.realpath(inner._model_dir / inner.model_description.model_file),
        "truncation_max_length": inner.tokenizer.truncation["max_length"],
        "truncation_strategy": inner.tokenizer.truncation["strategy"],
        "intra_op_threads": session_threads(inner.model),
        "intra_op_spinning": "ONNX Runtime default (on)",
        "batch_size": batch_size,
        "providers": inner.model.get_providers(),
        "how_loaded": "TextCrossEncoder.add_custom_model + specific_model_path=<scratch folder>",
    }

    def run() -> list[np.ndarray]:
        return [np.asarray(list(enc.rerank(q, docs, batch_size=batch_size)), np.float64) for q, docs in work]

    return run, info


def flashrank_runner(
    work: Work, folder: Path, threads: int, max_length: int
) -> tuple[Runner, dict[str, Any]]:
    import onnxruntime as ort
    from flashrank import Config, Ranker, RerankRequest

    Config.model_file_map[FOLDER_NAME] = "model.onnx"  # the dict Ranker looks names up in
    ranker = Ranker(
        model_name=FOLDER_NAME, cache_dir=str(folder.parent), max_length=max_length, log_level="WARNING"
    )
    graph = ranker.model_dir / "model.onnx"
    default_threads = session_threads(ranker.session)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    ranker.session = ort.InferenceSession(str(graph), sess_options=opts, providers=["CPUExecutionProvider"])
    info = {
        "graph": os.path.realpath(graph),
        "truncation_max_length": ranker.tokenizer.truncation["max_length"],
        "truncation_strategy": ranker.tokenizer.truncation["strategy"],
        "intra_op_threads": session_threads(ranker.session),
        "intra_op_threads_flashrank_default": default_threads,
        "intra_op_spinning": "ONNX Runtime default (on)",
        "batch_size": "all documents of a query",
        "providers": ranker.session.get_providers(),
        "how_loaded": (
            "model_file_map[name] = 'model.onnx', Ranker(name, cache_dir=<scratch>); session replaced by "
            "one on the same file with intra_op_num_threads set"
        ),
    }

    def score(query: str, docs: list[str]) -> np.ndarray:
        passages = [{"id": i, "text": d} for i, d in enumerate(docs)]
        out = np.empty(len(docs), np.float64)
        for r in ranker.rerank(RerankRequest(query=query, passages=passages)):
            out[r["id"]] = float(r["score"])
        return out

    def run() -> list[np.ndarray]:
        return [score(q, docs) for q, docs in work]

    return run, info


def peer_worker(args: argparse.Namespace) -> None:
    """Subprocess side: load one peer, time it, print one JSON object on stdout (imports no crossrank)."""
    data = json.loads(args.work.read_text())
    work: Work = [(q, docs) for q, docs in zip(data["queries"], data["documents"], strict=True)]
    res: dict[str, Any] = {
        "engine": args.peer_worker,
        "versions": versions(
            ("fastembed", "FlashRank", "onnxruntime", "tokenizers", "huggingface-hub", "numpy")
        ),
    }
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON
            if args.peer_worker == "fastembed":
                run, info = fastembed_runner(work, args.folder, args.threads, args.batch_size)
            else:
                run, info = flashrank_runner(work, args.folder, args.threads, data["max_length"])
            scores, seconds = time_passes(run, args.reps)
        res.update(info=info, seconds=seconds, scores=[s.tolist() for s in scores])
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(res))


# ---------------------------------------------------------------------------------------- crossrank side
def crossrank_engines(
    model: Path, max_length: int | None, threads: int
) -> tuple[dict[str, CrossEncoder], dict[str, Any]]:
    """The plain-graph reference (fusion off) and crossrank's default fp32 path, raw logits, no token cache."""
    import crossrank
    from crossrank import CrossEncoder
    from crossrank.models.onnx_session import load_backend

    kw: dict[str, Any] = {"backend": "onnxruntime", "precision": "fp32", "num_threads": threads}
    opts = {"max_length": max_length, "activation": None, "cache_tokens": 0, **kw}
    default = CrossEncoder(model, **opts)
    plain = CrossEncoder(model, **opts)
    plain.backend = load_backend(plain.files.onnx_path, fuse=False, **kw)
    if plain.backend.onnx_path != plain.files.onnx_path:  # type: ignore[attr-defined]
        raise RuntimeError(f"crossrank runs {plain.backend.onnx_path}, not {plain.files.onnx_path}")  # type: ignore[attr-defined]
    info = {
        "version": crossrank.__version__,
        "graph": str(plain.files.onnx_path.resolve()),
        "default_graph": str(default.backend.onnx_path),  # type: ignore[attr-defined]
        "max_length": plain.max_length,
        "tokenizer": str(plain.files.tokenizer_path),
        "intra_op_threads": threads,
        "intra_op_spinning": "off (crossrank sets session.intra_op.allow_spinning=0)",
        "backend": repr(plain.backend),
        "default_backend": repr(default.backend),
    }
    return {"plain": plain, "default": default}, info


def crossrank_runners(ces: dict[str, CrossEncoder], work: Work) -> dict[str, Runner]:
    def per_query(ce: CrossEncoder) -> Runner:
        return lambda: [np.asarray(ce.score(q, docs).scores, np.float64) for q, docs in work]

    def batched(ce: CrossEncoder) -> Runner:
        queries, docs = [q for q, _ in work], [d for _, d in work]
        return lambda: [np.asarray(s.scores, np.float64) for s in ce.score_batch(queries, docs)]

    return {
        REFERENCE: per_query(ces["plain"]),
        f"{REFERENCE}, score_batch": batched(ces["plain"]),
        "crossrank fp32 default graph": per_query(ces["default"]),
    }


def peer_folder(ce: CrossEncoder, max_length: int, root: Path) -> Path:
    """``root/FOLDER_NAME``: the graph (symlink), tokenizer files, config; model_max_length = max_length."""
    folder = root / FOLDER_NAME
    folder.mkdir(parents=True)
    (folder / "model.onnx").symlink_to(ce.files.onnx_path.resolve())
    tok_dir = ce.files.tokenizer_path.parent
    for name in TOKENIZER_FILES:
        if (tok_dir / name).is_file():
            shutil.copy(tok_dir / name, folder / name)
    (folder / "config.json").write_text(json.dumps(ce.files.config))
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    tok_cfg["model_max_length"] = max_length
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    return folder


def run_peer(peer: str, args: argparse.Namespace, work_file: Path, folder: Path) -> dict[str, Any]:
    cmd = [
        str(args.peer_python),
        str(Path(__file__).resolve()),
        "--peer-worker",
        peer,
        "--work",
        str(work_file),
        "--folder",
        str(folder),
        "--threads",
        str(args.threads),
        "--reps",
        str(args.reps),
        "--batch-size",
        str(args.batch_size),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        return {"error": f"could not start {args.peer_python}: {exc}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"worker exited {proc.returncode} without a result; stderr: {proc.stderr[-2000:]}"}


# ---------------------------------------------------------------------------------------- reporting
def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def agreement(ref: list[np.ndarray], got: list[np.ndarray], scale: str) -> dict[str, Any]:
    """Top-10 overlap and max abs difference against the reference, overall and per query.

    The measures are crossrank's own :func:`~crossrank.models.quantize_static.ranking_fidelity` (the
    int8 benches use it too), applied to all queries and to each one.
    """
    from crossrank.models.quantize_static import ranking_fidelity

    pairs = list(zip(ref, got, strict=True))
    per_query = [ranking_fidelity([a], [b], k=TOP_K) for a, b in pairs]
    overall = ranking_fidelity(ref, got, k=TOP_K)
    return {
        "scale": scale,
        "max_abs_diff": overall["max_abs_err"],
        "max_abs_diff_per_query": [q["max_abs_err"] for q in per_query],
        "top10_overlap_mean": overall["top10_overlap_mean"],
        "top10_overlap_min": overall["top10_overlap_min"],
        "top10_overlap_per_query": [q["top10_overlap_mean"] for q in per_query],
    }


def engine_agreement(ref: list[np.ndarray], got: list[np.ndarray], returns_sigmoid: bool) -> dict[str, Any]:
    """Agreement with the reference logits on the logit and the sigmoid scale."""
    if not returns_sigmoid:
        return {
            "logit": agreement(ref, got, "raw logit"),
            "sigmoid": agreement([sigmoid(r) for r in ref], [sigmoid(g) for g in got], "sigmoid(logit)"),
        }
    out = {"sigmoid": agreement([sigmoid(r) for r in ref], got, "sigmoid(logit), as returned")}
    # Back to logits in float64 from float32 probabilities; saturated ones (0 or 1) are left out.
    keep = [(g > 0) & (g < 1) for g in got]
    inv = [np.log(g[m]) - np.log1p(-g[m]) for g, m in zip(got, keep, strict=True)]
    out["logit"] = agreement(
        [r[m] for r, m in zip(ref, keep, strict=True)], inv, "logit recovered from the float32 sigmoid"
    )
    out["logit"]["saturated_pairs_left_out"] = int(sum((~m).sum() for m in keep))
    return out


def speed(seconds: list[float], pairs: int) -> dict[str, Any]:
    best = min(seconds)
    return {"pairs_per_s": pairs / best, "seconds_best": best, "seconds": seconds}


def print_table(res: dict[str, Any]) -> None:
    ref = res["engines"][REFERENCE]["pairs_per_s"]
    print(
        f"\n{res['pairs']} pairs, max_length {res['max_length']}, {res['threads']} threads, best of {res['reps']}"
    )
    head = f"{'engine':<44} {'pairs/s':>8} {'crossrank/x':>11} {'max|d| logit':>12} {'max|d| sigm':>11} {'top10 mean/min':>14}"
    print(head)
    for name, e in res["engines"].items():
        if "error" in e:
            print(f"{name:<44} not measured: {e['error'][:300]}")
            continue
        lg, sg = e["agreement"]["logit"], e["agreement"]["sigmoid"]
        overlap = f"{sg['top10_overlap_mean']:.3f}/{sg['top10_overlap_min']:.2f}"
        print(
            f"{name:<44} {e['pairs_per_s']:>8.1f} {ref / e['pairs_per_s']:>11.2f} "
            f"{lg['max_abs_diff']:>12.2e} {sg['max_abs_diff']:>11.2e} {overlap:>14}"
        )


def main_bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from crossrank.models.onnx_session import clear_backend_cache

    ces, cr_info = crossrank_engines(args.model, args.max_length, args.threads)
    qids, work = bm25_candidates(args.dataset, args.queries, args.docs)
    pairs = sum(len(d) for _, d in work)
    max_length = cr_info["max_length"]
    res: dict[str, Any] = {
        "model": str(args.model),
        "dataset": str(args.dataset),
        "query_ids": qids,
        "docs_per_query": args.docs,
        "pairs": pairs,
        "max_length": max_length,
        "threads": args.threads,
        "reps": args.reps,
        "timing": "best of reps full passes after one warm-up pass; pairs/s = pairs / seconds",
        "reference": f"{REFERENCE}: raw logits (no activation, no calibration)",
        "versions": {
            "crossrank": {**versions(("onnxruntime", "tokenizers", "numpy")), "crossrank": cr_info["version"]}
        },
        "crossrank": cr_info,
        "engines": {},
    }
    engines: dict[str, Any] = res["engines"]
    ref: list[np.ndarray] = []
    for name, run in crossrank_runners(ces, work).items():
        scores, seconds = time_passes(run, args.reps)
        ref = ref or scores
        graph = cr_info["default_graph"] if "default" in name else cr_info["graph"]
        engines[name] = {**speed(seconds, pairs), "graph": graph, "cache_tokens": 0}
        engines[name]["agreement"] = engine_agreement(ref, scores, returns_sigmoid=False)
        print(f"{name}: {engines[name]['pairs_per_s']:.1f} pairs/s", flush=True)
    folder = peer_folder(ces["plain"], max_length, tmp / "peers")
    del ces
    clear_backend_cache()
    work_file = tmp / "work.json"
    payload = {"max_length": max_length, "queries": [q for q, _ in work], "documents": [d for _, d in work]}
    work_file.write_text(json.dumps(payload))
    for peer in args.peers:
        out = run_peer(peer, args, work_file, folder)
        label = PEER_LABELS[peer]
        engines[label] = peer_result(peer, out, ref, pairs, cr_info["graph"])
        res["versions"][peer] = out.get("versions")
        print(f"{label}: {engines[label].get('pairs_per_s', engines[label].get('error'))}", flush=True)
    res["ratios"] = ratios(engines)
    return res


def peer_result(
    peer: str, out: dict[str, Any], ref: list[np.ndarray], pairs: int, graph: str
) -> dict[str, Any]:
    if "error" in out:
        return {"error": out["error"]}
    got = [np.asarray(s, np.float64) for s in out["scores"]]
    res = {**speed(out["seconds"], pairs), **out["info"]}
    res["same_graph_file_as_crossrank"] = out["info"]["graph"] == graph
    res["agreement"] = engine_agreement(ref, got, returns_sigmoid=peer == "flashrank")
    return res


def ratios(engines: dict[str, Any]) -> dict[str, float]:
    """crossrank pairs/s over each peer's, for every crossrank row."""
    out = {}
    for cr, e in engines.items():
        if not cr.startswith("crossrank"):
            continue
        for peer in PEER_LABELS.values():
            if "pairs_per_s" in engines.get(peer, {}):
                out[f"{cr} / {peer}"] = e["pairs_per_s"] / engines[peer]["pairs_per_s"]
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="cross-encoder folder with onnx/model.onnx (or model.onnx)")
    ap.add_argument("--dataset", type=Path, default=Path("/work/shared/datasets/scifact"))
    ap.add_argument("--queries", type=int, default=10, help="first N SciFact test queries")
    ap.add_argument("--docs", type=int, default=100, help="BM25 candidates per query")
    ap.add_argument("--max-length", type=int, help="tokens per pair (default: the model's own limit)")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads, every engine")
    ap.add_argument("--reps", type=int, default=3, help="timed passes after one warm-up (best is kept)")
    ap.add_argument("--batch-size", type=int, default=64, help="fastembed rerank batch_size (its default)")
    ap.add_argument("--peer-python", type=Path, default=Path("/work/venv-peers/bin/python"))
    ap.add_argument("--peers", type=lambda s: s.split(","), default=list(PEERS), help="comma-separated")
    ap.add_argument("--json", type=Path, help="write the full results here")
    ap.add_argument("--peer-worker", choices=PEERS, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_worker is None and args.model is None:
        ap.error("--model is required")
    if any(p not in PEERS for p in args.peers):
        ap.error(f"--peers takes a comma-separated subset of {', '.join(PEERS)}")
    return args


def main() -> None:
    args = parse_args()
    if args.peer_worker is not None:
        peer_worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="ce_peers_onnx.") as tmp:
        res = main_bench(args, Path(tmp))
    print_table(res)
    print(json.dumps(res["ratios"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
