# Sourced by few_shot.sh, sft.sh, dpo.sh, orpo.sh, simpo.sh and kto.sh (after `cd` to the repository root): the variables every
# persona-tailoring script takes, with their defaults, and the train -> merge -> generate sequence.
# Each variable may be set from the environment; an empty LIMIT / MAX_TRAIN_SAMPLES / MAX_EVAL_SAMPLES means all rows.

# One BLAS thread: on a small shared CPU, more threads thrash (a 15x slower backward pass measured at load 10 on
# 2 cores). On a big idle CPU, set OMP_NUM_THREADS to its core count; GPUs are unaffected.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTHON=${PYTHON:-python3}
PROTOCOL=${PROTOCOL:-}   # paper: --protocol paper (the authors' settings); the demo sizes below then default to unset
[ "$PROTOCOL" = paper ] && demo= || demo=1

BASE_MODEL=${BASE_MODEL:-SmolLM2-135M-Instruct}  # Hub id, local folder or the embedded model
PT_NICKNAME=${PT_NICKNAME:-smollm2-135m}         # model folder name
DATASET=${DATASET:-Sample}                       # dataset name: results folders, the `system` persona
TAILORING_DATA=${TAILORING_DATA:-data/sample-tailoring}  # the six splits: Hub id, save_to_disk or JSONL folder
TRAINING_TYPE=${TRAINING_TYPE:-chosen}           # chosen | rejected | all | none
INFERENCE_TYPES=${INFERENCE_TYPES:-gold-chosen retr-chosen none}  # none: judge.sh's default base
EPOCHS=${EPOCHS-${demo:+2}}                       # paper: 10
BATCH_SIZE=${BATCH_SIZE-${demo:+4}}              # paper: 1
GRAD_ACCUM=${GRAD_ACCUM-${demo:+1}}              # paper: 1
MAX_EVAL_SAMPLES=${MAX_EVAL_SAMPLES-${demo:+8}}
LIMIT=${LIMIT-${demo:+6}}                        # test rows to generate for
MAX_NEW_TOKENS=${MAX_NEW_TOKENS-${demo:+64}}     # paper: 512 (and at least 10)
LAUNCH=${LAUNCH:-$PYTHON -m}                     # training only; or: accelerate launch [--config_file ...] -m
INFER_EXTRA=${INFER_EXTRA:-}                     # more flags of the generation stage
OVERWRITE=${OVERWRITE:-}                         # 1: redo every stage (outputs of a finished stage are reused otherwise)
MODELS=${MODELS:-models/persona-tailoring}       # adapters, checkpoints and merged models (--model_save_dir)
GENERATIONS=${GENERATIONS:-results/persona-tailoring}  # generated responses (--results_save_dir)

pt_args=(--training_type "$TRAINING_TYPE" --base_model_name "$BASE_MODEL" --model_nickname "$PT_NICKNAME"
         --dataset_name "$DATASET" --hf_dataset_name "$TAILORING_DATA" --model_save_dir "$MODELS"
         --results_save_dir "$GENERATIONS" ${PROTOCOL:+--protocol "$PROTOCOL"})
[ "$OVERWRITE" = 1 ] && REDO=--overwrite || REDO=
optional() { [ -n "$2" ] && echo "$1 $2" || true; }

# generate METHOD STAGE: the `infer` stage (or `all` for fewshot) on the test split, one output per inference type.
generate() {
    # shellcheck disable=SC2046,SC2086  # INFERENCE_TYPES, INFER_EXTRA and the optional flags hold several words
    "$PYTHON" -m persona_tailoring.model.run_model --method "$1" --stage "$2" "${pt_args[@]}" $REDO \
        --inference_type $INFERENCE_TYPES $(optional --max_new_tokens "$MAX_NEW_TOKENS") $(optional --limit "$LIMIT") \
        $INFER_EXTRA
}

# train_merge_generate METHOD LEARNING_RATE MAX_TRAIN_SAMPLES [MORE TRAINING FLAGS...]
train_merge_generate() {
    local method=$1 learning_rate=$2 max_train_samples=$3
    shift 3
    # shellcheck disable=SC2046,SC2086  # LAUNCH and the optional flags split into words
    $LAUNCH persona_tailoring.model.run_model --method "$method" --stage train "${pt_args[@]}" $REDO \
        $(optional --num_train_epochs "$EPOCHS") $(optional --learning_rate "$learning_rate") \
        $(optional --per_device_train_batch_size "$BATCH_SIZE") $(optional --gradient_accumulation_steps "$GRAD_ACCUM") \
        $(optional --max_train_samples "$max_train_samples") \
        $(optional --max_eval_samples "$MAX_EVAL_SAMPLES") "$@"
    "$PYTHON" -m persona_tailoring.model.run_model --method "$method" --stage merge "${pt_args[@]}" $REDO
    generate "$method" infer
}

# ensure_sft_model: DPO, SimPO and KTO start from the merged SFT model of TRAINING_TYPE; run scripts/sft.sh first
# (same variables) when it is missing.
ensure_sft_model() {
    source scripts/lib/layout.sh
    layout_paths pt_model --model_save_dir "$MODELS" --dataset_name "$DATASET" --model_nickname "$PT_NICKNAME" \
        --method sft --training_type "$TRAINING_TYPE" -- MERGED MERGED_DONE
    if [ ! -f "$MERGED_DONE" ]; then
        echo "no merged SFT model in $MERGED: running scripts/sft.sh first"
        bash scripts/sft.sh
    fi
}
