#!/usr/bin/env bash
# The one prepared device check of issue 12, run on a GPU machine in one call:
#   1. setup: the project's missing wheels into /tmp/site, the project importable, nvidia-smi, versions, and a
#      Llama with random weights built from a config (bench.random_model; 1.07 B parameters, bfloat16);
#   2. engines: bench.engines on 64 BeaverTails persona-inference prompts at batch 64, hf_chat in bfloat16 on the GPU
#      (plus vLLM in process and `vllm serve`, only where .venv-vllm imports vllm);
#   3. test_cuda: tests/core/llm/test_hf_cuda.py (hf_chat on CUDA, bf16, stop strings, CUDA = CPU answers and
#      probabilities, LoRA SFT in bf16, padding-free loss, vLLM if present);
#   4. pt: padded vs padding-free LoRA SFT tokens/s (bench.pt_throughput --skip_generation) on the same model;
#   5. suite: a fast subset of the test suite with CUDA present, in the time left.
# Each part's log (and figures as JSON) goes to $OUT, at most 8 files; a summary ends the output. A failed part
# is reported and the next one still runs; the exit status is 1 if any part failed.
#
#   bash bench/gpu_check.sh --prepare     # HERE, on the CPU machine: tokenizer, data, wheels; prints the run call
#   bash bench/gpu_check.sh               # there (the device's `run`), OUT set by the tool
#   GPU_CHECK_SIZE=tiny OUT=/tmp/gpu-out bash bench/gpu_check.sh     # smoke test on a CPU, a few minutes
#
# Settings: GPU_CHECK_SIZE (1b | tiny), GPU_CHECK_BUDGET (seconds for the whole run, default 420: the later parts
# shrink to fit), GPU_CHECK_VLLM (auto | 0 | 1), OUT (default bench/out/gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
CARRY=bench/out/gpu-carry
WHEELS=.whl
PY=${PYTHON:-python3}
# Wheels the GPU image lacks (no datasets, trl, dotenv, openai, prometheus-eval) or holds at another version
# (transformers 5.17; peft unknown), with the dependencies it lacks too. Its torch 2.11, accelerate 1.15,
# tokenizers 0.23.2, huggingface_hub 1.33, safetensors, pyarrow, pandas, xxhash, fsspec, typer, anyio, httpx and
# pytest fit these. Versions: requirements.txt's pins, else this machine's (the project's environment), written by
# --prepare into $CARRY/wheels.txt, which the device run installs from.
WHEEL_PACKAGES=(
    transformers trl peft datasets dill multiprocess python-dotenv
    openai sniffio pydantic pydantic-core typing-inspection annotated-types jiter httpx2 httpcore2 truststore
    prometheus-eval fastchat
)
MANIFEST=$CARRY/wheels.txt
PACKAGES=()
[[ -f $MANIFEST ]] && mapfile -t PACKAGES <"$MANIFEST"

wheel_file() { # the .whl/ file of NAME==VERSION (wheel names use _ for - and keep the version)
    local name=${1%%==*} version=${1##*==}
    compgen -G "$WHEELS/${name//-/_}-$version-*.whl" | head -1 || true
}

prepare() {
    mkdir -p "$CARRY/tokenizer" "$CARRY/data" "$WHEELS"
    PACKAGES=()
    local name version
    for name in "${WHEEL_PACKAGES[@]}"; do
        version=$(grep -iE "^$name==" requirements.txt | cut -d= -f3 || true)
        [[ -n $version ]] || version=$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))")
        PACKAGES+=("$name==$version")
    done
    printf '%s\n' "${PACKAGES[@]}" >"$MANIFEST"
    local embedded
    embedded=$("$PY" -c "from persona_core.embedded import embedded_model_path; print(embedded_model_path())")
    cp "$embedded"/tokenizer.json "$embedded"/tokenizer_config.json "$CARRY/tokenizer/"
    for extra in chat_template.jinja special_tokens_map.json; do
        [[ -f $embedded/$extra ]] && cp "$embedded/$extra" "$CARRY/tokenizer/"
    done
    local paper
    paper=$("$PY" -c "from persona_core.layout import paper_data_dir; print(paper_data_dir())")
    for name in persona-inference-BeaverTails persona-tailoring-BeaverTails; do
        if [[ -d $paper/$name ]]; then
            rm -rf "${CARRY:?}/data/$name" && cp -r "$paper/$name" "$CARRY/data/"
        else
            echo "note: $paper/$name is missing: the device run falls back to the sample data (32 prompts)" >&2
        fi
    done
    for spec in "${PACKAGES[@]}"; do
        local old
        name=${spec%%==*} # one version of each: another one would stop the install there
        for old in "$WHEELS/${name//-/_}"-*.whl; do
            [[ -f $old && $old != "$WHEELS/${name//-/_}-${spec##*==}-"* ]] && rm -v "$old"
        done
        [[ -n $(wheel_file "$spec") ]] && continue
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d "$WHEELS" "$spec"
        [[ -n $(wheel_file "$spec") ]] || { echo "error: no wheel for $spec in $WHEELS" >&2; exit 1; }
    done
    echo "carried: ${#PACKAGES[@]} wheels ($(du -sh "$WHEELS" | cut -f1)), $(du -sh "$CARRY" | cut -f1) in $CARRY"
    local tree
    tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    local total=$((tree + $(du -sb "$WHEELS" | cut -f1) + $(du -sb "$CARRY" | cut -f1)))
    echo "travels: working tree $((tree / 1024)) KiB + carry = $((total / 1048576)) MiB of the 64 MiB limit"
    ((total < 60 * 1048576)) || { echo "error: too much would travel" >&2; exit 1; }
    cat <<EOF

The device call (one run: about 5 minutes, at most 8, plus the machine's start):
  run(command="PYTHONUNBUFFERED=1 bash bench/gpu_check.sh", carry=[".whl", "$CARRY"], timeout_s=480)
EOF
}

if [[ ${1:-} == --prepare ]]; then
    prepare
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "error: unknown option '$1': run 'bash bench/gpu_check.sh --prepare' here, 'bash bench/gpu_check.sh' there" >&2
    exit 2
fi

# --- on the GPU machine (or a CPU smoke test) ------------------------------------------------------------------
SIZE=${GPU_CHECK_SIZE:-1b}
BUDGET=${GPU_CHECK_BUDGET:-420}
OUT=${OUT:-bench/out/gpu-check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/gpu-check.XXXXXX)
MODEL=$WORK/random-$SIZE
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
[[ -d $CARRY/data ]] && export PERSONA_PAPER_DATA=$REPO/$CARRY/data
TOKENIZER=()
[[ -f $CARRY/tokenizer/tokenizer.json ]] && TOKENIZER=(--tokenizer "$CARRY/tokenizer")
declare -A STATUS SPENT
ORDER=()

left() { echo $((BUDGET - SECONDS)); }

part() { # part NAME MAX_SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, record the outcome
    local name=$1 limit=$2
    shift 2
    ORDER+=("$name")
    local allowed=$(($(left) - 15))
    ((allowed < limit)) && limit=$allowed
    if ((limit < 20)); then
        STATUS[$name]="skipped (no time left)"
        SPENT[$name]=0
        echo "=== $name: skipped, $(left)s of the budget left"
        return 0
    fi
    echo "=== $name (at most ${limit}s): $*"
    local start=$SECONDS rc=0
    if timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"; then rc=0; else rc=$?; fi
    SPENT[$name]=$((SECONDS - start))
    if ((rc == 0)); then STATUS[$name]=ok; elif ((rc == 124 || rc == 137)); then
        STATUS[$name]="timed out after ${limit}s"
    else STATUS[$name]="failed (exit $rc)"; fi
    echo "=== $name: ${STATUS[$name]} in ${SPENT[$name]}s"
}

setup() {
    echo "repo $REPO, size $SIZE, budget ${BUDGET}s, out $OUT, work $WORK"
    local install=()
    for spec in "${PACKAGES[@]}"; do
        local name=${spec%%==*} version=${spec##*==} have
        have=$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
        [[ $have == "$version" ]] && continue
        local file
        file=$(wheel_file "$spec")
        if [[ -z $file ]]; then
            echo "error: $name $version is needed (found '${have:-none}') and $WHEELS has no wheel of it" >&2
            return 1
        fi
        install+=("$file")
        echo "install $name $version (found: ${have:-none})"
    done
    if ((${#install[@]})); then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${install[@]}"
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    if ! "$PY" -c "import persona_core" 2>/dev/null; then # not installed: link the three package folders
        mkdir -p /tmp/gpu-check-src
        ln -sfn "$REPO/persona-core" /tmp/gpu-check-src/persona_core
        ln -sfn "$REPO/persona-inference" /tmp/gpu-check-src/persona_inference
        ln -sfn "$REPO/persona-tailoring" /tmp/gpu-check-src/persona_tailoring
        export PYTHONPATH=/tmp/gpu-check-src:$REPO${PYTHONPATH:+:$PYTHONPATH}
    fi
    nvidia-smi || echo "(no nvidia-smi here)"
    "$PY" - <<'EOF'
import importlib.metadata as m, platform, torch
import persona_core, persona_inference, persona_tailoring  # noqa: F401
versions = {n: m.version(n) for n in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "tokenizers", "huggingface_hub", "pyarrow")}
print("python", platform.python_version(), versions)
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "-",
      "bf16:", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
EOF
    # Drawn on the CPU (a few seconds on 16 cores): the same weights, and weights digest, on every machine.
    "$PY" -m bench.random_model --output_dir "$MODEL" --size "$SIZE" "${TOKENIZER[@]}" --device cpu
}

# Setup must work, everything else needs it: a failing command in it ends the run (set -e). It runs in this shell,
# its output teed through a process substitution, so that the variables it exports stay set.
ORDER+=(setup)
trap 'echo "setup failed: see $OUT/setup.log" >&2' EXIT
setup > >(tee "$OUT/setup.log") 2>&1
trap - EXIT
STATUS[setup]=ok
SPENT[setup]=$SECONDS
sleep 0.5 # the tee of the setup log catches up

ENGINES=(hf_chat)
VLLM=${GPU_CHECK_VLLM:-auto}
[[ $VLLM == auto && $SIZE == tiny ]] && VLLM=0 # a CPU smoke test: two vLLM engine starts cost minutes there
if [[ $VLLM != 0 ]] && [[ -x .venv-vllm/bin/python ]] && .venv-vllm/bin/python -c "import vllm" 2>/dev/null; then
    ENGINES+=(vllm vllm_serve)
elif [[ $VLLM == 1 ]]; then
    echo "error: GPU_CHECK_VLLM=1 but .venv-vllm/bin/python cannot import vllm" >&2
    exit 1
fi
part engines 150 "$PY" -m bench.engines --model_name "$MODEL" --prompts 64 --batch_size 64 --engines "${ENGINES[@]}" \
    --dtype bfloat16 --hf_dtype bfloat16 --json "$OUT/engines.json"
part test_cuda 150 "$PY" -m pytest tests/core/llm/test_hf_cuda.py -v -rA -p no:cacheprovider
if [[ $SIZE == 1b ]]; then
    PT=(--train_examples 256 --train_batch_size 32 --max_length 1024)
else
    PT=(--train_examples 16 --train_batch_size 4 --max_length 1024)
fi
part pt 150 "$PY" -m bench.pt_throughput --skip_generation --model_name "$MODEL" "${PT[@]}" --threads 0 \
    --json "$OUT/pt.json"
# Tests on the tiny model only (test_random_model and the vLLM tests need the embedded model, which stays here).
part suite 200 "$PY" -m pytest -v -p no:cacheprovider -m "not slow" tests/core/llm/test_hf.py \
    tests/tailoring/test_packing.py tests/tailoring/test_generate.py tests/bench/test_pi_throughput.py \
    tests/bench/test_pt_throughput.py tests/bench/test_judge_verdicts.py tests/tailoring/test_verdicts.py

{
    echo "=== summary ($SIZE model, ${SECONDS}s of a ${BUDGET}s budget)"
    for name in "${ORDER[@]}"; do printf '  %-10s %s (%ss)\n' "$name" "${STATUS[$name]}" "${SPENT[$name]}"; done
    grep -h "random .* Llama" "$OUT/setup.log" | sed 's/^/  /' || true
    for log in test_cuda suite; do
        [[ -f $OUT/$log.log ]] && tail -1 "$OUT/$log.log" | sed "s/^/  $log: /"
    done
    grep -hE "^(largest|greedy|SFT loss|vLLM greedy)" "$OUT/test_cuda.log" 2>/dev/null | sed 's/^/  test_cuda: /' || true
    "$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
if (out / "engines.json").exists():
    e = json.loads((out / "engines.json").read_text())
    print(f"  engines: {e['prompts']} prompts (~{e['prompt_tokens_mean']} tokens), max {e['max_tokens']} new, GPU {e['gpu']}")
    for name, f in e["engines"].items():
        where = f" on {f['device']} {f['dtype']}" if "device" in f else f" {e['vllm_dtype']}"
        print(f"    {name:<10}{where}: start {f['start_s']}s, generate {f['seconds']}s, {f['tokens']} tokens, "
              f"{f['tokens_per_s']} tok/s, same as hf_chat {f['same_as_hf_chat']:.0%}")
if (out / "pt.json").exists():
    t = json.loads((out / "pt.json").read_text())["training"]
    r = t["real_tokens_per_s"]
    print(f"  pt: LoRA SFT, {t['examples']} examples (~{t['tokens_per_example']} tokens), real tokens/s: batch "
          f"{t['paper_batch_size']} {r['paper']}, batch {t['larger_batch_size']} padded {r['larger']} "
          f"({t['larger_padding_share']:.0%} padding), padding-free {r['padding_free']}: "
          f"{t['padding_free_vs_padded_tokens_per_s']}x padded")
EOF
} 2>&1 | tee "$OUT/summary.txt"
rm -rf "$WORK"
for name in "${ORDER[@]}"; do [[ ${STATUS[$name]} == ok ]] || exit 1; done
exit 0
