"""Prompt templates: one file per experiment and known dataset, with a generic fallback for any other name."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from persona_core.errors import UsageError
from persona_core.llm.base import Request


def dataset_slug(name: str) -> str:
    """'Anthropic HHH' -> 'anthropic_hhh': the file-name form of a dataset name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_template(experiment: str, dataset_name: str, prompt_dir: str | Path) -> tuple[str, Path]:
    """The template for ``experiment`` on ``dataset_name`` in ``prompt_dir`` (the generic one for unknown datasets)."""
    folder = Path(prompt_dir) / experiment
    slug = dataset_slug(dataset_name)
    for candidate in (folder / f"{slug}.txt", folder / "generic.txt"):
        if candidate.exists():
            if candidate.stem == "generic" and slug not in ("generic", "sample"):
                warn_generic(experiment, dataset_name, folder)
            return candidate.read_text(encoding="utf-8"), candidate
    raise UsageError(f"no prompt template for {experiment} in {folder}: add {slug}.txt or generic.txt there")


@functools.cache
def warn_generic(experiment: str, dataset_name: str, folder: Path) -> None:
    """Say that ``dataset_name`` has no template of its own (a typo of a known name reads as its nearest match)."""
    import difflib
    import sys

    known = sorted(p.stem for p in folder.glob("*.txt") if p.stem != "generic")
    near = difflib.get_close_matches(dataset_slug(dataset_name), known, n=1, cutoff=0.6)
    hint = f" (did you mean the template {near[0]}.txt?)" if near else ""
    print(
        f"warning: no {experiment} template for '{dataset_name}'{hint}; using the generic template "
        f"{folder / 'generic.txt'}; templates of their own: {', '.join(known) or 'none'}",
        file=sys.stderr,
    )


def fill(template: str, **values: str) -> str:
    """Fill ``{name}`` slots; values may contain braces (only the template's own slots are replaced)."""
    missing = [k for k in re.findall(r"\{(\w+)\}", template) if k not in values]
    if missing:
        raise UsageError(
            f"prompt template needs {', '.join(sorted(set(missing)))}; it offers {', '.join(values)}"
        )
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


_SECTION = re.compile(r"^### (system|user|assistant)[ \t]*\n", re.MULTILINE)


def chat_request(request_id: str, template: str, prefill: str = "", **values: str):
    """A ``Request`` from a template, filling ``{slots}`` with ``values``.

    A template is either plain text (one user message) or chat sections introduced by lines
    ``### system``, ``### user`` and ``### assistant``: the optional system message, few-shot turns, and a
    final ``### user`` section holding the question. Few-shot turns help small models keep the format.
    """
    pieces = _SECTION.split(template)
    if len(pieces) == 1:
        return Request(request_id, fill(template, **values).strip(), prefill=prefill)
    turns = [(role, text.strip()) for role, text in zip(pieces[1::2], pieces[2::2], strict=True)]
    system = turns.pop(0)[1] if turns[0][0] == "system" else None
    if not turns or turns[-1][0] != "user":
        raise UsageError("a chat prompt template must end with a '### user' section")
    history = [{"role": role, "content": text} for role, text in turns[:-1]]
    return Request(request_id, fill(turns[-1][1], **values), system=system, history=history, prefill=prefill)
