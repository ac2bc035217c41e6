"""bench.pi_throughput runs end to end on tiny settings and compares its outputs."""

import json

from bench import pi_throughput
from tests.helpers import write_preferences


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
