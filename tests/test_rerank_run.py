"""`crossrank rerank-run`: in process (the reference) against direct reranking, resumption after a crash,
and the Ray Data path on a real local cluster (127.0.0.1) against the in-process run on the DL19 and DL20
BM25 runs, including an actor killed mid-run. A tiny seeded cross-encoder and depth 5 keep it fast."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from crossrank.cli import main
from crossrank.eval.datasets import doc_text, read_corpus, read_queries
from crossrank.eval.evaluate import rank_documents
from crossrank.eval.trec import read_run
from crossrank.ray.rerank_run import rerank_run

DEPTH = 5


def _sets(datasets_dir):
    return {name: datasets_dir / f"trec-{name}-passage-rerank" for name in ("dl19", "dl20")}


def _lines(path):
    return [line.split() for line in path.read_text().splitlines()]


def _assert_same_run(got_path, want_path, atol=1e-5):
    """Same queries, same document order per query, scores within ``atol``."""
    got, want = _lines(got_path), _lines(want_path)
    assert [(g[0], g[2], g[3]) for g in got] == [(w[0], w[2], w[3]) for w in want]
    np.testing.assert_allclose([float(g[4]) for g in got], [float(w[4]) for w in want], rtol=0, atol=atol)


def test_in_process_equals_direct_reranking(tmp_path, datasets_dir, tiny_bert_onnx):
    from crossrank import CrossEncoder

    root = _sets(datasets_dir)["dl19"]
    run = root / "runs" / "bm25_top100.trec"
    out = tmp_path / "out.trec"
    summary = rerank_run(run, root, str(tiny_bert_onnx), out, depth=DEPTH, chunk_queries=8, progress=False)
    queries = read_queries(root / "queries.jsonl")
    ids, titles, texts = read_corpus(root / "corpus.jsonl")
    corpus = {d: doc_text(t, x) for d, t, x in zip(ids, titles, texts, strict=True)}
    first = read_run(run)
    assert summary.queries == len(first) == 43
    assert summary.pairs == summary.scored_pairs == 43 * DEPTH
    got = _lines(out)
    model = CrossEncoder(str(tiny_bert_onnx))
    want = []
    for qid, docs in first.items():
        cands = rank_documents(docs)[:DEPTH]
        for r, row in enumerate(model.rank(queries[qid], [corpus[d] for d in cands]), 1):
            want.append((qid, cands[row["corpus_id"]], str(r), row["score"]))
    assert [(g[0], g[2], g[3]) for g in got] == [w[:3] for w in want]
    np.testing.assert_allclose([float(g[4]) for g in got], [w[3] for w in want], rtol=0, atol=1e-5)
    # parquet: the same ranking with truncation flags and first-stage ranks
    pq = pytest.importorskip("pyarrow.parquet")
    rerank_run(run, root, str(tiny_bert_onnx), tmp_path / "out.parquet", depth=DEPTH, progress=False)
    table = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert list(zip(table["qid"], table["docid"], map(str, table["rank"]), strict=True)) == [
        w[:3] for w in want
    ]
    assert sum(table["truncated"]) == summary.truncated_pairs
    assert sorted(table["first_rank"][:DEPTH]) == list(range(1, DEPTH + 1))


def test_resume_after_a_crash_gives_the_same_file(tmp_path, datasets_dir, tiny_bert_onnx):
    root = _sets(datasets_dir)["dl20"]
    run = root / "runs" / "bm25_top100.trec"
    ref = tmp_path / "ref.trec"
    rerank_run(run, root, str(tiny_bert_onnx), ref, depth=DEPTH, chunk_queries=10, progress=False)

    def crash(done, total):
        if done == 2:
            raise KeyboardInterrupt("simulated crash")

    out = tmp_path / "out.trec"
    with pytest.raises(KeyboardInterrupt):
        rerank_run(
            run, root, str(tiny_bert_onnx), out, depth=DEPTH, chunk_queries=10, progress=False, on_chunk=crash
        )
    assert not out.exists()
    assert len(list((tmp_path / "out.trec.parts").glob("chunk-*.json"))) == 2
    # other inputs cannot be mixed into the partial run
    with pytest.raises(ValueError, match="depth"):
        rerank_run(run, root, str(tiny_bert_onnx), out, depth=DEPTH + 1, chunk_queries=10, progress=False)
    summary = rerank_run(run, root, str(tiny_bert_onnx), out, depth=DEPTH, chunk_queries=10, progress=False)
    assert summary.scored_queries == 54 - 20
    assert out.read_bytes() == ref.read_bytes()
    assert not (tmp_path / "out.trec.parts").exists()


def test_bad_inputs_are_named(tmp_path, datasets_dir, tiny_bert_onnx, capsys):
    root = _sets(datasets_dir)["dl19"]
    run = root / "runs" / "bm25_top100.trec"
    bad = tmp_path / "bad.trec"
    bad.write_text("nope Q0 d1 1 1.0 x\n")
    with pytest.raises(ValueError, match="query 'nope'"):
        rerank_run(bad, root, str(tiny_bert_onnx), tmp_path / "o.trec", progress=False)
    with pytest.raises(ValueError, match="depth"):
        rerank_run(run, root, str(tiny_bert_onnx), tmp_path / "o.trec", depth=0, progress=False)
    # an unreachable Ray address: one line naming it, quickly (ray.init alone retries for minutes)
    rc = main(["rerank-run", str(run), str(root), "--reranker", str(tiny_bert_onnx), "-o", str(tmp_path / "o.trec"),
               "--ray", "127.0.0.1:1"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "127.0.0.1:1" in err
    assert "cannot reach the Ray cluster" in err


def _scorer_pids():
    """PIDs of the live Ray Data scorer actors (from the GCS actor table: the cluster has no dashboard,
    so the public state API is not there)."""
    from ray._private import state

    return [
        a["Pid"]
        for a in state.actors().values()
        if a.get("State") == "ALIVE" and "_ChunkScorer" in str(a.get("ActorClassName", "")) and a.get("Pid")
    ]


@pytest.mark.slow
def test_ray_data_equals_in_process_on_dl19_and_dl20(
    ray_local, tmp_path, datasets_dir, tiny_bert_onnx, capsys
):
    for name, root in _sets(datasets_dir).items():
        run = root / "runs" / "bm25_top100.trec"
        ref, out = tmp_path / f"{name}_ref.trec", tmp_path / f"{name}_ray.trec"
        args = [
            str(run),
            str(root),
            "--reranker",
            str(tiny_bert_onnx),
            "--depth",
            str(DEPTH),
            "--chunk-queries",
            "8",
        ]
        assert main(["rerank-run", *args, "-o", str(ref)]) == 0
        assert main(["rerank-run", *args, "-o", str(out), "--ray", "local", "--actors", "2"]) == 0
        _assert_same_run(out, ref)
        assert "chunk 1/" in capsys.readouterr().err  # progress shown


@pytest.mark.slow
def test_ray_actor_killed_mid_run_then_resumed_gives_the_same_file(
    ray_local, tmp_path, datasets_dir, tiny_bert_onnx
):
    root = _sets(datasets_dir)["dl19"]
    run = root / "runs" / "bm25_top100.trec"
    ref, out = tmp_path / "ref.trec", tmp_path / "out.trec"
    kw = {"depth": DEPTH, "chunk_queries": 4, "progress": False}
    rerank_run(run, root, str(tiny_bert_onnx), ref, **kw)
    killed = []

    def kill_one(done, total):
        if done == 1 and not killed:
            pids = _scorer_pids()
            assert pids, "no Ray Data scorer actor is alive mid-run"
            os.kill(pids[0], signal.SIGKILL)  # the actor's process dies, as in a crash
            killed.append(pids[0])

    try:
        rerank_run(run, root, str(tiny_bert_onnx), out, address="local", actors=2, on_chunk=kill_one, **kw)
    except AssertionError:
        raise
    except Exception:  # Ray Data may give up on the killed actor: the finished chunks are kept
        assert killed
        assert (tmp_path / "out.trec.parts").is_dir()
        rerank_run(run, root, str(tiny_bert_onnx), out, address="local", actors=2, **kw)
    assert killed
    _assert_same_run(out, ref)


@pytest.mark.slow
def test_workers_threads_follow_the_cpus_ray_gives_them(ray_local):
    from crossrank.ray import assigned_cpus

    task = ray_local.remote(assigned_cpus)
    assert ray_local.get(task.options(num_cpus=2).remote(), timeout=120) == 2
    assert ray_local.get(task.options(num_cpus=0.5).remote(), timeout=120) == 1


def test_serve_options_are_checked():
    pytest.importorskip("ray")
    from crossrank.ray.serve import parse_autoscale, serve_app

    assert parse_autoscale("1:4") == (1, 4)
    assert parse_autoscale("0:2") == (0, 2)
    for bad in ("4:1", "0:0", "x:2", "3", "-1:2"):
        with pytest.raises(ValueError, match="--autoscale"):
            parse_autoscale(bad)
    with pytest.raises(ValueError, match="replicas"):
        serve_app("m", replicas=0)
    with pytest.raises(ValueError, match="cpus_per_replica"):
        serve_app("m", cpus_per_replica=0)
    # an autoscaled app builds (deploying it is what the cluster tests do)
    assert serve_app("m", autoscale=(1, 3)) is not None
