"""Personas that explain nothing are counted: rows whose two sides got the same (or nearly the same) persona.

The persona is the whole first line of a generation: abbreviations and second sentences stay, run-ons go."""

import json
import re

import pytest

from bench.loopback import LoopbackLLMServer
from persona_inference.model import run_model
from persona_inference.model.inference import clean_persona, side_agreement, word_overlap
from tests.helpers import api_args, write_preferences


def record(row: int, side: str, persona: str) -> dict:
    return {"row": row, "side": side, "persona": persona}


def test_side_agreement_counts_identical_and_nearly_identical_rows():
    records = [
        record(0, "chosen", "The user is a cook who prefers short answers."),
        record(
            0, "rejected", "the user is a  cook who prefers short answers."
        ),  # identical up to case and spaces
        record(1, "chosen", "The user is a busy cook who prefers short, plain answers."),
        record(1, "rejected", "The user is a busy cook who prefers short plain answers too."),  # overlap 9/10
        record(2, "chosen", "The user is a nurse who prefers detail."),
        record(2, "rejected", "The user is a student who prefers jokes."),
        record(3, "chosen", "The user is alone."),  # its other side is missing: not a pair
    ]
    assert word_overlap(records[2]["persona"], records[3]["persona"]) >= 0.8
    assert word_overlap(records[4]["persona"], records[5]["persona"]) < 0.8
    assert side_agreement(records) == {"identical_sides": 1, "near_identical_sides": 1}


def test_run_record_and_summary_report_rows_with_the_same_persona_on_both_sides(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = write_preferences(tmp_path / "data.jsonl", 3)

    def same_for_both_sides_of_row_0(prompt: str, body: dict | None = None) -> str:
        question = re.findall(r"Question: (.*)", prompt)[-1]
        preferred = re.findall(r"Answer A: (.*)", prompt)[-1]
        if question == "question q0?":
            return "The user is a cook who prefers short answers."
        return f"The user asks about {question.rstrip('?')} and prefers {preferred}."

    with LoopbackLLMServer(same_for_both_sides_of_row_0) as server:
        assert run_model.main(api_args(data, tmp_path / "res", "open_ai", server.url + "/v1")) == 0
    run = json.loads(next((tmp_path / "res").rglob("persona_inference.run.json")).read_text())
    assert (run["identical_sides"], run["near_identical_sides"]) == (1, 0)
    assert "rows whose two sides got the same persona: 1 identical, 0 nearly" in capsys.readouterr().out


CASES = [
    ("The user is a Ph.D. student who prefers detail.", "The user is a Ph.D. student who prefers detail."),
    (
        "The user lives in the U.S. and prefers short answers.",
        "The user lives in the U.S. and prefers short answers.",
    ),
    (
        "The user likes examples, e.g. code, and prefers them.",
        "The user likes examples, e.g. code, and prefers them.",
    ),
    ("The user sees Dr. Smith weekly and prefers care.", "The user sees Dr. Smith weekly and prefers care."),
    ("The user weighs cats vs. dogs and prefers facts.", "The user weighs cats vs. dogs and prefers facts."),
    ("The user is Mrs. Jones, who prefers tact.", "The user is Mrs. Jones, who prefers tact."),
    ("The user is a nurse. They prefer brief answers.", "The user is a nurse. They prefer brief answers."),
    (
        "The user is a nurse who prefers tact\nPrompt: How do I sleep?",
        "The user is a nurse who prefers tact.",
    ),
    (
        "The user is a nurse who prefers tact. Prompt: How do I sleep?",
        "The user is a nurse who prefers tact.",
    ),
    ("The user prefers tact.\n\nResponse A: something", "The user prefers tact."),
    (" is a teacher who prefers\n  clear steps", "is a teacher who prefers."),
    ("Persona: The user prefers   plain words.", "The user prefers plain words."),
    ('"The user prefers quotes removed."', "The user prefers quotes removed."),
    ("Sure! Here it is:\nThe user is a cook who prefers speed.", "The user is a cook who prefers speed."),
    ("Well, The user is a chef who prefers salt", "The user is a chef who prefers salt."),
    ("\n\nThe user prefers a leading blank line.", "The user prefers a leading blank line."),
    ("", ""),
    ("A line without the phrase", "A line without the phrase."),
]


@pytest.mark.parametrize(("raw", "persona"), CASES)
def test_clean_persona(raw, persona):
    assert clean_persona(raw) == persona
