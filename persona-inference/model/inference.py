"""Persona inference: for each row, the persona of a user who prefers ``chosen``, and one who prefers ``rejected``."""

from __future__ import annotations

import re

from persona_core.data import row_key
from persona_core.llm.base import Request
from persona_core.prompts import chat_request

PERSONA_PREFIX = "The user is"
# Sent as the start of the answer where the backend allows it (hf_chat, anthropic); keeps even a 135M model
# on the "The user is ... prefers ..." form, which it otherwise rarely completes with a preference.
GUIDED_PREFIX = "The user is someone who prefers"
SIDES = ("chosen", "rejected")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_LEFTOVERS = re.compile(r"^(persona|answer|output)\s*:\s*", re.IGNORECASE)


def build_requests(
    dataset, rows: range, template: str, prefix: str = PERSONA_PREFIX
) -> tuple[list[Request], dict[str, dict]]:
    """Two requests per row, ordered as the seed: every chosen-side request, then every rejected-side one."""
    requests, meta = [], {}
    for side in SIDES:
        other = "rejected" if side == "chosen" else "chosen"
        for index in rows:
            row = dataset[index]
            request_id = f"{index}-{side}-{row_key(row)}"
            values = {"prompt": row["prompt"].strip(), "preferred": row[side].strip(), "other": row[other].strip()}
            requests.append(chat_request(request_id, template, prefix, **values))
            meta[request_id] = {"row": index, "side": side}
    return requests, meta


def clean_persona(text: str) -> str:
    """The first sentence of a generation, starting at "The user"; whitespace collapsed."""
    text = _LEFTOVERS.sub("", " ".join(text.split()).strip(' "'))
    start = text.find("The user")
    if start > 0:
        text = text[start:]
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0].strip()
    if sentence and sentence[-1] not in ".!?":
        sentence += "."
    return sentence


def is_well_formed(persona: str) -> bool:
    """One sentence "The user is ... prefer(s) ...", of a sensible length, without template leftovers."""
    words = persona.split()
    return (
        persona.startswith("The user")
        and "prefer" in persona
        and 8 <= len(words) <= 80
        and persona.endswith(".")
        and not re.search(r"Response [AB12]|Persona:|Prompt:|\n", persona)
    )


def example_personas(template: str) -> list[str]:
    """The personas a template shows as few-shot answers (its ``### assistant`` turns)."""
    return [t.strip() for t in re.findall(r"^### assistant\n(.*?)(?=^### |\Z)", template, flags=re.M | re.S)]


def copies_example(persona: str, examples: list[str], threshold: float = 0.6) -> bool:
    """Whether a persona mostly repeats a few-shot example (word overlap), i.e. is not about its own row."""
    words = set(re.findall(r"[a-z']+", persona.lower()))
    for example in examples:
        other = set(re.findall(r"[a-z']+", example.lower()))
        if words and len(words & other) / len(words | other) >= threshold:
            return True
    return False


def finish_record(record: dict) -> dict:
    record["persona"] = clean_persona(record["raw_text"])
    return record
