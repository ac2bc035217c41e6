"""A judge that gives one answer, which for these judges is one position ("A", "1": the first option shown), in
nearly all of its verdicts has not read what it judged: its accuracies, shares and win rates are artifacts of that
bias, never findings. Every summary that reports a judge's numbers flags such a judge with ``check_answers``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

NEARLY_ALL = 0.95
"""The share of valid verdicts one answer must reach to flag the judge."""
MIN_VERDICTS = 4
"""Fewer verdicts than this say nothing either way."""
ORDERS = ("base_first", "test_first")


def check_answers(answers: Iterable[object]) -> dict | None:
    """``{answer, share, verdicts, invalid, warning}`` when one answer fills nearly all valid verdicts (or nearly
    every verdict is invalid); None for a judge whose answers vary, or too few verdicts to tell. ``answers`` are the
    raw answers (``None``: invalid)."""
    answers = list(answers)
    valid = [str(a) for a in answers if a is not None]
    invalid = len(answers) - len(valid)
    if len(answers) < MIN_VERDICTS:
        return None
    if invalid / len(answers) >= NEARLY_ALL:
        return {
            "answer": None,
            "share": invalid / len(answers),
            "verdicts": len(answers),
            "invalid": invalid,
            "warning": f"weak judge: {invalid} of {len(answers)} verdicts unreadable; its numbers are not findings",
        }
    if len(valid) < MIN_VERDICTS:
        return None
    answer, count = Counter(valid).most_common(1)[0]
    share = count / len(valid)
    if share < NEARLY_ALL:
        return None
    return {
        "answer": answer,
        "share": share,
        "verdicts": len(valid),
        "invalid": invalid,
        "warning": (
            f"weak judge: it answered '{answer}' (the same position) in {share:.0%} of {len(valid)} valid verdicts, "
            "whatever it read; its numbers are not findings"
        ),
    }


def pairwise_answers(judgments: Iterable[dict]) -> list[object]:
    """The letter the pairwise judge gave in each order of each judgment (None where it gave none); records that
    do not keep the letter (the paper's released judgments) give nothing to check."""
    return [
        row[order]["raw_verdict"]
        for row in judgments
        for order in ORDERS
        if isinstance(row.get(order), dict) and "raw_verdict" in row[order]
    ]
