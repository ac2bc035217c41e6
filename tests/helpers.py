"""Plain helpers shared by test modules (fixtures live in conftest.py): a tiny random model, persona-inference data
and a deterministic fake LLM answer, a hand-made persona-tailoring dataset, run arguments, and judge outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

from persona_core.layout import paper_data_dir
from persona_tailoring.model.arguments import (
    GeneratorArguments,
    InferenceArguments,
    LoraArguments,
    TailoredGenerationArguments,
    TailoringArguments,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# --- a tiny random causal LM with a real tokenizer, built from a config in seconds (as TRL's tests do) -------------

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CORPUS = [
    "The user is a busy parent who prefers short, practical answers over long explanations.",
    "Prompt: How do I boil an egg?\nPersona: The user is a beginner cook.\nResponse: Put it in boiling water.",
    "Question: What is the capital of France? Answer A: Paris. Answer B: I am not sure. Response 1 2",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`",
]


def build_tiny_model(folder: str | Path, seed: int = 0, **config_changes) -> Path:
    """Write a 2-layer Llama with a byte-level BPE tokenizer (pad, eos, chat template) into ``folder``.

    ``config_changes`` override LlamaConfig values (vLLM's CPU attention needs ``VLLM_TINY_CONFIG``'s head size)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(seed)
    values = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,  # room for the built-in templates (about 2 characters a token)
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config = LlamaConfig(**(values | config_changes))
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


MIXED_PROMPTS = [
    "Hi",
    "How do I boil an egg so that the yolk stays runny?",
    "Question: What is the capital of France? Answer A: Paris. Answer B: I am not sure.",
    "abc",
    "The user is a busy parent who prefers short, practical answers over long explanations. " * 3,
    "Prompt: How do I boil an egg?",
]
"""Prompts of very different lengths (so batches pad and shared prefixes vary) for local-generation tests."""


def sharpen(model) -> None:
    """Weights ~ N(0, 1/fan_in), from a fixed seed on the CPU, instead of the tiny model's small initial ones: with
    those it repeats one token whatever the prompt, and any comparison of answers would be vacuous."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                values = torch.randn(parameter.shape, generator=generator) / parameter.shape[1] ** 0.5
                parameter.copy_(values.to(parameter.device, parameter.dtype))


VLLM_TINY_CONFIG = {"hidden_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1}
"""Head size 32, the smallest vLLM's CPU attention supports."""


# --- persona inference: a tiny preference dataset, a fake LLM answer, runs against the loopback server -------------

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "OPEN_AI_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_TOKEN",
    "CO_API_KEY",
    "COHERE_TOKEN",
)


TEMPLATE = "Question: {prompt}\nAnswer A: {preferred}\nAnswer B: {other}\nPersona:"
"""The tests' own prompt template, so that ``fake_persona`` can read any prompt whatever the shipped wording."""


def write_template(prompt_dir: Path) -> Path:
    """``prompt_dir`` holding TEMPLATE as the persona-inference template for every dataset name."""
    path = prompt_dir / "persona_inference" / "generic.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE, encoding="utf-8")
    return prompt_dir


def write_preferences(path: Path, n_rows: int) -> Path:
    """``n_rows`` preference rows whose fields carry the row number, so every answer can be traced back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n_rows):
            row = {"prompt": f"question q{i}?", "chosen": f"good answer c{i}", "rejected": f"bad answer r{i}"}
            handle.write(json.dumps(row) + "\n")
    return path


def fake_persona(prompt: str, body: dict | None = None) -> str:
    """The persona a perfect model would give to a TEMPLATE prompt: names the question and the preferred answer.

    It ends with a newline and junk, which the backend's stop string ``\\n`` must cut off.
    """
    question = re.findall(r"Question: (.*)", prompt)[-1]
    preferred = re.findall(r"Answer A: (.*)", prompt)[-1]
    return f"The user is someone asking '{question}' who prefers '{preferred}'.\nPersona: junk after the stop"


def expected_persona(row: int, side: str) -> str:
    answer = f"good answer c{row}" if side == "chosen" else f"bad answer r{row}"
    return f"The user is someone asking 'question q{row}?' who prefers '{answer}'."


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def api_args(data: Path, res_dir: Path, model_type: str, base_url: str, *extra: str) -> list[str]:
    """Command-line arguments of a persona-inference run against the loopback server, with TEMPLATE."""
    prompt_dir = write_template(Path(res_dir).parent / "prompts")
    return [
        "--prompt_dir",
        str(prompt_dir),
        "--model_type",
        model_type,
        "--model_name",
        "loopback-model",
        "--base_url",
        base_url,
        "--dataset_name",
        str(data),
        "--res_dir",
        str(res_dir),
        "--request_timeout",
        "2",
        "--max_retries",
        "3",
        *extra,
    ]


def clean_env(**keys: str) -> dict:
    """The current environment without any API keys or SDK base URLs, plus ``keys``."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES and not k.endswith("_BASE_URL")}
    env.pop("CO_API_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env | keys


def run_module(args: list[str], env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m persona_inference.model.run_model ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "persona_inference.model.run_model", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- persona tailoring: a hand-made tailoring dataset and run arguments --------------------------------------------

PERSONA_COLUMNS = (
    "chosen_persona_gold",
    "rejected_persona_gold",
    "chosen_persona_retr",
    "rejected_persona_retr",
)
SPLITS = {"fewshot": 2, "sft_train": 4, "sft_val": 2, "dpo_train": 4, "dpo_val": 2, "test": 3}


def tailoring_row(split: str, i: int) -> dict:
    """Every cell names its own column and row, so a test can see exactly which column ended up where."""
    tag = f"{split}{i}"
    return {
        "prompt": f"question {tag}?",
        "chosen": f"chosen answer {tag}.",
        "rejected": f"rejected answer {tag}.",
        "chosen_persona_gold": f"The user is CG-{tag} and prefers detail.",
        "rejected_persona_gold": f"The user is RG-{tag} and prefers brevity.",
        "chosen_persona_retr": f"The user is CR-{tag} and prefers examples.",
        "rejected_persona_retr": f"The user is RR-{tag} and prefers jokes.",
    }


def write_tailoring_dataset(
    folder: Path, splits: dict[str, int] = SPLITS, blank: dict[str, list[str]] | None = None
) -> Path:
    """A per-split JSONL folder; ``blank[split]`` lists columns to leave empty in that split."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in splits.items():
        rows = [tailoring_row(split, i) for i in range(n)]
        for row in rows:
            for column in (blank or {}).get(split, []):
                row[column] = ""
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def make_args(tmp_path: Path, model_dir: Path, data_dir: Path, **overrides):
    """run_model's argument groups for a fast run on the tiny model (outputs under ``tmp_path``): each override goes
    to the group with that field."""
    values = dict(
        base_model_name=str(model_dir),
        model_nickname="tiny",
        dataset_name="Handmade",
        hf_dataset_name=str(data_dir),
        model_save_dir=str(tmp_path / "models"),
        results_save_dir=str(tmp_path / "results"),
        max_tokens=8,
        batch_size=2,
    )
    values.update(overrides)
    groups = {
        "tailoring": TailoringArguments,
        "lora": LoraArguments,
        "inference": InferenceArguments,
        "generator": GeneratorArguments,
        "generation": TailoredGenerationArguments,
    }
    built = {}
    for name, group in groups.items():
        names = {f.name for f in dataclasses.fields(group)}
        built[name] = group(**{k: v for k, v in values.items() if k in names})
    unknown = set(values) - {f.name for group in groups.values() for f in dataclasses.fields(group)}
    assert not unknown, f"no run_model group has {unknown}"
    return TinyRun(**built)


class TinyRun(typing.NamedTuple):
    """The groups ``make_args`` builds, each handed to the functions that read it."""

    tailoring: typing.Any
    lora: typing.Any
    inference: typing.Any
    generator: typing.Any
    generation: typing.Any


TINY_TRAINING = {
    "num_train_epochs": 1,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "max_length": 128,
}


def training_flags(**overrides) -> list[str]:
    """SFTConfig/DPOConfig flags for a fast run on the tiny model (as ``run_model`` passes them to TRL)."""
    return [part for key, value in (TINY_TRAINING | overrides).items() for part in (f"--{key}", str(value))]


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def sigkill_after(
    command: list[str], checkpoint: Path, lines: int, env: dict, cwd: Path, timeout: float = 90
) -> int:
    """Start ``command``, SIGKILL it once ``checkpoint`` holds ``lines`` records; return the lines it left."""
    import signal
    import time

    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while count_lines(checkpoint) < lines and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, "the process ended before it was killed"
    return count_lines(checkpoint)


# --- judging and win rates: a comparison's configuration, toolkit outputs, Prometheus verdicts ---------------------


def side(label: str, method=None, training_type=None, inference_type=None) -> dict:
    return {
        "label": label,
        "file": f"{label}.jsonl",
        "method": method,
        "training_type": training_type,
        "inference_type": inference_type,
    }


def comparison(base: str = "x", test: str = "y", dataset: str = "", **test_config) -> dict:
    """A comparison's configuration as the judge stores it in each judgment."""
    return {"dataset": dataset, "model_nickname": None, "base": side(base), "test": side(test, **test_config)}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def toolkit_outputs(folder: Path, n: int = 4) -> tuple[Path, Path]:
    """Base without persona, test with one; the test rows in reverse order (matching must not be positional)."""
    base = [
        {"id": f"r{i}", "prompt": f"Question number {i}?", "persona": "", "response": f"BASE answer {i}"}
        for i in range(n)
    ]
    test = [
        {
            "id": f"r{i}",
            "prompt": f"Question number {i}?",
            "persona": f"The user is person {i} and prefers brevity.",
            "response": f"TEST answer {i}<|end_of_text|>\nPrompt: a leftover example",
        }
        for i in range(n)
    ]
    return write_jsonl(folder / "base.jsonl", base), write_jsonl(folder / "test.jsonl", test[::-1])


def judge_view(prompt: str) -> tuple[str, str, int]:
    """(metric, which side is Response A, pair index) read back from a Prometheus prompt."""
    response_a = prompt.split("###Response A:")[1].split("###Response B:")[0].strip()
    rubric = prompt.split("###Score Rubric:")[1]
    metric = "personalization" if "persona" in rubric else "response_quality"
    side_a = "test" if response_a.startswith("TEST") else "base"
    return metric, side_a, int(re.search(r"answer (\d+)", response_a).group(1))


def verdict(letter: str) -> str:
    return f"Response {letter} follows the rubric more closely. [RESULT] {letter}"


def run_argv(server, folder: Path, *extra: str) -> list[str]:
    return [
        "--base_file",
        str(folder / "base.jsonl"),
        "--test_file",
        str(folder / "test.jsonl"),
        "--judge_model_type",
        "open_ai",
        "--judge_model_name",
        "prometheus-eval/prometheus-7b-v2.0",
        "--base_url",
        server.url,
        "--output_dir",
        str(folder / "out"),
        *extra,
    ]


# --- merging: an adapter's logits against its merged model's -------------------------------------------------------


def adapter_and_merged_logits(adapter_dir, merged_dir, tokenizer_text="Prompt: question?\nResponse: answer"):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_name = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    inputs = tokenizer(tokenizer_text, return_tensors="pt")
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_name), str(adapter_dir)
    ).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        adapted_logits = adapted(**inputs).logits
        with adapted.disable_adapter():
            assert not torch.equal(adapted(**inputs).logits, adapted_logits), "the adapter changes nothing"
        return adapted_logits, merged(**inputs).logits


# --- building datasets: preference rows whose prompts share no word, and their gold personas -----------------------

WORDS = (
    "apple bridge candle dolphin engine falcon garden harbor island jungle kettle lantern meadow needle orchard "
    "pepper quartz river saddle tunnel umbrella violin walnut yacht zebra anchor basket cactus desert ember "
    "forest glacier hammer igloo jacket koala lemon marble nectar oyster parrot quiver rocket signal timber "
    "urchin velvet willow xylophone yogurt zipper acorn beacon cobalt dagger"
).split()
PAPER_BEAVERTAILS = paper_data_dir() / "persona-tailoring-BeaverTails"


def make_rows(n: int, twins: int = 0) -> list[dict]:
    """``n`` rows with prompts sharing no word; the last ``twins`` rows repeat the prompts of the first ones."""
    rows = []
    for i in range(n):
        source = i - (n - twins) if i >= n - twins else i
        prompt = f"Tell me about {WORDS[source % len(WORDS)]} {WORDS[(3 * source + 1) % len(WORDS)]}?"
        rows.append(
            {"prompt": prompt, "chosen": f"Short answer {i}.", "rejected": f"A long answer number {i}."}
        )
    return rows


def persona(row: int, side: str) -> str:
    return f"The user is reader {row} and prefers {side} answers."


# --- the scripts, with a stand-in $PYTHON: which modules they start, with which flags ------------------------------


def run_script(script: str, tmp_path: Path, **variables: str) -> list[list[str]]:
    """Run ``scripts/{script}`` with $PYTHON a stand-in that answers layout queries with the real module and only
    records every other command line; returns the recorded command lines, in order."""
    log = tmp_path / f"{script}.log"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/bash\n"
        f'if [ "$1 $2" = "-m persona_core.layout_cli" ]; then exec "{sys.executable}" "$@"; fi\n'
        f'printf "%s\\0" "$@" >> "{log}"; printf "\\n" >> "{log}"\n'
        '[ "$1" = - ] && cat > /dev/null\n'
        "exit 0\n"
    )
    python.chmod(0o755)
    env = os.environ | {"PYTHON": str(python), **variables}
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line.split("\0")[:-1] for line in log.read_text().splitlines()] if log.exists() else []


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- generation from the tailored model through an API: its answers and arguments ----------------------------------


OUTPUT_NAME = "sft_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"


def loopback_answer(prompt: str, body: dict) -> str:
    """Like a raw LM: answers, then runs on into another example (which the stop strings must cut)."""
    question = prompt.rsplit("Prompt: ", 1)[1].split("\n")[0]
    return f" Answer to {question}\nPrompt: something else\nResponse: more"


def api_argv(data: Path, tmp_path: Path, url: str, *extra: str) -> list[str]:
    return [
        "--method",
        "sft",
        "--stage",
        "infer",
        "--backend",
        "open_ai",
        "--base_url",
        url,
        "--server_model_name",
        "served-model",
        "--hf_dataset_name",
        str(data),
        "--dataset_name",
        "Handmade",
        "--model_nickname",
        "tiny",
        "--model_save_dir",
        str(tmp_path / "models"),
        "--results_save_dir",
        str(tmp_path / "results"),
        *extra,
    ]


# --- judging: the file names of a comparison's sides, and a judge that prefers the test side -----------------------

BASE_NAME = "dpo_Persona(training_type=none, inference_type=none).jsonl"
TEST_NAME = "dpo_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"
INLINE_NAME = "dpo_Persona(training_type=none, inference_type=gold-chosen).jsonl"


def prefers_test(prompt, body):
    _, side_a, _ = judge_view(prompt)
    return verdict("A" if side_a == "test" else "B")
