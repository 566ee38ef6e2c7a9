"""`crossrank calibrate MODEL DATASET_DIR` on a tiny seeded cross-encoder and a synthetic BEIR folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.cli import main
from crossrank.rerank.calibration import Calibrator
from model_fixtures import tiny_texts


def _write_beir(root: Path, model: Path) -> Path:
    """A 200-document collection whose qrels follow the model's own logits (so a calibration exists)."""
    docs = tiny_texts(200, seed=11, min_words=5, max_words=30)
    queries = [" ".join(d.split()[:3]) for d in docs[:20]]
    root.mkdir()
    with open(root / "corpus.jsonl", "w") as fh:
        for i, d in enumerate(docs):
            fh.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for i, q in enumerate(queries):
            fh.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
    ce = CrossEncoder(model, activation="none", num_threads=1)
    logits = np.asarray(ce.predict([(q, d) for q in queries for d in docs])).reshape(len(queries), len(docs))
    cut = np.quantile(logits, 0.8)
    (root / "qrels").mkdir()
    with open(root / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qi in range(len(queries)):
            for di in range(len(docs)):
                fh.write(f"q{qi}\td{di}\t{int(logits[qi, di] > cut)}\n")
    return root


def test_calibrate_writes_beside_model(
    tiny_bert_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_beir(tmp_path / "beir", tiny_bert_onnx)
    out = tmp_path / "cal.json"
    code = main(
        ["calibrate", str(tiny_bert_onnx), str(data), "--depth", "15", "--threads", "1", "-o", str(out)]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    cal = Calibrator.load(out)
    assert (cal.a, cal.b, cal.method) == (report["a"], report["b"], "platt")
    assert report["pairs_fit"] + report["pairs_held_out"] == 20 * 15
    assert report["held_out_log_loss_after"] < report["held_out_log_loss_before"]
    assert cal(np.array([-1.0]))[0] < cal(np.array([1.0]))[0]


def test_calibrate_default_output_is_beside_the_model(
    tiny_bert_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_bert_onnx, model)
    data = _write_beir(tmp_path / "beir", model)
    args = ["calibrate", str(model), str(data), "--method", "temperature", "--depth", "10", "--threads", "1"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    cal = Calibrator.load(model)
    assert cal.method == "temperature"
    assert cal.b == 0.0
    assert report["output"] == str(model / "calibration.json")
    assert CrossEncoder(model, num_threads=1).predict([("a", "b")]).shape == (1,)  # the model still loads


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--holdout", "1.5"], "--holdout"), (["--depth", "0"], "--depth")],
)
def test_calibrate_bad_options(
    tiny_bert_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    assert main(["calibrate", str(tiny_bert_onnx), str(tmp_path), *extra]) == 2
    assert match in capsys.readouterr().err


def test_calibrate_hub_id_needs_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "some-org/some-model", str(tmp_path)]) == 2
    assert "--output" in capsys.readouterr().err
