"""crossrank export: verified graphs, the CLI, errors, and the hub's export-on-first-use."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.cli import main as cli_main
from crossrank.errors import StateError
from crossrank.models.export import export_model
from crossrank.models.hub import resolve_model
from fake_hub import serve
from model_fixtures import reference_logits, tiny_texts


def test_export_writes_a_loadable_verified_directory(tiny_bert_onnx: Path) -> None:
    report = json.loads((tiny_bert_onnx / "crossrank_export.json").read_text())
    assert report["task"] == "cross-encoder"
    assert report["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert report["max_abs_err"]["fp32"] <= 1e-4
    assert 0 < report["max_abs_err"]["int8"] <= report["int8_tolerance"]
    for name in ("model.onnx", "model_int8.onnx", "tokenizer.json", "config.json"):
        assert (tiny_bert_onnx / name).is_file(), name


def test_embedding_task_outputs_hidden_states(
    tiny_bert_embedding_onnx: Path, tiny_bert_checkpoint: Path
) -> None:
    import torch
    from transformers import AutoModel

    from crossrank.models.onnx_session import load_backend

    be = load_backend(tiny_bert_embedding_onnx / "model.onnx", backend="onnxruntime", precision="fp32")
    assert be.output_names == ["last_hidden_state"]
    ids = np.array([[2, 50, 60, 70, 3], [2, 80, 3, 0, 0]], dtype=np.int64)
    mask = (np.arange(5) < np.array([[5], [3]])).astype(np.int64)
    types = np.zeros_like(ids)
    got = be.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
    model = AutoModel.from_pretrained(str(tiny_bert_checkpoint)).eval()
    with torch.inference_mode():
        want = model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state.numpy()
    m = mask.astype(bool)
    np.testing.assert_allclose(got[m], want[m], atol=1e-4)


def test_cli_export_optimize(
    tiny_bert_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert cli_main(["export", str(tiny_bert_checkpoint), "-o", str(out), "--optimize"]) == 0
    text = capsys.readouterr().out
    assert "Attention=2" in text
    assert "SkipLayerNormalization=4" in text
    pairs = list(zip(tiny_texts(8, 1), tiny_texts(8, 2, max_words=200), strict=True))
    ref = reference_logits(tiny_bert_checkpoint, pairs, 128)[:, 0]
    opt = CrossEncoder(out, onnx_file="model_optimized.onnx", backend="onnxruntime", activation=None)
    np.testing.assert_allclose(opt.predict(pairs), ref, atol=1e-4)


def test_export_errors(tiny_bert_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        export_model(tiny_bert_checkpoint, tmp_path / "x", task="classification")
    # A graph that does not match PyTorch is not written.
    with pytest.raises(StateError, match="does not match PyTorch"):
        export_model(tiny_bert_checkpoint, tmp_path / "strict", atol=0.0)
    assert not (tmp_path / "strict" / "model.onnx").exists()
    with pytest.raises(SystemExit):  # argparse rejects an unknown --task
        cli_main(["export", str(tiny_bert_checkpoint), "-o", str(tmp_path / "y"), "--task", "nope"])

    import crossrank.models.export as export_mod

    def failing(*args: object, **kwargs: object) -> None:
        raise StateError("the fp32 graph does not match PyTorch")

    with monkeypatch.context() as m:
        m.setattr(export_mod, "export_model", failing)
        assert cli_main(["export", str(tiny_bert_checkpoint), "-o", str(tmp_path / "w")]) == 1

    real_import = builtins.__import__

    def no_torch(name: str, *args: object, **kwargs: object) -> object:
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match=r'pip install "crossrank\[export\]"'):
        export_model(tiny_bert_checkpoint, tmp_path / "z")
    assert cli_main(["export", str(tiny_bert_checkpoint), "-o", str(tmp_path / "z")]) == 2


def test_hub_repo_without_onnx_is_exported_once(
    tiny_bert_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(tiny_bert_checkpoint, repo)
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "crcache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with serve({"org/tiny": repo}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        files = resolve_model("org/tiny", hub_cache_dir=tmp_path / "hf")
        assert "model.safetensors" in fake.downloaded()
        assert files.onnx_path.parent.parent == tmp_path / "crcache" / "exports"
        again = resolve_model("org/tiny", hub_cache_dir=tmp_path / "hf")
        assert again.onnx_path == files.onnx_path
    pairs = list(zip(tiny_texts(6, 3), tiny_texts(6, 4), strict=True))
    ce = CrossEncoder(files.root, precision="fp32", activation=None)
    np.testing.assert_allclose(
        ce.predict(pairs), reference_logits(tiny_bert_checkpoint, pairs, 128)[:, 0], atol=1e-4
    )
