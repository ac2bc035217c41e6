#!/usr/bin/env bash
# Judge test configurations against a base configuration, then score win rates and ΔPQ (and the ΔPQ table of a
# grid). Defaults: the latest sample PT run (dpo.sh's outputs, else sft.sh's, else few_shot.sh's; the embedded model on
# data/sample-tailoring), gold personas against none, judged by the embedded model, which is offline and fast but a
# weak judge (probability verdicts: never invalid, strongly position-biased).
# Every variable can be overridden from the environment; METHOD_TEST, TRAINING_TEST and INFERENCE_TEST take
# several space-separated values (the grid is every combination), e.g.
#   bash scripts/judge.sh
#   DATASET=BeaverTails GENERATIONS=../shared/data/paper-outputs PT_NICKNAME= METHOD_BASE=dpo METHOD_TEST=dpo \
#   TRAINING_BASE=none INFERENCE_BASE=none TRAINING_TEST="none chosen" INFERENCE_TEST="gold-chosen retr-chosen" \
#   LIMIT=5 bash scripts/judge.sh
#   JUDGE_TYPE=open_ai JUDGE_MODEL=prometheus-eval/prometheus-7b-v2.0 JUDGE_BASE_URL=http://localhost:8000/v1 \
#   JUDGE_EXTRA="--merge_system_prompt" bash scripts/judge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

GENERATIONS=${GENERATIONS-results/persona-tailoring}  # PT outputs root (--results_save_dir)
DATASET=${DATASET-Sample}                           # dataset folder and judge task wording
PT_NICKNAME=${PT_NICKNAME-smollm2-135m}             # model folder; empty for the paper's released outputs
TRAINING_BASE=${TRAINING_BASE-chosen}; INFERENCE_BASE=${INFERENCE_BASE-none}
TRAINING_TEST=${TRAINING_TEST-chosen}; INFERENCE_TEST=${INFERENCE_TEST-gold-chosen}
# The method judged on both sides, unless set: the first of dpo, sft, fewshot whose base outputs exist.
latest=sft
for method in dpo sft fewshot; do
    if [ -f "$GENERATIONS/$DATASET/$PT_NICKNAME/${method}_Persona(training_type=$TRAINING_BASE, inference_type=$INFERENCE_BASE).jsonl" ]; then
        latest=$method; break
    fi
done
METHOD_BASE=${METHOD_BASE-$latest}; METHOD_TEST=${METHOD_TEST-$latest}
JUDGE_TYPE=${JUDGE_TYPE-hf_chat}                    # hf_chat, open_ai, anthropic, cohere
JUDGE_MODEL=${JUDGE_MODEL-SmolLM2-135M-Instruct}    # the embedded model; or prometheus-eval/prometheus-7b-v2.0, ...
JUDGE_BASE_URL=${JUDGE_BASE_URL-}                   # OpenAI-compatible server (vllm serve ...)
CONCURRENCY=${CONCURRENCY-8}
VERDICT=${VERDICT-}                                 # probability | text (default: probability for local judges)
JUDGE_MAX_TOKENS=${JUDGE_MAX_TOKENS-1024}           # text verdicts: feedback + verdict (prometheus-eval: 1024)
LIMIT=${LIMIT-}                                     # judge only the first N pairs
JUDGE_DIR=${JUDGE_DIR-results/persona-tailoring/judge}  # comparisons go to $JUDGE_DIR/comparisons/
JUDGE_EXTRA=${JUDGE_EXTRA-}                         # more run_judge flags
PROTOCOL=${PROTOCOL-}                               # paper: --protocol paper (text verdicts, responses as the authors' judge saw them)

read -r -a methods_test <<< "$METHOD_TEST"
read -r -a trainings_test <<< "$TRAINING_TEST"
read -r -a inferences_test <<< "$INFERENCE_TEST"
comparison=(
    --results_save_dir "$GENERATIONS" --dataset_name "$DATASET" --output_dir "$JUDGE_DIR"
    --model_type_base "$METHOD_BASE" --training_type_base "$TRAINING_BASE" --inference_type_base "$INFERENCE_BASE"
    --model_type_test "${methods_test[@]}" --training_type_test "${trainings_test[@]}"
    --inference_type_test "${inferences_test[@]}"
)
[ -n "$PT_NICKNAME" ] && comparison+=(--model_nickname "$PT_NICKNAME")
judge=(--judge_model_type "$JUDGE_TYPE" --judge_model_name "$JUDGE_MODEL" --concurrency "$CONCURRENCY"
       --max_tokens "$JUDGE_MAX_TOKENS")
[ -n "$JUDGE_BASE_URL" ] && judge+=(--base_url "$JUDGE_BASE_URL")
[ -n "$LIMIT" ] && judge+=(--limit "$LIMIT")
[ -n "$VERDICT" ] && judge+=(--verdict "$VERDICT")
[ -n "$PROTOCOL" ] && judge+=(--protocol "$PROTOCOL")

# shellcheck disable=SC2086  # JUDGE_EXTRA holds several flags
"$PYTHON" -m persona_tailoring.evaluation.run_judge "${comparison[@]}" "${judge[@]}" $JUDGE_EXTRA
"$PYTHON" -m persona_tailoring.evaluation.win_rate "${comparison[@]}" --plot
