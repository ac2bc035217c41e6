#!/usr/bin/env bash
# Persona-tailored SFT: train a LoRA adapter -> merge it -> generate on the test split.
# Defaults finish on a 2-core CPU in a few minutes (embedded SmolLM2-135M-Instruct, sample data, 2 epochs).
#
# Scale up (the paper's setup), e.g. Llama-3.1-8B on BeaverTails with 8 GPUs:
#   BASE_MODEL=meta-llama/Llama-3.1-8B NICKNAME=llama-3.1-8b DATASET_NAME=BeaverTails \
#   HF_DATASET=nbalepur/persona-tailoring EPOCHS=10 LEARNING_RATE=2e-5 MAX_TRAIN_SAMPLES= MAX_EVAL_SAMPLES= \
#   LIMIT= MAX_NEW_TOKENS=512 BATCH_SIZE=4 GRAD_ACCUM=2 \
#   LAUNCH="accelerate launch --config_file scripts/accelerate/multi_gpu.yaml -m" bash scripts/sft.sh
# (HF_DATASET may also be a local save_to_disk folder such as /work/shared/data/persona-tailoring-BeaverTails.)
# For many test rows, serve the merged model (`vllm serve <merged folder>`) and set
#   INFER_EXTRA="--backend open_ai --base_url http://localhost:8000/v1".
set -euo pipefail
cd "$(dirname "$0")/.."
# One BLAS thread: on a small shared CPU, more threads thrash (a 15x slower backward pass measured at load 10 on
# 2 cores). On a big idle CPU, set OMP_NUM_THREADS to its core count; GPUs are unaffected.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

BASE_MODEL=${BASE_MODEL:-SmolLM2-135M-Instruct}
NICKNAME=${NICKNAME:-smollm2-135m}
DATASET_NAME=${DATASET_NAME:-Sample}
HF_DATASET=${HF_DATASET:-data/sample-tailoring}
TRAINING_TYPE=${TRAINING_TYPE:-chosen}          # chosen | rejected | all | none
INFERENCE_TYPES=${INFERENCE_TYPES:-gold-chosen retr-chosen}
EPOCHS=${EPOCHS:-2}                              # paper: 10
LEARNING_RATE=${LEARNING_RATE:-1e-3}             # paper: 2e-5 over 10 epochs; higher for a 2-epoch CPU demo
BATCH_SIZE=${BATCH_SIZE:-4}
GRAD_ACCUM=${GRAD_ACCUM:-1}
MAX_TRAIN_SAMPLES=${MAX_TRAIN_SAMPLES-24}        # empty: all rows
MAX_EVAL_SAMPLES=${MAX_EVAL_SAMPLES-8}
LIMIT=${LIMIT-6}                                 # test rows to generate for; empty: all
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-64}
LAUNCH=${LAUNCH:-python -m}                      # or: accelerate launch [--config_file ...] -m
INFER_EXTRA=${INFER_EXTRA:-}
OVERWRITE=${OVERWRITE:-}                         # 1: redo every stage (outputs of a finished stage are reused otherwise)

COMMON=(--method sft --training_type "$TRAINING_TYPE" --base_model_name "$BASE_MODEL" --model_nickname "$NICKNAME"
        --dataset_name "$DATASET_NAME" --hf_dataset_name "$HF_DATASET")
optional() { [ -n "$2" ] && echo "$1 $2" || true; }
[ "$OVERWRITE" = 1 ] && REDO=--overwrite || REDO=

$LAUNCH persona_tailoring.model.run_model "${COMMON[@]}" --stage train $REDO --num_train_epochs "$EPOCHS" \
    --learning_rate "$LEARNING_RATE" --per_device_train_batch_size "$BATCH_SIZE" \
    --gradient_accumulation_steps "$GRAD_ACCUM" $(optional --max_train_samples "$MAX_TRAIN_SAMPLES") \
    $(optional --max_eval_samples "$MAX_EVAL_SAMPLES")
python -m persona_tailoring.model.run_model "${COMMON[@]}" --stage merge $REDO
# shellcheck disable=SC2086
python -m persona_tailoring.model.run_model "${COMMON[@]}" --stage infer $REDO --inference_type $INFERENCE_TYPES \
    --max_new_tokens "$MAX_NEW_TOKENS" $(optional --limit "$LIMIT") $INFER_EXTRA
