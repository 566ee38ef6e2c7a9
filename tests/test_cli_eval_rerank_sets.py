"""`crossrank eval` on re-ranking-only folders (issue 17) and the fused rerank rows (issue 11).

Every test builds a tiny TREC-style folder (corpus.jsonl, queries.jsonl, qrels/test.tsv, runs/*.trec).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from crossrank.cli import main
from crossrank.cli.eval_plot import LATENCY_LABEL, latency_limits, make_figure, visible_tick_labels
from crossrank.cli.eval_rows import PlannedRow, dedupe, model_key, pick_run, reranker_kind
from crossrank.eval.trec import read_run

DOCS = {
    "d1": "the cat sat on the mat",
    "d2": "dogs chase cats in the park",
    "d3": "a quantum computer uses qubits",
    "d4": "cats and dogs are pets",
    "d5": "the stock market fell today",
    "d6": "superconducting qubits decohere quickly",
}
QUERIES = {"q1": "cat on a mat", "q2": "quantum qubits", "q3": "stock market"}
QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d3", 2), ("q2", "d6", 3), ("q3", "d5", 2)]


def run_lines(order: list[str]) -> str:
    """A TREC run ranking ``order`` for every query (descending scores)."""
    return "".join(f"{q} Q0 {d} {r} {20 - r} TEST\n" for q in QUERIES for r, d in enumerate(order, 1))


def make_set(root, runs=("bm25_top20",), with_runs=True):
    """A re-ranking-only folder holding the given runs (each a different first-stage order)."""
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in DOCS.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    if with_runs:
        (root / "runs").mkdir()
        ids = list(DOCS)
        for i, name in enumerate(runs):
            (root / "runs" / f"{name}.trec").write_text(run_lines(ids[i:] + ids[:i]))
    return root


def report_of(out):
    return json.loads((out / "report.json").read_text())


def eval_args(ds, out, *extra):
    return ["eval", str(ds), "--out", str(out), "--no-plot", *extra]


# --- which run is reranked -------------------------------------------------------------------------


def test_single_run_is_used_and_named(tmp_path, capsys):
    ds = make_set(tmp_path / "dl", runs=("Bm25_Top20",))
    out = tmp_path / "out"
    assert main(eval_args(ds, out)) == 0
    err = capsys.readouterr().err
    assert "runs/Bm25_Top20.trec, the only run" in err
    report = report_of(out)
    assert report["run"] == "Bm25_Top20"
    (row,) = report["rows"]
    assert row["name"] == "Bm25_Top20 (given run)"  # the run's case as on disk
    assert row["latency_ms"] is None
    assert row["rerank"] is None
    assert (out / "runs" / "bm25_top20_given_run.trec").is_file()


def test_several_runs_and_none_chosen_lists_them_all(tmp_path, capsys):
    ds = make_set(tmp_path / "dl", runs=("bm25_top20", "splade_top20"))
    assert main(eval_args(ds, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "--run" in err
    assert "bm25_top20" in err
    assert "splade_top20" in err
    assert not (tmp_path / "out" / "report.json").exists()
    # a run that is not there: the error lists those that are
    assert main(eval_args(ds, tmp_path / "out", "--run", "bm25_top100")) == 2
    err = capsys.readouterr().err
    assert "bm25_top100.trec not found" in err
    assert "bm25_top20, splade_top20" in err
    # choosing one works, and the row keeps its name
    assert main(eval_args(ds, tmp_path / "out", "--run", "splade_top20")) == 0
    assert report_of(tmp_path / "out")["rows"][0]["name"] == "splade_top20 (given run)"


def test_pick_run_rules(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.trec run"):
        pick_run(runs, None)
    (runs / "bm25_top100.trec").write_text("")
    (runs / "tasb_top100.trec").write_text("")
    path, why = pick_run(runs, None)  # several, the documented default among them
    assert path.name == "bm25_top100.trec"
    assert "default" in why
    assert "tasb_top100" in why
    path, why = pick_run(runs, "tasb_top100.trec")
    assert path.name == "tasb_top100.trec"
    assert "--run" in why
    (runs / "bm25_top100.trec").unlink()
    (runs / "other.trec").write_text("")
    with pytest.raises(ValueError, match="other, tasb_top100"):
        pick_run(runs, None)


def test_dedupe_keeps_one_row_per_key_and_names_by_what_differs():
    rows = [
        PlannedRow("run (given run)", ("run",), "run", None),
        PlannedRow("run + dense rerank", ("run", "dense", "/m/a"), "a", None),
        PlannedRow("run + dense rerank", ("run", "dense", "/m/a"), "a", None),
        PlannedRow("run + dense rerank", ("run", "dense", "/m/b"), "b", None),
    ]
    assert [r.name for r in dedupe(rows)] == [
        "run (given run)",
        "run + dense rerank (a)",
        "run + dense rerank (b)",
    ]


def test_rows_are_named_by_reranker_kind():
    from crossrank.rerank.colbert import ColBERTReranker
    from crossrank.rerank.cross_encoder import CrossEncoder
    from crossrank.rerank.dense import DenseReranker
    from crossrank.rerank.llm import LLMReranker

    labels = {
        cls: reranker_kind(object.__new__(cls))
        for cls in (CrossEncoder, DenseReranker, ColBERTReranker, LLMReranker)
    }
    assert labels == {
        CrossEncoder: "cross-encoder",
        DenseReranker: "dense rerank",
        ColBERTReranker: "ColBERT",
        LLMReranker: "LLM",
    }

    class MyReranker:
        pass

    assert reranker_kind(MyReranker()) == "MyReranker"


def test_model_key_resolves_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    (tmp_path / "w").mkdir()
    monkeypatch.chdir(tmp_path / "w")
    assert model_key("../m") == model_key(str(tmp_path / "m"))
    assert model_key("org/hub-model") == "org/hub-model"


# --- dense models: one row per pipeline, the same-model note -----------------------------------------


def _rel(path):
    return os.path.relpath(path, os.getcwd())


@pytest.mark.slow
def test_dense_and_same_dense_reranker_give_one_row_and_fused_row(tmp_path, capsys, minilm_dir):
    from crossrank.cli.eval import _RunRetriever
    from crossrank.eval.datasets import load_beir
    from crossrank.pipeline import Pipeline
    from crossrank.rerank.dense import DenseReranker

    ds = make_set(tmp_path / "dl")
    beir = load_beir(ds)
    out = tmp_path / "out"
    rc = main(
        eval_args(
            ds,
            out,
            "--dense",
            str(minilm_dir),
            "--reranker",
            f"dense:{_rel(minilm_dir)}",
            "--precision",
            "fp32",
        )
    )
    assert rc == 0
    captured = capsys.readouterr()
    report = report_of(out)
    names = [r["name"] for r in report["rows"]]
    assert names == [
        "bm25_top20 (given run)",
        "bm25_top20 + dense rerank",
        "bm25_top20 + dense rerank (fused)",
    ]
    assert "note:" not in captured.out  # no Dense first stage here: nothing is repeated
    _given, reranked, fused = report["rows"]
    # rerank throughput: every candidate of every query was one pair
    assert reranked["rerank"]["pairs"] == len(QUERIES) * len(DOCS)
    assert reranked["rerank"]["pairs_per_s"] > 0
    assert fused["rerank"] == reranked["rerank"]
    assert reranked["rerank_only"]
    assert fused["rerank_only"]
    assert fused["latency_ms"]["mean"] >= reranked["latency_ms"]["mean"]
    assert "Rerank pairs/s" in captured.out
    # the fused row is RRF of the reranked list with the given run (reference: the formula, by hand)
    rr = read_run(out / "runs" / "bm25_top20_dense_rerank.trec")
    first = read_run(out / "runs" / "bm25_top20_given_run.trec")
    got = read_run(out / "runs" / "bm25_top20_dense_rerank_fused.trec")
    for q in QUERIES:
        ref: dict[str, float] = {}
        for lst in (rr[q], first[q]):
            for rank, d in enumerate(sorted(lst, key=lambda d: -lst[d]), 1):
                ref[d] = ref.get(d, 0.0) + 1.0 / (60.0 + rank)
        assert got[q] == pytest.approx(ref, rel=1e-12)
    # ... and exactly what Pipeline(rerank_fusion="rrf") returns, order included
    pipe = Pipeline(
        [_RunRetriever(read_run(ds / "runs" / "bm25_top20.trec"), QUERIES)],
        documents=dict(zip(beir.doc_ids, beir.documents(), strict=True)),
        reranker=DenseReranker(str(minilm_dir), precision="fp32"),
        rerank_fusion="rrf",
        depth=100,
        top_k=100,
    )
    for q, text in QUERIES.items():
        res = pipe.search(text)
        assert [str(i) for i in res.ids] == list(got[q])
        np.testing.assert_allclose(res.scores, list(got[q].values()), rtol=1e-12)


@pytest.mark.slow
def test_same_model_note_only_when_the_reranker_is_the_dense_model(tmp_path, capsys, minilm_dir, monkeypatch):
    ds = make_set(tmp_path / "beir", with_runs=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "out"
    # "../x" against "/abs/x": the same model
    rc = main(eval_args(ds, out, "--dense", str(minilm_dir), "--reranker", f"dense:{_rel(minilm_dir)}"))
    assert rc == 0
    table = capsys.readouterr().out
    notes = [line for line in table.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "Dense stage's own model" in notes[0]
    assert report_of(out)["notes"] == notes
    assert [r["name"] for r in report_of(out)["rows"]] == [
        "BM25",
        "Dense",
        "Hybrid (RRF)",
        "Hybrid + dense rerank",
        "Hybrid + dense rerank (fused)",
    ]
    # no reranker: no note
    assert main(eval_args(ds, out, "--dense", str(minilm_dir))) == 0
    assert "note:" not in capsys.readouterr().out
    assert report_of(out)["notes"] == []


@pytest.mark.torch
@pytest.mark.slow
def test_no_note_for_a_different_reranker_model(tmp_path, capsys, minilm_dir, tiny_bert_onnx):
    ds = make_set(tmp_path / "beir", with_runs=False)
    out = tmp_path / "out"
    args = ["--dense", str(minilm_dir), "--reranker", str(tiny_bert_onnx), "--rerank-fusion", "none"]
    assert main(eval_args(ds, out, *args)) == 0
    assert "note:" not in capsys.readouterr().out
    report = report_of(out)
    assert report["notes"] == []
    assert [r["name"] for r in report["rows"]][-1] == "Hybrid + cross-encoder"  # no fused row with none
    assert report["rows"][-1]["reranker"] == "cross-encoder"


def test_a_crossrank_train_model_names_its_recipe_in_the_rows_and_a_note(tmp_path, capsys, tiny_bert_onnx):
    """A shortened recipe must show in the table itself, and how the model was selected under it."""
    import json
    import shutil

    model = tmp_path / "ce"
    shutil.copytree(tiny_bert_onnx, model)
    report = {
        "recipe": "quick",
        "config": {"epochs": 1, "negatives": 7, "first_stage": "bm25", "max_length": 128, "lr": 6e-5},
        "data": {"train_queries": 728, "dev_queries": 81},
        "pairs": 5888,
        "train_seconds": 600.0,
        "dev_first_stage": 0.6323,
        "best_dev": 0.6712,
    }
    (model / "training.json").write_text(json.dumps(report))
    ds = make_set(tmp_path / "beir", with_runs=False)
    out = tmp_path / "out"
    assert main(eval_args(ds, out, "--reranker", str(model))) == 0
    printed = capsys.readouterr().out
    names = [r["name"] for r in report_of(out)["rows"]]
    assert names[-2:] == [
        "BM25 + cross-encoder [quick recipe]",
        "BM25 + cross-encoder [quick recipe] (fused)",
    ]
    assert (
        f"note: the reranker ({model}) was made by `crossrank train` (quick recipe: 728 train queries, "
        "1 epoch(s), 7 bm25 negatives per positive, max_length 128, lr 6e-05; 5,888 pairs in 10.0 min); "
        "selected on 81 dev queries carved from train (dev NDCG@10 bm25 0.6323 -> reranked 0.6712)"
    ) in printed

    (model / "training.json").write_text("{not json")
    assert main(eval_args(ds, tmp_path / "out2", "--reranker", str(model))) == 0
    assert "cannot be read" in capsys.readouterr().out
    assert report_of(tmp_path / "out2")["rows"][-2]["name"] == "BM25 + cross-encoder"


# --- the plot -------------------------------------------------------------------------------------------


def _row(name, ndcg, mean_ms, rerank_only=False):
    lat = None if mean_ms is None else {"mean": mean_ms, "p95": mean_ms * 1.2}
    return {"name": name, "metrics": {"nDCG@10": ndcg}, "latency_ms": lat, "rerank_only": rerank_only}


def _as_float(label: str) -> float:
    return float(label.replace("\N{MINUS SIGN}", "-"))


@pytest.mark.parametrize("lats", [(0.04, 3.1, 220.0), (0.4, 0.9, 1.7), (12.0, 15.0, 18.0), (5.0, 5.0, 5.0)])
def test_plot_log_latency_axis_starts_at_the_smallest_latency(lats):
    pytest.importorskip("matplotlib")
    rows = [
        _row("BM25", 0.60, lats[0]),
        _row("Hybrid (RRF)", 0.70, lats[1]),
        _row("Hybrid + CE", 0.73, lats[2]),
    ]
    fig = make_figure(rows, "toy")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(min(lats))
    assert hi > max(lats)
    labels = visible_tick_labels(fig)
    assert labels, "the latency axis has no labelled tick"
    for text in labels:
        assert "$" not in text
        assert "^" not in text
        value = _as_float(text)
        assert value > 0
        assert lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9)
    assert "0" not in labels
    assert ax.get_xlabel() == LATENCY_LABEL


def test_plot_marks_rerank_only_rows_and_the_given_run():
    pytest.importorskip("matplotlib")
    rows = [
        _row("bm25_top20 (given run)", 0.50, None),
        _row("bm25_top20 + cross-encoder", 0.68, 35.0, rerank_only=True),
        _row("bm25_top20 + cross-encoder (fused)", 0.70, 35.2, rerank_only=True),
    ]
    fig = make_figure(rows, "toy")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("re-ranking only" in t for t in legend)
    assert any("given run" in t for t in legend)
    assert not any(t == "full pipeline" for t in legend)  # no full-pipeline row here
    # the given run is a horizontal line at its NDCG@10 (it has no latency to place on the axis)
    hlines = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [0.50, 0.50]]
    assert len(hlines) == 1
    texts = [t.get_text() for t in ax.texts]
    assert set(texts) == {r["name"] for r in rows}
    assert ax.get_xlim()[0] == pytest.approx(35.0)
    assert "0" not in visible_tick_labels(fig)


def test_plot_limits_refuse_nothing_to_place():
    with pytest.raises(ValueError, match="no positive latency"):
        latency_limits([0.0, math.nan])


def test_plot_written_by_the_command(tmp_path):
    pytest.importorskip("matplotlib")
    ds = make_set(tmp_path / "dl")
    out = tmp_path / "out"
    assert main(["eval", str(ds), "--out", str(out)]) == 0
    assert (out / "ndcg_vs_latency.png").stat().st_size > 1000
