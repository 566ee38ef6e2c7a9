"""OpenVINO int8 (NNCF) cross-encoder models: the saved folder, fidelity manifest, backend choice, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.models.export import int8_tolerance
from crossrank.models.onnx_session import clear_backend_cache
from crossrank.models.quantize_openvino import (
    OPENVINO_INT8_DIR,
    openvino_int8_fidelity,
    openvino_int8_graph,
    quantize_openvino_int8,
)
from crossrank.models.quantize_static import CalibrationDataError
from model_fixtures import tiny_texts
from test_int8_static import _beir, set_recorded_overlap

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def ov_model(tiny_bert_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_ov_int8") / "model"
    shutil.copytree(tiny_bert_onnx, out)
    data = _beir(tmp_path_factory.mktemp("tiny_beir_ov"))
    rep = quantize_openvino_int8(out, data, calibration_queries=6, holdout_queries=6, depth=30)
    assert rep.method == "openvino-nncf"
    assert rep.graph == f"{OPENVINO_INT8_DIR}/model.xml"
    return out


def _pairs() -> list[tuple[str, str]]:
    return list(zip(tiny_texts(40, seed=21, max_words=5), tiny_texts(40, seed=22, max_words=50), strict=True))


def test_folder_and_manifest(ov_model: Path) -> None:
    folder = ov_model / OPENVINO_INT8_DIR
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.bin", "model.xml"]
    body = json.loads((folder / "manifest.json").read_text())
    assert body["format"] == "crossrank-int8-openvino"
    assert body["method"] == "openvino-nncf"
    assert body["source"] == "model.onnx"
    assert body["calibration"]["split"] == "train"
    assert len(body["calibration"]["query_ids"]) == 6
    fid = body["fidelity"]
    assert fid["queries"] == 6
    assert set(fid["query_ids"]).isdisjoint(body["calibration"]["query_ids"])
    assert 0.0 <= fid["top10_overlap_min"] <= fid["top10_overlap_mean"] <= 1.0
    assert openvino_int8_fidelity(ov_model / "model.onnx") == fid
    assert openvino_int8_graph(ov_model / "model.onnx") == folder / "model.xml"
    # A manifest made from another graph file does not describe this one.
    assert openvino_int8_graph(ov_model / "model_int8.onnx") is None
    # NNCF quantized the encoder: the IR holds int8 weights and activation quantizers.
    import openvino as ov

    ops = ov.Core().read_model(str(folder / "model.xml")).get_ops()
    assert any(op.get_type_name() == "FakeQuantize" for op in ops)
    assert any(op.get_type_name() == "Constant" and op.get_output_element_type(0) == ov.Type.i8 for op in ops)


def test_int8_runs_the_openvino_model_within_tolerance(ov_model: Path) -> None:
    # Stated tolerance: int8_tolerance (max(0.25, 0.75 std of the fp32 logits)), as for ONNX Runtime's graphs.
    pairs = _pairs()
    ref = CrossEncoder(ov_model, backend="onnxruntime", precision="fp32", activation=None).predict(pairs)
    for backend in ("auto", "openvino"):
        ce8 = CrossEncoder(ov_model, backend=backend, precision="int8", activation=None)
        assert ce8.backend.name == "openvino"
        assert ce8.backend.precision == "int8"
        assert ce8.backend.onnx_path == ov_model / OPENVINO_INT8_DIR / "model.xml"  # type: ignore[attr-defined]
        got = ce8.predict(pairs)
        err = float(np.abs(got - ref).max())
        assert 0 < err <= int8_tolerance(ref), err
    # backend="onnxruntime" keeps ONNX Runtime's int8 graph.
    ort8 = CrossEncoder(ov_model, backend="onnxruntime", precision="int8")
    assert ort8.backend.name == "onnxruntime"


def test_auto_picks_openvino_int8_only_when_faithful(ov_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(ov_model, model)
    set_recorded_overlap(model / OPENVINO_INT8_DIR / "manifest.json", 0.99)
    ce = CrossEncoder(model)
    assert (ce.backend.name, ce.backend.precision) == ("openvino", "int8")
    assert CrossEncoder(model, precision="fp32").backend.precision == "fp32"  # asked for: never overridden
    assert CrossEncoder(model, backend="onnxruntime").backend.name == "onnxruntime"
    set_recorded_overlap(model / OPENVINO_INT8_DIR / "manifest.json", 0.97)
    assert CrossEncoder(model).backend.precision != "int8"
    set_recorded_overlap(
        model / OPENVINO_INT8_DIR / "manifest.json", None
    )  # no fidelity recorded: not faithful
    assert CrossEncoder(model).backend.precision != "int8"


def test_openvino_int8_without_the_model_is_a_clear_error(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_bert_onnx, model, ignore=shutil.ignore_patterns(OPENVINO_INT8_DIR))
    clear_backend_cache()
    with pytest.raises(ValueError, match="int8_openvino"):
        CrossEncoder(model, backend="openvino", precision="int8")
    # backend auto falls back to ONNX Runtime's int8 graph.
    assert CrossEncoder(model, precision="int8").backend.name == "onnxruntime"


def test_requantizing_replaces_the_folder_and_never_deletes_foreign_files(
    ov_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m"
    shutil.copytree(ov_model, model)
    data = _beir(tmp_path / "data")
    rep = quantize_openvino_int8(model, data, calibration_queries=3, holdout_queries=0, depth=10)
    body = json.loads((model / OPENVINO_INT8_DIR / "manifest.json").read_text())
    assert len(body["calibration"]["query_ids"]) == 3
    assert rep.fidelity == {}
    assert openvino_int8_fidelity(model / "model.onnx") is None
    assert not [p for p in model.iterdir() if p.name.startswith(".")]  # no aside left behind
    foreign = tmp_path / "f"
    shutil.copytree(ov_model, foreign, ignore=shutil.ignore_patterns(OPENVINO_INT8_DIR))
    (foreign / OPENVINO_INT8_DIR).mkdir()
    (foreign / OPENVINO_INT8_DIR / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved"):
        quantize_openvino_int8(foreign, data, calibration_queries=2, holdout_queries=0, depth=5)
    assert (foreign / OPENVINO_INT8_DIR / "notes.txt").read_text() == "mine"


def test_bad_calibration_data(tiny_bert_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_bert_onnx, model)
    with pytest.raises(CalibrationDataError, match="does not exist"):
        quantize_openvino_int8(model, tmp_path / "nowhere", calibration_queries=2, holdout_queries=2)
    with pytest.raises(ValueError, match="unknown settings"):
        quantize_openvino_int8(model, _beir(tmp_path / "d"), settings={"alpha": 1.0})
    assert not (model / OPENVINO_INT8_DIR).exists()


def test_missing_nncf_is_a_clear_error(
    tiny_bert_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    model = tmp_path / "m"
    shutil.copytree(tiny_bert_onnx, model)
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf -> ImportError
    with pytest.raises(ImportError, match="quantize"):
        quantize_openvino_int8(
            model, _beir(tmp_path / "d"), calibration_queries=2, holdout_queries=0, depth=5
        )
    assert not (model / OPENVINO_INT8_DIR).exists()


def test_cli_int8_engine_openvino(ov_model: Path, tmp_path: Path) -> None:
    from crossrank.cli import main

    src = tmp_path / "src"
    shutil.copytree(ov_model, src, ignore=shutil.ignore_patterns(OPENVINO_INT8_DIR))
    data = _beir(tmp_path / "data")
    out = tmp_path / "out"
    args = ["export", str(src), "-o", str(out), "--int8-static", "--calibration", str(data)]
    args += ["--int8-engine", "openvino", "--calibration-queries", "4", "--holdout-queries", "2"]
    assert main([*args, "--calibration-depth", "10"]) == 0
    assert openvino_int8_fidelity(out / "model.onnx") is not None
    assert not (out / "model_int8_static.onnx").exists()
