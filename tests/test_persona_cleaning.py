"""The persona is the whole first line of a generation: abbreviations and second sentences stay, run-ons go."""

import pytest

from persona_inference.model.inference import clean_persona

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
