"""Shared test helpers: a tiny random model (session fixture), persona-inference data and a deterministic fake
LLM answer, a hand-made persona-tailoring dataset and run arguments. Test modules import the plain helpers
(``from tests.conftest import write_preferences``); pytest finds the fixtures itself."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# --- a tiny random causal LM with a real tokenizer, built from a config in seconds (as TRL's tests do) ---------

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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama + tokenizer folder, shared by the whole test session (read-only: copy to modify)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


# --- persona inference: a tiny preference dataset, a fake LLM answer, runs against the loopback server ---------

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


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real keys, no stray .env: the working folder is the test's own."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "CO_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


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


# --- persona tailoring: a hand-made tailoring dataset and run arguments -----------------------------------------

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
    from persona_tailoring.model.generate import (
        GeneratorArguments,
        InferenceArguments,
        TailoredGenerationArguments,
    )
    from persona_tailoring.model.train import LoraArguments, TailoringArguments

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
