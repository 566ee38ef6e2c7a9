"""Model resolution: local directories, .onnx files, and hub ids against a fake hub on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossrank.errors import ModelNotFoundError
from crossrank.models import hub
from crossrank.models.hub import resolve_model
from fake_hub import serve


def _repo(root: Path, *, onnx: tuple[str, ...] = ("onnx/model.onnx",), weights: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert", "num_labels": 1}))
    (root / "tokenizer.json").write_text('{"version": "1.0"}')
    (root / "tokenizer_config.json").write_text("{}")
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text("{}")
    (root / "README.md").write_text("readme")
    if weights:
        (root / "model.safetensors").write_bytes(b"w" * 100)
    for rel in onnx:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"onnx:" + rel.encode())
    return root


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repos = {
        "org/with-onnx": _repo(tmp_path / "r1", onnx=("onnx/model.onnx", "onnx/model_qint8_avx512.onnx")),
        "org/no-onnx": _repo(tmp_path / "r2", onnx=()),
        "org/root-onnx": _repo(tmp_path / "r3", onnx=("model.onnx",)),
    }
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hfcache"))
    monkeypatch.setenv("CROSSRANK_CACHE", str(tmp_path / "crcache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with serve(repos) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake, tmp_path / "hfcache"


def test_hub_id_downloads_only_what_is_needed(hub_env) -> None:
    fake, cache = hub_env
    files = resolve_model("org/with-onnx", hub_cache_dir=cache)
    assert files.onnx_path.read_bytes() == b"onnx:onnx/model.onnx"
    assert files.tokenizer_path.name == "tokenizer.json"
    assert files.config["num_labels"] == 1
    assert files.read_json("1_Pooling/config.json") == {}
    got = set(fake.downloaded())
    assert "onnx/model.onnx" in got
    assert "tokenizer.json" in got
    assert "1_Pooling/config.json" in got
    assert "model.safetensors" not in got
    assert "onnx/model_qint8_avx512.onnx" not in got
    assert "README.md" not in got


def test_hub_named_variant_and_root_graph(hub_env) -> None:
    _, cache = hub_env
    files = resolve_model("org/with-onnx", onnx_file="model_qint8_avx512.onnx", hub_cache_dir=cache)
    assert files.onnx_path.read_bytes() == b"onnx:onnx/model_qint8_avx512.onnx"
    files = resolve_model("org/root-onnx", hub_cache_dir=cache)
    assert files.onnx_path.read_bytes() == b"onnx:model.onnx"


def test_hub_missing_variant_lists_graphs(hub_env) -> None:
    _, cache = hub_env
    with pytest.raises(ModelNotFoundError, match=r"model_qint8_avx512\.onnx"):
        resolve_model("org/with-onnx", onnx_file="model_fp16.onnx", hub_cache_dir=cache)


def test_hub_unknown_repo(hub_env) -> None:
    _, cache = hub_env
    with pytest.raises(ModelNotFoundError, match="no model 'org/absent'"):
        resolve_model("org/absent", hub_cache_dir=cache)


def test_hub_offline_uses_cache_then_explains(hub_env, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, cache = hub_env
    online = resolve_model("org/with-onnx", hub_cache_dir=cache)
    n = len(fake.requests)
    offline = resolve_model("org/with-onnx", hub_cache_dir=cache, local_files_only=True)
    assert offline.onnx_path.read_bytes() == online.onnx_path.read_bytes()
    assert len(fake.requests) == n  # no network at all
    # An unreachable endpoint with a cold cache: the error says how to use a local copy.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ModelNotFoundError, match="local copy"):
        resolve_model("org/root-onnx", hub_cache_dir=cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="local copy"):
        resolve_model("org/never-downloaded", hub_cache_dir=cache)


def test_hub_without_onnx_names_export_when_torch_missing(hub_env, monkeypatch: pytest.MonkeyPatch) -> None:
    _, cache = hub_env
    monkeypatch.setattr(hub, "_has_torch", lambda: False)
    with pytest.raises(ModelNotFoundError, match="crossrank export"):
        resolve_model("org/no-onnx", hub_cache_dir=cache)
    with pytest.raises(ModelNotFoundError, match="crossrank export"):
        resolve_model("org/no-onnx", hub_cache_dir=cache, export_if_missing=False)


def test_local_directory_and_onnx_file(tmp_path: Path) -> None:
    root = _repo(tmp_path / "m", onnx=("onnx/model.onnx", "onnx/model_int8.onnx"))
    files = resolve_model(root)
    assert files.root == root.resolve()
    assert files.onnx_path.name == "model.onnx"
    assert resolve_model(root, onnx_file="model_int8.onnx").onnx_path.name == "model_int8.onnx"
    # An .onnx path finds the tokenizer one level up (HF layout).
    files = resolve_model(root / "onnx" / "model_int8.onnx")
    assert files.tokenizer_path == root / "tokenizer.json"
    assert files.config["model_type"] == "bert"


def test_local_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(tmp_path / "absent")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model("./relative/absent")
    with pytest.raises(ModelNotFoundError, match="hub id"):
        resolve_model("not a valid id!")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "m.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"no tokenizer\.json"):
        resolve_model(lone / "m.onnx")
    (lone / "notes.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match=r"not an \.onnx graph"):
        resolve_model(lone / "notes.txt")
    root = _repo(tmp_path / "noonnx", onnx=())
    monkeypatch.setattr(hub, "_has_torch", lambda: False)
    with pytest.raises(ModelNotFoundError, match="crossrank export"):
        resolve_model(root)
    empty = _repo(tmp_path / "empty", onnx=(), weights=False)
    with pytest.raises(ModelNotFoundError, match="no weights"):
        resolve_model(empty)
    with pytest.raises(ModelNotFoundError, match=r"model_x\.onnx"):
        resolve_model(_repo(tmp_path / "one", onnx=("model.onnx",)), onnx_file="model_x.onnx")
