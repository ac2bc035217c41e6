#!/usr/bin/env bash
# Persona inference on the embedded SmolLM2-135M-Instruct and the sample data (offline, no keys), then a
# short summary. Edit the variables, or set them from the environment, e.g.:
#   model_type=open_ai model_name=gpt-4o-mini dataset_name=nbalepur/persona-inference \
#       inference_split=BeaverTails bash scripts/example.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

run_name=${run_name:-default}
model_name=${model_name:-SmolLM2-135M-Instruct}          # Hub id, local folder, API model, or the embedded model
model_nickname=${model_nickname:-}                       # results folder name (default: derived from model_name)
model_type=${model_type:-hf_chat}                        # hf_chat | open_ai | anthropic | cohere
dataset_name=${dataset_name:-data/sample_preferences.jsonl}
inference_split=${inference_split:-Sample}               # dataset name / Hub config (BeaverTails, Anthropic HHH, ...)
partition=${partition:-full}
experiments=${experiments:-persona_inference}            # add persona_accuracy persona_prefs to judge the personas
base_url=${base_url:-}                                   # e.g. http://localhost:8000/v1 for vLLM / Ollama / llama.cpp
res_dir=${res_dir:-results/persona-inference}

args=(--run_name "$run_name" --model_name "$model_name" --model_type "$model_type"
      --dataset_name "$dataset_name" --inference_split "$inference_split" --partition "$partition"
      --res_dir "$res_dir" --experiments $experiments)
[ -n "$model_nickname" ] && args+=(--model_nickname "$model_nickname")
[ -n "$base_url" ] && args+=(--base_url "$base_url")

start=$(date +%s)
"$PYTHON" -m persona_inference.model.run_model "${args[@]}"

"$PYTHON" - "$res_dir" "$inference_split" "$run_name" "$partition" "$(($(date +%s) - start))" <<'PY'
import json, sys
from pathlib import Path

res_dir, split, run_name, partition, seconds = sys.argv[1:]
subpath = Path(split) / run_name / ("" if partition == "full" else partition) / "persona_inference.jsonl"
path = max(Path(res_dir).glob(f"*/{subpath}"), key=lambda p: p.stat().st_mtime)
records = [json.loads(line) for line in path.open()]
rows = {r["row"] for r in records}
print(f"\n== summary: {len(records)} personas for {len(rows)} rows in {seconds}s -> {path}")
for record in records[:: max(1, len(records) // 3)][:3]:
    print(f"- row {record['row']} ({record['side']}): {record['persona']}")
PY
