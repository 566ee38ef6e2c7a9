"""Pointwise LLM reranking speed: crossrank's shared-prefix key/value cache against transformers.

One SciFact query x 100 BM25 candidates (title + abstract), ``max_length`` 512, Qwen3-Reranker's prompt.
The model is a seeded random-weight Qwen3 with Qwen3-0.6B's widths (hidden 1024, 16 query / 8 key-value
heads of 128, MLP 3072, vocabulary 151,669, tied embeddings) and ``--layers`` decoder layers (Qwen3-0.6B
has 28; fewer keep a run within minutes on a shared 2-core machine: every method does the same work per
layer, so the ratios depend on depth only through the output layer, see below). The tokenizer is a
byte-level BPE of 32k pieces trained here on SciFact (no Qwen tokenizer can be downloaded), with
Qwen's special tokens.

Methods, measured interleaved in one run (rounds x methods), fp32, the same threads for all:

* ``crossrank cache``: :class:`crossrank.LLMPointwiseReranker` on ``crossrank export --task
  causal-lm-reranker`` (ONNX Runtime CPU), prefix once per query, suffixes against its keys/values;
* ``crossrank full``: the same with ``prefix_cache=False`` (whole prompts, same batches);
* ``transformers``: ``AutoModelForCausalLM`` on the very same token ids, batches of ``--hf-batch``,
  left-padded as the Qwen3-Reranker model card does, length-sorted and with ``logits_to_keep=1`` (only
  the last position through the output layer: stronger than the card, whose ``logits[:, -1, :]`` computes
  the 151,669-way output at every position);
* ``transformers card`` (``--with-card``): the model card as written (input order, all positions' logits).

Each for a short instruction (Qwen3-Reranker's default) and a long one (a ~200-token task description).
bf16: this CPU has no avx512_bf16/AMX (``crossrank.build_info()["simd_available"]``), so bf16 autocast
would be emulated; it is not measured. Usage::

    PYTHONPATH=python python bench/pointwise_prefix_cache.py --datasets /work/shared/datasets \\
        [--layers 2] [--rounds 2] [--work /tmp/pointwise_bench] [--with-card]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

LONG_INSTRUCTION = (
    "Given a scientific claim as the query, retrieve the abstracts of research papers that provide evidence "
    "to support or refute the claim. A relevant abstract reports an experiment, a cohort study, a clinical "
    "trial, a meta-analysis or a mechanistic finding that bears directly on the entities, quantities and "
    "relations stated in the claim, such as the named gene, protein, drug, disease, population, dose, rate, "
    "or direction of an effect. Abstracts that merely share vocabulary with the claim, discuss the same field "
    "in general terms, or describe methods without results that test the claim are not relevant. Prefer "
    "primary research over reviews when both are present, and judge the abstract on its reported findings "
    "rather than on its title. Numbers in the claim must agree in magnitude with the reported numbers for "
    "the abstract to count as supporting; contradicting results also count as relevant evidence."
)


def build_model(work: Path, corpus: list[str], layers: int) -> Path:
    """A seeded random Qwen3 with 0.6B widths and a SciFact BPE tokenizer, saved as a checkpoint."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    from crossrank.rerank.pointwise.template import BUILTIN_TEMPLATES

    ckpt = work / f"qwen3-0.6b-widths-{layers}l"
    if (ckpt / "config.json").is_file():
        return ckpt
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    trainer = trainers.BpeTrainer(
        vocab_size=32000, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    extra = [BUILTIN_TEMPLATES["qwen3"].template, LONG_INSTRUCTION, "yes no"] * 10
    tok.train_from_iterator(corpus + extra, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(ckpt))
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=151669,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    )
    Qwen3ForCausalLM(config).eval().save_pretrained(str(ckpt))
    return ckpt


def scifact(root: Path, k: int) -> tuple[str, list[str], list[str]]:
    """The first SciFact test query with its BM25 top-k (title + text), and the corpus texts."""
    from crossrank import BM25Index
    from crossrank.eval.datasets import load_beir

    ds = load_beir(root)
    texts = ds.documents()
    index = BM25Index.build(texts, ids=ds.doc_ids, variant="lucene", k1=0.9, b=0.4)
    qid = sorted(ds.queries)[0]
    res = index.search([ds.queries[qid]], k=k)
    pos = {d: i for i, d in enumerate(ds.doc_ids)}
    return ds.queries[qid], [texts[pos[d]] for d in res.ids[0].tolist()], texts


def hf_scores(
    model: Any, prompts: list[list[int]], ids: tuple[int, int], batch: int, pad: int, card: bool
) -> np.ndarray:
    """transformers on the given prompts: left-padded batches; card=False sorts and keeps one position."""
    import torch

    order = list(range(len(prompts))) if card else sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out = np.zeros((len(prompts), 2), np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            rows = order[s : s + batch]
            width = max(len(prompts[i]) for i in rows)
            ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                p = prompts[i]
                ids_t[r, width - len(p) :] = torch.tensor(p)
                mask[r, width - len(p) :] = 1
            kw = {} if card else {"logits_to_keep": 1}
            logits = model(input_ids=ids_t, attention_mask=mask, **kw).logits[:, -1, :]
            out[rows] = logits[:, list(ids)].float().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=Path("/work/shared/datasets"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/pointwise_bench"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--hf-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--with-card", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    import crossrank
    from crossrank import LLMPointwiseReranker
    from crossrank.models.export import export_model
    from crossrank.rerank.pointwise.scoring import relevance

    torch.set_num_threads(args.threads)
    info = crossrank.build_info()
    print("simd_available:", info["simd_available"], "(bf16 autocast not measured: no bf16 units)")
    args.work.mkdir(parents=True, exist_ok=True)
    query, docs, corpus = scifact(args.datasets / "scifact", args.k)
    ckpt = build_model(args.work, corpus, args.layers)
    onnx_dir = args.work / f"{ckpt.name}-onnx"
    if not (onnx_dir / "prefix.onnx").is_file():
        t = time.perf_counter()
        rep = export_model(ckpt, onnx_dir, task="causal-lm-reranker")
        print(f"export {time.perf_counter() - t:.0f} s, max abs error vs transformers {rep.max_abs_err}")
    common = {
        "precision": "fp32",
        "backend": "onnxruntime",
        "max_length": args.max_length,
        "num_threads": args.threads,
    }
    cache = LLMPointwiseReranker(onnx_dir, **common)
    full = LLMPointwiseReranker(onnx_dir, prefix_cache=False, **common)
    hf = AutoModelForCausalLM.from_pretrained(str(ckpt), attn_implementation="sdpa").float().eval()
    pad = int(cache.prompts.tokenizer.token_to_id("<|endoftext|>"))

    def prompts_of(instruction: str | None) -> list[list[int]]:
        _, plan = cache._plan(query, docs, instruction)
        rows: dict[int, list[int]] = {}
        for i in range(plan.n_batches):
            b = plan.batch(i)
            for r in range(len(b)):
                rows[int(b.row_index[r])] = b.input_ids[r, : int(b.n_tokens[r])].tolist()
        return [rows[i] for i in range(plan.n_rows)]

    cases = {"short": None, "long": LONG_INSTRUCTION}
    methods: dict[str, Any] = {}
    shapes: dict[str, dict[str, float]] = {}
    for name, inst in cases.items():
        prompts = prompts_of(inst)
        pre = cache.prompts.prefix(query, inst)
        shapes[name] = {
            "prefix_tokens": len(pre.ids),
            "mean_prompt_tokens": float(np.mean([len(p) for p in prompts])),
            "truncated": int(cache._plan(query, docs, inst)[1].truncated.sum()),
        }
        methods[f"crossrank cache/{name}"] = lambda inst=inst: (
            cache.score(query, docs, instruction=inst).scores
        )
        methods[f"crossrank full/{name}"] = lambda inst=inst: full.score(query, docs, instruction=inst).scores
        methods[f"transformers/{name}"] = lambda p=prompts: relevance(
            hf_scores(hf, p, cache.score_ids, args.hf_batch, pad, card=False)
        )
        if args.with_card and name == "short":
            methods[f"transformers card/{name}"] = lambda p=prompts: relevance(
                hf_scores(hf, p, cache.score_ids, args.hf_batch, pad, card=True)
            )
    print("prompts:", json.dumps(shapes))
    times: dict[str, list[float]] = {m: [] for m in methods}
    results: dict[str, np.ndarray] = {}
    for rnd in range(args.rounds):
        for m, fn in methods.items():
            t = time.perf_counter()
            results[m] = fn()
            times[m].append(time.perf_counter() - t)
            print(f"round {rnd} {m}: {times[m][-1]:.2f} s", flush=True)
    med = {m: statistics.median(v) for m, v in times.items()}
    summary: dict[str, Any] = {"layers": args.layers, "prompts": shapes, "median_s": med, "ratios": {}}
    for name in cases:
        c, f, h = med[f"crossrank cache/{name}"], med[f"crossrank full/{name}"], med[f"transformers/{name}"]
        err = float(np.max(np.abs(results[f"crossrank cache/{name}"] - results[f"transformers/{name}"])))
        summary["ratios"][name] = {
            "cache_vs_transformers": h / c,
            "full_vs_transformers": h / f,
            "cache_on_vs_off": f / c,
            "max_abs_score_diff_vs_transformers": err,
        }
        if f"transformers card/{name}" in med:
            summary["ratios"][name]["cache_vs_transformers_card"] = med[f"transformers card/{name}"] / c
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
