#!/usr/bin/env bash
# Persona-tailored DPO from the merged SFT model of the same training type (runs scripts/sft.sh first if needed):
# train a LoRA adapter -> merge it -> generate on the test split.
# Defaults finish on a 2-core CPU in a few minutes (embedded SmolLM2-135M-Instruct, sample data, 2 epochs).
# The shared variables (model, data, sizes, LAUNCH, INFER_EXTRA, OVERWRITE) are in scripts/lib/tailoring.sh.
#   bash scripts/dpo.sh
#
# Scale up (the paper's setup), e.g. Llama-3.1-8B on BeaverTails with 8 GPUs:
#   BASE_MODEL=meta-llama/Llama-3.1-8B PT_NICKNAME=llama-3.1-8b DATASET=BeaverTails \
#   TAILORING_DATA=nbalepur/persona-tailoring EPOCHS=10 SFT_LEARNING_RATE=2e-5 DPO_LEARNING_RATE=5e-6 \
#   MAX_TRAIN_SAMPLES= MAX_EVAL_SAMPLES= LIMIT= MAX_NEW_TOKENS=512 BATCH_SIZE=4 GRAD_ACCUM=2 \
#   LAUNCH="accelerate launch --config_file scripts/accelerate/multi_gpu.yaml -m" bash scripts/dpo.sh
# (the SFT it needs runs with the same variables; TAILORING_DATA may also be a local save_to_disk folder such
# as ../shared/data/persona-tailoring-BeaverTails.)
# For many test rows, serve the merged model (`vllm serve <merged folder>`) and set
#   INFER_EXTRA="--backend open_ai --base_url http://localhost:8000/v1".
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib/tailoring.sh
DPO_LEARNING_RATE=${DPO_LEARNING_RATE-${demo:+1e-4}}  # paper: 5e-6 over 10 epochs; higher for a 2-epoch CPU demo
MAX_TRAIN_SAMPLES=${MAX_TRAIN_SAMPLES-${demo:+16}}    # empty: all rows
BETA=${BETA:-0.1}

ensure_sft_model

train_merge_generate dpo "$DPO_LEARNING_RATE" "$MAX_TRAIN_SAMPLES" --beta "$BETA"
