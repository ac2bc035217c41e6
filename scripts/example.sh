#!/usr/bin/env bash
# Persona inference on the embedded SmolLM2-135M-Instruct and the sample data (offline, no keys), then a
# short summary. Edit the variables, or set them from the environment, e.g.:
#   bash scripts/example.sh
#   PI_TYPE=open_ai PI_MODEL=gpt-4o-mini DATA=nbalepur/persona-inference DATASET=BeaverTails bash scripts/example.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

RUN_NAME=${RUN_NAME:-default}
PI_MODEL=${PI_MODEL:-SmolLM2-135M-Instruct}      # Hub id, local folder, API model, or the embedded model
PI_NICKNAME=${PI_NICKNAME:-}                     # results folder name (default: derived from PI_MODEL)
PI_TYPE=${PI_TYPE:-hf_chat}                      # hf_chat | open_ai | anthropic | cohere
DATA=${DATA:-data/sample_preferences.jsonl}      # preference rows (prompt, chosen, rejected): file, folder, Hub id
DATASET=${DATASET:-Sample}                       # dataset name / Hub config (BeaverTails, Anthropic HHH, ...)
PARTITION=${PARTITION:-full}
EXPERIMENTS=${EXPERIMENTS:-persona_inference}    # any of persona_inference persona_accuracy persona_prefs, in order
PERSONA_MODELS=${PERSONA_MODELS:-}               # judges: whose personas to read (PI nicknames; default: every model's)
PI_BASE_URL=${PI_BASE_URL:-}                     # e.g. http://localhost:8000/v1 for vLLM / Ollama / llama.cpp
PI_DIR=${PI_DIR:-results/persona-inference}
PROTOCOL=${PROTOCOL:-}                           # paper: --protocol paper (the authors' token bounds, stop and judges)

# shellcheck disable=SC2206  # EXPERIMENTS and PERSONA_MODELS hold several names
args=(--run_name "$RUN_NAME" --model_name "$PI_MODEL" --model_type "$PI_TYPE" --dataset_name "$DATA"
      --inference_split "$DATASET" --partition "$PARTITION" --res_dir "$PI_DIR" --experiments $EXPERIMENTS)
[ -n "$PI_NICKNAME" ] && args+=(--model_nickname "$PI_NICKNAME")
[ -n "$PI_BASE_URL" ] && args+=(--base_url "$PI_BASE_URL")
[ -n "$PROTOCOL" ] && args+=(--protocol "$PROTOCOL")
# shellcheck disable=SC2206
[ -n "$PERSONA_MODELS" ] && args+=(--persona_models $PERSONA_MODELS)
if [ -n "$PI_NICKNAME" ]; then who=(--model_nickname "$PI_NICKNAME"); else who=(--model_name "$PI_MODEL"); fi
results=()
for experiment in $EXPERIMENTS; do
    results+=("$("$PYTHON" -m persona_core.layout_cli pi_results --res_dir "$PI_DIR" "${who[@]}" \
        --inference_split "$DATASET" --run_name "$RUN_NAME" --partition "$PARTITION" --experiment "$experiment")")
done

start=$(date +%s)
"$PYTHON" -m persona_inference.model.run_model "${args[@]}"

"$PYTHON" - "$(($(date +%s) - start))" "${results[@]}" <<'PY'
import sys

from persona_core.io import read_records

seconds, *paths = sys.argv[1:]
print(f"\n== summary ({seconds}s)")
for path in paths:
    records = read_records(path)
    if "persona" in records[0] and "choice" not in records[0] and "verdict" not in records[0]:
        print(f"{len(records)} personas for {len({r['row'] for r in records})} rows -> {path}")
        for record in records[:: max(1, len(records) // 3)][:3]:
            print(f"- row {record['row']} ({record['side']}): {record['persona']}")
    else:
        print(f"{len(records)} judge records -> {path}")
PY
