"""The benchmark scripts run end to end on tiny settings (their speed figures are measured by running them)."""

import json

from bench import judge_verdicts, pi_throughput, pt_throughput
from tests.conftest import write_preferences


def test_pi_throughput_runs_and_compares_outputs(tiny_model_dir, tmp_path):
    data = write_preferences(tmp_path / "prefs.jsonl", 3)
    figures_file = tmp_path / "figures.json"
    assert (
        pi_throughput.main(
            [
                "--dataset_name",
                str(data),
                "--model_name",
                str(tiny_model_dir),
                "--requests",
                "6",
                "--latency",
                "0.05",
                "--concurrency",
                "4",
                "--prompts",
                "6",
                "--batch_size",
                "3",
                "--max_tokens",
                "5",
                "--time_batch_size_1",
                "--json",
                str(figures_file),
            ]
        )
        == 0
    )
    figures = json.loads(figures_file.read_text())
    assert figures["api"]["requests"] == 6 and figures["api"]["peak_in_flight"]["concurrent"] > 1
    local = figures["local"]
    assert local["prompts"] == 6
    for mode in ("alone", "batched", "batch_size_1"):
        assert 6 <= local[mode]["tokens"] <= 30
    # Greedy decoding of the same prompts: the backend's outputs are exactly plain generate's.
    assert local["batched"]["same_output_as_alone"] == local["batch_size_1"]["same_output_as_alone"] == 1.0


def test_pt_throughput_generation_runs(tiny_model_dir, tmp_path):
    figures_file = tmp_path / "figures.json"
    assert (
        pt_throughput.main(
            [
                "--model_name",
                str(tiny_model_dir),
                "--skip_training",
                "--prompts",
                "4",
                "--batch_size",
                "2",
                "--max_new_tokens",
                "4",
                "--json",
                str(figures_file),
            ]
        )
        == 0
    )
    generation = json.loads(figures_file.read_text())["generation"]
    assert generation["prompts"] == 4 and generation["prompt_tokens_mean"] > 0
    assert generation["same_output"] == 1.0


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
