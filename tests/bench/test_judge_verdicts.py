"""bench.judge_verdicts runs end to end on tiny settings."""

import json

from bench import judge_verdicts


def test_judge_verdicts_bench_runs_both_modes_on_the_same_pairs(tiny_model_dir, tmp_path):
    figures_file = tmp_path / "verdicts.json"
    argv = ["--judge_model_name", str(tiny_model_dir), "--pairs", "2", "--metrics", "personalization"]
    assert judge_verdicts.main([*argv, "--text_max_tokens", "4", "--json", str(figures_file)]) == 0
    figures = json.loads(figures_file.read_text())
    probability, text = figures["probability"], figures["text"]
    assert probability["verdicts"] == text["verdicts"] == 2 * 2  # pairs x orders
    assert probability["invalid"] == 0 and probability["accuracy"] is not None
    assert 0 <= probability["first_position_share"] <= 1
    assert figures["speedup"] == round(text["seconds_per_verdict"] / probability["seconds_per_verdict"], 1)
