"""Reranker specs (crossrank.rerank.spec): one parser and loader for ``serve --model`` and ``eval --reranker``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crossrank.rerank.spec import load_reranker, parse_reranker_spec
from crossrank.types import Reranker


@pytest.mark.parametrize(
    ("spec", "kind", "target"),
    [
        ("cross-encoder/ms-marco-MiniLM-L-6-v2", "cross-encoder", "cross-encoder/ms-marco-MiniLM-L-6-v2"),
        ("model.onnx", "cross-encoder", "model.onnx"),
        ("./models/ce", "cross-encoder", "./models/ce"),
        ("/abs/path/ce", "cross-encoder", "/abs/path/ce"),
        ("C:/models/ce", "cross-encoder", "C:/models/ce"),  # a Windows drive, not a prefix
        ("C:\\models\\ce", "cross-encoder", "C:\\models\\ce"),
        ("dense:sentence-transformers/all-MiniLM-L6-v2", "dense", "sentence-transformers/all-MiniLM-L6-v2"),
        ("dense:/abs/minilm", "dense", "/abs/minilm"),
        ("colbert:colbert-ir/colbertv2.0", "colbert", "colbert-ir/colbertv2.0"),
        ("colbert:./ckpt", "colbert", "./ckpt"),
        ("llm:http://localhost:8000/v1@qwen2.5", "llm", "http://localhost:8000/v1@qwen2.5"),
        # The model is what follows the last '@' (a user:password@host URL keeps its '@').
        ("llm:http://u:p@host:8000/v1@Qwen/Qwen2.5-7B", "llm", "http://u:p@host:8000/v1@Qwen/Qwen2.5-7B"),
    ],
)
def test_parse_kinds_and_targets(spec: str, kind: str, target: str) -> None:
    assert parse_reranker_spec(spec) == (kind, target)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("dense:", "names no model"),
        ("colbert:  ", "names no model"),
        ("llm:", "names no model"),
        ("foo:bar", "unknown reranker kind 'foo:'"),
        ("Dense:model", "unknown reranker kind 'Dense:'"),  # prefixes are lower case
        ("py:module:factory", "unknown reranker kind 'py:'"),  # serve's own form, not a reranker spec
        ("llm:http://localhost:8000/v1", "llm:BASE_URL@MODEL"),
        ("llm:@model", "llm:BASE_URL@MODEL"),
        ("llm:http://localhost:8000/v1@", "llm:BASE_URL@MODEL"),
    ],
)
def test_bad_specs_are_value_errors(spec: str, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        parse_reranker_spec(spec)


def test_non_str_spec_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse_reranker_spec(42)  # type: ignore[arg-type]


def test_an_existing_path_with_a_colon_is_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "foo:bar").mkdir()
    assert parse_reranker_spec("foo:bar") == ("cross-encoder", "foo:bar")


def test_a_local_bi_encoder_directory_is_dense(tmp_path: Path) -> None:
    # As `crossrank eval` always did: a sentence-transformers bi-encoder (Pooling module) is not a
    # cross-encoder; a directory without one is.
    bi = tmp_path / "bi"
    bi.mkdir()
    (bi / "modules.json").write_text(
        json.dumps(
            [
                {"type": "sentence_transformers.models.Transformer"},
                {"type": "sentence_transformers.models.Pooling"},
            ]
        )
    )
    assert parse_reranker_spec(str(bi)) == ("dense", str(bi))
    (tmp_path / "ce").mkdir()
    assert parse_reranker_spec(str(tmp_path / "ce")) == ("cross-encoder", str(tmp_path / "ce"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "modules.json").write_text("{not json")
    assert parse_reranker_spec(str(tmp_path / "broken"))[0] == "cross-encoder"
    # An explicit prefix wins over the guess.
    assert parse_reranker_spec(f"colbert:{bi}") == ("colbert", str(bi))


# -- loading --------------------------------------------------------------------------------------
def test_load_cross_encoder_with_options(tiny_bert_onnx: Path) -> None:
    from crossrank.rerank.cross_encoder import CrossEncoder

    r = load_reranker(
        str(tiny_bert_onnx), precision="fp32", num_threads=1, max_length=64, max_batch_tokens=512
    )
    assert isinstance(r, CrossEncoder)
    assert isinstance(r, Reranker)
    assert (r.max_length, r.max_batch_tokens) == (64, 512)
    ref = CrossEncoder(tiny_bert_onnx, precision="fp32", num_threads=1, max_length=64)
    docs = ["a b c", "d e f g"]
    assert r.rank("a b", docs) == ref.rank("a b", docs)


def test_load_dense(minilm_dir: Path) -> None:
    from crossrank.rerank.dense import DenseReranker

    r = load_reranker(f"dense:{minilm_dir}", num_threads=1, max_length=32, cache_size=10)
    assert isinstance(r, DenseReranker)
    assert isinstance(r, Reranker)
    assert r.embedder.max_length == 32
    assert r.cache_size == 10
    # The bi-encoder directory without a prefix is the same kind.
    assert isinstance(load_reranker(str(minilm_dir), num_threads=1), DenseReranker)


def test_load_colbert(minilm_dir: Path) -> None:
    from crossrank.rerank.colbert import ColBERTReranker

    r = load_reranker(f"colbert:{minilm_dir}", precision="fp32", num_threads=1, max_length=48, dtype="fp32")
    assert isinstance(r, ColBERTReranker)
    assert r.settings.doc_maxlen == 48
    assert isinstance(r, Reranker), "ColBERTReranker should meet the Reranker protocol"
    with pytest.raises(ValueError, match="not both"):
        load_reranker(f"colbert:{minilm_dir}", max_length=48, doc_maxlen=64)


def test_load_llm() -> None:
    pytest.importorskip("openai")
    from crossrank.rerank.llm import LLMReranker

    r = load_reranker("llm:http://127.0.0.1:9/v1@fake-model", num_threads=4, window=4, step=2)
    assert isinstance(r, LLMReranker)
    assert (r.base_url, r.model, r.window, r.step) == ("http://127.0.0.1:9/v1", "fake-model", 4, 2)
    assert isinstance(r, Reranker), "LLMReranker should meet the Reranker protocol"
    with pytest.raises(ValueError, match="max_passage_tokens"):
        load_reranker("llm:http://127.0.0.1:9/v1@m", max_length=100)
    with pytest.raises(ValueError, match="precision"):
        load_reranker("llm:http://127.0.0.1:9/v1@m", precision="int8")
    # parse_llm_spec's own check of the URL (ours checks only the shape).
    with pytest.raises(ValueError, match="http"):
        load_reranker("llm:localhost:8000@m")


def test_an_option_the_kind_does_not_take_is_a_value_error(tiny_bert_onnx: Path, minilm_dir: Path) -> None:
    with pytest.raises(ValueError, match="activation do not apply to colbert rerankers"):
        load_reranker(f"colbert:{minilm_dir}", activation="sigmoid")
    with pytest.raises(ValueError, match="max_batch_tokens do not apply to llm rerankers"):
        load_reranker("llm:http://127.0.0.1:9/v1@m", max_batch_tokens=4096)
    with pytest.raises(ValueError, match="window_size do not apply to cross-encoder rerankers"):
        load_reranker(str(tiny_bert_onnx), window_size=64)
    with pytest.raises(ValueError, match="nope"):
        load_reranker(f"dense:{minilm_dir}", nope=1)
    with pytest.raises(ValueError, match="unknown reranker kind"):
        load_reranker("foo:bar")


def test_a_missing_model_names_it(tmp_path: Path) -> None:
    from crossrank.errors import ModelNotFoundError

    missing = tmp_path / "nowhere"
    for spec in (str(missing), f"dense:{missing}", f"colbert:{missing}"):
        with pytest.raises((ModelNotFoundError, FileNotFoundError)) as err:
            load_reranker(spec)
        assert "nowhere" in str(err.value)
