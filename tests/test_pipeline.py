"""scripts/pipeline.sh end to end on the tiny random model: every artifact, the summary, and a rerun that skips."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fifteen stages, each a fresh Python process (about 80 s on 2 cores)

REPO = Path(__file__).resolve().parents[1]
STAGES = 15


def run_pipeline(model: Path, root: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"MODEL": str(model), "ROOT": str(root), "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "pipeline.sh")], env=env, capture_output=True, text=True, timeout=900
    )


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pipeline_produces_every_artifact_then_skips_every_stage(tiny_model_dir, tmp_path):
    root = tmp_path / "results"
    nickname = Path(tiny_model_dir).name
    first = run_pipeline(tiny_model_dir, root)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    pi_run = root / "persona-inference" / nickname / "Sample" / "default"
    figures = root / "persona-inference" / "figures" / "default"
    models = root / "models" / "Sample" / nickname
    generations = root / "persona-tailoring" / "Sample" / nickname
    comparison = root / "judge" / "comparisons" / "Sample" / nickname / "dpo-chosen-none_vs_dpo-chosen-gold-chosen"
    with_persona = generations / "dpo_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"
    without_persona = generations / "dpo_Persona(training_type=chosen, inference_type=none).jsonl"

    assert len(jsonl_rows(pi_run / "persona_inference.jsonl")) == 32  # 16 sample rows, chosen and rejected side
    assert len(jsonl_rows(pi_run / "persona_accuracy.jsonl")) == 64  # both response orders
    assert (pi_run / "persona_prefs.jsonl").is_file()
    assert (root / "datasets" / f"augmented-Sample-{nickname}-default" / "dataset_dict.json").is_file()
    tailoring = root / "datasets" / "persona-tailoring-Sample"
    assert {p.name for p in tailoring.iterdir() if p.is_dir()} == {
        "fewshot", "sft_train", "sft_val", "dpo_train", "dpo_val", "test"
    }
    for method in ("sft", "dpo"):
        assert (models / f"{method}_chosen" / "merged" / "model.safetensors").is_file()
    # DPO trained from the merged SFT model
    dpo_summary = json.loads((models / "dpo_chosen" / "adapter" / "training_summary.json").read_text())
    assert Path(dpo_summary["base_model"]) == (models / "sft_chosen" / "merged").resolve()
    test_rows = len(jsonl_rows(with_persona))
    assert test_rows == len(jsonl_rows(without_persona)) == 4
    assert len(jsonl_rows(comparison / "judgments.jsonl")) == 2 * test_rows  # two metrics per prompt
    assert json.loads((comparison / "win_rate.json").read_text())["prompts"] == test_rows
    for plot in ("win_rate", "persona_accuracy", "persona_prefs", "word_saliency"):
        folder = comparison if plot == "win_rate" else figures
        for suffix in ("png", "pdf"):
            assert (folder / f"{plot}.{suffix}").stat().st_size > 0

    summary = first.stdout.split("== summary", 1)[1]
    assert summary.count("✓") == 15 and "missing" not in summary
    for headline in ("personas well-formed:", "persona accuracy, chosen:", "judge invalid verdicts:", "ΔPQ:"):
        assert headline in summary
    assert first.stdout.count(": done in ") == STAGES

    start = time.perf_counter()
    second = run_pipeline(tiny_model_dir, root)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert time.perf_counter() - start < 30
    assert second.stdout.count(": skipped (") == STAGES and ": done in " not in second.stdout
    assert "== summary" in second.stdout and "missing" not in second.stdout.split("== summary", 1)[1]
