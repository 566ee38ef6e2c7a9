"""Where a ``crossrank train`` step spends its time, and what other attention kernels would cost (issue 11).

One step of the scifact recipe's shape (4 groups of 1 positive + 7 BM25 negatives = 32 pairs, 256 tokens,
bf16 autocast where the CPU has bf16 units, dropout off, listwise loss, AdamW) on all-MiniLM-L6-v2 with a
seeded one-logit head. It prints

- the step time with each attention implementation: ``sdpa`` (PyTorch's fused CPU kernel, what both
  crossrank and sentence-transformers load), ``eager`` (matmul + softmax) and ``sdpa-fp32`` (the fused
  kernel fed fp32 inputs inside the bf16 step);
- the op-by-op profile of the ``sdpa`` step (torch.profiler, self CPU time), to show which share of the
  step a training loop could still change.

    PYTHONPATH=python python bench/train_step_profile.py --steps 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=str(SHARED / "datasets" / "scifact"))
    p.add_argument("--base", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from crossrank.text.packing import PairTemplate
    from crossrank.text.tokenization import TextEncoder, load_tokenizer
    from crossrank.train.batching import TokenTable, epoch_groups, pack_step
    from crossrank.train.data import load_train_data
    from crossrank.train.forward import forward_pairs
    from crossrank.train.loop import cpu_has_bf16, group_scores
    from crossrank.train.losses import listwise_loss
    from crossrank.train.negatives import FirstStage, mine_candidates

    def sdpa_fp32(module, query, key, value, attention_mask, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return sdpa_attention_forward(
                module, query.float(), key.float(), value.float(), attention_mask, **kwargs
            )

    AttentionInterface.register("sdpa-fp32", sdpa_fp32)

    torch.set_num_threads(args.threads)
    bf16 = cpu_has_bf16()
    data = load_train_data(args.dataset, dev_queries=0)
    cands = mine_candidates(FirstStage("bm25", data.doc_ids, data.docs), data.queries, data.train_qids, 30)
    positives = {q: data.positives(q) for q in data.train_qids}
    warm_up, profiled = 3, 3
    n_steps = warm_up + args.steps + profiled
    groups = epoch_groups(data.train_qids, positives, cands, 7, seed=0, epoch=0)[: 4 * n_steps]
    text_of = dict(zip(data.doc_ids, data.docs, strict=True))
    tok = load_tokenizer(Path(args.base) / "tokenizer.json")
    tokens = TokenTable(TextEncoder(tok, cache_tokens=0), 256)
    qids = list(dict.fromkeys(g.qid for g in groups))
    tokens.add("q", qids, [data.queries[q] for q in qids])
    docs = sorted({d for g in groups for d in g.doc_ids})
    tokens.add("d", docs, [text_of[d] for d in docs])
    template = PairTemplate.from_tokenizer(tok)
    steps = [
        pack_step(groups[4 * i : 4 * i + 4], tokens, template, max_length=256, max_batch_tokens=8192)
        for i in range(n_steps)
    ]
    real = sum(s.real_tokens for s in steps) / len(steps)
    print(f"bf16={bf16}, {args.threads} threads, {real:.0f} real tokens per step of 32 x 256")

    for impl in ("sdpa", "eager", "sdpa-fp32"):
        torch.manual_seed(0)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            args.base,
            num_labels=1,
            attn_implementation=impl,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        opt = torch.optim.AdamW(model.parameters(), lr=3e-5)

        def train_step(step, model=model, opt=opt):
            # The loop's own forward, layout and loss (``_train_step`` without the scheduler and logging).
            logits = forward_pairs(model, step.batches, step.n_pairs, bf16=bf16)
            scores = group_scores(torch, logits, step)
            loss = listwise_loss(scores, torch.from_numpy(step.labels), torch.from_numpy(step.mask))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for s in steps[:warm_up]:
            train_step(s)
        t0 = time.perf_counter()
        for s in steps[warm_up : warm_up + args.steps]:
            train_step(s)
        print(f"attention {impl}: {(time.perf_counter() - t0) / args.steps:.3f} s per step", flush=True)
        if impl == "sdpa":
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for s in steps[warm_up + args.steps :]:
                    train_step(s)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
