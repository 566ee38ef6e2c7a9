#!/usr/bin/env bash
# The README's main job: SciFact through every stage crossrank has -- BM25, dense, hybrid RRF, and the
# hybrid list reranked by a cross-encoder that `crossrank train` made here, plain and fused with the hybrid.
# Run it inside the activated .venv after the README's install (the README's set-up command ends with it).
#
# Training is the slow part, so its result is cached: `--reuse` returns the finished model in
# .cache/ce-scifact when it was trained with the same settings, and trains otherwise.
#
# Where it trains: on a CPU with bf16 units (AVX-512 BF16 / AMX) the scifact recipe takes about 15 minutes
# on 2 cores (bench/RESULTS.md), inside the set-up budget of 30 minutes. Without them it runs in fp32 at
# about a quarter of that speed (56-67 minutes measured on a 2-core AVX2 machine), so there the job reranks
# with the dense stage's own bi-encoder instead, and says so. CROSSRANK_MAIN_JOB_TRAIN=1 trains anyway,
# =0 never trains.
set -euo pipefail
cd "$(dirname "$0")/.."

datasets=${CROSSRANK_DATASETS:-../shared/datasets}
encoder=${CROSSRANK_MODELS:-../shared/models}/all-MiniLM-L6-v2
model=.cache/ce-scifact

train=${CROSSRANK_MAIN_JOB_TRAIN:-auto}
if [ "$train" = auto ]; then
  if python -c 'import sys; from crossrank.models.onnx_session import cpu_has_bf16; sys.exit(not cpu_has_bf16())'; then
    train=1
  else
    train=0
  fi
fi

if [ "$train" = 1 ]; then
  crossrank train "$encoder" "$datasets/scifact" -o "$model" --recipe scifact --reuse
  reranker=$model
else
  echo "main job: this CPU has no bf16 units, so training the cross-encoder would take about an hour;" \
    "reranking with the dense bi-encoder instead (CROSSRANK_MAIN_JOB_TRAIN=1 trains anyway)" >&2
  reranker=dense:$encoder
fi

crossrank eval "$datasets/scifact" --dense "$encoder" --reranker "$reranker" --out .cache/eval-scifact
