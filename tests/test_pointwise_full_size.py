"""LLMPointwiseReranker at full Qwen3-0.6B size equals transformers' AutoModelForCausalLM (marked slow).

A seeded random-weight ``Qwen3ForCausalLM`` with Qwen3-0.6B's real configuration (28 layers, hidden 1024,
16 query / 8 key-value heads of 128, MLP 3072, vocabulary 151,669, tied embeddings; ~0.6B parameters, ~2.4 GB
fp32) is saved, exported once per module by ``crossrank export --task causal-lm-reranker`` (the command,
in a child process, so its peak memory is returned before scoring), and scored by crossrank with the prefix
cache on and off, in two batch orders and padded to several lengths. The reference is transformers
computing each whole prompt alone (its own tokenizer on the rendered prompt text: no padding, no cache).

Cheap by design (CI runs it): four short pairs, weights filled by one seeded ``normal_`` per matrix with
transformers' init skipped, the reference computed before the export with the model already in memory,
and the checkpoint and ONNX files (several GB) removed when the module ends. Measured here (2 shared cores,
load ~9): 8-9 min wall, 4 min CPU, peak RSS 6.1 GiB (bench/RESULTS.md). The tiny-model tests in
``test_pointwise.py`` cover truncation, windows and errors; this one proves the graphs stay exact at real
depth and width.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from crossrank.rerank.pointwise.scoring import relevance
from model_fixtures import tiny_texts
from pointwise_fixtures import build_tokenizer, widen_batch

pytestmark = pytest.mark.slow

# Qwen3-0.6B's config.json (the architecture fields; vocabulary = its tokenizer's 151,669 tokens).
QWEN3_0_6B = {
    "vocab_size": 151_669,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40_960,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
QUERY = "bama kelo ripu sato"
DOCS = tiny_texts(4, seed=31, min_words=2, max_words=24)
_CLI = "import sys; from crossrank.cli import main; sys.exit(main(sys.argv[1:]))"  # `crossrank` itself
MAX_LENGTH = 256  # no pair is cut: every prompt is the whole rendered text


@pytest.fixture(scope="module")
def full_size(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(ONNX export dir, reference logits [n, 2] of (yes, no)) for QUERY x DOCS; removed afterwards."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM
    from transformers.initialization import no_init_weights

    from crossrank.rerank.pointwise.template import BUILTIN_TEMPLATES

    root = tmp_path_factory.mktemp("qwen3_0_6b")
    ckpt, onnx_dir = root / "ckpt", root / "onnx"
    try:
        build_tokenizer(ckpt)
        tok = AutoTokenizer.from_pretrained(str(ckpt))
        template = BUILTIN_TEMPLATES["qwen3"]
        with no_init_weights():  # transformers' and torch's initializers are skipped: filled below
            model = Qwen3ForCausalLM(Qwen3Config(**QWEN3_0_6B)).float().eval()
        model.tie_weights()  # post-init tying is skipped with the init: one embedding matrix, as in 0.6B
        assert model.lm_head.weight is model.model.embed_tokens.weight
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:  # std 0.05: next-token logits spread by a few units (norms stay 1)
                    p.normal_(0.0, 0.05, generator=gen)
        assert 590e6 < sum(p.numel() for p in model.parameters()) < 600e6  # Qwen3-0.6B: 596M
        score_ids = [tok.convert_tokens_to_ids(t) for t in (template.positive, template.negative)]
        ref = []
        with torch.inference_mode():
            for d in DOCS:
                ids = tok(template.render(QUERY, d), add_special_tokens=False)["input_ids"]
                logits = model(input_ids=torch.tensor([ids]), logits_to_keep=1).logits[0, -1]
                ref.append(logits[score_ids].double().numpy())
        model.save_pretrained(str(ckpt))
        del model
        gc.collect()
        subprocess.run(
            [sys.executable, "-c", _CLI, "export", str(ckpt), "-o", str(onnx_dir),
             "--task", "causal-lm-reranker"],
            check=True,
        )  # fmt: skip
        shutil.rmtree(ckpt)  # 2.4 GB not needed any more
        yield onnx_dir, np.stack(ref)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_full_size_scores_equal_transformers(full_size):
    from crossrank import LLMPointwiseReranker

    onnx_dir, ref = full_size
    assert np.ptp(ref[:, 0] - ref[:, 1]) > 0.5  # random weights still separate the documents
    want, want_raw = relevance(ref), ref[:, 0] - ref[:, 1]
    perm = [2, 0, 3, 1]
    for cache in (True, False):
        r = LLMPointwiseReranker(
            onnx_dir, template="qwen3", backend="onnxruntime", precision="fp32", max_length=MAX_LENGTH,
            prefix_cache=cache, max_batch_size=len(DOCS),
        )  # fmt: skip
        assert r.scorer.can_cache is cache
        # One batch padded to the longest of the four.
        s = r.score(QUERY, DOCS)
        assert s.stats["prefix_cache"] == float(cache)
        assert not s.truncated.any()
        np.testing.assert_allclose(s.scores, want, atol=1e-4)
        # Another order, one pair per batch (no padding), raw logit differences.
        r.max_batch_size = 1
        raw = r.score(QUERY, [DOCS[i] for i in perm], raw=True).scores
        np.testing.assert_allclose(raw, want_raw[perm], atol=1e-3 * max(1.0, float(np.abs(want_raw).max())))
        np.testing.assert_allclose(relevance(np.stack([raw, 0 * raw], 1)), want[perm], atol=1e-4)
        if cache:  # padded further: 7 extra masked columns (any pad id) leave every row's logits unchanged
            r.max_batch_size = len(DOCS)
            pre, plan = r._plan(QUERY, DOCS, None)
            assert plan.n_batches == 1
            b = plan.batch(0)
            wide = widen_batch(b, 7)
            rows = b.pair_index.astype(np.int64)
            for past in (r.scorer.prefix_state(pre.ids), None):
                got = r.scorer.run(wide, len(pre.ids), past)
                np.testing.assert_allclose(relevance(got), want[rows], atol=1e-4)
        del r
        gc.collect()
