#!/usr/bin/env bash
# Few-shot persona tailoring: the base model continues the `fewshot` split's examples, formatted exactly like
# the SFT training data, followed by each test prompt (no training, no merging).
# Defaults finish on a 2-core CPU in a minute or two (embedded SmolLM2-135M-Instruct, sample data).
#
# Scale up, e.g. Llama-3.1-8B on all of BeaverTails' test split:
#   BASE_MODEL=meta-llama/Llama-3.1-8B NICKNAME=llama-3.1-8b DATASET_NAME=BeaverTails \
#   HF_DATASET=nbalepur/persona-tailoring LIMIT= MAX_NEW_TOKENS=512 bash scripts/few_shot.sh
# or through a server: `vllm serve meta-llama/Llama-3.1-8B` and
#   INFER_EXTRA="--backend open_ai --base_url http://localhost:8000/v1 --server_model_name meta-llama/Llama-3.1-8B".
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # see scripts/sft.sh

BASE_MODEL=${BASE_MODEL:-SmolLM2-135M-Instruct}
NICKNAME=${NICKNAME:-smollm2-135m}
DATASET_NAME=${DATASET_NAME:-Sample}
HF_DATASET=${HF_DATASET:-data/sample-tailoring}
TRAINING_TYPE=${TRAINING_TYPE:-chosen}          # persona format of the demonstrations: chosen | rejected | all | none
INFERENCE_TYPES=${INFERENCE_TYPES:-gold-chosen retr-chosen}
LIMIT=${LIMIT-6}                                 # test rows to generate for; empty: all
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-64}
INFER_EXTRA=${INFER_EXTRA:-}
OVERWRITE=${OVERWRITE:-}                         # 1: redo every stage (outputs of a finished stage are reused otherwise)

optional() { [ -n "$2" ] && echo "$1 $2" || true; }
[ "$OVERWRITE" = 1 ] && REDO=--overwrite || REDO=

# shellcheck disable=SC2086
python -m persona_tailoring.model.run_model --method fewshot --stage all $REDO --training_type "$TRAINING_TYPE" \
    --base_model_name "$BASE_MODEL" --model_nickname "$NICKNAME" --dataset_name "$DATASET_NAME" \
    --hf_dataset_name "$HF_DATASET" --inference_type $INFERENCE_TYPES --max_new_tokens "$MAX_NEW_TOKENS" \
    $(optional --limit "$LIMIT") $INFER_EXTRA
