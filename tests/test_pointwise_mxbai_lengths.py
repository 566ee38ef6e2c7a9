"""The ``mxbai`` template cuts and tokenizes prompts as mixedbread-ai/mxbai-rerank's library does.

``MxbaiRerankV2.prepare_inputs`` (mxbai-rerank, written out below as :func:`library_ids`) tokenizes the
chat prefix, the ``[instruction: I\\n]query: Q`` piece, ``"\\n"``, ``"document: D"``, ``"\\n"``, the task and
the chat suffix apart; its ``max_length`` bounds the query piece + separator + document (the piece cut to 3/4
of it by ids, the document cut to fit), the template's text coming on top, and the whole stays within the
model's positions. crossrank's prompts must equal those ids, cut or not, and its scores the model's on them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from model_fixtures import tiny_texts
from pointwise_fixtures import reference_scores
from test_pointwise import MXBAI_CHAT, MXBAI_TASK, make, model_prompts

POSITIONS = 512  # the tiny Qwen3's max_position_embeddings
LONG_DOC = " ".join(tiny_texts(12, seed=5, min_words=40, max_words=60))
LONG_QUERY = " ".join(tiny_texts(6, seed=9, min_words=30, max_words=40))


def library_ids(tok, query: str, doc: str, instruction: str | None, max_length: int) -> list[int]:  # type: ignore[no-untyped-def]
    """One pair's ids as MxbaiRerankV2.prepare_inputs builds them (its algorithm, written out here)."""

    def enc(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    head, tail = enc(MXBAI_CHAT[0]), enc(MXBAI_CHAT[1])
    sep, task = enc("\n"), enc(MXBAI_TASK)
    predefined = len(head) + len(task) + len(tail) + len(sep)
    body = min(max_length, POSITIONS - predefined)  # the library shrinks max_length to fit the model
    first = (f"instruction: {instruction}\n" if instruction else "") + f"query: {query}"
    q = enc(first)[: body * 3 // 4]  # "Reserve more space for document"
    d = enc(f"document: {doc}")[: min(POSITIONS - len(q) - predefined, body)]
    pair = (q + sep + d)[:body]  # prepare_for_model(q, sep + d, truncation="only_second", max_length=body)
    return head + pair + sep + task + tail


@pytest.fixture(scope="module")
def hf_tok(tiny_qwen3_checkpoint: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_qwen3_checkpoint))


@pytest.mark.parametrize(
    ("query", "doc", "instruction", "max_length"),
    [
        ("bama kelo", "ripu sato tofu", None, 8192),  # nothing cut (the default length)
        ("bama kelo", LONG_DOC, None, 200),  # the document cut to the body
        ("bama kelo", LONG_DOC, "find bama", 200),
        (LONG_QUERY, LONG_DOC, "find bama", 120),  # the query piece cut to 3/4 of the body
        ("bama kelo", LONG_DOC, None, POSITIONS),  # the body shrunk to fit the model's positions
    ],
)
def test_prompts_and_scores_equal_the_library(
    tiny_qwen3_onnx, tiny_qwen3_checkpoint, hf_tok, query, doc, instruction, max_length
):
    r = make(tiny_qwen3_onnx, template="mxbai", max_length=max_length)
    want = library_ids(hf_tok, query, doc, instruction, max_length)
    got = model_prompts(r, query, [doc], instruction)
    assert got == [want]
    assert len(want) <= r.prompt_length <= POSITIONS
    s = r.score(query, [doc], instruction=instruction, raw=True)
    full = len(hf_tok(r.template.render(query, doc, instruction), add_special_tokens=False)["input_ids"])
    assert bool(s.truncated[0]) == (len(want) < full)
    ref = reference_scores(tiny_qwen3_checkpoint, [want], r.score_ids)
    np.testing.assert_allclose(s.scores, ref[:, 0] - ref[:, 1], atol=1e-4)


def test_max_length_counts_the_body_and_the_template_comes_on_top(tiny_qwen3_onnx, hf_tok):
    r = make(tiny_qwen3_onnx, template="mxbai", max_length=200)
    outside = len(hf_tok(MXBAI_CHAT[0], add_special_tokens=False)["input_ids"]) + len(
        hf_tok("\n" + MXBAI_TASK + MXBAI_CHAT[1], add_special_tokens=False)["input_ids"]
    )
    assert r.max_length == 200
    assert r.prompt_length == 200 + outside
    qwen = make(tiny_qwen3_onnx, template="qwen3", max_length=200)
    assert qwen.prompt_length == qwen.max_length == 200  # Qwen3-Reranker's max_length is the whole prompt


# Qwen2's pretokenizer pattern: unlike GPT-2's, it glues newlines to the punctuation before them ("?\n").
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


@pytest.fixture(scope="module")
def qwen2_style(tiny_qwen3_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's folder with Qwen2's pretokenizer and a "?\\n" token, as Qwen's real vocabulary has."""
    out = tmp_path_factory.mktemp("qwen2_style")
    for item in tiny_qwen3_onnx.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, out / item.name)
    spec = json.loads((out / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ],
    }
    vocab = spec["model"]["vocab"]
    vocab["?Ċ"] = max(max(vocab.values()), *(t["id"] for t in spec["added_tokens"])) + 1
    merges = spec["model"]["merges"]
    merges.append(["?", "Ċ"] if merges and isinstance(merges[0], list) else "? Ċ")
    (out / "tokenizer.json").write_text(json.dumps(spec))
    return out


def test_a_question_keeps_its_question_mark_apart_from_the_newline(qwen2_style: Path):
    """The library tokenizes "query: Q" alone, so "?" and the "\\n" after it are two tokens; one text
    "...?\\ndocument:" would give the single "?\\n" token under Qwen's pretokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen2_style))
    merged = tok.convert_tokens_to_ids("?Ċ")
    assert merged in tok("kelo?\ndocument", add_special_tokens=False)["input_ids"]  # the trap exists
    r = make(qwen2_style, template="mxbai", max_length=200)
    for query, instruction in (("is bama kelo?", None), ("is bama kelo?", "find?"), ("bama", None)):
        want = library_ids(tok, query, "ripu sato tofu", instruction, 200)
        assert r.prompt_ids(query, "ripu sato tofu", instruction).tolist() == want
        assert model_prompts(r, query, ["ripu sato tofu"], instruction) == [want]
    # the query's "?" stays apart from the newline; the instruction's "find?\n" is one piece there too
    assert merged not in r.prompt_ids("is bama kelo?", "ripu sato tofu").tolist()
    assert merged in r.prompt_ids("is bama kelo?", "ripu sato tofu", "find?").tolist()


def test_body_rule_needs_the_slots_in_order():
    from crossrank.rerank.pointwise.template import PromptTemplate

    with pytest.raises(ValueError, match="length_rule 'body' needs the slots in the order"):
        PromptTemplate("{query} {instruction} {document}", "1", "0", length_rule="body")
    with pytest.raises(ValueError, match="length_rule must be 'prompt' or 'body'"):
        PromptTemplate("{query} {document}", "1", "0", length_rule="tokens")
    t = PromptTemplate("A {instruction}q: {query}\nd: {document} Z", "1", "0", length_rule="body")
    assert t.body_pieces("Q", "I") == ("A ", "Iq: Q", "\nd: ")
    assert t.body_pieces("Q", None) == ("A ", "q: Q", "\nd: ")
