#!/usr/bin/env bash
# Persona-tailored SimPO (TRL's CPOTrainer, loss_type simpo, cpo_alpha 0: reference-free, length-normalised rewards)
# from the merged SFT model of the same training type (runs scripts/sft.sh first if needed):
# train a LoRA adapter -> merge it -> generate on the test split.
# Defaults finish on a 2-core CPU in a few minutes (embedded SmolLM2-135M-Instruct, sample data, 2 epochs).
# The shared variables (model, data, sizes, LAUNCH, INFER_EXTRA, OVERWRITE) are in scripts/lib/tailoring.sh; the
# method and its defaults in docs/METHODS.md.
#   bash scripts/simpo.sh
#
# Scale up as scripts/dpo.sh says, with SIMPO_LEARNING_RATE=5e-6 (the paper's DPO one; the paper trains no SimPO).
set -euo pipefail
cd "$(dirname "$0")/.."

SIMPO_LEARNING_RATE=${SIMPO_LEARNING_RATE:-1e-4}  # default 5e-6 over 10 epochs; higher for a 2-epoch CPU demo
MAX_TRAIN_SAMPLES=${MAX_TRAIN_SAMPLES-16}         # empty: all rows
SIMPO_BETA=${SIMPO_BETA:-2.0}                     # the SimPO paper's Llama-3-8B-Base beta and gamma
SIMPO_GAMMA=${SIMPO_GAMMA:-1.0}
source scripts/lib/tailoring.sh

ensure_sft_model
train_merge_generate simpo "$SIMPO_LEARNING_RATE" "$MAX_TRAIN_SAMPLES" --beta "$SIMPO_BETA" --simpo_gamma "$SIMPO_GAMMA"
