"""`crossrank train BASE_MODEL DATASET_DIR -o OUT`: fine-tune a cross-encoder (needs crossrank[train])."""

from __future__ import annotations

import argparse

# CLI flag -> TrainConfig field, for the settings passed only when given (so a recipe's values stand).
_SETTINGS = (
    "epochs",
    "lr",
    "max_length",
    "negatives",
    "depth",
    "first_stage",
    "dense_model",
    "loss",
    "teacher",
    "distill",
    "label_weight",
    "teacher_scale",
    "seed",
    "checkpoint_every",
    "eval_every",
    "patience",
    "bf16",
    "dropout",
    "threads",
    "groups_per_step",
    "max_batch_tokens",
    "warmup",
    "dev_queries",
    "dev_depth",
    "qrels",
    "queries",
    "max_queries",
    "max_steps",
    "test",
    "test_depth",
)


def _dev_size(text: str) -> float | int:
    value = float(text)
    return int(value) if value >= 1 and value.is_integer() else value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a cross-encoder on a dataset's train split (hard negatives, dev selection)",
        description=(
            "Fine-tune a cross-encoder from a Hugging Face encoder checkpoint on a BEIR dataset's train "
            "split (qrels/train.tsv) or on --qrels/--queries, with hard negatives mined by crossrank's "
            "first stage and model selection on a dev split carved from the train queries. OUT loads "
            'with crossrank.CrossEncoder and crossrank serve. Needs pip install "crossrank[train]".'
        ),
    )
    p.add_argument("base_model", metavar="BASE_MODEL", help="encoder checkpoint folder (or a cross-encoder)")
    p.add_argument("dataset", metavar="DATASET_DIR", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output model folder")
    p.add_argument("--recipe", choices=["scifact", "quick"], help="named settings (flags override them)")
    a = p.add_argument
    a("--epochs", type=int, help="passes over the training groups (default 2)")
    a("--lr", type=float, help="peak learning rate (default 3e-5)")
    a("--max-length", type=int, help="tokens per pair (default 256)")
    a("--negatives", type=int, metavar="N", help="hard negatives per positive (default 7)")
    a("--depth", type=int, metavar="D", help="first-stage candidates negatives come from (default 100)")
    a("--first-stage", choices=["bm25", "dense", "hybrid"], help="negative miner (default bm25)")
    a("--dense-model", metavar="MODEL", help="bi-encoder for --first-stage dense / hybrid")
    a("--loss", choices=["listwise", "bce"], help="loss without a teacher (default listwise)")
    a("--teacher", metavar="RUN.trec", help="a teacher's scored TREC run to distil")
    a("--distill", choices=["kl", "margin-mse"], help="distillation loss (with --teacher)")
    a(
        "--label-weight",
        type=float,
        metavar="W",
        help="with --teacher: mix the label loss (--loss) in, (1 - W) * distill + W * label (default 0)",
    )
    a(
        "--teacher-scale",
        choices=["auto", "raw", "probability"],
        help="teacher scores: probabilities (mapped to logits, e.g. a cross-encoder's crossrank eval run), "
        "raw, or auto (default: probabilities when all lie in [0, 1])",
    )
    a("--seed", type=int, help="seed of head, negatives, order, dropout (default 0)")
    a("--resume", action="store_true", help="continue from the last checkpoint of OUT")
    a("--overwrite", action="store_true", help="replace an existing OUT")
    a(
        "--reuse",
        action="store_true",
        help="if OUT already holds a model trained with the same settings, use it (no training)",
    )
    a("--keep-checkpoints", action="store_true", help="keep OUT.checkpoints after success")
    a("--checkpoint-every", type=int, metavar="STEPS", help="steps between checkpoints (default 100)")
    a("--eval-every", type=int, metavar="STEPS", help="steps between dev evaluations (default 100)")
    a("--patience", type=int, metavar="EVALS", help="stop after this many dev evaluations without gain")
    a("--bf16", action=argparse.BooleanOptionalAction, help="bf16 autocast (default: when the CPU has bf16)")
    a("--dropout", action=argparse.BooleanOptionalAction, help="keep dropout while training (default off)")
    a("--threads", type=int, help="torch threads (default: the CPU quota)")
    a("--groups-per-step", type=int, help="positives (with their negatives) per step (default 4)")
    a("--max-batch-tokens", type=int, help="micro-batch token budget (default 8192)")
    a("--warmup", type=float, help="warm-up fraction of the steps (default 0.1)")
    a("--dev-queries", type=_dev_size, help="dev split: fraction or count of train queries (default 0.1)")
    a("--dev-depth", type=int, help="first-stage candidates reranked per dev query (default 30)")
    a("--qrels", metavar="FILE", help="training judgements (TREC or BEIR) instead of qrels/train.tsv")
    a("--queries", metavar="FILE", help="queries (.jsonl or qid<TAB>text) instead of queries.jsonl")
    a("--max-queries", type=int, help="train on the first N usable queries only")
    a("--max-steps", type=int, help="stop after N steps")
    a("--test", action="store_true", help="also report test NDCG@10 in the model card (never used to select)")
    a("--test-depth", type=int, help="first-stage candidates per test query (default 100)")
    a("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..train.api import train
    from ..train.checkpoints import CheckpointError
    from ._output import check_output_dir

    check_output_dir(args.output, "-o")  # a bad output path fails before training starts
    settings = {name: getattr(args, name) for name in _SETTINGS if getattr(args, name) is not None}
    if not args.test:
        settings.pop("test", None)
    try:
        result = train(
            args.base_model,
            args.dataset,
            args.output,
            recipe=args.recipe,
            resume=args.resume,
            overwrite=args.overwrite,
            reuse=args.reuse,
            keep_checkpoints=args.keep_checkpoints,
            show_progress=False if args.no_progress else None,
            **settings,
        )
    except (CheckpointError, FileExistsError) as exc:
        print(f"crossrank train: error: {exc}", file=sys.stderr)
        return 1
    r = result.report
    print(f"model: {result.output}")
    print(
        f"steps {r['steps']}/{r['total_steps']}, {r['pairs']} pairs in {r['train_seconds']:.0f} s "
        f"({r['pairs_per_second']:.1f} pairs/s), wall {r['wall_seconds']:.0f} s"
    )
    if r.get("best_dev") is not None:
        print(f"dev NDCG@10: first stage {r['dev_first_stage']:.4f} -> reranked {r['best_dev']:.4f}")
    if r.get("test"):
        t = r["test"]
        print(
            f"test NDCG@10 (reported only): first stage {t['first_stage']:.4f} -> reranked {t['reranked']:.4f}"
        )
    return 0
