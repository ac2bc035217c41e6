"""The judge answer parser on real-looking outputs: clear picks are read, anything unclear is invalid (None)."""

import pytest

from persona_inference.model.judging import parse_choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("2", 2),
        (" 2\n", 2),
        ("Response 2", 2),
        ("Response 1 is better for this user.", 1),
        ("**2**", 2),
        ("`1`", 1),
        ("'1'", 1),
        ("Answer: 2", 2),
        ("Final answer: **Response 1**", 1),
        ("I would choose 1.", 1),
        ("The user would prefer response 2 because it is shorter.", 2),
        ("The answer is 1", 1),
        ("2. Response 1 rambles.", 2),
        ("1, because it is concise", 1),
        ("I would not choose 1; I choose 2.", 2),
        ("The second response.", 2),
        ("They would pick the first one", 1),
        ("User 1", 1),
        ("#2", 2),
        # unclear or refused: invalid, never guessed
        ("1 or 2", None),
        ("Response 1 or Response 2", None),
        ("1/2", None),
        ("Both 1 and 2 are fine", None),
        ("", None),
        (None, None),
        ("   ", None),
        ("I'm sorry, but I can't help with that.", None),
        ("I cannot determine which response this user would prefer.", None),
        ("Neither.", None),
        ("Neither 1 nor 2 fits.", None),
        ("As an AI, I don't have preferences.", None),
        ("10", None),
        ("1.5", None),
        ("3", None),
        ("Response A", None),
        ("The user is a beginner who prefers short answers.", None),
        ("I choose 1. Actually, I choose 2.", None),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text) == expected
