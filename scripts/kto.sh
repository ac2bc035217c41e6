#!/usr/bin/env bash
# Persona-tailored KTO (unpaired desirable/undesirable responses, docs/METHODS.md) from the merged SFT model of the
# same training type, its reference (runs scripts/sft.sh first if needed):
# train a LoRA adapter -> merge it -> generate on the test split.
# Defaults finish on a 2-core CPU in a few minutes (embedded SmolLM2-135M-Instruct, sample data, 2 epochs).
# The shared variables (model, data, sizes, LAUNCH, INFER_EXTRA, OVERWRITE) are in scripts/lib/tailoring.sh.
# TRAINING_TYPE=all trains on both persona sides: each rejected persona with its rejected response as desirable.
#   bash scripts/kto.sh
#
# Scale up as scripts/dpo.sh says, with KTO_LEARNING_RATE=5e-6 (the paper's DPO one; the paper trains no KTO).
set -euo pipefail
cd "$(dirname "$0")/.."

KTO_LEARNING_RATE=${KTO_LEARNING_RATE:-1e-4}     # default 5e-6 over 10 epochs; higher for a 2-epoch CPU demo
MAX_TRAIN_SAMPLES=${MAX_TRAIN_SAMPLES-16}        # preference rows, two KTO examples each per persona side
KTO_BETA=${KTO_BETA:-0.1}                        # TRL's KTOConfig default
source scripts/lib/tailoring.sh

ensure_sft_model
train_merge_generate kto "$KTO_LEARNING_RATE" "$MAX_TRAIN_SAMPLES" --beta "$KTO_BETA"
