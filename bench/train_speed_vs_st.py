"""Training pairs/s: ``crossrank train``'s loop vs sentence-transformers v6 ``CrossEncoderTrainer`` (issue 11).

Same model (all-MiniLM-L6-v2 with a fresh seeded one-logit head), same groups (SciFact train queries, the
positive + ``--negatives`` BM25 hard negatives drawn by crossrank.train), same groups per step, same
max_length, same precision (bf16 autocast only where the CPU has bf16 units; fp32 otherwise), dropout off
in both, same thread count, listwise loss in both (sentence-transformers: ListNetLoss). The two run in one
process, interleaved in ``--rounds`` rounds of ``--steps`` steps each, so a busy machine slows both
alike; the figure is pairs per second of step time (first step of each segment excluded as warm-up).

    PYTHONPATH=python python bench/train_speed_vs_st.py --steps 8 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def log(msg: str) -> None:
    print(f"[train_speed] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=str(SHARED / "datasets" / "scifact"))
    p.add_argument("--base", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--groups-per-step", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="steps per segment")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args(argv)

    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import ListNetLoss
    from transformers import TrainerCallback

    from crossrank.text.packing import PairTemplate
    from crossrank.text.tokenization import TextEncoder, load_tokenizer
    from crossrank.train.batching import TokenTable, epoch_groups
    from crossrank.train.config import TrainConfig
    from crossrank.train.data import load_train_data
    from crossrank.train.loop import TrainingSetup, cpu_has_bf16, run_loop
    from crossrank.train.model import load_base_model, set_dropout
    from crossrank.train.negatives import FirstStage, mine_candidates

    torch.set_num_threads(args.threads)
    bf16 = cpu_has_bf16()
    data = load_train_data(args.dataset, dev_queries=0)
    stage = FirstStage("bm25", data.doc_ids, data.docs)
    cands = mine_candidates(stage, data.queries, data.train_qids, 100)
    positives = {q: data.positives(q) for q in data.train_qids}
    groups = epoch_groups(data.train_qids, positives, cands, args.negatives, seed=0, epoch=0)
    text_of = dict(zip(data.doc_ids, data.docs, strict=True))
    n_groups = args.steps * args.groups_per_step
    gpp = len(groups[0].doc_ids)
    log(f"{n_groups} groups of {gpp} pairs per segment, max_length {args.max_length}, bf16={bf16}")

    # --- crossrank: the real loop (packing, forward, loss, backward, AdamW, schedule) on a query subset.
    tok = load_tokenizer(Path(args.base) / "tokenizer.json")
    tokens = TokenTable(TextEncoder(tok, cache_tokens=0), args.max_length)
    qids = list(dict.fromkeys(g.qid for g in groups))
    tokens.add("q", qids, [data.queries[q] for q in qids])
    docs = sorted({d for q in qids for d in cands[q]} | {d for q in qids for d in positives[q]})
    tokens.add("d", docs, [text_of[d] for d in docs])

    def crossrank_segment(seed: int) -> list[float]:
        cfg = TrainConfig(
            base_model=args.base,
            dataset=args.dataset,
            output="",
            max_length=args.max_length,
            negatives=args.negatives,
            groups_per_step=args.groups_per_step,
            epochs=1,
            lr=6e-5,
            max_steps=args.steps,
            eval_every=0,
            checkpoint_every=0,
            seed=seed,
        )
        model, _ = load_base_model(args.base, seed=seed, dropout=False)
        # Just enough queries for the segment (the loop draws its own groups from them).
        sub, n = [], 0
        for q in data.train_qids:
            sub.append(q)
            n += len(positives[q])
            if n >= n_groups:
                break
        with tempfile.TemporaryDirectory() as tmp:
            setup = TrainingSetup(
                config=cfg,
                model=model,
                template=PairTemplate.from_tokenizer(tok),
                tokens=tokens,
                train_qids=sub,
                positives=positives,
                candidates=cands,
                dev=None,
                teacher=None,
                checkpoint_dir=Path(tmp),
                bf16=bf16,
                threads=args.threads,
                show_progress=False,
            )
            res = run_loop(setup, resume=False, log=lambda m: None)
        pairs = [args.groups_per_step * gpp] * len(res.step_seconds)
        return [p / s for p, s in zip(pairs[1:], res.step_seconds[1:], strict=True)]

    # --- sentence-transformers v6: CrossEncoderTrainer + ListNetLoss on the same groups.
    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = 0.0
            self.times: list[float] = []

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.t0)

    def st_segment(seed: int) -> list[float]:
        torch.manual_seed(seed)
        ce = CrossEncoder(args.base, num_labels=1, max_length=args.max_length, device="cpu")
        set_dropout(ce.model, 0.0)
        sel = groups[:n_groups]
        ds = Dataset.from_dict(
            {
                "query": [data.queries[g.qid] for g in sel],
                "docs": [[text_of[d] for d in g.doc_ids] for g in sel],
                "labels": [list(g.labels) for g in sel],
            }
        )
        timer = Timer()
        with tempfile.TemporaryDirectory() as tmp:
            targs = CrossEncoderTrainingArguments(
                output_dir=tmp,
                per_device_train_batch_size=args.groups_per_step,
                max_steps=args.steps,
                learning_rate=6e-5,
                warmup_ratio=0.1,
                logging_steps=10_000,
                save_strategy="no",
                report_to="none",
                dataloader_num_workers=0,
                use_cpu=True,
                bf16=bf16,
                seed=seed,
                disable_tqdm=True,
            )
            trainer = CrossEncoderTrainer(
                model=ce,
                args=targs,
                train_dataset=ds,
                loss=ListNetLoss(ce, mini_batch_size=-1),
                callbacks=[timer],
            )
            trainer.train()
        return [args.groups_per_step * gpp / s for s in timer.times[1:]]

    rates: dict[str, list[float]] = {"crossrank": [], "sentence-transformers": []}
    for r in range(args.rounds):
        for name, fn in (("crossrank", crossrank_segment), ("sentence-transformers", st_segment)):
            t0 = time.perf_counter()
            got = fn(r)
            rates[name] += got
            log(
                f"round {r + 1} {name}: median {np.median(got):.2f} pairs/s ({time.perf_counter() - t0:.0f} s)"
            )
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ratio = med["crossrank"] / med["sentence-transformers"]
    print(
        f"training pairs/s (median of {len(rates['crossrank'])} steps each, max_length {args.max_length}, "
        f"{'bf16' if bf16 else 'fp32'}, {args.threads} threads): crossrank {med['crossrank']:.2f}, "
        f"sentence-transformers {med['sentence-transformers']:.2f}, ratio {ratio:.2f}x"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rates": rates, "median": med, "ratio": ratio}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
