"""Intervals that treat a persona's (a row's) two response orders as one unit, against the naive ones."""

import math

import pytest
from scipy.stats import binomtest

from persona_core.intervals import cluster_bootstrap, cluster_stderr
from persona_inference.model import persona_accuracy, persona_prefs


def accuracy_records(consistent_rows: int, correct_rows: int) -> list[dict]:
    """A judge that answers the same about a persona in both orders: right on ``correct_rows`` rows in both, wrong on
    the others in both."""
    records = []
    for row in range(consistent_rows):
        for order in ("chosen_first", "rejected_first"):
            correct = row < correct_rows
            records.append(
                {
                    "persona_model": "pi",
                    "side": "chosen",
                    "row": row,
                    "order": order,
                    "choice": 1,
                    "correct": correct,
                    "persona": f"The user is {row}.",
                }
            )
    return records


def test_a_judge_consistent_across_orders_gets_intervals_about_sqrt2_wider_than_naive():
    records = accuracy_records(consistent_rows=60, correct_rows=42)
    (line,) = [line for line in persona_accuracy.summarize(records) if line["side"] == "chosen"]
    assert (line["valid"], line["correct"], line["accuracy"]) == (120, 84, 0.7)
    naive_stderr = math.sqrt(0.7 * 0.3 / 120)
    assert line["stderr"] > naive_stderr
    assert line["stderr"] / naive_stderr == pytest.approx(
        math.sqrt(2 * 60 / 59), rel=1e-9
    )  # √2, times n/(n-1) over 60 personas
    wilson = binomtest(84, 120).proportion_ci(0.95, method="wilson")
    low, high = line["interval"]
    assert low < 0.7 < high
    assert (high - low) > 1.2 * (wilson.high - wilson.low)  # about √2 wider, up to bootstrap noise


def test_clusters_of_one_trial_match_the_ordinary_standard_error():
    clusters = [(1, 1)] * 30 + [(0, 1)] * 70
    p = 0.3
    assert cluster_stderr(clusters) == pytest.approx(math.sqrt(p * (1 - p) / 100) * math.sqrt(100 / 99))
    low, high = cluster_bootstrap(clusters)
    assert low < p < high
    assert cluster_stderr([(1, 2)]) == 0.0 and cluster_bootstrap([(1, 2)]) is None


def test_a_judge_that_splits_every_persona_has_no_spread():
    """Always "1": right in one order, wrong in the other, for every persona: exactly 0.5, nothing uncertain."""
    records = [
        {
            "persona_model": "pi",
            "side": "chosen",
            "row": row,
            "order": order,
            "choice": 1,
            "correct": order == "chosen_first",
            "persona": f"The user is {row}.",
        }
        for row in range(20)
        for order in ("chosen_first", "rejected_first")
    ]
    (line,) = persona_accuracy.summarize(records)
    assert line["accuracy"] == 0.5 and line["stderr"] == 0.0 and line["interval"] == (0.5, 0.5)


def test_persona_preferences_resample_rows():
    records = []
    for row in range(40):
        for order in persona_prefs.ORDERS:
            records.append(
                {
                    "persona_model": "pi",
                    "row": row,
                    "order": order,
                    "preferred": "chosen" if row < 30 else "rejected",
                }
            )
    (line,) = persona_prefs.summarize(records)
    low, high = line["chosen_share_interval"]
    assert line["chosen_share"] == 0.75 and low < 0.75 < high
    naive = binomtest(60, 80).proportion_ci(0.95, method="wilson")  # both orders counted as trials
    assert high - low > naive.high - naive.low
