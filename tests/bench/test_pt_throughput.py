"""bench.pt_throughput runs end to end on tiny settings."""

import json

from bench import pt_throughput


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
