"""Reading PT outputs (this toolkit's JSONL records or the paper's JSON arrays) and pairing base with test rows.

Rows are paired by row id when both files carry ids, else by prompt text; never by position. The paper's
prompts carry the persona on a ``Persona:`` line or appended inline (``... I am ...``) for models trained
without personas, so the base and test prompts differ in their persona parts: they are matched on the text
before the persona, falling back to "one prompt is the other's start" where the persona cannot be told apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from persona_core.errors import UsageError
from persona_tailoring.model.templates import first_person

# Where an inline persona starts in the paper's prompts for models trained without personas.
_INLINE_PERSONA_MARKERS = (" I am ", " The user ")
_SPECIAL_TOKENS = re.compile(r"<\|[a-z_]+\|>|</s>")
# A generation that runs on into a new template block: cut there.
_LEFTOVER = re.compile(r"Prompt:|^\s*(?:Persona|Response):", re.MULTILINE)


class ResponseView(str, Enum):
    """What of a generated response the judge sees."""

    cleaned = "cleaned"  # special tokens dropped, cut at a template leftover, the dataset's primer in front
    paper = (
        "paper"  # as the authors' judge saw it: 'Prompt:' and special tokens removed, nothing cut, no primer
    )


@dataclass
class OutputRow:
    position: int
    row_id: str | None
    body: str
    """The prompt text between ``Prompt:`` and ``Response:`` (question plus any inline persona)."""
    question: str | None
    """The question without persona; None while an inline persona cannot be told apart from it."""
    guess: str
    """The question if known, else a heuristic split at the last inline-persona marker."""
    persona: str
    response: str


def normalize(text: str) -> str:
    return " ".join(text.split())


def clean_response(text: str, prefix: str = "") -> str:
    """Drop special tokens and anything after a template leftover; prepend the prompt's response prefix.

    Mnemonic prompts end in ``Response: Negligible sounds like``: the model continues that prefix, so the
    judge sees prefix and continuation together.
    """
    text = _SPECIAL_TOKENS.sub("", text or "")
    leftover = _LEFTOVER.search(text)
    if leftover:
        text = text[: leftover.start()]
    if prefix:
        text = prefix + (text if text[:1].isspace() else " " + text)
    return text.strip()


def paper_view(text: str) -> str:
    """The response as the authors' judge read it: every 'Prompt:' and end-of-text token removed, nothing cut."""
    return _SPECIAL_TOKENS.sub("", (text or "").replace("Prompt:", "")).strip()


def split_prompt(prompt: str, has_persona: bool | None) -> tuple[str, str | None, str, str]:
    """(body, question or None, persona, response prefix) of one model input.

    ``has_persona`` False means the configuration used no persona (the body is the question); None means
    unknown. A few-shot input holds several ``Prompt:`` blocks: the last one is the row's own.
    """
    text = prompt.strip()
    if not text.startswith("Prompt:") and "\nPrompt:" not in text:
        return text, text, "", ""
    block = ("\n" + text).rsplit("\nPrompt:", 1)[1]
    prefix = ""
    if "\nResponse:" in block:
        block, prefix = block.rsplit("\nResponse:", 1)
    body = block.strip()
    prefix = prefix.strip()
    if "\nPersona:" in body:
        question, persona = body.split("\nPersona:", 1)
        return body, question.strip(), persona.strip(), prefix
    if has_persona is False:
        return body, body, "", prefix
    return body, None, "", prefix


def _heuristic_split(body: str) -> tuple[str, str]:
    cut = max(body.rfind(marker) for marker in _INLINE_PERSONA_MARKERS)
    return (body[:cut].strip(), body[cut:].strip()) if cut > 0 else (body, "")


def read_outputs(
    path: str | Path,
    has_persona: bool | None = None,
    flag: str = "file",
    view: ResponseView = ResponseView.cleaned,
) -> list[OutputRow]:
    """Rows of one output file: JSONL records ``{id, prompt, persona, response}`` or a JSON array."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"{flag} '{path}' does not exist: run PT inference for that configuration or pass an existing file"
        )
    text = path.read_text(encoding="utf-8")
    try:
        records = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as err:
        raise UsageError(
            f"{flag} '{path}' is not JSON lines or a JSON array ({err.msg}, line {err.lineno})"
        ) from None
    if not records:
        raise UsageError(f"{flag} '{path}' holds no rows: pass a file of PT outputs")
    rows = []
    for position, record in enumerate(records):
        missing = [key for key in ("prompt", "response") if not isinstance(record, dict) or key not in record]
        if missing:
            raise UsageError(
                f"{flag} '{path}' row {position} lacks {', '.join(missing)}: PT outputs need 'prompt' and 'response'"
            )
        rows.append(_to_row(position, record, has_persona, view))
    return rows


def _to_row(
    position: int, record: dict, has_persona: bool | None, view: ResponseView = ResponseView.cleaned
) -> OutputRow:
    body, question, persona, prefix = split_prompt(str(record["prompt"]), has_persona)
    given = str(record.get("persona") or "").strip()
    if given:
        for inline_form in (given, first_person(given)):  # models trained without personas get "I am ..."
            if question is None and body.endswith(inline_form):
                question = body[: -len(inline_form)].strip()
        persona = given
    elif "persona" in record and question is None:
        question = body  # a toolkit record saying "no persona"
    guess, inline = (question, persona) if question is not None else _heuristic_split(body)
    row_id = record.get("id")
    return OutputRow(
        position=position,
        row_id=None if row_id is None else str(row_id),
        body=body,
        question=question,
        guess=guess,
        persona=persona or ("" if question is not None else inline),
        response=(
            paper_view(str(record["response"] or ""))
            if view == ResponseView.paper
            else clean_response(str(record["response"] or ""), prefix)
        ),
    )


@dataclass
class Pair:
    id: str
    question: str
    persona: str
    """The persona the personalization rubric uses: the test configuration's, else the base's."""
    base: OutputRow
    test: OutputRow


def match_rows(base: list[OutputRow], test: list[OutputRow], base_name: str, test_name: str) -> list[Pair]:
    """Pair every base row with one test row, in base order; any row left over is a UsageError."""
    if all(r.row_id is not None for r in base + test):
        matched = _match_by_id(base, test, base_name, test_name)
    else:
        matched = _match_by_text(base, test, base_name, test_name)
    pairs, seen = [], defaultdict(int)
    for b, t in matched:
        question = b.question or t.question or _question_from_prefix(b, t)
        if b.question is None:
            b.persona = b.body[len(question) :].strip() if b.body.startswith(question) else b.persona
        if t.question is None:
            t.persona = t.body[len(question) :].strip() if t.body.startswith(question) else t.persona
        key = (
            b.row_id if b.row_id is not None else hashlib.sha1(normalize(question).encode()).hexdigest()[:10]
        )
        seen[key] += 1
        pair_id = key if seen[key] == 1 else f"{key}-{seen[key] - 1}"
        pairs.append(Pair(pair_id, question, t.persona or b.persona, b, t))
    return pairs


def _question_from_prefix(b: OutputRow, t: OutputRow) -> str:
    """Both questions unknown (two inline-persona files): the longer heuristic question that starts both bodies."""
    for guess in sorted({b.guess, t.guess}, key=len, reverse=True):
        if _starts_with(b.body, guess) and _starts_with(t.body, guess):
            return guess
    return min(b.guess, t.guess, key=len)


def _match_by_id(base, test, base_name, test_name):
    for rows, name in ((base, base_name), (test, test_name)):
        ids = [r.row_id for r in rows]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise UsageError(
                f"{name} has row id '{duplicate}' more than once: pass outputs with one row per id"
            )
    test_by_id = {r.row_id: r for r in test}
    base_ids = {r.row_id for r in base}
    only_base = [r.row_id for r in base if r.row_id not in test_by_id]
    only_test = [r.row_id for r in test if r.row_id not in base_ids]
    if only_base or only_test:
        raise UsageError(
            f"{base_name} and {test_name} hold different rows ({len(only_base)} ids only in base, "
            f"{len(only_test)} only in test, e.g. '{(only_base or only_test)[0]}'): judge outputs of the same test split"
        )
    pairs = []
    for b in base:
        t = test_by_id[b.row_id]
        if (
            b.question is not None
            and t.question is not None
            and normalize(b.question) != normalize(t.question)
        ):
            raise UsageError(
                f"row id '{b.row_id}' has different prompts in {base_name} ('{b.question[:60]}') and "
                f"{test_name} ('{t.question[:60]}'): judge outputs of the same test split"
            )
        pairs.append((b, t))
    return pairs


def _starts_with(body: str, question: str) -> bool:
    body, question = normalize(body), normalize(question)
    return bool(question) and (body == question or body.startswith(question + " "))


def _prefix_keys(b: OutputRow, t: OutputRow) -> list[str]:
    """Questions that start the other row's prompt; a heuristic question only counts against another heuristic one."""
    both_unknown = b.question is None and t.question is None
    keys = []
    if (b.question is not None or both_unknown) and _starts_with(t.body, b.guess):
        keys.append(b.guess)
    if (t.question is not None or both_unknown) and _starts_with(b.body, t.guess):
        keys.append(t.guess)
    return keys


def _match_by_text(base, test, base_name, test_name):
    """Exact question text first (k-th duplicate with k-th duplicate), then "one question starts the other's prompt"."""
    waiting = defaultdict(list)
    for t in test:
        waiting[normalize(t.guess)].append(t)
    matched: dict[int, OutputRow] = {}
    for b in base:
        queue = waiting.get(normalize(b.guess))
        if queue:
            matched[b.position] = queue.pop(0)
    left_base = [b for b in base if b.position not in matched]
    left_test = [t for queue in waiting.values() for t in queue]
    for b in left_base:
        candidates = [(len(q), t) for t in left_test for q in _prefix_keys(b, t)]
        if candidates:
            best = max(candidates, key=lambda c: c[0])[1]
            matched[b.position] = best
            left_test.remove(best)
    unmatched_base = [b for b in base if b.position not in matched]
    if unmatched_base or left_test:
        example = (unmatched_base or left_test)[0]
        raise UsageError(
            f"{base_name} ({len(base)} rows) and {test_name} ({len(test)} rows) do not hold the same prompts: "
            f"{len(unmatched_base)} base and {len(left_test)} test rows have no partner "
            f"(e.g. '{example.guess[:80]}'): judge outputs of the same test split"
        )
    return [(b, matched[b.position]) for b in base]
