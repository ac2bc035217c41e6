#!/usr/bin/env bash
# Build the persona-tailoring data from a finished persona inference run:
#   1. add the inferred personas to the preference data (chosen_persona_gold / rejected_persona_gold);
#   2. split it into the paper's six splits and add the retrieved personas (*_persona_retr).
# Defaults: the sample run (`python -m persona_inference.model.run_model`). Edit the variables, or set them:
#   bash scripts/build_data.sh
#   DATASET=BeaverTails DATA=/path/to/beavertails PI_NICKNAME=gpt-4o-mini bash scripts/build_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# --- persona inference run to read ---
DATA=${DATA:-data/sample_preferences.jsonl}      # preference rows, as in the run: Hub id, save_to_disk folder or file
DATASET=${DATASET:-Sample}                       # dataset name (Hub config), as in the run
RUN_NAME=${RUN_NAME:-default}
PI_NICKNAME=${PI_NICKNAME:-SmolLM2-135M-Instruct}  # model nickname (results folder)
PI_DIR=${PI_DIR:-results/persona-inference}

# --- outputs ---
DATASETS=${DATASETS:-results/datasets}
NEW_DATASET_NAME=${NEW_DATASET_NAME:-}           # default: augmented-$DATASET-$PI_NICKNAME-$RUN_NAME
PUSH_TO_HUB=${PUSH_TO_HUB:-false}                # true: also push (needs HF_TOKEN, NEW_DATASET_NAME=owner/name)
TAILORING_DATA=${TAILORING_DATA:-}               # default: $DATASETS/persona-tailoring-$DATASET
RETRIEVER=${RETRIEVER:-embedding}                # embedding (all-MiniLM-L6-v2) or bm25
SEED=${SEED:-0}

source scripts/lib/layout.sh
layout_paths datasets --out_dir "$DATASETS" --inference_split "$DATASET" --model_nickname "$PI_NICKNAME" \
    --run_name "$RUN_NAME" ${NEW_DATASET_NAME:+--new_dataset_name "$NEW_DATASET_NAME"} -- AUGMENTED TAILORING
TAILORING=${TAILORING_DATA:-$TAILORING}
augmented=(--dataset_name "$DATA" --inference_split "$DATASET" --run_name "$RUN_NAME" --model "$PI_NICKNAME"
           --res_dir "$PI_DIR" --out_dir "$DATASETS")
[ -n "$NEW_DATASET_NAME" ] && augmented+=(--new_dataset_name "$NEW_DATASET_NAME")
[ "$PUSH_TO_HUB" = true ] && augmented+=(--push_to_hub) || augmented+=(--no-push_to_hub)

"$PYTHON" -m persona_inference.model.build_augmented_dataset "${augmented[@]}"
"$PYTHON" -m persona_inference.model.build_tailoring_dataset \
    --dataset_name "$AUGMENTED" --output "$TAILORING" --retriever "$RETRIEVER" --seed "$SEED"

echo "augmented dataset:         $AUGMENTED"
echo "persona-tailoring dataset: $TAILORING"
