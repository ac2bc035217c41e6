"""The repetition detector, per-side response statistics and the length-controlled win rate in win_rate."""

import csv
import json

import numpy as np
import pytest

from persona_tailoring.evaluation import degenerate, win_rate, win_rate_stats
from tests.helpers import comparison

LOOP = "the cat sat. the cat sat. the cat sat."


@pytest.mark.parametrize(
    ("text", "share", "repetitive"),
    [
        ("The quick brown fox jumps over the lazy dog and runs into the forest.", 0.0, False),
        # 9 words, 6 four-grams: the first 3 are new, the next 3 repeat them
        (LOOP, 0.5, True),
        ("I can't help with that.", 0.0, False),  # 5 words, 2 distinct four-grams
        ("Sure.", 0.0, False),  # fewer words than n: no n-gram, never flagged
        ("", 0.0, False),
        (None, 0.0, False),
        ("Step one: rinse. " * 10, 24 / 27, True),  # 30 words, 27 four-grams, 3 distinct
    ],
)
def test_repeated_ngram_share_and_is_repetitive(text, share, repetitive):
    assert degenerate.repeated_ngram_share(text) == pytest.approx(share, abs=0.01)
    assert degenerate.is_repetitive(text) is repetitive


def test_threshold_and_n_are_parameters():
    assert degenerate.repeated_ngram_share("a b a b", n=2) == pytest.approx(1 / 3)
    assert degenerate.is_repetitive(LOOP, threshold=0.6) is False
    with pytest.raises(ValueError):
        degenerate.repeated_ngram_share("a b", n=0)


def test_response_stats():
    stats = degenerate.response_stats([LOOP, "one two three", ""])
    assert stats == {"responses": 3, "repetitive": 1, "mean_words": 4.0}  # (9 + 3 + 0) / 3
    assert degenerate.response_stats([]) == {"responses": 0, "repetitive": 0, "mean_words": None}


def texts(lengths) -> list[str]:
    return [" ".join(f"w{i}" for i in range(int(k))) for k in lengths]


def lc(codes, base_lengths, test_lengths) -> dict:
    """The real path: responses -> normalized length difference -> win_rate_stats.summarize."""
    responses = {"base": texts(base_lengths), "test": texts(test_lengths)}
    return win_rate_stats.summarize({"personalization": codes}, resamples=20, responses=responses)


T, B, TIE, INV = (win_rate_stats.OUTCOME_CODES[k] for k in ("test", "base", "tie", "invalid"))


def test_lc_win_rate_is_close_to_the_raw_one_when_length_is_independent_of_the_verdict():
    rng = np.random.default_rng(0)
    n = 3000
    codes = np.where(rng.random(n) < 0.7, T, B)
    codes[rng.random(n) < 0.1] = TIE  # ties are left out of the fit, as out of the raw win rate
    summary = lc(codes.tolist(), rng.integers(20, 200, n), rng.integers(40, 260, n))  # test mostly longer
    stats = summary["personalization"]
    assert stats["lc_win_rate"] == pytest.approx(stats["win_rate"], abs=0.03)
    assert abs(stats["lc_length_coef"]) < 0.15 and "lc_note" not in stats
    assert summary["responses"]["test"]["mean_words"] > summary["responses"]["base"]["mean_words"]


def test_lc_win_rate_falls_well_below_the_raw_one_when_wins_follow_length():
    # 30 pairs where test is longer (by 10..300 words), 10 where it is shorter. Test wins when longer and loses
    # when shorter, but for a few flips: exactly "wins iff longer" separates the verdicts, and has no finite fit
    # (see the next test).
    longer, shorter = np.linspace(10, 300, 30), -np.linspace(10, 100, 10)
    diff = np.concatenate([longer, shorter])
    codes = [T] * 30 + [B] * 10
    for i in (0, 1, 2):  # the three least-longer test answers lose
        codes[i] = B
    for i in (30, 31):  # the two least-shorter ones win
        codes[i] = T
    base = np.full(40, 400)
    stats = lc(codes, base, base + diff)["personalization"]
    assert stats["win_rate"] == pytest.approx(29 / 40)
    assert stats["lc_length_coef"] > 0
    assert stats["lc_win_rate"] < stats["win_rate"] - 0.2


@pytest.mark.parametrize(
    ("codes", "note"),
    [
        ([T, T, T, T], "every decisive verdict is a test win"),
        ([B, TIE, B, INV], "every decisive verdict is a base win"),
        ([TIE, INV, TIE, TIE], "no decisive verdicts"),
        ([B, B, T, T], "separates the verdicts"),  # test wins exactly when it is longer
    ],
)
def test_degenerate_data_gives_a_null_lc_win_rate_with_a_note(codes, note):
    stats = lc(codes, [50, 50, 50, 50], [30, 45, 60, 90])["personalization"]
    assert stats["lc_win_rate"] is None and stats["lc_length_coef"] is None
    assert note in stats["lc_note"]


def test_a_constant_length_difference_gives_the_raw_win_rate():
    stats = lc([T, B, T, TIE], [10, 20, 30, 40], [15, 25, 35, 45])["personalization"]
    assert stats["lc_win_rate"] == pytest.approx(stats["win_rate"], abs=1e-4)
    assert stats["lc_length_coef"] == 0.0


def test_judgments_without_responses_leave_the_length_parts_undefined():
    summary = win_rate_stats.summarize({"personalization": [T, B, T]}, resamples=10)
    assert "do not record" in summary["responses"]["note"]
    assert summary["personalization"]["lc_win_rate"] is None
    assert win_rate_stats.responses_by_side([{"id": "p0", "base_response": "a"}]) is None


def test_cli_reports_repetitive_responses_mean_words_and_lc_win_rate(tmp_path, capsys):
    folder = tmp_path / "comparisons" / "a_vs_b"
    folder.mkdir(parents=True)
    outcomes = ["test", "base", "test", "test", "base", "tie"]
    base_words, test_words = [10, 30, 12, 40, 35, 20], [20, 15, 50, 25, 40, 20]
    rows = [
        {
            "id": f"p{i}",
            "metric": metric,
            "outcome": outcome,
            "base_response": LOOP
            if i == 0
            else " ".join(["b"] + [f"x{k}" for k in range(base_words[i] - 1)]),
            "test_response": " ".join(f"y{k}" for k in range(test_words[i])),
            "comparison": comparison("a", "b"),
        }
        for metric in win_rate_stats.METRICS
        for i, outcome in enumerate(outcomes)
    ]
    (folder / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert win_rate.main(["--comparison_dir", str(folder), "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((folder / "win_rate.json").read_text())
    assert summary["responses"]["base"]["repetitive"] == 1 and summary["responses"]["test"]["repetitive"] == 0
    assert summary["responses"]["base"]["responses"] == 6  # per prompt, not per metric row
    assert summary["responses"]["test"]["mean_words"] == pytest.approx(sum(test_words) / 6, abs=0.01)
    lc_value = summary["personalization"]["lc_win_rate"]
    assert lc_value is not None and 0 < lc_value < 1
    row = next(csv.DictReader((folder / "win_rate.csv").open()))
    assert float(row["personalization_lc_win_rate"]) == lc_value
    assert row["base_repetitive"] == "1" and row["test_responses"] == "6"
    assert "LC win" in out and f"{lc_value:.3f}" in out and "1 repetitive" in out
