"""Prompt templates: one file per experiment and known dataset, with a generic fallback for any other name."""

from __future__ import annotations

import re
from pathlib import Path

from persona_inference.errors import UsageError

DEFAULT_PROMPT_DIR = Path(__file__).resolve().parent / "prompts"



def dataset_slug(name: str) -> str:
    """'Anthropic HHH' -> 'anthropic_hhh': the file-name form of a dataset name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_template(experiment: str, dataset_name: str, prompt_dir: str | Path | None = None) -> tuple[str, Path]:
    """The template for ``experiment`` on ``dataset_name`` (the generic one for unknown datasets)."""
    folder = Path(prompt_dir or DEFAULT_PROMPT_DIR) / experiment
    slug = dataset_slug(dataset_name)
    for candidate in (folder / f"{slug}.txt", folder / "generic.txt"):
        if candidate.exists():
            return candidate.read_text(encoding="utf-8"), candidate
    raise UsageError(f"no prompt template for {experiment} in {folder}: add {slug}.txt or generic.txt there")


def fill(template: str, **values: str) -> str:
    """Fill ``{name}`` slots; values may contain braces (only the template's own slots are replaced)."""
    missing = [k for k in re.findall(r"\{(\w+)\}", template) if k not in values]
    if missing:
        raise UsageError(f"prompt template needs {', '.join(sorted(set(missing)))}; it offers {', '.join(values)}")
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
