#!/usr/bin/env bash
# Build the persona-tailoring data from a finished persona inference run:
#   1. add the inferred personas to the preference data (chosen_persona_gold / rejected_persona_gold);
#   2. split it into the paper's six splits and add the retrieved personas (*_persona_retr).
# Defaults: the sample run (`python -m persona_inference.model.run_model`). Edit the variables, or set them:
#   bash scripts/build_data.sh
#   inference_split=BeaverTails dataset_name=/path/to/beavertails model=gpt-4o-mini bash scripts/build_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# --- persona inference run to read ---
dataset_name=${dataset_name:-data/sample_preferences.jsonl}   # Hub id, save_to_disk folder or data file
inference_split=${inference_split:-Sample}                     # dataset name (Hub config), as in the run
run_name=${run_name:-default}
model=${model:-SmolLM2-135M-Instruct}                          # model nickname (results folder)
res_dir=${res_dir:-results/persona-inference}

# --- outputs ---
out_dir=${out_dir:-results/datasets}
new_dataset_name=${new_dataset_name:-augmented-${inference_split}-${model}-${run_name}}
push_to_hub=${push_to_hub:-false}                              # true: also push (needs HF_TOKEN, owner/name)
tailoring_dir=${tailoring_dir:-${out_dir}/persona-tailoring-${inference_split}}
retriever=${retriever:-embedding}                              # embedding (all-MiniLM-L6-v2) or bm25
seed=${seed:-0}

push_flag=--no-push_to_hub
if [ "$push_to_hub" = true ]; then push_flag=--push_to_hub; fi
augmented_dir="${out_dir}/${new_dataset_name//\//--}"

"$PYTHON" -m persona_inference.model.build_augmented_dataset \
    --dataset_name "$dataset_name" --inference_split "$inference_split" --run_name "$run_name" \
    --model "$model" --res_dir "$res_dir" --new_dataset_name "$new_dataset_name" --out_dir "$out_dir" "$push_flag"

"$PYTHON" -m persona_inference.model.build_tailoring_dataset \
    --dataset_name "$augmented_dir" --output "$tailoring_dir" --retriever "$retriever" --seed "$seed"

echo "augmented dataset:         $augmented_dir"
echo "persona-tailoring dataset: $tailoring_dir"
