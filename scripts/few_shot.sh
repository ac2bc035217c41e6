#!/usr/bin/env bash
# Few-shot persona tailoring: the base model continues the `fewshot` split's examples, formatted exactly like
# the SFT training data, followed by each test prompt (no training, no merging).
# Defaults finish on a 2-core CPU in a minute or two (embedded SmolLM2-135M-Instruct, sample data).
# The variables (TRAINING_TYPE: persona format of the demonstrations) are in scripts/lib/tailoring.sh.
#   bash scripts/few_shot.sh
#
# Scale up, e.g. Llama-3.1-8B on all of BeaverTails' test split:
#   BASE_MODEL=meta-llama/Llama-3.1-8B PT_NICKNAME=llama-3.1-8b DATASET=BeaverTails \
#   TAILORING_DATA=nbalepur/persona-tailoring LIMIT= MAX_NEW_TOKENS=512 bash scripts/few_shot.sh
# or through a server: `vllm serve meta-llama/Llama-3.1-8B` and
#   INFER_EXTRA="--backend open_ai --base_url http://localhost:8000/v1 --server_model_name meta-llama/Llama-3.1-8B".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tailoring.sh

generate fewshot all
