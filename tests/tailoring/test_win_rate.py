"""Win rates, ties, ΔPQ and their bootstrap intervals from judgments files; table, JSON, CSV and plots."""

import csv
import json
import os
from pathlib import Path

import pytest

from persona_core.errors import run_cli
from persona_tailoring.evaluation import win_rate, win_rate_stats
from tests.helpers import comparison


def write_judgments(folder: Path, outcomes: dict[str, list[str]], configuration: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    configuration = configuration or comparison()
    rows = [
        {"id": f"p{i}", "metric": metric, "outcome": outcome, "comparison": configuration}
        for metric, values in outcomes.items()
        for i, outcome in enumerate(values)
    ]
    (folder / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_shares_win_rate_and_delta_pq_by_hand():
    codes = win_rate_stats.outcome_codes(
        [
            {"id": f"p{i}", "metric": m, "outcome": o}
            for m, values in {
                "personalization": ["test", "test", "tie", "base", "test"],
                "response_quality": ["base", "test", "invalid", "base", "tie"],
            }.items()
            for i, o in enumerate(values)
        ],
        "fixture",
    )
    summary = win_rate_stats.summarize(codes, resamples=500, seed=1)
    p, q = summary["personalization"], summary["response_quality"]
    assert (p["base_wins"], p["ties"], p["test_wins"], p["invalid"]) == (0.2, 0.2, 0.6, 0.0)
    assert p["win_rate"] == 0.75 and q["win_rate"] == round(1 / 3, 4)
    # ΔPQ = ½[(3/4 − ½)/½ + (1/3 − ½)/½] = ½[½ − ⅓] = 1/12
    assert summary["delta_pq"]["value"] == pytest.approx(1 / 12, abs=1e-4)
    for interval in (p["ci95"], q["ci95"], summary["delta_pq"]["ci95"]):
        assert interval[0] <= interval[1]
    assert p["ci95"][0] <= 0.75 <= p["ci95"][1]
    assert win_rate_stats.summarize(codes, resamples=500, seed=1) == summary  # fixed seed: same intervals


def test_all_ties_leave_the_win_rate_undefined_not_divided_by_zero():
    summary = win_rate_stats.summarize(
        {"personalization": [1, 1, 1], "response_quality": [1, 3, 1]}, resamples=50
    )
    assert summary["personalization"]["win_rate"] is None and summary["personalization"]["ci95"] is None
    assert "undefined" in summary["personalization"]["note"]
    assert summary["delta_pq"] == {"value": None, "ci95": None, "undefined_resamples": 50}
    assert summary["personalization"]["undefined_resamples"] == 50
    assert summary["response_quality"]["invalid"] == round(1 / 3, 4)


def test_probability_win_rates_average_p_test_and_survive_a_position_biased_judge(tmp_path, capsys):
    """All ties (a judge that picks the first response in both orders) leave the discrete win rate undefined; the
    probability win rate is the mean p_test, 0.5 for a pure position bias, with ΔPQ and intervals from it."""
    folder = tmp_path / "judge" / "comparisons" / "base_vs_test"
    folder.mkdir(parents=True)
    p_tests = {"personalization": [0.5, 0.5, 0.8, 0.6], "response_quality": [0.5, 0.4, 0.5, 0.5]}
    rows = [
        {"id": f"p{i}", "metric": metric, "outcome": "tie", "p_test": value, "comparison": comparison()}
        for metric, values in p_tests.items()
        for i, value in enumerate(values)
    ]
    (folder / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert win_rate.main(["--comparison_dir", str(folder), "--resamples", "200"]) == 0
    summary = json.loads((folder / "win_rate.json").read_text())
    p, q = summary["personalization"], summary["response_quality"]
    assert p["win_rate"] is None and q["win_rate"] is None  # the discrete rule is unchanged: all ties
    assert p["probability_win_rate"] == pytest.approx(0.6) and q["probability_win_rate"] == pytest.approx(
        0.475
    )
    assert p["probability_ci95"][0] <= 0.6 <= p["probability_ci95"][1]
    assert summary["delta_pq"]["value"] is None
    assert summary["delta_pq"]["probability_value"] == pytest.approx(0.5 * (0.2 + -0.05))
    assert "from probabilities 0.600" in capsys.readouterr().out
    # Text verdicts carry no p_test: no probability win rate at all.
    assert (
        win_rate_stats.summarize({"personalization": [2, 0]}, resamples=10)["personalization"].get(
            "probability_win_rate"
        )
        is None
    )


def test_resamples_without_a_decisive_verdict_are_counted_not_dropped_silently(tmp_path, capsys):
    # personalization: one win and one tie, so a resample that draws the tie twice has no win rate (about 1 in 4);
    # response quality: a win and a loss, always defined.
    summary = win_rate_stats.summarize(
        {"personalization": [2, 1], "response_quality": [2, 0]}, resamples=400, seed=3
    )
    p, q, delta = summary["personalization"], summary["response_quality"], summary["delta_pq"]
    assert 40 < p["undefined_resamples"] < 160 and q["undefined_resamples"] == 0
    assert delta["undefined_resamples"] == p["undefined_resamples"]  # ΔPQ is undefined exactly where p is
    assert p["ci95"] == [1.0, 1.0]  # every defined resample drew the win
    folder = write_judgments(
        tmp_path / "comparisons" / "a_vs_b",
        {"personalization": ["test", "tie"], "response_quality": ["test", "base"]},
    )
    assert win_rate.main(["--comparison_dir", str(folder), "--resamples", "400", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert f"({p['undefined_resamples']} resamples undefined, left out of the interval)" in out
    row = next(csv.DictReader((folder / "win_rate.csv").open()))
    assert int(row["personalization_undefined_resamples"]) == p["undefined_resamples"]


def test_delta_pq_formula():
    assert win_rate_stats.delta_pq(0.5, 0.5) == 0.0
    assert win_rate_stats.delta_pq(1.0, 1.0) == 1.0
    assert win_rate_stats.delta_pq(0.8, 0.4) == pytest.approx(0.2)
    assert win_rate_stats.delta_pq(None, 0.7) is None


def test_cli_scores_every_comparison_and_writes_json_csv_and_plots(tmp_path, capsys):
    root = tmp_path / "judge"
    write_judgments(
        root / "comparisons" / "A" / "x_vs_y",
        {
            "personalization": ["test", "base", "test", "test"],
            "response_quality": ["test", "tie", "base", "test"],
        },
        comparison("x", "y", "A", method="sft", training_type="chosen", inference_type="gold-chosen"),
    )
    write_judgments(
        root / "comparisons" / "A" / "x_vs_z",
        {"personalization": ["tie", "tie"], "response_quality": ["tie", "invalid"]},
        comparison("x", "z", "A"),
    )
    assert win_rate.main(["--comparison_dir", str(root), "--resamples", "100", "--plot"]) == 0
    out = capsys.readouterr().out
    assert "undefined (no decisive verdicts)" in out and "0.750" in out and "ΔPQ" in out
    first = root / "comparisons" / "A" / "x_vs_y"
    summary = json.loads((first / "win_rate.json").read_text())
    assert set(summary) >= {"personalization", "response_quality", "delta_pq", "prompts"}
    for metric in ("personalization", "response_quality"):
        assert set(summary[metric]) >= {"base_wins", "ties", "test_wins", "invalid", "win_rate", "ci95"}
    assert summary["delta_pq"]["value"] == pytest.approx(
        0.5 * ((0.75 - 0.5) / 0.5 + (2 / 3 - 0.5) / 0.5), abs=1e-3
    )
    assert summary["configuration"]["test"]["inference_type"] == "gold-chosen"
    with open(root / "delta_pq_table.csv", newline="") as handle:
        cells = {row["test"]: row for row in csv.DictReader(handle)}
    # the table's configuration is the one the judge stored, not parsed from the folder names
    assert (cells["y"]["dataset"], cells["y"]["method"], cells["y"]["inference_type"]) == (
        "A",
        "sft",
        "gold-chosen",
    )
    assert cells["z"]["method"] == "" and cells["z"]["dataset"] == "A"
    undefined = json.loads((root / "comparisons" / "A" / "x_vs_z" / "win_rate.json").read_text())
    assert undefined["personalization"]["win_rate"] is None and undefined["delta_pq"]["value"] is None
    with open(root / "win_rates.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["comparison"] for row in table] == ["A/x_vs_y", "A/x_vs_z"]
    assert table[0]["personalization_win_rate"] == "0.75" and table[1]["personalization_win_rate"] == ""
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        assert (first / f"win_rate{suffix}").read_bytes().startswith(magic)
    umask = os.umask(0)
    os.umask(umask)
    for path in (
        *first.iterdir(),
        root / "win_rates.csv",
    ):  # atomic writes: the usual permissions, no temp files
        assert not path.name.startswith(".") and path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_cli_finds_one_comparison_by_configuration_flags(tmp_path):
    folder = tmp_path / "comparisons" / "BeaverTails" / "dpo-none-none_vs_dpo-chosen-gold-chosen"
    write_judgments(folder, {"personalization": ["test", "test"], "response_quality": ["base", "test"]})
    assert (
        win_rate.main(
            [
                "--output_dir",
                str(tmp_path),
                "--dataset_name",
                "BeaverTails",
                "--resamples",
                "20",
                "--model_type_base",
                "dpo",
                "--training_type_base",
                "none",
                "--inference_type_base",
                "none",
                "--model_type_test",
                "dpo",
                "--training_type_test",
                "chosen",
                "--inference_type_test",
                "gold-chosen",
            ]
        )
        == 0
    )
    assert json.loads((folder / "win_rate.json").read_text())["delta_pq"]["value"] == 0.5


def test_one_metric_only_gives_no_delta_pq(tmp_path):
    write_judgments(tmp_path, {"response_quality": ["test", "base", "test"]})
    assert win_rate.main(["--comparison_dir", str(tmp_path), "--resamples", "20"]) == 0
    summary = json.loads((tmp_path / "win_rate.json").read_text())
    assert "personalization" not in summary and summary["delta_pq"]["value"] is None


def test_bad_comparison_input_is_one_line(tmp_path, capsys):
    def error(argv):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(lambda: win_rate.main(argv))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        return err

    assert "does not exist" in error(["--comparison_dir", str(tmp_path / "missing")])
    assert "--resamples must be at least 1" in error(["--comparison_dir", str(tmp_path), "--resamples", "0"])
    assert "not both" in error(["--comparison_dir", str(tmp_path), "--base_file", "x.jsonl"])
    assert "no test outputs" in error(["--base_file", "x.jsonl"])
    (tmp_path / "judgments.jsonl").write_text(
        json.dumps({"id": "p0", "metric": "style", "outcome": "test"}) + "\n"
    )
    assert "known metric" in error(["--comparison_dir", str(tmp_path)])
