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

# --- training methods and sizes (PROTOCOL=paper: every step runs with --protocol paper, and a size below left unset
# is the paper's) ---
PROTOCOL=${PROTOCOL:-}
[ "$PROTOCOL" = paper ] && demo= || demo=1
EPOCHS=${EPOCHS-${demo:+2}}                      # epochs of every trained method (paper: 10)
SFT_LEARNING_RATE=${SFT_LEARNING_RATE-${demo:+1e-3}}  # high for a 2-epoch CPU demo (paper: 2e-5)
DPO_LEARNING_RATE=${DPO_LEARNING_RATE-${demo:+1e-4}}  # (paper: 5e-6)
BATCH_SIZE=${BATCH_SIZE-${demo:+4}}              # (paper: 1)
MAX_NEW_TOKENS=${MAX_NEW_TOKENS-${demo:+64}}     # per tailored response (paper: 512)
VERDICT=${VERDICT:-}                             # probability | text (default: probability for local judges; paper: text)
JUDGE_MAX_TOKENS=${JUDGE_MAX_TOKENS:-1024}       # text verdicts: feedback + verdict (prometheus-eval: 1024)
given() { [ -n "$2" ] && echo "$1 $2" || true; }  # a flag only where its value is set
# More tailoring methods beside SFT -> DPO (docs/METHODS.md), e.g. METHODS="orpo simpo kto": each is trained on the
# same data and sizes, generates with gold personas, is judged against DPO's base and gets its row in the ΔPQ table
# ($JUDGE_DIR/delta_pq_table.md, shown in the report). Learning rates: <METHOD>_LEARNING_RATE (unset: the method's
# own default, docs/METHODS.md).
METHODS=${METHODS:-}
ORPO_LEARNING_RATE=${ORPO_LEARNING_RATE-$SFT_LEARNING_RATE}   # ORPO starts from the base model, as SFT
SIMPO_LEARNING_RATE=${SIMPO_LEARNING_RATE-$DPO_LEARNING_RATE} # SimPO and KTO from the merged SFT model, as DPO
KTO_LEARNING_RATE=${KTO_LEARNING_RATE-$DPO_LEARNING_RATE}

# The paper's chain, each method trained from the previous one's merged model (run_model finds it); the last is
# judged with and without personas.
CHAIN=(sft dpo)
declare -A LEARNING_RATE=([sft]=$SFT_LEARNING_RATE [dpo]=$DPO_LEARNING_RATE [orpo]=$ORPO_LEARNING_RATE
    [simpo]=$SIMPO_LEARNING_RATE [kto]=$KTO_LEARNING_RATE)
JUDGED_METHOD=${CHAIN[-1]}
read -r -a extra_methods <<< "$METHODS"
for method in "${extra_methods[@]}"; do
    case "$method" in
        orpo | simpo | kto) ;;
        *)
            echo "error: METHODS names '$method', which is not an added tailoring method: use orpo, simpo or kto" >&2
            exit 2
            ;;
    esac
done

# Every folder and file below $ROOT this script uses, from the layout contract (scripts/lib/layout.sh).
source scripts/lib/layout.sh
layout_paths pipeline --root "$ROOT" --dataset "$DATASET" --pi_nickname "$PI_NICKNAME" --pt_nickname "$PT_NICKNAME" \
    --method "$JUDGED_METHOD" -- \
    PI_DIR PERSONAS ACCURACY PREFS DATASETS AUGMENTED AUGMENTED_DONE TAILORING MODELS GENERATIONS \
    WITH_PERSONA WITHOUT_PERSONA JUDGE_DIR JUDGMENTS WIN_RATE_JSON WIN_RATE_PNG WIN_RATE_PDF \
    ACCURACY_PNG ACCURACY_PDF PREFS_PNG PREFS_PDF SALIENCY_PNG SALIENCY_PDF REPORT
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
judge_base=(--results_save_dir "$GENERATIONS" --dataset_name "$DATASET" --model_nickname "$PT_NICKNAME"
    --output_dir "$JUDGE_DIR" --model_type_base "$JUDGED_METHOD" --training_type_base chosen --inference_type_base none)
comparison=("${judge_base[@]}" --model_type_test "$JUDGED_METHOD" --training_type_test chosen
    --inference_type_test gold-chosen)

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
merged_models=()
for method in "${CHAIN[@]}"; do
    layout_paths pt_model --model_save_dir "$MODELS" --dataset_name "$DATASET" --model_nickname "$PT_NICKNAME" \
        --method "$method" --training_type chosen -- ADAPTER_DONE MERGED MERGED_DONE
    stage "${method^^}" "$ADAPTER_DONE" -- \
        "$PYTHON" -m persona_tailoring.model.run_model --method "$method" --stage train "${pt[@]}" "${training[@]}" \
        $(given --learning_rate "${LEARNING_RATE[$method]}")
    stage "${method^^} merge" "$MERGED_DONE" -- \
        "$PYTHON" -m persona_tailoring.model.run_model --method "$method" --stage merge "${pt[@]}"
    merged_models+=("merged ${method^^} model=$MERGED")
done
stage "generation with and without personas" "$WITH_PERSONA" "$WITHOUT_PERSONA" -- \
    "$PYTHON" -m persona_tailoring.model.run_model --method "$JUDGED_METHOD" --stage infer "${pt[@]}" \
    --inference_type gold-chosen none $(given --max_new_tokens "$MAX_NEW_TOKENS")
stage "judge" "$JUDGMENTS" -- \
    "$PYTHON" -m persona_tailoring.evaluation.run_judge "${comparison[@]}" --judge_model_type "$JUDGE_TYPE" \
    --judge_model_name "$JUDGE_MODEL" --max_tokens "$JUDGE_MAX_TOKENS" ${VERDICT:+--verdict "$VERDICT"} \
    ${PROTOCOL:+--protocol "$PROTOCOL"}
stage "win rate" "$WIN_RATE_JSON" "$WIN_RATE_PNG" "$WIN_RATE_PDF" -- \
    "$PYTHON" -m persona_tailoring.evaluation.win_rate "${comparison[@]}" --plot
# METHODS: each module skips what it finished before (adapter, merged model, outputs, judgments)
for method in "${extra_methods[@]}"; do
    echo "== $method"
    "$PYTHON" -m persona_tailoring.model.run_model --method "$method" --stage all "${pt[@]}" "${training[@]}" \
        $(given --learning_rate "${LEARNING_RATE[$method]}") --inference_type gold-chosen \
        $(given --max_new_tokens "$MAX_NEW_TOKENS")
done
if [ -n "$METHODS" ]; then
    echo "== judge and ΔPQ table: $METHODS beside $JUDGED_METHOD"
    "$PYTHON" -m persona_tailoring.evaluation.run_judge "${judge_base[@]}" --model_type_test "${extra_methods[@]}" \
        --training_type_test chosen --inference_type_test gold-chosen --judge_model_type "$JUDGE_TYPE" \
        --judge_model_name "$JUDGE_MODEL" --max_tokens "$JUDGE_MAX_TOKENS" ${VERDICT:+--verdict "$VERDICT"} \
        ${PROTOCOL:+--protocol "$PROTOCOL"}
    "$PYTHON" -m persona_tailoring.evaluation.win_rate --comparison_dir "$JUDGE_DIR"
fi
stage "persona accuracy plot" "$ACCURACY_PNG" "$ACCURACY_PDF" -- \
    "$PYTHON" -m persona_inference.evaluation.accuracy_plot --res_dir "$PI_DIR"
stage "persona preferences plot" "$PREFS_PNG" "$PREFS_PDF" -- \
    "$PYTHON" -m persona_inference.evaluation.persona_prefs_plot --res_dir "$PI_DIR"
# (32 personas: a word found in 2 counts, where the paper's thousands use 10)
stage "word saliency" "$SALIENCY_PNG" "$SALIENCY_PDF" -- \
    "$PYTHON" -m persona_inference.evaluation.word_saliency --res_dir "$PI_DIR" --min_count 2

artifacts=(
    "personas=$PERSONAS" "persona accuracy=$ACCURACY" "persona preferences=$PREFS" "augmented dataset=$AUGMENTED"
    "tailoring dataset=$TAILORING" "${merged_models[@]}"
    "responses with personas=$WITH_PERSONA" "responses without personas=$WITHOUT_PERSONA"
    "judgments=$JUDGMENTS" "win rates=$WIN_RATE_JSON" "win-rate plot=$WIN_RATE_PNG"
    "persona accuracy plot=$ACCURACY_PNG" "persona preferences plot=$PREFS_PNG" "word saliency=$SALIENCY_PNG"
)
echo
echo "== summary ($(($(date +%s) - begin))s)"
for artifact in "${artifacts[@]}"; do
    if [ -e "${artifact#*=}" ]; then mark="✓"; else mark="✗ missing"; fi
    printf '%s  %-27s %s\n' "$mark" "${artifact%%=*}" "${artifact#*=}"
done
echo
# The headline numbers, then one self-contained HTML page of the whole run: those numbers, the figures, a browser
# of every row's personas, responses and verdicts, and the run records (it prints its path last).
"$PYTHON" -m persona_tailoring.evaluation.report --root "$ROOT" --output "$REPORT" --summary
