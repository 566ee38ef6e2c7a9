"""Rerank a first-stage run, in process or over a Ray cluster, resumably (``crossrank rerank-run``).

The input is a TREC run (or a parquet table of query/document pairs) and a BEIR folder holding the
texts (``corpus.jsonl``, ``queries.jsonl``). Each query's top ``depth`` candidates are scored by one
reranker ``score_batch`` call per chunk of queries; each query's documents are reordered by the new
scores (ties keep the first-stage order) and written as a TREC run or a parquet table with scores and
truncation flags.

Work is cut into chunks of ``chunk_queries`` queries, and every finished chunk is written atomically
(written aside, renamed in) into ``OUT.parts/`` next to the output, beside a manifest of the inputs.
After a crash the same command skips the chunks already there; when every chunk is done the output is
assembled (atomically too) and ``OUT.parts/`` removed. A manifest that does not match the command
(another run file, reranker or depth) is refused rather than mixed in.

Without an address the chunks run in this process (the reference path). With one, Ray Data maps an
actor class over the chunks (``map_batches`` over an actor pool: each actor loads the model once, with
as many inference threads as CPUs Ray gives it) and the driver writes chunks as they stream back. A
whole query always goes to one actor, so listwise rerankers see the same input either way; scores
equal the in-process ones up to float rounding of different batch padding.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._common import atomic_write_json, manifest_body, read_manifest_file, sha256_file

__all__ = ["QueryTask", "RunSummary", "load_tasks", "rerank_run"]

OutputFormat = Literal["trec", "parquet"]
_MANIFEST = "manifest.json"
_FORMAT = "crossrank-rerank-run"
_VERSION = 1


@dataclass(frozen=True)
class QueryTask:
    """One query's candidates, in first-stage order.

    Attributes
    ----------
    index : int
        Position of the query in the input (chunks are runs of consecutive indexes).
    qid : str
        Query id.
    query : str
        Query text.
    doc_ids : list of str
        Candidate ids, best first-stage candidate first (at most ``depth``).
    documents : list of str
        Their texts.
    """

    index: int
    qid: str
    query: str
    doc_ids: list[str]
    documents: list[str]


@dataclass(frozen=True)
class RunSummary:
    """What :func:`rerank_run` did.

    Attributes
    ----------
    queries, pairs : int
        Queries and query-document pairs in the output.
    scored_queries, scored_pairs : int
        Of those, the ones scored by this call (the rest were resumed from ``OUT.parts``).
    truncated_pairs : int
        Pairs of which some text did not reach the model (whole output).
    seconds : float
        Wall time of this call's scoring.
    """

    queries: int
    pairs: int
    scored_queries: int
    scored_pairs: int
    truncated_pairs: int
    seconds: float

    @property
    def pairs_per_s(self) -> float:
        """Pairs scored per second by this call."""
        return self.scored_pairs / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def _first_stage(run_path: Path) -> list[tuple[str, list[str]]]:
    """(qid, doc ids in first-stage order) per query, queries in order of first appearance."""
    if run_path.suffix == ".parquet":
        return _parquet_pairs(run_path)
    from ..eval.evaluate import rank_documents
    from ..eval.trec import read_run

    return [(qid, rank_documents(docs)) for qid, docs in read_run(run_path).items()]


def _parquet_pairs(path: Path) -> list[tuple[str, list[str]]]:
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ImportError(f'a parquet run needs pyarrow ({exc}); pip install "crossrank[ray]"') from exc
    table = pq.read_table(path)
    missing = {"qid", "docid"} - set(table.column_names)
    if missing:
        raise ValueError(
            f"{path}: a parquet run needs columns 'qid' and 'docid' (and optionally 'score' or 'rank' for "
            f"the first-stage order); it lacks {sorted(missing)}"
        )
    qids = [str(q) for q in table.column("qid").to_pylist()]
    dids = [str(d) for d in table.column("docid").to_pylist()]
    if "score" in table.column_names:
        key = [-float(s) for s in table.column("score").to_pylist()]
    elif "rank" in table.column_names:
        key = [float(r) for r in table.column("rank").to_pylist()]
    else:
        key = [0.0] * len(qids)  # the table's own row order
    grouped: dict[str, list[tuple[float, int, str]]] = {}
    for i, (q, d, k) in enumerate(zip(qids, dids, key, strict=True)):
        grouped.setdefault(q, []).append((k, i, d))
    out = []
    for q, rows in grouped.items():
        seen: set[str] = set()
        ordered = [d for _, _, d in sorted(rows) if not (d in seen or seen.add(d))]  # type: ignore[func-returns-value]
        out.append((q, ordered))
    return out


def load_tasks(
    run_path: str | os.PathLike[str], dataset_dir: str | os.PathLike[str], depth: int
) -> list[QueryTask]:
    """Read the run and the texts it refers to: one :class:`QueryTask` per query of the run.

    Parameters
    ----------
    run_path : path-like
        A TREC run (``qid Q0 docid rank score tag``), or a ``.parquet`` file with columns ``qid``,
        ``docid`` and optionally ``score`` (higher first) or ``rank`` (lower first).
    dataset_dir : path-like
        A BEIR folder with ``corpus.jsonl`` and ``queries.jsonl``; a document's text is title and body
        joined as in ``crossrank eval``.
    depth : int
        Candidates kept per query (the first-stage top ``depth``).

    Raises
    ------
    FileNotFoundError
        The run, the folder or one of its two files is missing.
    ValueError
        ``depth`` < 1, or the run names a query or document the folder does not have.
    """
    from ..eval.datasets import doc_text, read_corpus, read_queries

    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    run_path, root = Path(run_path), Path(dataset_dir)
    if not run_path.is_file():
        raise FileNotFoundError(f"run file {run_path} not found")
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} not found (DATASET_DIR must be a BEIR folder)")
    ranked = _first_stage(run_path)
    queries = read_queries(root / "queries.jsonl")
    ids, titles, texts = read_corpus(root / "corpus.jsonl")
    corpus = {d: doc_text(t, x) for d, t, x in zip(ids, titles, texts, strict=True)}
    tasks = []
    for i, (qid, docs) in enumerate(ranked):
        if qid not in queries:
            raise ValueError(f"query {qid!r} of {run_path} is not in {root / 'queries.jsonl'}")
        kept = docs[:depth]
        absent = [d for d in kept if d not in corpus]
        if absent:
            raise ValueError(
                f"document {absent[0]!r} of query {qid!r} in {run_path} is not in {root / 'corpus.jsonl'}"
                + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
            )
        tasks.append(QueryTask(i, qid, queries[qid], kept, [corpus[d] for d in kept]))
    return tasks


# --------------------------------------------------------------------------------------------------
# Scoring (shared by both paths)
# --------------------------------------------------------------------------------------------------
def score_rows(
    reranker: Any, queries: Sequence[str], documents: Sequence[Sequence[str]]
) -> list[tuple[list[float], list[bool]]]:
    """One ``score_batch`` call: per query, its scores (float32 values as floats) and truncation flags.

    Parameters
    ----------
    reranker : Reranker
        Any :class:`crossrank.types.Reranker`.
    queries : sequence of str
        The queries.
    documents : sequence of sequence of str
        Each query's candidates.
    """
    results = reranker.score_batch(list(queries), [list(d) for d in documents])
    if len(results) != len(queries):
        raise RuntimeError(f"score_batch returned {len(results)} results for {len(queries)} queries")
    out = []
    for s, docs in zip(results, documents, strict=True):
        if len(s) != len(docs):
            raise RuntimeError(f"score_batch returned {len(s)} scores for {len(docs)} documents")
        out.append((np.asarray(s.scores, np.float32).tolist(), np.asarray(s.truncated, bool).tolist()))
    return out


def _load(spec: str, options: dict[str, Any], num_threads: int | None) -> Any:
    from ..rerank.spec import load_reranker

    return load_reranker(spec, num_threads=num_threads, **options)


class _ChunkScorer:
    """The Ray Data actor: loads the reranker once, then scores whole chunks (one row = one chunk).

    A row carries a chunk's queries and documents, so an actor makes exactly the ``score_batch`` call
    the in-process path makes for that chunk; the result goes back as JSON text (ragged lists).
    """

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        from ._cluster import assigned_cpus

        self.reranker = _load(spec, options, assigned_cpus())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out = []
        for queries, documents in zip(batch["queries"], batch["documents"], strict=True):
            rows = score_rows(
                self.reranker, [str(q) for q in queries], [[str(d) for d in ds] for ds in documents]
            )
            out.append(json.dumps(rows))
        return {"chunk": np.asarray(batch["chunk"], np.int64), "rows": np.asarray(out, dtype=object)}


# --------------------------------------------------------------------------------------------------
# Resumable output
# --------------------------------------------------------------------------------------------------
class _Parts:
    """``OUT.parts/``: the manifest of the inputs and one JSON file per finished chunk."""

    def __init__(self, out: Path, identity: dict[str, Any]) -> None:
        self.dir = out.with_name(out.name + ".parts")
        self.identity = identity
        if self.dir.exists():
            manifest = self.dir / _MANIFEST
            found = read_manifest_file(manifest, _FORMAT, _VERSION)[0] if manifest.exists() else None
            if found is None or any(found.get(k) != v for k, v in identity.items()):
                changed = (
                    "no manifest"
                    if found is None
                    else ", ".join(k for k, v in identity.items() if found.get(k) != v)
                )
                raise ValueError(
                    f"{self.dir} holds a partial run of other inputs ({changed} differ); delete it to start "
                    "over, or rerun the command that made it to finish it"
                )
        else:
            self.dir.mkdir(parents=True)
            atomic_write_json(self.dir / _MANIFEST, manifest_body(_FORMAT, _VERSION, **identity))

    def path(self, chunk: int) -> Path:
        return self.dir / f"chunk-{chunk:06d}.json"

    def done(self, chunk: int) -> bool:
        return self.path(chunk).is_file()

    def write(self, chunk: int, rows: list[dict[str, Any]]) -> None:
        atomic_write_json(self.path(chunk), {"chunk": chunk, "rows": rows})

    def read(self, chunk: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.path(chunk).read_text(encoding="utf-8"))["rows"]
        return rows


def _row(task: QueryTask, scores: Sequence[float], truncated: Sequence[bool]) -> dict[str, Any]:
    return {"qid": task.qid, "doc_ids": task.doc_ids, "scores": list(scores), "truncated": list(truncated)}


def _ranked(row: dict[str, Any]) -> list[tuple[int, str, float, bool, int]]:
    """(rank, doc id, score, truncated, first-stage rank): score descending, ties in first-stage order."""
    scores = np.asarray(row["scores"], np.float32)
    order = np.argsort(-scores, kind="stable")
    return [
        (r, row["doc_ids"][i], float(scores[i]), bool(row["truncated"][i]), int(i) + 1)
        for r, i in enumerate(order.tolist(), 1)
    ]


def _write_output(rows: Iterable[dict[str, Any]], out: Path, fmt: OutputFormat, tag: str) -> None:
    """Write the whole output aside, then rename it into place."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if fmt == "trec":
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in rows:
                    for rank, did, score, _, _ in _ranked(row):
                        fh.write(f"{row['qid']} Q0 {did} {rank} {score!r} {tag}\n")
                fh.flush()
                os.fsync(fh.fileno())
        else:
            pa = importlib.import_module("pyarrow")
            pq = importlib.import_module("pyarrow.parquet")

            cols: dict[str, list[Any]] = {
                k: [] for k in ("qid", "docid", "rank", "score", "truncated", "first_rank")
            }
            for row in rows:
                for rank, did, score, cut, first in _ranked(row):
                    for k, v in zip(cols, (row["qid"], did, rank, score, cut, first), strict=True):
                        cols[k].append(v)
            table = pa.table(
                {
                    "qid": pa.array(cols["qid"], pa.string()),
                    "docid": pa.array(cols["docid"], pa.string()),
                    "rank": pa.array(cols["rank"], pa.int32()),
                    "score": pa.array(cols["score"], pa.float32()),
                    "truncated": pa.array(cols["truncated"], pa.bool_()),
                    "first_rank": pa.array(cols["first_rank"], pa.int32()),
                }
            )
            pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(f"[crossrank rerank-run] {msg}", file=sys.stderr, flush=True)


def rerank_run(
    run_path: str | os.PathLike[str],
    dataset_dir: str | os.PathLike[str],
    reranker: str,
    out: str | os.PathLike[str],
    *,
    depth: int = 100,
    address: str | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    chunk_queries: int = 8,
    num_threads: int | None = None,
    options: dict[str, Any] | None = None,
    fmt: OutputFormat | None = None,
    tag: str = "crossrank",
    progress: bool = True,
    on_chunk: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Rerank the run's top ``depth`` candidates of every query and write the reranked run.

    Parameters
    ----------
    run_path : path-like
        The first stage: a TREC run or a parquet table (see :func:`load_tasks`).
    dataset_dir : path-like
        The BEIR folder with the query and document texts.
    reranker : str
        A reranker spec (``MODEL``, ``dense:MODEL``, ``colbert:MODEL``, ``llm:URL@MODEL``).
    out : path-like
        The output: a TREC run, or parquet (``.parquet``, or ``fmt="parquet"``) with columns ``qid``,
        ``docid``, ``rank``, ``score``, ``truncated`` and ``first_rank``.
    depth : int
        Candidates reranked per query.
    address : str, optional
        Ray cluster (see :func:`crossrank.ray.connect`; ``"local"`` starts one in this process). None
        runs everything in this process, without Ray.
    actors : int
        Size of the Ray Data actor pool (one model load each).
    cpus_per_actor : float
        CPUs Ray reserves per actor; each actor's inference threads follow it.
    chunk_queries : int
        Queries per chunk: the unit of scoring, of atomic writes and of resumption.
    num_threads : int, optional
        Inference threads of the in-process path (None: the CPU quota).
    options : dict, optional
        Extra reranker options (``precision``, ``max_length``, ...) as :func:`~crossrank.rerank.spec.load_reranker`.
    fmt : {"trec", "parquet"}, optional
        Output format (default: from ``out``'s suffix).
    tag : str
        Run name in the TREC output's last column.
    progress : bool
        Print a line per finished chunk to stderr.
    on_chunk : callable, optional
        Called as ``on_chunk(chunks_done, chunks_total)`` after each chunk is written (for tests and
        progress bars).

    Returns
    -------
    RunSummary
        Counts and timing.

    Raises
    ------
    ValueError
        Bad arguments, a run that does not match the folder, a partial output of other inputs, or a Ray
        address that cannot be reached.
    FileNotFoundError
        A missing input.
    """
    out = Path(out)
    options = dict(options or {})
    for name, v in (("actors", actors), ("chunk_queries", chunk_queries)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if not cpus_per_actor > 0:
        raise ValueError(f"cpus_per_actor must be > 0, got {cpus_per_actor!r}")
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"tag {tag!r} must be non-empty and contain no whitespace")
    fmt = fmt or ("parquet" if out.suffix == ".parquet" else "trec")
    if fmt not in ("trec", "parquet"):
        raise ValueError(f"fmt must be 'trec' or 'parquet', got {fmt!r}")
    if address is not None:  # fail fast on an unreachable cluster, before reading anything
        from ._cluster import connect

        connect(address)
    tasks = load_tasks(run_path, dataset_dir, depth)
    for t in tasks:
        for did in [t.qid, *t.doc_ids]:
            if not did or any(c.isspace() for c in did):
                raise ValueError(f"id {did!r} of query {t.qid!r} is empty or contains whitespace")
    chunks = [tasks[i : i + chunk_queries] for i in range(0, len(tasks), chunk_queries)]
    identity = {
        "run_sha256": sha256_file(run_path),
        "dataset": str(Path(dataset_dir).resolve()),
        "reranker": reranker,
        "options": {k: options[k] for k in sorted(options)},
        "depth": depth,
        "chunk_queries": chunk_queries,
        "queries": len(tasks),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = _Parts(out, identity)
    pending = [c for c in range(len(chunks)) if not parts.done(c)]
    if progress and len(pending) < len(chunks):
        _log(f"resuming: {len(chunks) - len(pending)} of {len(chunks)} chunks already in {parts.dir}")
    done = len(chunks) - len(pending)
    t0 = time.perf_counter()
    scored_pairs = 0

    def finished(chunk: int, rows: list[dict[str, Any]]) -> None:
        nonlocal done, scored_pairs
        parts.write(chunk, rows)
        done += 1
        scored_pairs += sum(len(r["doc_ids"]) for r in rows)
        if progress:
            rate = scored_pairs / max(time.perf_counter() - t0, 1e-9)
            _log(f"chunk {done}/{len(chunks)} written ({scored_pairs} pairs, {rate:.0f} pairs/s)")
        if on_chunk is not None:
            on_chunk(done, len(chunks))

    if pending and address is None:
        model = _load(reranker, options, num_threads)
        for c in pending:
            batch = chunks[c]
            rows = score_rows(model, [t.query for t in batch], [t.documents for t in batch])
            finished(c, [_row(t, s, cut) for t, (s, cut) in zip(batch, rows, strict=True)])
    elif pending:
        _run_on_ray(chunks, pending, reranker, options, address, actors, cpus_per_actor, finished)
    seconds = time.perf_counter() - t0
    rows_all = [row for c in range(len(chunks)) for row in parts.read(c)]
    _write_output(rows_all, out, fmt, tag)
    shutil.rmtree(parts.dir, ignore_errors=True)
    summary = RunSummary(
        queries=len(tasks),
        pairs=sum(len(r["doc_ids"]) for r in rows_all),
        scored_queries=sum(len(chunks[c]) for c in pending),
        scored_pairs=scored_pairs,
        truncated_pairs=sum(sum(bool(x) for x in r["truncated"]) for r in rows_all),
        seconds=seconds,
    )
    if progress:
        _log(
            f"wrote {out}: {summary.queries} queries, {summary.pairs} pairs "
            f"({summary.truncated_pairs} truncated); scored {summary.scored_pairs} pairs in "
            f"{seconds:.1f} s ({summary.pairs_per_s:.0f} pairs/s)"
        )
    return summary


def _run_on_ray(
    chunks: list[list[QueryTask]],
    pending: list[int],
    reranker: str,
    options: dict[str, Any],
    address: str | None,
    actors: int,
    cpus_per_actor: float,
    finished: Callable[[int, list[dict[str, Any]]], None],
) -> None:
    """Score the pending chunks with Ray Data (one row per chunk); hand each to ``finished`` as it comes back."""
    from ._cluster import connect, require_ray

    require_ray()
    import ray.data

    connect(address)
    items = [
        {"chunk": c, "queries": [t.query for t in chunks[c]], "documents": [t.documents for t in chunks[c]]}
        for c in pending
    ]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    scored = ds.map_batches(
        _ChunkScorer,
        fn_constructor_kwargs={"spec": reranker, "options": options},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        batch_format="numpy",
    )
    for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
        for chunk, text in zip(batch["chunk"], batch["rows"], strict=True):
            c = int(chunk)
            rows = json.loads(str(text))
            finished(c, [_row(t, s, cut) for t, (s, cut) in zip(chunks[c], rows, strict=True)])
