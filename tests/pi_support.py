"""Helpers for the persona-inference tests: a tiny preference dataset and a deterministic fake LLM answer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY_VARIABLES = ("OPENAI_API_KEY", "OPEN_AI_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_TOKEN", "CO_API_KEY", "COHERE_TOKEN")


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
        "--prompt_dir", str(prompt_dir),
        "--model_type", model_type,
        "--model_name", "loopback-model",
        "--base_url", base_url,
        "--dataset_name", str(data),
        "--res_dir", str(res_dir),
        "--request_timeout", "2",
        "--max_retries", "3",
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
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )
