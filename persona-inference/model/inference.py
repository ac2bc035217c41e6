"""Persona inference: for each row, the persona of a user who prefers ``chosen``, and one who prefers ``rejected``."""

from __future__ import annotations

import re

from persona_core.layout import SIDES, persona_id
from persona_core.llm import ModelType
from persona_core.llm.base import Request
from persona_core.prompts import chat_request
from persona_inference.model.arguments import ExperimentArguments
from persona_inference.model.experiment import Experiment, Inputs, Plan, ResultsPlace

PERSONA_PREFIX = "The user is"
# Sent as the start of the answer where the backend allows it (hf_chat, anthropic); keeps even a 135M model
# on the "The user is ... prefers ..." form, which it otherwise rarely completes with a preference.
GUIDED_PREFIX = "The user is someone who prefers"
_LEFTOVERS = re.compile(r"^(persona|answer|output)\s*:\s*", re.IGNORECASE)
_RUN_ON = re.compile(r"\s*\b(Prompt|Persona|Response(?: [AB12])?)\s*:.*$", re.DOTALL)
"""A template label the model went on to write after its persona (the next few-shot turn, a response)."""


def build_requests(
    dataset, rows: range, template: str, prefix: str = PERSONA_PREFIX
) -> tuple[list[Request], dict[str, dict]]:
    """Two requests per row, ordered as the seed: every chosen-side request, then every rejected-side one."""
    requests, meta = [], {}
    for side in SIDES:
        other = "rejected" if side == "chosen" else "chosen"
        for index in rows:
            row = dataset[index]
            request_id = persona_id(index, side, row)
            values = {
                "prompt": row["prompt"].strip(),
                "preferred": row[side].strip(),
                "other": row[other].strip(),
            }
            requests.append(chat_request(request_id, template, prefix, **values))
            meta[request_id] = {"row": index, "side": side}
    return requests, meta


def clean_persona(text: str) -> str:
    """The persona in a generation: its whole first line (the first one naming "The user", else the first that is not
    empty), from "The user" on, up to any template label the model ran on into; whitespace collapsed, a final period
    added. Sentences are never split, so abbreviations (Ph.D., U.S., e.g.) and a second sentence stay."""
    lines = [_LEFTOVERS.sub("", line.strip().strip('"').strip()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    line = next((line for line in lines if "The user" in line), lines[0] if lines else "")
    line = line[max(line.find("The user"), 0) :]
    persona = " ".join(_RUN_ON.sub("", line).split()).strip(' "')
    if persona and persona[-1] not in ".!?":
        persona += "."
    return persona


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


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the two texts' lower-cased words (0 when either has none)."""
    words, other = (set(re.findall(r"[a-z']+", text.lower())) for text in (a, b))
    return len(words & other) / len(words | other) if words and other else 0.0


def copies_example(persona: str, examples: list[str], threshold: float = 0.6) -> bool:
    """Whether a persona mostly repeats a few-shot example (word overlap), i.e. is not about its own row."""
    return any(word_overlap(persona, example) >= threshold for example in examples)


NEAR_IDENTICAL = 0.8
"""Word overlap from which a row's two personas count as nearly the same user (they explain no preference)."""


def side_agreement(records: list[dict]) -> dict:
    """Rows whose chosen-side and rejected-side personas are identical, or nearly so (word overlap >= 0.8)."""
    by_row: dict[int, dict[str, str]] = {}
    for record in records:
        by_row.setdefault(record["row"], {})[record["side"]] = record["persona"]
    pairs = [(sides["chosen"], sides["rejected"]) for sides in by_row.values() if len(sides) == 2]
    identical = sum(" ".join(a.lower().split()) == " ".join(b.lower().split()) for a, b in pairs)
    near = sum(word_overlap(a, b) >= NEAR_IDENTICAL for a, b in pairs) - identical
    return {"identical_sides": identical, "near_identical_sides": near}


def finish_record(record: dict) -> dict:
    record["persona"] = clean_persona(record["raw_text"])
    return record


class PersonaInference(Experiment):
    """Two personas per row, one for each side; the summary counts well-formed ones, copied examples, and rows whose
    two sides got the same persona (which explains no preference). The run record says the data's format, the bad
    rows skipped and the prompts cut to fit (each cut request's record says so too, as ``prompt_cut``)."""

    name = "persona_inference"
    label = "persona inference"
    data_note = ""
    """The rows' format, bad rows skipped and prompts cut, for the console summary (set by ``plan``)."""

    def plan(self, settings: ExperimentArguments, place: ResultsPlace, inputs: Inputs, template: str) -> Plan:
        dataset, rows = inputs.dataset, inputs.rows
        prefix = settings.persona_prefix or (
            GUIDED_PREFIX if settings.model_type in (ModelType.hf_chat, ModelType.vllm) else PERSONA_PREFIX
        )
        requests, meta = build_requests(dataset, rows, template, prefix)
        for record in meta.values():
            if record["row"] in dataset.cut:
                record["prompt_cut"] = dataset.cut[record["row"]]
        skipped, cut = len(dataset.skipped), len(dataset.cut)
        self.data_note = f"{dataset.format.value} data" + (f", {skipped} bad rows skipped" if skipped else "")
        self.data_note += f", {cut} prompts cut to fit" if cut else ""
        return Plan(
            requests,
            meta,
            f"({len(rows)} rows x 2 sides)",
            fingerprint={"persona_prefix": prefix},
            record={"rows": len(rows), **dataset.summary()},
            record_model_input=True,
        )

    finish = staticmethod(finish_record)

    def summarize(self, records: list[dict], template: str) -> dict:
        personas = [r["persona"] for r in records]
        examples = example_personas(template)
        return {
            "well_formed": sum(map(is_well_formed, personas)),
            "copied_example": sum(copies_example(p, examples) for p in personas),
            **side_agreement(records),
        }

    def report(self, records: list[dict], stats, summary: dict, llm) -> str:
        return (
            f"{len(records)} personas for {len({r['row'] for r in records})} rows ({stats.reused} reused, "
            f"{stats.ok} new; {summary['well_formed']} well-formed, {summary['copied_example']} copying a prompt "
            f"example; rows whose two sides got the same persona: {summary['identical_sides']} identical, "
            f"{summary['near_identical_sides']} nearly) in {stats.seconds:.1f}s; {self.data_note}"
            + prefill_note(stats)
        )


def prefill_note(stats) -> str:
    """How a server treated the persona prefix, when one was sent as the start of the answer."""
    if not (stats.prefill_continued or stats.prefill_answered_afresh):
        return ""
    return (
        f"; the server continued the persona prefix in {stats.prefill_continued} answers and answered afresh in "
        f"{stats.prefill_answered_afresh} (each kept once)"
    )
