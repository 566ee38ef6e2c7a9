"""LLMPointwiseReranker: scores equal transformers' AutoModelForCausalLM, with and without the prefix cache.

A seeded random-weight tiny Qwen3 (tests/pointwise_fixtures.py) is exported by ``crossrank export --task
causal-lm-reranker`` and scored by crossrank; the reference is transformers computing each whole prompt
alone (no padding, no cache). Also: the prompt crossrank builds equals the tokenization of the whole prompt
text, truncation keeps the template's tail (Hypothesis over lengths), windows with max aggregation, and
the errors of bad templates, scoring tokens and lengths.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank.rerank.pointwise.scoring import relevance
from model_fixtures import tiny_texts
from pointwise_fixtures import reference_scores, widen_batch

QUERY = "bama kelo ripu sato"
DOCS = [*tiny_texts(9, seed=21, min_words=1, max_words=70), ""]


def make(onnx_dir: Path, **kw: object):  # type: ignore[no-untyped-def]
    from crossrank import LLMPointwiseReranker

    return LLMPointwiseReranker(onnx_dir, precision="fp32", backend="onnxruntime", **kw)  # type: ignore[arg-type]


def model_prompts(r, query: str, docs: list[str], instruction: str | None = None) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """The token ids each row of the plan feeds the model (pair-major order)."""
    _, plan = r._plan(query, docs, instruction)
    rows: dict[int, list[int]] = {}
    for i in range(plan.n_batches):
        b = plan.batch(i)
        for k in range(len(b)):
            rows[int(b.row_index[k])] = b.input_ids[k, : int(b.n_tokens[k])].tolist()
    return [rows[i] for i in range(plan.n_rows)]


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_qwen3_checkpoint: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_qwen3_checkpoint))


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("template", ["qwen3", "mxbai"])
def test_scores_equal_transformers(tiny_qwen3_onnx, tiny_qwen3_checkpoint, hf_tokenizer, cache, template):
    length = {"qwen3": 160, "mxbai": 100}[template]  # mxbai: the body (its template comes on top)
    r = make(tiny_qwen3_onnx, template=template, max_length=length, prefix_cache=cache, max_batch_size=4)
    assert r.scorer.can_cache is cache
    s = r.score(QUERY, DOCS)
    assert s.stats["prefix_cache"] == float(cache)
    prompts = model_prompts(r, QUERY, DOCS)
    # Untruncated prompts are exactly the HF tokenization of the whole prompt text.
    for d, p, cut in zip(DOCS, prompts, s.truncated, strict=True):
        if not cut:
            assert p == hf_tokenizer(r.template.render(QUERY, d), add_special_tokens=False)["input_ids"]
    assert s.truncated.any()
    assert not s.truncated.all()
    ref = reference_scores(tiny_qwen3_checkpoint, prompts, r.score_ids)
    np.testing.assert_allclose(s.scores, relevance(ref), atol=1e-4)
    raw = r.score(QUERY, DOCS, raw=True).scores
    np.testing.assert_allclose(raw, ref[:, 0] - ref[:, 1], atol=1e-4)
    assert np.ptp(raw) > 0.5  # random weights still separate the documents
    assert ((s.scores >= 0) & (s.scores <= 1)).all()


def test_batch_order_and_padding_do_not_change_scores(tiny_qwen3_onnx):
    base = make(tiny_qwen3_onnx, max_length=160).score(QUERY, DOCS).scores
    rng = np.random.default_rng(0)
    for cache in (True, False):
        for rows in (1, 3, 64):
            r = make(tiny_qwen3_onnx, max_length=160, prefix_cache=cache, max_batch_size=rows)
            perm = rng.permutation(len(DOCS))
            got = r.score(QUERY, [DOCS[i] for i in perm]).scores
            np.testing.assert_allclose(got, base[perm], atol=1e-5)
    # Any padding length: extra padded columns (any pad id, masked) leave every row's score unchanged.
    r = make(tiny_qwen3_onnx, max_length=160)
    pre, plan = r._plan(QUERY, DOCS, None)
    past = r.scorer.prefix_state(pre.ids)
    for i in range(plan.n_batches):
        b = plan.batch(i)
        want = r.scorer.run(b, len(pre.ids), past)
        for extra in (1, 7, 40):
            wide = widen_batch(b, extra)
            for cached in (past, None):
                np.testing.assert_allclose(r.scorer.run(wide, len(pre.ids), cached), want, atol=1e-4)


def test_several_queries_and_instructions(tiny_qwen3_onnx, tiny_qwen3_checkpoint):
    r = make(tiny_qwen3_onnx, max_length=200)
    queries = [QUERY, "tofu nake", QUERY]
    docs = [DOCS[:4], DOCS[4:], DOCS[2:6]]
    out = r.score_batch(queries, docs)
    for q, d, s in zip(queries, docs, out, strict=True):
        np.testing.assert_array_equal(s.scores, r.score(q, d).scores)
    inst = "find passages about bama"
    s = r.score(QUERY, DOCS[:4], instruction=inst)
    assert not np.allclose(s.scores, out[0].scores)
    prompts = model_prompts(r, QUERY, DOCS[:4], inst)
    ref = reference_scores(tiny_qwen3_checkpoint, prompts, r.score_ids)
    np.testing.assert_allclose(s.scores, relevance(ref), atol=1e-4)
    # The reranker-wide default instruction is the per-call one when none is given.
    np.testing.assert_allclose(
        make(tiny_qwen3_onnx, max_length=200, instruction=inst).score(QUERY, DOCS[:4]).scores, s.scores
    )
    ranked = r.rank(QUERY, DOCS, top_k=3, instruction=inst)
    assert len(ranked) == 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    max_length=st.integers(min_value=0, max_value=120),
    words=st.lists(st.integers(min_value=0, max_value=150), min_size=1, max_size=5),
    query_words=st.integers(min_value=1, max_value=80),
)
def test_truncated_prompt_keeps_the_template_tail(tiny_qwen3_onnx, max_length, words, query_words):
    r0 = make(tiny_qwen3_onnx, max_length=512)
    fixed = r0.prompts.template_tokens
    r = make(tiny_qwen3_onnx, max_length=fixed + 2 + max_length)
    docs = [tiny_texts(1, seed=n, min_words=n, max_words=n)[0] if n else "" for n in words]
    query = tiny_texts(1, seed=99, min_words=query_words, max_words=query_words)[0]
    pre = r.prompts.prefix(query, None)
    tail = r.prompts.tail_ids.tolist()
    _, plan = r._plan(query, docs, None)
    for d, p, cut in zip(docs, model_prompts(r, query, docs), plan.truncated | pre.query_cut, strict=True):
        assert len(p) <= r.max_length
        assert p[-len(tail) :] == tail  # the exact suffix tokens always survive
        assert p[: len(pre.ids)] == pre.ids.tolist()
        full = r.prompts.prompt_ids(query, d).tolist()
        body = p[len(pre.ids) : len(p) - len(tail)]
        doc_ids = full[len(pre.ids) : len(full) - len(tail)]
        assert body == doc_ids[: len(body)]  # only the document's end is cut
        assert cut == (len(body) < len(doc_ids) or pre.query_cut)


def test_windows_take_the_max_over_windows(tiny_qwen3_onnx, tiny_qwen3_checkpoint):
    long_docs = [tiny_texts(1, seed=5, min_words=120, max_words=120)[0], DOCS[0]]
    r = make(tiny_qwen3_onnx, max_length=150, window_stride=20)
    s = r.score(QUERY, long_docs)
    assert not s.truncated.any()
    _, plan = r._plan(QUERY, long_docs, None)
    assert plan.n_windows[0] > 2
    rows = model_prompts(r, QUERY, long_docs)
    per_row = relevance(reference_scores(tiny_qwen3_checkpoint, rows, r.score_ids))
    off = plan.row_offsets
    for i in range(2):
        assert s.scores[i] == pytest.approx(per_row[off[i] : off[i + 1]].max(), abs=1e-4)
    w = s.windows[0]
    assert w is not None
    assert 0 <= w["start_char"] < w["end_char"] <= len(long_docs[0])
    # max_windows = the short document's windows (its count depends on the tiny tokenizer): only the long one is cut.
    assert plan.n_windows[0] > plan.n_windows[1]
    most = int(plan.n_windows[1])
    cut = make(tiny_qwen3_onnx, max_length=150, window_stride=20, max_windows=most).score(QUERY, long_docs)
    assert cut.truncated[0]
    assert not cut.truncated[1]


def test_bad_templates_tokens_and_lengths(tiny_qwen3_onnx, tmp_path):
    from crossrank.rerank.pointwise import PromptTemplate

    with pytest.raises(ValueError, match="document"):
        PromptTemplate("<Query>: {query} yes?", positive="yes", negative="no")
    with pytest.raises(ValueError, match="unknown slot"):
        PromptTemplate("{query} {doc} {document}", positive="yes", negative="no")
    cfg = tmp_path / "custom.json"
    cfg.write_text(
        json.dumps({"template": "Q: {query}\nD: {document}\nRelevant:", "positive": "zqxj", "negative": "no"})
    )
    with pytest.raises(ValueError, match="'zqxj'"):
        make(tiny_qwen3_onnx, template=cfg)
    cfg.write_text(json.dumps({"template": "Q: {query}\nRelevant:", "positive": "yes", "negative": "no"}))
    with pytest.raises(ValueError, match="document"):
        make(tiny_qwen3_onnx, template=cfg)
    with pytest.raises(ValueError, match="max_length"):
        make(tiny_qwen3_onnx, max_length=20)
    plain = PromptTemplate("Q: {query}\nD: {document}\nRelevant:", positive="1", negative="0")
    with pytest.raises(ValueError, match="instruction"):
        make(tiny_qwen3_onnx, template=plain, instruction="x")
    with pytest.raises(ValueError, match="instruction_format"):
        PromptTemplate("{instruction}{query}{document}", positive="1", negative="0", instruction_format="I: ")
    r = make(tiny_qwen3_onnx, max_length=160)
    with pytest.raises(ValueError, match="no room"):
        r.score(QUERY, DOCS[:2], instruction=" ".join(["bama"] * 200))
    with pytest.raises(TypeError, match="instruction"):
        r.score(QUERY, DOCS[:2], instruction=3)  # type: ignore[arg-type]
    # A custom template from a file, with its own scoring tokens.
    cfg.write_text(
        json.dumps({"template": "Q: {query}\nD: {document}\nRelevant:", "positive": "1", "negative": "0"})
    )
    s = make(tiny_qwen3_onnx, template=cfg, max_length=100).score(QUERY, DOCS)
    assert s.scores.shape == (len(DOCS),)
    assert np.isfinite(s.scores).all()


def test_whole_prompt_fallback_when_the_backend_refuses_the_cache(tiny_qwen3_onnx):
    r = make(tiny_qwen3_onnx, max_length=160)
    want = make(tiny_qwen3_onnx, max_length=160, prefix_cache=False).score(QUERY, DOCS).scores

    def refuse(prefix_ids: np.ndarray) -> list[np.ndarray]:
        raise RuntimeError("past_key_values not supported")

    r.scorer.prefix_state = refuse  # type: ignore[method-assign]
    with pytest.warns(RuntimeWarning, match="whole prompts"):
        s = r.score(QUERY, DOCS)
    assert s.stats["prefix_cache"] == 0.0
    assert not r.scorer.can_cache
    np.testing.assert_allclose(s.scores, want, atol=1e-5)


def test_spec_and_lazy_export(tiny_qwen3_onnx):
    import crossrank
    from crossrank.rerank.spec import load_reranker, parse_reranker_spec

    assert parse_reranker_spec(f"pointwise:{tiny_qwen3_onnx}") == ("pointwise", str(tiny_qwen3_onnx))
    r = load_reranker(f"pointwise:{tiny_qwen3_onnx}", precision="fp32", max_length=160)
    assert isinstance(r, crossrank.LLMPointwiseReranker)
    np.testing.assert_allclose(
        r.score(QUERY, DOCS).scores, make(tiny_qwen3_onnx, max_length=160).score(QUERY, DOCS).scores
    )
    with pytest.raises(ValueError, match="do not apply"):
        load_reranker(f"pointwise:{tiny_qwen3_onnx}", window_size=3)


@pytest.mark.parametrize("cache", [True, False])
def test_openvino_runs_the_same_graphs(tiny_qwen3_onnx, cache):
    pytest.importorskip("openvino")
    want = make(tiny_qwen3_onnx, max_length=160).score(QUERY, DOCS).scores
    from crossrank import LLMPointwiseReranker

    r = LLMPointwiseReranker(
        tiny_qwen3_onnx, backend="openvino", precision="fp32", max_length=160, prefix_cache=cache
    )
    s = r.score(QUERY, DOCS)
    assert s.stats["prefix_cache"] == float(cache)
    np.testing.assert_allclose(s.scores, want, atol=1e-4)


def test_plain_causal_lm_graph_runs_whole_prompts(tiny_qwen3_checkpoint, tiny_qwen3_onnx, tmp_path):
    """A graph without past inputs (input_ids, attention_mask -> logits [batch, seq, vocab]) scores whole prompts."""
    import shutil
    import warnings

    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_qwen3_checkpoint), attn_implementation="eager").eval()

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, ids, mask):  # type: ignore[no-untyped-def]
            return self.hf(input_ids=ids, attention_mask=mask, use_cache=False).logits

    ids = torch.randint(0, 500, (2, 9))
    axes = {"batch": 0, "seq": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Plain(),
            (ids, torch.ones_like(ids)),
            str(tmp_path / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                n: {v: k for k, v in axes.items()} for n in ("input_ids", "attention_mask", "logits")
            },
            opset_version=17,
            dynamo=False,
        )
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(tiny_qwen3_onnx / name, tmp_path / name)
    r = make(tmp_path, max_length=160)
    assert not r.scorer.can_cache
    want = make(tiny_qwen3_onnx, max_length=160).score(QUERY, DOCS).scores
    np.testing.assert_allclose(r.score(QUERY, DOCS).scores, want, atol=1e-4)


# mixedbread-ai/mxbai-rerank, MxbaiRerankV2: its chat prefix, task prompt and chat suffix (typed out here).
MXBAI_CHAT = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n",
    "<|im_end|>\n<|im_start|>assistant\n",
)
MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)


@pytest.mark.parametrize("instruction", [None, "find bama"])
def test_mxbai_prompt_is_what_the_mxbai_rerank_library_sends(
    tiny_qwen3_onnx, tiny_qwen3_checkpoint, hf_tokenizer, instruction
):
    """The exact text and token ids of mixedbread-ai/mxbai-rerank's ``MxbaiRerankV2.prepare_inputs``.

    That library tokenizes each piece without special tokens (so nothing, no BOS or <|endoftext|>, comes
    before ``<|im_start|>``): the chat prefix, ``"instruction: I" + "\\n" + "query: Q"`` (the instruction
    line only when one is given), ``"\\n"``, ``"document: D"``, ``"\\n"``, the task prompt and the chat
    suffix, and concatenates the ids; the score is logit("1") - logit("0") after the last one.
    """
    query, doc = "bama kelo", "ripu sato tofu"
    head, tail = MXBAI_CHAT
    first = (f"instruction: {instruction}\n" if instruction else "") + f"query: {query}"
    pieces = [head, first, "\n", f"document: {doc}", "\n", MXBAI_TASK, tail]
    r = make(tiny_qwen3_onnx, template="mxbai", max_length=260)
    assert r.template.render(query, doc, instruction) == "".join(pieces)

    library = [i for p in pieces for i in hf_tokenizer(p, add_special_tokens=False)["input_ids"]]
    assert hf_tokenizer.convert_ids_to_tokens(library[:1]) == ["<|im_start|>"]
    assert r.prompt_ids(query, doc, instruction).tolist() == library
    assert model_prompts(r, query, [doc], instruction) == [library]
    assert r.score_ids == (hf_tokenizer.convert_tokens_to_ids("1"), hf_tokenizer.convert_tokens_to_ids("0"))
    ref = reference_scores(tiny_qwen3_checkpoint, [library], r.score_ids)
    got = r.score(query, [doc], instruction=instruction, raw=True).scores
    np.testing.assert_allclose(got, ref[:, 0] - ref[:, 1], atol=1e-4)
