#!/usr/bin/env bash
# The whole paper in one command, on the embedded SmolLM2-135M-Instruct and the sample data (offline, no keys):
#   persona inference -> persona accuracy and preferences -> augmented dataset -> tailoring dataset
#   -> SFT -> merge -> DPO -> merge -> generation with and without personas -> judge -> win rate -> plots,
# then a summary of every artifact and the headline numbers, and one HTML page of it all ($ROOT/report.html).
# About 6-7 minutes on 2 CPU cores.
#   bash scripts/pipeline.sh
#   ROOT=/tmp/run MODEL=/path/to/local/model bash scripts/pipeline.sh     # another model, another results root
#   TAILORING_DATA=data/sample-tailoring bash scripts/pipeline.sh         # train on the larger hand-made splits
# Every output lies under $ROOT. A stage whose output exists is skipped, so a rerun after an interruption
# picks up where it stopped (the modules also resume inside a stage); delete a stage's output to redo it.
# The local judges read their verdicts from next-token probabilities (--verdict probability: never invalid); the
# 135M model is a weak judge all the same. For the paper's judge set JUDGE_TYPE/JUDGE_MODEL (e.g. JUDGE_TYPE=open_ai
# JUDGE_MODEL=prometheus-eval/prometheus-7b-v2.0 with OPENAI_BASE_URL set to a vLLM server) and VERDICT.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # see scripts/lib/tailoring.sh (more BLAS threads thrash a small CPU)
PYTHON=${PYTHON:-python3}

# --- models ---
MODEL=${MODEL:-SmolLM2-135M-Instruct}            # every model below unless set: Hub id, local folder, embedded
PI_MODEL=${PI_MODEL:-$MODEL}                     # writes the personas and judges them (persona accuracy/prefs)
PI_TYPE=${PI_TYPE:-hf_chat}                      # hf_chat | open_ai | anthropic | cohere
BASE_MODEL=${BASE_MODEL:-$MODEL}                 # persona-tailoring base model (SFT, then DPO)
JUDGE_MODEL=${JUDGE_MODEL:-$MODEL}               # pairwise judge of the tailored responses
JUDGE_TYPE=${JUDGE_TYPE:-hf_chat}
PI_NICKNAME=${PI_NICKNAME:-$(basename "$PI_MODEL")}
PT_NICKNAME=${PT_NICKNAME:-$(basename "$BASE_MODEL")}

# --- data and results ---
DATA=${DATA:-data/sample_preferences.jsonl}      # preference rows (prompt, chosen, rejected): file, folder, Hub id
DATASET=${DATASET:-Sample}                       # dataset name: prompt templates, results folders, judge wording
ROOT=${ROOT:-results/pipeline}                   # every output of every stage goes below this folder
# Tailoring data: by default the splits built here from the 16 sample rows' inferred personas (fewshot 1,
# SFT 5+1 val, DPO 4+1 val, test 4), so the trained models really use this run's personas. The splits are
# tiny, which keeps the run short; set TAILORING_DATA=data/sample-tailoring for the larger hand-made splits.
TAILORING_DATA=${TAILORING_DATA:-}

# --- sizes (PROTOCOL=paper: every step runs with --protocol paper, and a size below left unset is the paper's) ---
PROTOCOL=${PROTOCOL:-}
[ "$PROTOCOL" = paper ] && demo= || demo=1
EPOCHS=${EPOCHS-${demo:+2}}                      # SFT and DPO epochs (paper: 10)
SFT_LEARNING_RATE=${SFT_LEARNING_RATE-${demo:+1e-3}}  # high for a 2-epoch CPU demo (paper: 2e-5)
DPO_LEARNING_RATE=${DPO_LEARNING_RATE-${demo:+1e-4}}  # (paper: 5e-6)
BATCH_SIZE=${BATCH_SIZE-${demo:+4}}              # (paper: 1)
MAX_NEW_TOKENS=${MAX_NEW_TOKENS-${demo:+64}}     # per tailored response (paper: 512)
VERDICT=${VERDICT:-}                             # probability | text (default: probability for local judges; paper: text)
JUDGE_MAX_TOKENS=${JUDGE_MAX_TOKENS:-1024}       # text verdicts: feedback + verdict (prometheus-eval: 1024)
given() { [ -n "$2" ] && echo "$1 $2" || true; }  # a flag only where its value is set

# Every folder and file below $ROOT, from the contract module: NAME=path lines (PI_DIR, PERSONAS, AUGMENTED,
# SFT_MERGED, JUDGMENTS, ...; run the command below to see them all).
eval "$("$PYTHON" -m persona_core.layout pipeline --root "$ROOT" --dataset "$DATASET" --pi_nickname "$PI_NICKNAME" \
    --pt_nickname "$PT_NICKNAME")"
TAILORING=${TAILORING_DATA:-$TAILORING}

# stage NAME OUTPUT... -- COMMAND...: run COMMAND unless every OUTPUT exists (each module writes its final
# output last and atomically, so an existing output means a finished stage).
stage() {
    local name=$1 outputs=() missing=0 start
    shift
    while [ "$1" != "--" ]; do outputs+=("$1"); shift; done
    shift
    for output in "${outputs[@]}"; do [ -e "$output" ] || missing=1; done
    if [ "$missing" = 0 ]; then
        echo "== $name: skipped (${outputs[0]} exists)"
        return
    fi
    echo "== $name"
    start=$(date +%s)
    "$@"
    echo "== $name: done in $(($(date +%s) - start))s"
}

pi=(--model_name "$PI_MODEL" --model_nickname "$PI_NICKNAME" --model_type "$PI_TYPE" --dataset_name "$DATA"
    --inference_split "$DATASET" --res_dir "$PI_DIR" ${PROTOCOL:+--protocol "$PROTOCOL"})
pt=(--base_model_name "$BASE_MODEL" --model_nickname "$PT_NICKNAME" --dataset_name "$DATASET"
    --hf_dataset_name "$TAILORING" --model_save_dir "$MODELS" --results_save_dir "$GENERATIONS"
    --training_type chosen ${PROTOCOL:+--protocol "$PROTOCOL"})
# shellcheck disable=SC2046  # each given flag is two words
training=($(given --num_train_epochs "$EPOCHS") $(given --per_device_train_batch_size "$BATCH_SIZE")
    --gradient_accumulation_steps 1)
comparison=(--results_save_dir "$GENERATIONS" --dataset_name "$DATASET" --model_nickname "$PT_NICKNAME"
    --output_dir "$JUDGE_DIR" --model_type_base dpo --training_type_base chosen --inference_type_base none
    --model_type_test dpo --training_type_test chosen --inference_type_test gold-chosen)

begin=$(date +%s)
stage "persona inference" "$PERSONAS" -- \
    "$PYTHON" -m persona_inference.model.run_model "${pi[@]}" --experiments persona_inference
stage "persona accuracy" "$ACCURACY" -- \
    "$PYTHON" -m persona_inference.model.run_model "${pi[@]}" --experiments persona_accuracy \
    --persona_models "$PI_NICKNAME"
stage "persona preferences" "$PREFS" -- \
    "$PYTHON" -m persona_inference.model.run_model "${pi[@]}" --experiments persona_prefs
stage "augmented dataset" "$AUGMENTED_DONE" -- \
    "$PYTHON" -m persona_inference.model.build_augmented_dataset --dataset_name "$DATA" --inference_split "$DATASET" \
    --model "$PI_NICKNAME" --res_dir "$PI_DIR" --out_dir "$DATASETS" --no-push_to_hub
# (fewshot 1 and a quarter for test leave the most rows for training; nothing here uses the fewshot split)
stage "tailoring dataset" "$TAILORING" -- \
    "$PYTHON" -m persona_inference.model.build_tailoring_dataset --dataset_name "$AUGMENTED" --output "$TAILORING" \
    --fewshot_rows 1 --test_fraction 0.25
stage "SFT" "$SFT_ADAPTER" -- \
    "$PYTHON" -m persona_tailoring.model.run_model --method sft --stage train "${pt[@]}" "${training[@]}" \
    $(given --learning_rate "$SFT_LEARNING_RATE")
stage "SFT merge" "$SFT_MERGED_DONE" -- \
    "$PYTHON" -m persona_tailoring.model.run_model --method sft --stage merge "${pt[@]}"
stage "DPO" "$DPO_ADAPTER" -- \
    "$PYTHON" -m persona_tailoring.model.run_model --method dpo --stage train "${pt[@]}" "${training[@]}" \
    $(given --learning_rate "$DPO_LEARNING_RATE")
stage "DPO merge" "$DPO_MERGED_DONE" -- \
    "$PYTHON" -m persona_tailoring.model.run_model --method dpo --stage merge "${pt[@]}"
stage "generation with and without personas" "$WITH_PERSONA" "$WITHOUT_PERSONA" -- \
    "$PYTHON" -m persona_tailoring.model.run_model --method dpo --stage infer "${pt[@]}" \
    --inference_type gold-chosen none $(given --max_new_tokens "$MAX_NEW_TOKENS")
stage "judge" "$JUDGMENTS" -- \
    "$PYTHON" -m persona_tailoring.evaluation.run_judge "${comparison[@]}" --judge_model_type "$JUDGE_TYPE" \
    --judge_model_name "$JUDGE_MODEL" --max_tokens "$JUDGE_MAX_TOKENS" ${VERDICT:+--verdict "$VERDICT"} \
    ${PROTOCOL:+--protocol "$PROTOCOL"}
stage "win rate" "$WIN_RATE_JSON" "$WIN_RATE_PNG" "$WIN_RATE_PDF" -- \
    "$PYTHON" -m persona_tailoring.evaluation.win_rate "${comparison[@]}" --plot
stage "persona accuracy plot" "$ACCURACY_PNG" "$ACCURACY_PDF" -- \
    "$PYTHON" -m persona_inference.evaluation.accuracy_plot --res_dir "$PI_DIR"
stage "persona preferences plot" "$PREFS_PNG" "$PREFS_PDF" -- \
    "$PYTHON" -m persona_inference.evaluation.persona_prefs_plot --res_dir "$PI_DIR"
# (32 personas: a word found in 2 counts, where the paper's thousands use 10)
stage "word saliency" "$SALIENCY_PNG" "$SALIENCY_PDF" -- \
    "$PYTHON" -m persona_inference.evaluation.word_saliency --res_dir "$PI_DIR" --min_count 2

artifacts=(
    "personas=$PERSONAS" "persona accuracy=$ACCURACY" "persona preferences=$PREFS" "augmented dataset=$AUGMENTED"
    "tailoring dataset=$TAILORING" "merged SFT model=$SFT_MERGED" "merged DPO model=$DPO_MERGED"
    "responses with personas=$WITH_PERSONA" "responses without personas=$WITHOUT_PERSONA"
    "judgments=$JUDGMENTS" "win rates=$WIN_RATE_JSON" "win-rate plot=$WIN_RATE_PNG"
    "persona accuracy plot=$ACCURACY_PNG" "persona preferences plot=$PREFS_PNG" "word saliency=$SALIENCY_PNG"
)
"$PYTHON" - "$(($(date +%s) - begin))" "$PERSONAS_RUN" "$ACCURACY_RUN" "$JUDGE_RUN" "$WIN_RATE_JSON" \
    "${artifacts[@]}" <<'PY'
import json
import sys
from pathlib import Path

seconds, personas_run, accuracy_run, judge_run, win_rate, *artifacts = sys.argv[1:]
load = lambda path: json.loads(Path(path).read_text())  # noqa: E731
percent = lambda x: "undefined" if x is None or x != x else f"{100 * x:.1f}%"  # noqa: E731 (None or NaN)

print(f"\n== summary ({seconds}s)")
for artifact in artifacts:
    name, path = artifact.split("=", 1)
    print(f"{'✓' if Path(path).exists() else '✗ missing'}  {name:27} {path}")

inference = load(personas_run)
print(f"\npersonas well-formed:        {inference['well_formed']}/{inference['stats']['total']}")
print(f"rows, same persona per side: {inference['identical_sides']} identical, {inference['near_identical_sides']} nearly "
      f"(of {inference['rows']} rows)")
for row in load(accuracy_run)["summary"]:
    print(f"persona accuracy, {row['side'] + ':':9}  {percent(row['accuracy'])} of {row['valid']} valid "
          f"answers ({row['invalid']} invalid)")
judge = load(judge_run)
verdicts = judge["verdicts"]
print(f"judge verdicts:              {judge['verdict_mode']}, {verdicts['invalid_after_retry']}/{verdicts['total']} "
      f"invalid ({verdicts['invalid_first_attempt']} on the first attempt)")
scores = load(win_rate)
interval = lambda ci: "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"  # noqa: E731
number = lambda x, ci, fmt: "undefined" if x is None else f"{x:{fmt}}{interval(ci)}"  # noqa: E731
for metric in ("personalization", "response_quality"):
    s = scores[metric]
    ties = "" if s["win_rate"] is not None else f" ({s['counts']['ties']}/{s['n']} pairs tie)"
    print(f"win rate, {metric + ':':18} {number(s['win_rate'], s['ci95'], '.3f')}{ties}; from the verdicts' "
          f"probabilities {number(s.get('probability_win_rate'), s.get('probability_ci95'), '.3f')}")
delta = scores["delta_pq"]
print(f"ΔPQ:                         {number(delta['value'], delta['ci95'], '+.3f')}; from the verdicts' "
      f"probabilities {number(delta.get('probability_value'), delta.get('probability_ci95'), '+.3f')}")
for who, weak in (("persona judge", load(accuracy_run).get("weak_judge")), ("pairwise judge", scores.get("weak_judge"))):
    if weak:
        print(f"!! {who}: {weak['warning']}")
PY
# Last, one self-contained HTML page of the whole run: the numbers above, the figures, a browser of every row's
# personas, responses and verdicts, and the run records (it prints its path).
"$PYTHON" -m persona_tailoring.evaluation.report --root "$ROOT" --output "$REPORT"
