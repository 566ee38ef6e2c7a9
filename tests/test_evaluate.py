"""Metrics against pytrec_eval (trec_eval) and ir_measures, on the shipped TREC DL runs and random runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossrank.eval.datasets import read_qrels
from crossrank.eval.evaluate import Measure, evaluate, parse_measure, rank_documents
from crossrank.eval.trec import read_run, write_run

ir_measures = pytest.importorskip("ir_measures")
pytrec_eval = pytest.importorskip("pytrec_eval")

MEASURES = [
    "nDCG@10",
    "RR@10",
    "R@100",
    "AP",
    "P@10",
    "RR(rel=2)@10",
    "R(rel=2)@100",
    "AP(rel=2)",
    "P(rel=2)@10",
]
# trec_eval names for the same measures at a given threshold.
TREC_NAMES = {"nDCG@10": "ndcg_cut_10", "R@100": "recall_100", "AP": "map", "P@10": "P_10"}
RUN_NAMES = [
    "bm25_top100",
    "bm25_rm3_top100",
    "d_bert_kd_tasb_top100",
    "open_ai_ada2_top100",
    "splade_p_p_ensemble_distil_top100",
]


def _load(datasets_dir, year, name):
    root = datasets_dir / f"trec-{year}-passage-rerank"
    return read_run(root / "runs" / f"{name}.trec"), read_qrels(root / "qrels" / "test.tsv")


@pytest.mark.parametrize("year", ["dl19", "dl20"])
@pytest.mark.parametrize("name", RUN_NAMES)
def test_equals_ir_measures_per_query(datasets_dir, year, name):
    run, qrels = _load(datasets_dir, year, name)
    ours = evaluate(run, qrels, MEASURES)
    parsed = [ir_measures.parse_measure(m) for m in MEASURES]
    count = 0
    for row in ir_measures.iter_calc(parsed, qrels, run):
        assert ours.per_query[str(row.measure)][row.query_id] == pytest.approx(row.value, abs=1e-6)
        count += 1
    assert count == len(MEASURES) * len(qrels)
    agg = ir_measures.calc_aggregate(parsed, qrels, run)
    for m in parsed:
        assert ours.aggregate[str(m)] == pytest.approx(agg[m], abs=1e-6)


@pytest.mark.parametrize("year", ["dl19", "dl20"])
@pytest.mark.parametrize("rel", [1, 2])
def test_equals_pytrec_eval_per_query(datasets_dir, year, rel):
    run, qrels = _load(datasets_dir, year, "bm25_top100")
    ev = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.10", "recall.100", "map", "P.10", "recip_rank"}, relevance_level=rel
    )
    ref = ev.evaluate(run)
    ours = evaluate(run, qrels, ["nDCG@10", "R@100", "AP", "P@10", "RR"], rel_threshold=rel)
    for qid, vals in ref.items():
        for ours_name, trec_name in {**TREC_NAMES, "RR": "recip_rank"}.items():
            assert ours.per_query[ours_name][qid] == pytest.approx(vals[trec_name], abs=1e-6), (
                qid,
                ours_name,
            )


@pytest.mark.parametrize(("year", "expected"), [("dl19", 0.5058), ("dl20", 0.4796)])
def test_bm25_reference_figures(datasets_dir, year, expected):
    run, qrels = _load(datasets_dir, year, "bm25_top100")
    assert round(evaluate(run, qrels, ["nDCG@10"]).aggregate["nDCG@10"], 4) == expected


# Random runs with many ties, missing and unjudged queries, compared with trec_eval via pytrec_eval.
_docs = st.sampled_from([f"d{i}" for i in range(12)] + ["D1", "a", "ab", "é"])
_run_q = st.dictionaries(_docs, st.sampled_from([0.0, 1.0, 1.5, 2.0, -3.0, 7.25]), max_size=10)
_qrels_q = st.dictionaries(_docs, st.integers(0, 3), min_size=1, max_size=8)
_qids = st.sampled_from(["q1", "q2", "q3", "q4"])


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_qids, _run_q, max_size=4),
    st.dictionaries(_qids, _qrels_q, min_size=1, max_size=4),
    st.integers(1, 3),
)
def test_random_runs_match_trec_eval(run, qrels, rel):
    measures = {"ndcg_cut.5", "recall.5", "map", "P.5", "recip_rank", "ndcg"}
    ev = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=rel)
    ref = ev.evaluate({q: d for q, d in run.items() if d})
    ours = evaluate(run, qrels, ["nDCG@5", "R@5", "AP", "P@5", "RR", "nDCG"], rel_threshold=rel)
    names = {
        "nDCG@5": "ndcg_cut_5",
        "R@5": "recall_5",
        "AP": "map",
        "P@5": "P_5",
        "RR": "recip_rank",
        "nDCG": "ndcg",
    }
    assert ours.num_queries == len(qrels)
    for q in qrels:
        for ours_name, trec_name in names.items():
            expected = ref[q][trec_name] if q in ref else 0.0  # judged query without results -> 0
            assert ours.per_query[ours_name][q] == pytest.approx(expected, abs=1e-9), (q, ours_name)
    for n in names:
        assert ours.aggregate[n] == pytest.approx(math.fsum(ours.per_query[n].values()) / len(qrels))
    # RR@k: trec_eval has no cutoff for recip_rank; cut the run at k in trec_eval's order first.
    # (ir_measures' default RR@k provider, msmarco, breaks ties by doc id ascending instead.)
    cut = {q: {d: docs[d] for d in rank_documents(docs)[:3]} for q, docs in run.items() if docs}
    ref_cut = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=rel).evaluate(cut)
    rr3 = evaluate(run, qrels, ["RR@3"], rel_threshold=rel).per_query["RR@3"]
    for q in qrels:
        assert rr3[q] == pytest.approx(ref_cut[q]["recip_rank"] if q in ref_cut else 0.0, abs=1e-9)


def test_ties_broken_by_docid_descending():
    assert rank_documents({"a": 1.0, "c": 1.0, "b": 2.0, "d": 0.5}) == ["b", "c", "a", "d"]
    res = evaluate({"q": {"a": 1.0, "b": 1.0}}, {"q": {"a": 1}}, ["RR"])
    assert res.aggregate["RR"] == 0.5  # "b" ranks first on the tie


def test_missing_queries_and_unknown_ids():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 1.0, "unknown": 2.0}, "q9": {"d1": 1.0}}  # q2 has no results, q9 no judgements
    res = evaluate(run, qrels, ["RR@10"])
    assert res.per_query["RR@10"] == {"q1": 0.5, "q2": 0.0}
    assert res.aggregate["RR@10"] == 0.25
    skip = evaluate(run, qrels, ["RR@10"], missing="skip")
    assert skip.aggregate["RR@10"] == 0.5
    assert skip.num_queries == 1


def test_bad_input_errors():
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate({}, {"q": {"d": 1}}, ["BLEU"])
    with pytest.raises(ValueError, match="precision needs a cutoff"):
        parse_measure("P")
    with pytest.raises(ValueError, match="graded"):
        parse_measure("nDCG(rel=2)@10")
    with pytest.raises(ValueError, match="cutoff must be"):
        parse_measure("R@0")
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate({"q": {"d": 1.0}}, {}, ["AP"])
    with pytest.raises(ValueError, match="NaN"):
        evaluate({"q": {"d": float("nan")}}, {"q": {"d": 1}}, ["AP"])
    with pytest.raises(ValueError, match="no measures"):
        evaluate({}, {"q": {"d": 1}}, [])
    with pytest.raises(ValueError, match="missing"):
        evaluate({}, {"q": {"d": 1}}, ["AP"], missing="drop")  # type: ignore[arg-type]


def test_parse_aliases():
    assert parse_measure("MRR@10") == Measure("RR", 10)
    assert parse_measure("Recall@100") == Measure("R", 100)
    assert parse_measure("MAP") == Measure("AP")
    assert str(parse_measure("ndcg_cut@10")) == "nDCG@10"
    assert str(parse_measure("RR(rel=2)@10")) == "RR(rel=2)@10"


def test_trec_run_roundtrip_and_robust_reading(tmp_path):
    rng = np.random.default_rng(0)
    run = {f"q{i}": {f"d{j}": float(rng.normal()) for j in range(20)} for i in range(5)}
    path = tmp_path / "run.trec"
    write_run(run, path, tag="test")
    assert read_run(path) == run
    first = path.read_text().splitlines()[0].split()
    assert first[1] == "Q0"
    assert first[3] == "1"
    assert first[5] == "test"
    extra = tmp_path / "extra.trec"
    extra.write_text("# comment\nq1 Q0 d1 1 2.5 tag extra fields here\nq1 0 d2 2 1.5\n\nq1 Q0 d1 3 0.5 t\n")
    assert read_run(extra) == {"q1": {"d1": 2.5, "d2": 1.5}}


def test_trec_bad_files(tmp_path):
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1\n")
    with pytest.raises(ValueError, match=r"bad\.trec:1"):
        read_run(bad)
    bad.write_text("q1 Q0 d1 1 high tag\n")
    with pytest.raises(ValueError, match="not a number"):
        read_run(bad)
    bad.write_text("q1 Q0 d1 1 nan tag\n")
    with pytest.raises(ValueError, match="not finite"):
        read_run(bad)
    with pytest.raises(FileNotFoundError):
        read_run(tmp_path / "absent.trec")
    with pytest.raises(ValueError, match="whitespace"):
        write_run({"q 1": {"d": 1.0}}, tmp_path / "x.trec")
    with pytest.raises(ValueError, match="whitespace"):
        write_run({"q": {"d": 1.0}}, tmp_path / "x.trec", tag="a b")


def test_trec_reader_drops_a_bom_and_names_bad_bytes(tmp_path):
    bom = tmp_path / "bom.trec"
    bom.write_bytes(b"\xef\xbb\xbfq1 Q0 d1 1 2.5 t\nq2 Q0 d1 1 1.0 t\n")
    assert read_run(bom) == {"q1": {"d1": 2.5}, "q2": {"d1": 1.0}}
    bad = tmp_path / "latin1.trec"
    bad.write_bytes(b"q1 Q0 d1 1 2.5 t\nq\xe9 Q0 d1 1 1.0 t\n")
    with pytest.raises(ValueError, match=r"latin1\.trec:2: not UTF-8"):
        read_run(bad)


@pytest.mark.parametrize("score", [float("inf"), float("-inf"), float("nan")])
def test_write_run_refuses_non_finite_scores(tmp_path, score):
    out = tmp_path / "x.trec"
    with pytest.raises(ValueError, match=r"not finite|NaN"):
        write_run({"q": {"d1": 1.0, "d2": score}}, out)
    assert not out.exists()  # checked before anything is written


@pytest.mark.parametrize(
    ("grade", "error"),
    [(float("nan"), ValueError), (None, TypeError), (1.5, ValueError), ("2", TypeError), (True, TypeError)],
)
def test_evaluate_rejects_bad_grades(grade, error):
    with pytest.raises(error, match=r"qrels\['q'\]\['d2'\].*grades must be integers"):
        evaluate({"q": {"d1": 1.0}}, {"q": {"d1": 1, "d2": grade}}, ["nDCG@10"])


def test_evaluate_accepts_integral_float_and_numpy_grades():
    ints = evaluate({"q": {"d1": 1.0, "d2": 0.5}}, {"q": {"d1": 1, "d2": 2}}, ["nDCG@10"])
    floats = evaluate({"q": {"d1": 1.0, "d2": 0.5}}, {"q": {"d1": 1.0, "d2": np.int64(2)}}, ["nDCG@10"])
    assert ints.aggregate == floats.aggregate


def test_evaluate_rejects_scores_that_are_not_numbers():
    with pytest.raises(TypeError, match="'d2' is None"):
        evaluate({"q": {"d1": 1.0, "d2": None}}, {"q": {"d1": 1}}, ["AP"])  # type: ignore[dict-item]
