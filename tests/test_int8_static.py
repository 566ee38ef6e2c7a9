"""Static int8 cross-encoder graphs: calibration, fidelity manifest, precision selection, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.models.export import int8_tolerance
from crossrank.models.onnx_session import clear_backend_cache
from crossrank.models.quantize_static import (
    STATIC_INT8_FILE,
    STATIC_INT8_MANIFEST,
    CalibrationDataError,
    quantize_static_int8,
    ranking_fidelity,
    static_int8_fidelity,
)
from model_fixtures import tiny_texts

pytest.importorskip("onnx")


def _beir(root: Path, *, n_docs: int = 80, n_queries: int = 12, split: str = "train") -> Path:
    """A tiny BEIR folder of syllable texts the tiny BERT's tokenizer knows."""
    root.mkdir(parents=True, exist_ok=True)
    docs = tiny_texts(n_docs, seed=11, min_words=5, max_words=60)
    queries = tiny_texts(n_queries, seed=12, min_words=2, max_words=6)
    with (root / "corpus.jsonl").open("w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for i, q in enumerate(queries):
            f.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    rows = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1" for i in range(n_queries)]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def static_model(tiny_bert_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_static") / "model"
    shutil.copytree(tiny_bert_onnx, out)
    data = _beir(tmp_path_factory.mktemp("tiny_beir"))
    quantize_static_int8(out, data, calibration_queries=6, holdout_queries=6, depth=30)
    return out


def test_static_graph_and_manifest(static_model: Path) -> None:
    assert (static_model / STATIC_INT8_FILE).is_file()
    body = json.loads((static_model / STATIC_INT8_MANIFEST).read_text())
    assert body["format"] == "crossrank-int8-static"
    assert body["method"] == "onnxruntime-qdq"
    assert body["calibration"]["split"] == "train"
    assert len(body["calibration"]["query_ids"]) == 6
    fid = body["fidelity"]
    assert fid["queries"] == 6
    assert set(fid["query_ids"]).isdisjoint(body["calibration"]["query_ids"])
    assert 0.0 <= fid["top10_overlap_min"] <= fid["top10_overlap_mean"] <= 1.0
    assert static_int8_fidelity(static_model / "model.onnx") == fid
    # QDQ with per-channel weights: the MatMul weights are int8; LayerNorm/Softmax/head stay fp32.
    import onnx

    g = onnx.load(str(static_model / STATIC_INT8_FILE)).graph
    ops = [n.op_type for n in g.node]
    assert "QuantizeLinear" in ops
    assert "DequantizeLinear" in ops
    dq_out = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    for n in g.node:
        if n.op_type in ("LayerNormalization", "Softmax", "Gemm"):
            assert not any(i in dq_out for i in n.input), n.name


def test_static_int8_within_tolerance_of_fp32(static_model: Path) -> None:
    # Stated tolerance: int8_tolerance (max(0.25, 0.75 std of the fp32 logits)), the dynamic graph's bar;
    # on these unseen pairs the static graph measures well inside it.
    pairs = list(
        zip(tiny_texts(40, seed=21, max_words=5), tiny_texts(40, seed=22, max_words=50), strict=True)
    )
    ref = CrossEncoder(static_model, backend="onnxruntime", precision="fp32", activation=None).predict(pairs)
    ce8 = CrossEncoder(static_model, backend="onnxruntime", precision="int8", activation=None)
    assert ce8.backend.onnx_path.name == STATIC_INT8_FILE  # type: ignore[attr-defined]
    got = ce8.predict(pairs)
    err = float(np.abs(got - ref).max())
    assert 0 < err <= int8_tolerance(ref), err


def set_recorded_overlap(manifest: Path, value: float | None) -> None:
    """Rewrite the mean top-10 overlap an int8 manifest records (None: no fidelity at all)."""
    body = json.loads(manifest.read_text())
    if value is None:
        body["fidelity"] = {}
    else:
        body["fidelity"]["top10_overlap_mean"] = value
    manifest.write_text(json.dumps(body))
    clear_backend_cache()


def test_auto_picks_static_int8_only_when_faithful(static_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(static_model, model)
    set_recorded_overlap(model / STATIC_INT8_MANIFEST, 0.99)
    ce = CrossEncoder(model, backend="onnxruntime")
    assert ce.backend.precision == "int8"
    assert ce.backend.onnx_path.name == STATIC_INT8_FILE  # type: ignore[attr-defined]
    # An explicit precision or the OpenVINO backend is never overridden.
    assert CrossEncoder(model, backend="onnxruntime", precision="fp32").backend.precision == "fp32"
    set_recorded_overlap(model / STATIC_INT8_MANIFEST, 0.97)
    assert CrossEncoder(model, backend="onnxruntime").backend.precision == "fp32"
    set_recorded_overlap(model / STATIC_INT8_MANIFEST, None)  # no fidelity recorded: not faithful
    assert CrossEncoder(model, backend="onnxruntime").backend.precision == "fp32"
    # precision="int8" without a static graph falls back to the dynamic one.
    (model / STATIC_INT8_FILE).unlink()
    clear_backend_cache()
    ce8 = CrossEncoder(model, backend="onnxruntime", precision="int8")
    assert ce8.backend.onnx_path.name == "model_int8.onnx"  # type: ignore[attr-defined]
    assert static_int8_fidelity(model / "model.onnx") is None


def test_ranking_fidelity_reference() -> None:
    ref = [np.arange(20, dtype=np.float32), np.array([3.0, 2.0, 1.0])]
    same = ranking_fidelity(ref, ref)
    assert same["top10_overlap_mean"] == 1.0
    assert same["spearman_mean"] == pytest.approx(1.0)
    flipped = ranking_fidelity(ref, [-r for r in ref])
    assert flipped["top10_overlap_min"] == 0.0  # top 10 of 20 reversed: disjoint
    assert flipped["spearman_mean"] == pytest.approx(-1.0)


@pytest.mark.parametrize("case", ["missing", "empty", "no_split", "no_queries"])
def test_bad_calibration_data(case: str, tiny_bert_onnx: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    if case == "empty":
        data.mkdir()
    elif case == "no_split":
        _beir(data, split="test")
    elif case == "no_queries":
        _beir(data)
        (data / "queries.jsonl").write_text("")
    with pytest.raises(CalibrationDataError, match=str(data)):
        quantize_static_int8(tiny_bert_onnx, data, calibration_queries=2, holdout_queries=2, depth=5)
    assert not (tiny_bert_onnx / STATIC_INT8_FILE).exists()


def test_cli_int8_static_needs_calibration(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    from crossrank.cli import main

    assert main(["export", str(tiny_bert_onnx), "-o", str(tmp_path / "o"), "--int8-static"]) == 2


def test_cli_int8_static_on_exported_folder(static_model: Path, tmp_path: Path) -> None:
    from crossrank.cli import main

    src = tmp_path / "src"
    shutil.copytree(static_model, src)
    for name in (STATIC_INT8_FILE, STATIC_INT8_MANIFEST):
        (src / name).unlink()
    data = _beir(tmp_path / "beir")
    out = tmp_path / "out"
    args = ["export", str(src), "-o", str(out), "--int8-static", "--calibration", str(data)]
    args += ["--calibration-queries", "4", "--holdout-queries", "4", "--calibration-depth", "10"]
    assert main([*args, "--int8-engine", "onnxruntime"]) == 0  # auto picks OpenVINO on CPUs with VNNI
    assert (out / STATIC_INT8_FILE).is_file()
    assert static_int8_fidelity(out / "model.onnx") is not None
    bad = [
        "export",
        str(src),
        "-o",
        str(tmp_path / "o2"),
        "--int8-static",
        "--calibration",
        str(tmp_path / "x"),
    ]
    assert main(bad) == 2
