#!/usr/bin/env bash
# Judge a test configuration against a base configuration, then score win rates and ΔPQ.
# Defaults: the sample PT run (SFT on the embedded model, data/sample-tailoring) judged by the embedded model,
# which is offline and fast but a weak judge (many unparsable verdicts, reported as invalid).
# Every variable can be overridden from the environment, e.g.
#   DATASET=BeaverTails RESULTS=/work/shared/data/paper-outputs NICKNAME= METHOD_BASE=dpo METHOD_TEST=dpo \
#   TRAINING_BASE=none INFERENCE_BASE=none LIMIT=5 bash scripts/judge.sh
#   JUDGE_TYPE=open_ai JUDGE_NAME=prometheus-eval/prometheus-7b-v2.0 BASE_URL=http://localhost:8000/v1 \
#   EXTRA="--merge_system_prompt" bash scripts/judge.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS-results/persona-tailoring}        # PT outputs root (--results_save_dir)
DATASET=${DATASET-Sample}                           # dataset folder and judge task wording
NICKNAME=${NICKNAME-smollm2-135m}                   # model folder; empty for the paper's released outputs
METHOD_BASE=${METHOD_BASE-sft}; TRAINING_BASE=${TRAINING_BASE-none};   INFERENCE_BASE=${INFERENCE_BASE-none}
METHOD_TEST=${METHOD_TEST-sft}; TRAINING_TEST=${TRAINING_TEST-chosen}; INFERENCE_TEST=${INFERENCE_TEST-gold-chosen}
JUDGE_TYPE=${JUDGE_TYPE-hf_chat}                    # hf_chat, open_ai, anthropic, cohere
JUDGE_NAME=${JUDGE_NAME-SmolLM2-135M-Instruct}      # the embedded model; or prometheus-eval/prometheus-7b-v2.0, ...
BASE_URL=${BASE_URL-}                               # OpenAI-compatible server (vllm serve ...)
CONCURRENCY=${CONCURRENCY-8}
MAX_TOKENS=${MAX_TOKENS-512}                        # judge feedback + verdict
LIMIT=${LIMIT-}                                     # judge only the first N pairs
OUTPUT_DIR=${OUTPUT_DIR-results/persona-tailoring/judge}
EXTRA=${EXTRA-}                                     # more run_judge flags

comparison=(
    --results_save_dir "$RESULTS" --dataset_name "$DATASET" --output_dir "$OUTPUT_DIR"
    --model_type_base "$METHOD_BASE" --training_type_base "$TRAINING_BASE" --inference_type_base "$INFERENCE_BASE"
    --model_type_test "$METHOD_TEST" --training_type_test "$TRAINING_TEST" --inference_type_test "$INFERENCE_TEST"
)
[ -n "$NICKNAME" ] && comparison+=(--model_nickname "$NICKNAME")
judge=(--judge_model_type "$JUDGE_TYPE" --judge_model_name "$JUDGE_NAME" --concurrency "$CONCURRENCY" --max_tokens "$MAX_TOKENS")
[ -n "$BASE_URL" ] && judge+=(--base_url "$BASE_URL")
[ -n "$LIMIT" ] && judge+=(--limit "$LIMIT")

# shellcheck disable=SC2086  # EXTRA holds several flags
"$PYTHON" -m persona_tailoring.evaluation.run_judge "${comparison[@]}" "${judge[@]}" $EXTRA
"$PYTHON" -m persona_tailoring.evaluation.win_rate "${comparison[@]}" --plot
