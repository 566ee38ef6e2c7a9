"""Inference backends: choice, sharing, thread safety, errors."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from crossrank.models import onnx_session
from crossrank.models.onnx_session import InferenceBackend, load_backend, resolve_threads


@pytest.fixture(scope="module")
def minilm_onnx(minilm_dir: Path) -> Path:
    return minilm_dir / "onnx" / "model.onnx"


def _feeds(rows: int, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 20000, size=(rows, length), dtype=np.int64)
    ids[:, 0] = 101
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def test_onnxruntime_backend_shared_and_thread_safe(minilm_onnx: Path) -> None:
    be = load_backend(minilm_onnx, backend="onnxruntime", precision="fp32", num_threads=1)
    assert isinstance(be, InferenceBackend)
    assert load_backend(minilm_onnx, backend="onnxruntime", precision="fp32", num_threads=1) is be
    assert be.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    feeds = [_feeds(2, 16, s) for s in range(4)]
    want = [be.run(f)[0] for f in feeds]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = be.run(feeds[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(got[i], want[i])


def test_openvino_bf16_close_to_fp32(minilm_onnx: Path) -> None:
    pytest.importorskip("openvino")
    ref = load_backend(minilm_onnx, backend="onnxruntime", precision="fp32")
    ov32 = load_backend(minilm_onnx, backend="openvino", precision="fp32")
    ovbf = load_backend(minilm_onnx, backend="openvino", precision="bf16")
    f = _feeds(3, 24)
    r = ref.run(f)[0]
    np.testing.assert_allclose(ov32.run(f)[0], r, atol=1e-4)
    # bf16 keeps 8 bits of mantissa: hidden states agree to about 1e-1 absolute, far from 1e-4.
    assert np.abs(ovbf.run(f)[0] - r).max() < 0.2
    # Another shape on the same compiled model (dynamic dims).
    assert ovbf.run(_feeds(1, 7))[0].shape == (1, 7, 384)


def test_auto_choice(minilm_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_session, "_ort_cuda_available", lambda: False)
    monkeypatch.setattr(onnx_session, "cpu_has_bf16", lambda: False)
    assert onnx_session._choose("auto", "auto") == ("onnxruntime", "fp32")
    assert onnx_session._choose("auto", "int8") == ("onnxruntime", "int8")
    monkeypatch.setattr(onnx_session, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(onnx_session, "_has_openvino", lambda: True)
    assert onnx_session._choose("auto", "auto") == ("openvino", "bf16")
    assert onnx_session._choose("auto", "fp32") == ("onnxruntime", "fp32")
    assert onnx_session._choose("openvino", "fp32") == ("openvino", "fp32")
    monkeypatch.setattr(onnx_session, "_ort_cuda_available", lambda: True)
    assert onnx_session._choose("auto", "auto") == ("onnxruntime", "fp32")


def test_errors(minilm_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backend(tmp_path / "absent.onnx")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backend(minilm_onnx, backend="tensorrt")
    with pytest.raises(ValueError, match="precision must be one of"):
        load_backend(minilm_onnx, precision="fp8")
    with pytest.raises(ValueError, match="not available on the onnxruntime backend"):
        load_backend(minilm_onnx, backend="onnxruntime", precision="bf16")
    with pytest.raises(ValueError, match="int8"):
        load_backend(minilm_onnx, backend="openvino", precision="int8")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_threads"):
            resolve_threads(bad)  # type: ignore[arg-type]
    assert resolve_threads(None) >= 1


def test_fp32_runs_the_fused_graph(tiny_bert_onnx: Path) -> None:
    plain = load_backend(tiny_bert_onnx / "model.onnx", backend="onnxruntime", precision="fp32", fuse=False)
    fused = load_backend(tiny_bert_onnx / "model.onnx", backend="onnxruntime", precision="fp32")
    assert plain.onnx_path.name == "model.onnx"  # type: ignore[attr-defined]
    assert fused.onnx_path.parent.name == "fused"  # type: ignore[attr-defined]
    f = _feeds(3, 20)
    f["input_ids"] %= 1000
    np.testing.assert_allclose(fused.run(f)[0], plain.run(f)[0], atol=1e-5)
    # A graph the fusions do not apply to is run as it is (and remembered).
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["b", "s"])
    g = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["y"])], "g", [x], [y])
    path = tiny_bert_onnx.parent / "identity_model.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    be = load_backend(path, backend="onnxruntime", precision="fp32")
    assert be.onnx_path == path  # type: ignore[attr-defined]
