"""Distillation from a teacher's scored run: reading the run (scale, coverage, bad input) and training on it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from crossrank.eval.trec import write_run
from crossrank.train.teacher import load_teacher, probability_to_logit
from model_fixtures import build_tiny_bert
from test_train import make_dataset
from test_train_run import FAST as RUN_FAST


def _run(path: Path, scores: dict[str, dict[str, float]]) -> Path:
    write_run(scores, path, tag="teacher")
    return path


def test_probabilities_are_read_as_their_logits(tmp_path: Path) -> None:
    run = _run(
        tmp_path / "t.trec", {"q1": {"a": 0.9, "b": 0.25, "c": 1.0}, "q2": {"a": 0.0}, "qX": {"a": 0.5}}
    )
    t = load_teacher(run, ["q1", "q2", "q3"], {"q1": ["a", "z"], "q2": ["b"], "q3": ["c"]})
    assert t.scale == "probability"
    assert t.scores["q1"]["a"] == pytest.approx(math.log(0.9 / 0.1), abs=1e-12)
    assert t.scores["q1"]["b"] == pytest.approx(math.log(0.25 / 0.75), abs=1e-12)
    # 0 and 1 (a saturated sigmoid) stay finite and keep their order
    assert math.isfinite(t.scores["q1"]["c"])
    assert t.scores["q1"]["c"] > t.scores["q1"]["a"]
    assert math.isfinite(t.scores["q2"]["a"])
    assert t.scores["q2"]["a"] < t.scores["q1"]["b"]
    assert "qX" not in t.scores  # not a train query
    assert (t.queries, t.train_queries, t.positives, t.train_positives) == (2, 3, 1, 4)
    assert "2 of 3 train queries" in t.describe()
    assert "1 of their 4 judged positives" in t.describe()
    assert "logits" in t.describe()


def test_scores_outside_unit_interval_are_kept_as_written(tmp_path: Path) -> None:
    run = _run(tmp_path / "t.trec", {"q1": {"a": 3.5, "b": -1.25, "c": 0.5}})
    auto = load_teacher(run, ["q1"], {"q1": ["a"]})
    assert auto.scale == "raw"
    assert auto.scores == {"q1": {"a": 3.5, "b": -1.25, "c": 0.5}}
    prob_run = _run(tmp_path / "p.trec", {"q1": {"a": 0.75, "b": 0.5}})
    raw = load_teacher(prob_run, ["q1"], {}, scale="raw")
    assert raw.scale == "raw"
    assert raw.scores == {"q1": {"a": 0.75, "b": 0.5}}
    forced = load_teacher(prob_run, ["q1"], {}, scale="probability")
    assert forced.scores["q1"]["a"] == pytest.approx(math.log(3.0), abs=1e-12)
    assert forced.scores["q1"]["b"] == 0.0


def test_probability_to_logit_is_the_inverse_of_the_sigmoid() -> None:
    for x in (-12.0, -3.0, -0.5, 0.0, 0.25, 4.0, 15.0):
        p = 1.0 / (1.0 + math.exp(-x))
        assert probability_to_logit(p) == pytest.approx(x, abs=1e-6)


def test_bad_teacher_runs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"teacher run .* not found"):
        load_teacher(tmp_path / "missing.trec", ["q1"], {})
    other = _run(tmp_path / "other.trec", {"q9": {"a": 1.0}})
    with pytest.raises(ValueError, match="scores none of the 2 train queries"):
        load_teacher(other, ["q1", "q2"], {})
    raw = _run(tmp_path / "raw.trec", {"q1": {"a": 2.0}})
    with pytest.raises(ValueError, match=r"scale 'probability' but a score is 2\.0"):
        load_teacher(raw, ["q1"], {}, scale="probability")
    with pytest.raises(ValueError, match="teacher scale must be one of"):
        load_teacher(raw, ["q1"], {}, scale="logits")
    garbled = tmp_path / "garbled.trec"
    garbled.write_text("q1 Q0 a 1 not-a-number t\n")
    with pytest.raises(ValueError, match="is not a number"):
        load_teacher(garbled, ["q1"], {})


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

# test_train_run's small settings, with a fixed epoch count and seed these thresholds were measured at.
FAST = {**RUN_FAST, "epochs": 5, "seed": 3, "eval_every": 0, "checkpoint_every": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny BERT, a dataset, and a teacher run of probabilities: each train query's positive 0.95,
    every other document 0.05 (what a good cross-encoder's ``crossrank eval`` run looks like)."""
    root = tmp_path_factory.mktemp("teacher")
    ds = make_dataset(root / "ds")
    docs = [json.loads(line)["_id"] for line in (ds / "corpus.jsonl").read_text().splitlines()]
    positives: dict[str, str] = {}
    for line in (ds / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        q, d, g = line.split("\t")
        if int(g) > 0:
            positives[q] = d
    run = {q: {d: (0.95 if d == pos else 0.05) for d in docs} for q, pos in positives.items()}
    return build_tiny_bert(root / "bert", seed=0), ds, _run(root / "teacher.trec", run)


@pytest.mark.parametrize("distill", ["kl", "margin-mse"])
def test_distilling_a_probability_run_trains_the_student(tiny, tmp_path: Path, distill: str) -> None:
    from crossrank.train import train

    ckpt, ds, teacher = tiny
    result = train(
        str(ckpt),
        str(ds),
        str(tmp_path / "student"),
        teacher=str(teacher),
        distill=distill,
        show_progress=False,
        **FAST,
    )
    report = result.report
    assert report["loss"] == distill
    assert report["teacher"]["scale"] == "probability"
    assert (
        report["teacher"]["queries"] == report["teacher"]["train_queries"] == report["data"]["train_queries"]
    )
    losses = report["losses"]
    assert all(np.isfinite(losses))
    # seeded, one thread: KL falls 1.44 -> 1.16 and MarginMSE 36.2 -> 31.1 (first vs last 5 steps)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) * 0.9, losses
    card = (result.output / "README.md").read_text()
    assert "| teacher scores | read as probability;" in card
    assert json.loads((result.output / "training.json").read_text())["config"]["teacher_scale"] == "auto"


def test_teacher_flags_on_the_command_line(tiny, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from crossrank.cli import main

    ckpt, ds, teacher = tiny
    base = [str(ckpt), str(ds), "--no-progress", "--max-steps", "2", "--threads", "1", "--max-length", "64"]
    out = tmp_path / "s"
    code = main(
        [
            "train",
            *base,
            "-o",
            str(out),
            "--teacher",
            str(teacher),
            "--distill",
            "kl",
            "--teacher-scale",
            "raw",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "training.json").read_text())["teacher"]["scale"] == "raw"
    mixed = tmp_path / "m"
    flags = ["--teacher", str(teacher), "--distill", "kl", "--label-weight", "0.5"]
    assert main(["train", *base, "-o", str(mixed), *flags]) == 0, capsys.readouterr().err
    assert json.loads((mixed / "training.json").read_text())["loss"] == "0.5 kl + 0.5 listwise"
    assert "| label_weight | 0.5 |" in (mixed / "README.md").read_text()
    assert main(["train", *base, "-o", str(tmp_path / "t"), "--teacher", str(teacher)]) == 2
    assert "go together" in capsys.readouterr().err
    missing = ["--teacher", str(tmp_path / "nope.trec"), "--distill", "kl"]
    assert main(["train", *base, "-o", str(tmp_path / "u"), *missing]) != 0
    assert "not found" in capsys.readouterr().err
