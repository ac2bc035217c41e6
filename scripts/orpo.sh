#!/usr/bin/env bash
# Persona-tailored ORPO: one stage from the base model (SFT's loss plus an odds-ratio preference term, no reference
# model) on the SFT and DPO splits together: train a LoRA adapter -> merge it -> generate on the test split.
# Defaults finish on a 2-core CPU in a few minutes (embedded SmolLM2-135M-Instruct, sample data, 2 epochs).
# The shared variables (model, data, sizes, LAUNCH, INFER_EXTRA, OVERWRITE) are in scripts/lib/tailoring.sh; the
# method and its defaults in docs/METHODS.md.
#   bash scripts/orpo.sh
#
# Scale up, e.g. Llama-3.1-8B on BeaverTails with 8 GPUs (the paper trains no ORPO: lr 2e-5 is its SFT one):
#   BASE_MODEL=meta-llama/Llama-3.1-8B PT_NICKNAME=llama-3.1-8b DATASET=BeaverTails \
#   TAILORING_DATA=nbalepur/persona-tailoring EPOCHS=10 ORPO_LEARNING_RATE=2e-5 MAX_TRAIN_SAMPLES= MAX_EVAL_SAMPLES= \
#   LIMIT= MAX_NEW_TOKENS=512 BATCH_SIZE=4 GRAD_ACCUM=2 \
#   LAUNCH="accelerate launch --config_file scripts/accelerate/multi_gpu.yaml -m" bash scripts/orpo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ORPO_LEARNING_RATE=${ORPO_LEARNING_RATE:-1e-3}   # default 2e-5 over 10 epochs; higher for a 2-epoch CPU demo
MAX_TRAIN_SAMPLES=${MAX_TRAIN_SAMPLES-12}        # per split (sft_train and dpo_train); empty: all rows
ORPO_BETA=${ORPO_BETA:-0.1}                      # the ORPO paper's lambda (TRL's default)
source scripts/lib/tailoring.sh

train_merge_generate orpo "$ORPO_LEARNING_RATE" "$MAX_TRAIN_SAMPLES" --beta "$ORPO_BETA"
