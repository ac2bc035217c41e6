"""The README's script order with the scripts' own defaults (only sizes and folders set): sft.sh -> dpo.sh ->
judge.sh, and few_shot.sh (by its original name, few-shot.sh) -> judge.sh; judge.sh judges what the scripts before
it made, and win_rate scores the comparisons under run_judge's --output_dir."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

REPO = REPO_ROOT


def run_script(name: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / name)], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{name}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def tiny_settings(model: Path, root: Path) -> dict:
    """The tiny model everywhere, few rows and tokens, every output under ``root``."""
    return os.environ | {
        "BASE_MODEL": str(model),
        "PT_NICKNAME": "tiny",
        "JUDGE_MODEL": str(model),
        "EPOCHS": "1",
        "MAX_TRAIN_SAMPLES": "4",
        "MAX_EVAL_SAMPLES": "2",
        "LIMIT": "2",
        "MAX_NEW_TOKENS": "4",
        "MODELS": str(root / "models"),
        "GENERATIONS": str(root / "generations"),
        "JUDGE_DIR": str(root / "judge"),
    }


@pytest.mark.slow  # two trainings, two merges, three generations and a judge, each a fresh process
def test_sft_then_dpo_then_judge(tiny_model_dir, tmp_path):
    env = tiny_settings(tiny_model_dir, tmp_path)
    run_script("sft.sh", env)
    run_script("dpo.sh", env)
    judged = run_script("judge.sh", env)
    comparison = (
        tmp_path / "judge" / "comparisons" / "Sample" / "tiny" / "dpo-chosen-none_vs_dpo-chosen-gold-chosen"
    )
    assert (comparison / "judgments.jsonl").is_file() and (comparison / "win_rate.json").is_file()
    assert "ΔPQ" in judged.stdout
    from persona_tailoring.evaluation import win_rate

    assert win_rate.main(["--output_dir", str(tmp_path / "judge"), "--resamples", "20"]) == 0


@pytest.mark.slow
def test_few_shot_then_judge(tiny_model_dir, tmp_path):
    env = tiny_settings(tiny_model_dir, tmp_path)
    run_script("few-shot.sh", env)
    run_script("judge.sh", env)
    comparison = (
        tmp_path
        / "judge"
        / "comparisons"
        / "Sample"
        / "tiny"
        / "fewshot-chosen-none_vs_fewshot-chosen-gold-chosen"
    )
    assert (comparison / "win_rate.json").is_file()


@pytest.mark.slow
def test_example_runs_a_judge_over_another_models_personas(tiny_model_dir, tmp_path):
    """The paper's evaluation flow: personas by one model, then example.sh with a judge of another name reading
    them (PERSONA_MODELS) through any experiment list; the summary lists each experiment's results."""
    env = os.environ | {
        "PI_MODEL": str(tiny_model_dir),
        "PI_DIR": str(tmp_path / "pi"),
        "PI_NICKNAME": "writer",
        "DATA": str(REPO / "data" / "sample_preferences.jsonl"),
    }
    written = run_script("example.sh", env | {"EXPERIMENTS": "persona_inference"})
    assert "32 personas for 16 rows" in written.stdout
    judged = run_script(
        "example.sh",
        env
        | {
            "PI_NICKNAME": "judge",
            "EXPERIMENTS": "persona_accuracy persona_prefs",
            "PERSONA_MODELS": "writer",
        },
    )
    assert "64 judge records" in judged.stdout and "32 judge records" in judged.stdout
