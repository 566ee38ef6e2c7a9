"""`crossrank eval` end to end on tiny synthetic datasets (BEIR folder, zip, URL, re-ranking layout)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from crossrank.cli import main
from crossrank.eval.datasets import fetch_dataset
from crossrank.eval.evaluate import evaluate
from crossrank.eval.trec import read_run

DOCS = [
    ("d1", "Cats", "the cat sat on the mat"),
    ("d2", "Dogs", "dogs chase cats in the park"),
    ("d3", "Quantum", "a quantum computer uses qubits"),
    ("d4", "Pets", "cats and dogs are pets"),
    ("d5", "Markets", "the stock market fell today"),
    ("d6", "Qubits", "superconducting qubits decohere quickly"),
]
QUERIES = {"q1": "cat on a mat", "q2": "quantum qubits", "q3": "stock market", "q4": "unjudged query"}
QRELS = [("q1", "d1", 2), ("q2", "d3", 1), ("q2", "d6", 2), ("q3", "d5", 1), ("q3", "nosuchdoc", 1)]


def make_beir(root, runs=False):
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    if runs:
        (root / "runs").mkdir()
        lines = []
        for q in ("q1", "q2", "q3"):
            for r, (d, _, _) in enumerate(DOCS, 1):
                lines.append(f"{q} Q0 {d} {r} {10 - r} BM25\n")
        (root / "runs" / "bm25_top100.trec").write_text("".join(lines))
    return root


def test_eval_bm25_only(tmp_path, capsys):
    ds = make_beir(tmp_path / "toy")
    out = tmp_path / "out"
    assert main(["eval", str(ds), "--out", str(out), "--no-plot", "--depth", "5"]) == 0
    table = capsys.readouterr().out
    assert "| BM25 " in table
    assert "NDCG@10" in table
    report = json.loads((out / "report.json").read_text())
    assert report["queries"] == 3  # q4 has no judgements
    assert report["rel_threshold"] == 1
    (row,) = report["rows"]
    run = read_run(out / "runs" / "bm25.trec")
    qrels = {"q1": {"d1": 2}, "q2": {"d3": 1, "d6": 2}, "q3": {"d5": 1, "nosuchdoc": 1}}
    ref = evaluate(run, qrels, ["nDCG@10", "R@100", "RR@10"])
    assert row["metrics"] == pytest.approx(ref.aggregate)
    assert row["latency_ms"]["p95"] >= row["latency_ms"]["mean"] * 0.5


def test_eval_rerank_only_layout_uses_given_run_and_rel2(tmp_path, capsys):
    ds = make_beir(tmp_path / "dl", runs=True)
    out = tmp_path / "out"
    assert main(["eval", str(ds), "--out", str(out), "--no-plot"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rerank_only"] is True
    assert report["rel_threshold"] == 2  # graded qrels
    assert report["rows"][0]["name"] == "bm25_top100 (given run)"  # the run's name as on disk
    run = read_run(ds / "runs" / "bm25_top100.trec")
    qrels = {"q1": {"d1": 2}, "q2": {"d3": 1, "d6": 2}, "q3": {"d5": 1, "nosuchdoc": 1}}
    ref = evaluate(run, qrels, ["nDCG@10", "R@100", "RR@10"], rel_threshold=2)
    assert report["rows"][0]["metrics"] == pytest.approx(ref.aggregate)


@pytest.mark.slow
def test_eval_with_dense_and_reranker(tmp_path, capsys, minilm_dir):
    ds = make_beir(tmp_path / "toy")
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            str(ds),
            "--dense",
            str(minilm_dir),
            "--reranker",
            f"dense:{minilm_dir}",
            "--out",
            str(out),
            "--no-cache",
            "--precision",
            "fp32",
        ]
    )
    assert rc == 0
    names = [r["name"] for r in json.loads((out / "report.json").read_text())["rows"]]
    assert names == [
        "BM25",
        "Dense",
        "Hybrid (RRF)",
        "Hybrid + dense rerank",
        "Hybrid + dense rerank (fused)",
    ]
    assert (out / "ndcg_vs_latency.png").stat().st_size > 1000
    assert {p.name for p in (out / "runs").iterdir()} == {
        "bm25.trec",
        "dense.trec",
        "hybrid_rrf.trec",
        "hybrid_dense_rerank.trec",
        "hybrid_dense_rerank_fused.trec",
    }


def test_zip_and_url_datasets(tmp_path):
    ds = make_beir(tmp_path / "src" / "toy")
    zpath = tmp_path / "toy.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in ds.rglob("*"):
            zf.write(f, f.relative_to(tmp_path / "src"))
    cache = tmp_path / "cache"
    got = fetch_dataset(zpath, cache_dir=cache)
    assert (got / "corpus.jsonl").is_file()
    assert fetch_dataset(zpath, cache_dir=cache) == got  # reused
    url_got = fetch_dataset(
        zpath.as_uri().replace("toy.zip", "toy.zip"), cache_dir=tmp_path / "cache2", show_progress=False
    )
    assert (url_got / "qrels" / "test.tsv").is_file()
    assert fetch_dataset(tmp_path / "src", cache_dir=cache) == ds  # folder one level up


def test_bad_datasets(tmp_path, capsys):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="zip"):
        fetch_dataset(bad, cache_dir=tmp_path / "c")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        fetch_dataset(evil, cache_dir=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="cannot download"):
        fetch_dataset((tmp_path / "absent.zip").as_uri(), cache_dir=tmp_path / "c", show_progress=False)
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "not found" in capsys.readouterr().err
    ds = make_beir(tmp_path / "toy")
    assert main(["eval", str(ds), "--depth", "0"]) == 2
    assert main(["eval", str(ds), "--reranker", "llm:http://localhost:1"]) == 2
    assert "BASE_URL@MODEL" in capsys.readouterr().err
    assert main(["eval", str(ds), "--split", "dev"]) == 2
    assert "no qrels" in capsys.readouterr().err


def test_empty_corpus_is_a_clear_error(tmp_path, capsys):
    ds = make_beir(tmp_path / "toy")
    (ds / "corpus.jsonl").write_text("")
    assert main(["eval", str(ds), "--no-plot", "--out", str(tmp_path / "o")]) == 2
    assert "0 documents" in capsys.readouterr().err


@pytest.mark.torch
def test_eval_with_cross_encoder_reranker(tmp_path, tiny_bert_onnx):
    # A tiny seeded (untrained) cross-encoder: checks the wiring and the reranked run, not quality.
    from crossrank import CrossEncoder

    ds = make_beir(tmp_path / "toy")
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            str(ds),
            "--reranker",
            str(tiny_bert_onnx),
            "--precision",
            "fp32",
            "--out",
            str(out),
            "--no-plot",
        ]
    )
    assert rc == 0
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["BM25", "BM25 + cross-encoder", "BM25 + cross-encoder (fused)"]
    run = read_run(out / "runs" / "bm25_cross_encoder.trec")
    bm25 = read_run(out / "runs" / "bm25.trec")
    ce = CrossEncoder(tiny_bert_onnx, precision="fp32")
    texts = {i: f"{t} {x}" for i, t, x in DOCS}
    for qid, docs in run.items():
        assert set(docs) == set(bm25[qid])  # same candidates, new scores
        ref = ce.predict([(QUERIES[qid], texts[d]) for d in docs])
        np.testing.assert_allclose(list(docs.values()), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_eval_rerank_depth_reranks_only_the_head(tmp_path, tiny_bert_onnx, capsys):
    from crossrank import CrossEncoder

    ds = make_beir(tmp_path / "toy")
    out = tmp_path / "out"
    args = ["eval", str(ds), "--reranker", str(tiny_bert_onnx), "--precision", "fp32", "--no-plot"]
    assert main([*args, "--rerank-depth", "2", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rerank_depth"] == 2
    names = [r["name"] for r in report["rows"]]
    assert names == ["BM25", "BM25 top 2 + cross-encoder", "BM25 top 2 + cross-encoder (fused)"]
    bm25 = read_run(out / "runs" / "bm25.trec")
    run = read_run(out / "runs" / "bm25_top_2_cross_encoder.trec")
    ce = CrossEncoder(tiny_bert_onnx, precision="fp32")
    texts = {i: f"{t} {x}" for i, t, x in DOCS}
    for qid, first in bm25.items():
        got = sorted(run[qid], key=lambda d: -run[qid][d])
        head, tail = got[:2], got[2:]
        assert set(got) == set(first)
        # The head: BM25's best two, scored by the cross-encoder.
        assert min(first[d] for d in head) >= max((first[d] for d in tail), default=-np.inf)
        ref = ce.predict([(QUERIES[qid], texts[d]) for d in head])
        np.testing.assert_allclose([run[qid][d] for d in head], ref, rtol=1e-5, atol=1e-6)
        # The tail: BM25 order, scored below the head (lowest head score - 1 - i).
        assert [first[d] for d in tail] == sorted((first[d] for d in tail), reverse=True)
        low = min(run[qid][d] for d in head)
        np.testing.assert_allclose(
            [run[qid][d] for d in tail], [low - 1 - i for i in range(len(tail))], rtol=1e-6
        )
    for bad, needle in (
        (["--rerank-depth", "0"], "--rerank-depth must be in 1.."),
        (["--rerank-depth", "101"], "must be in 1.."),
    ):
        assert main([*args, *bad, "--out", str(tmp_path / "bad")]) == 2
        assert needle in capsys.readouterr().err
    assert main(["eval", str(ds), "--rerank-depth", "2", "--no-plot", "--out", str(tmp_path / "bad2")]) == 2
    assert "needs --reranker" in capsys.readouterr().err
