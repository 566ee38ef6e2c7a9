"""Tiny seeded Qwen3 causal LMs for the pointwise LLM reranker tests (built here, exported by crossrank).

``build_tiny_qwen3(out)`` trains a small byte-level BPE tokenizer on the built-in templates and syllable
texts (so "yes", "no", "1", "0" are single tokens and ``<|im_start|>``, ``<|im_end|>``, ``<think>``,
``</think>``, ``<|endoftext|>`` are special tokens, as in Qwen's vocabulary) and saves a seeded random-weight
``Qwen3ForCausalLM`` (hidden 64, 2 layers, 4 query / 2 key-value heads) with it. ``reference_scores``
scores prompts with transformers' ``AutoModelForCausalLM``, one whole prompt at a time.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_fixtures import tiny_texts

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def build_tokenizer(out: Path, *, drop: tuple[str, ...] = ()) -> None:
    """Train and save a byte-level BPE tokenizer (``tokenizer.json`` + transformers configs) into ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from crossrank.rerank.pointwise.template import BUILTIN_TEMPLATES

    corpus = tiny_texts(400, seed=11, max_words=30)
    for t in BUILTIN_TEMPLATES.values():
        corpus += [t.template, t.default_instruction] * 5
    corpus += ["yes no 1 0 yes no"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    if drop:  # a vocabulary without some scoring tokens: rebuild the model without them
        vocab = {k: v for k, v in tok.get_vocab().items() if k not in drop}
        ranks = {k: i for i, k in enumerate(sorted(vocab, key=vocab.__getitem__))}
        tok = Tokenizer(models.BPE(vocab=ranks, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    out.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=512
    )
    fast.save_pretrained(str(out))


def build_tiny_qwen3(out: Path, *, seed: int = 0, drop: tuple[str, ...] = (), **config: object) -> Path:
    """Save a seeded random Qwen3ForCausalLM with the tiny tokenizer into ``out``."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    build_tokenizer(out, drop=drop)
    vocab = len(AutoTokenizer.from_pretrained(str(out)))
    torch.manual_seed(seed)
    cfg = Qwen3Config(
        **{
            "vocab_size": vocab,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 512,
            "tie_word_embeddings": True,
            **config,
        }
    )
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():  # wider than the default init so scores spread
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    model.save_pretrained(str(out))
    return out


def widen_batch(b: Any, extra: int, pad_id: int = 5) -> Any:
    """``b`` with ``extra`` more padded columns (any pad id, masked): scores must not change."""
    from crossrank.text.packing import Batch

    pad = np.full((len(b), extra), pad_id, np.int64)
    return Batch(
        input_ids=np.concatenate([b.input_ids, pad], 1),
        attention_mask=np.concatenate([b.attention_mask, pad * 0], 1),
        token_type_ids=np.concatenate([b.token_type_ids, pad * 0], 1),
        pair_index=b.pair_index,
        window_start=b.window_start,
        window_end=b.window_end,
        n_tokens=b.n_tokens,
    )


@functools.lru_cache(maxsize=2)
def _causal_lm(checkpoint: str) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(checkpoint).float().eval()


def reference_scores(checkpoint: Path, prompts: list[list[int]], ids: tuple[int, int]) -> np.ndarray:
    """transformers' next-token logits of ``ids`` after each prompt (token ids), float64 [n, 2]."""
    import torch

    model = _causal_lm(str(checkpoint))
    rows = []
    with torch.inference_mode():
        for p in prompts:
            logits = model(input_ids=torch.tensor([p])).logits[0, -1]
            rows.append(logits[list(ids)].double().numpy())
    return np.stack(rows)


@pytest.fixture(scope="session")
def tiny_qwen3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen3(tmp_path_factory.mktemp("tiny_qwen3_ckpt"))


@pytest.fixture(scope="session")
def tiny_qwen3_onnx(tiny_qwen3_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossrank.models.export import export_model

    out = tmp_path_factory.mktemp("tiny_qwen3_onnx")
    export_model(tiny_qwen3_checkpoint, out, task="causal-lm-reranker")
    return out


__all__ = ["build_tiny_qwen3", "reference_scores", "tiny_qwen3_checkpoint", "tiny_qwen3_onnx"]
