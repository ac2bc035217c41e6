"""scripts/pipeline.sh end to end on the tiny random model (every artifact, the summary, a rerun that skips), and
the other scripts with a stand-in $PYTHON (which modules they start, with which flags)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, flag, run_script

REPO = REPO_ROOT
STAGES = 15


def run_pipeline(model: Path, root: Path, log: Path) -> subprocess.CompletedProcess:
    """Run the script with $PYTHON a wrapper that logs each Python command line to ``log``, then runs it."""
    python = log.with_suffix(".python")
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = os.environ | {"MODEL": str(model), "ROOT": str(root), "PYTHON": str(python)}
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "pipeline.sh")], env=env, capture_output=True, text=True, timeout=900
    )


def started_modules(log: Path) -> list[str]:
    """The ``-m`` modules the logged Python command lines ran."""
    return [
        line.split()[1] if line.startswith("-m ") else line.split()[0]
        for line in log.read_text().splitlines()
    ]


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # fifteen stages, each a fresh Python process (about 80 s on 2 cores)
def test_pipeline_produces_every_artifact_then_skips_every_stage(tiny_model_dir, tmp_path):
    root = tmp_path / "results"
    nickname = Path(tiny_model_dir).name
    first = run_pipeline(tiny_model_dir, root, tmp_path / "first.log")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    pi_run = root / "persona-inference" / nickname / "Sample" / "default"
    figures = root / "persona-inference" / "figures" / "default"
    models = root / "models" / "Sample" / nickname
    generations = root / "persona-tailoring" / "Sample" / nickname
    comparison = (
        root / "judge" / "comparisons" / "Sample" / nickname / "dpo-chosen-none_vs_dpo-chosen-gold-chosen"
    )
    with_persona = generations / "dpo_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"
    without_persona = generations / "dpo_Persona(training_type=chosen, inference_type=none).jsonl"

    assert (
        len(jsonl_rows(pi_run / "persona_inference.jsonl")) == 32
    )  # 16 sample rows, chosen and rejected side
    assert len(jsonl_rows(pi_run / "persona_accuracy.jsonl")) == 64  # both response orders
    assert (pi_run / "persona_prefs.jsonl").is_file()
    assert (root / "datasets" / f"augmented-Sample-{nickname}-default" / "dataset_dict.json").is_file()
    tailoring = root / "datasets" / "persona-tailoring-Sample"
    assert {p.name for p in tailoring.iterdir() if p.is_dir()} == {
        "fewshot",
        "sft_train",
        "sft_val",
        "dpo_train",
        "dpo_val",
        "test",
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
    for headline in ("personas well-formed:", "persona accuracy, chosen:", "judge verdicts:", "ΔPQ:"):
        assert headline in summary
    # The local judge reads its verdicts from probabilities: none invalid, and the probability win rates and ΔPQ
    # are numbers with intervals whatever the judge's position bias.
    assert f"judge verdicts:              probability, 0/{4 * test_rows} invalid" in summary
    assert re.search(
        r"ΔPQ: .*from the verdicts' probabilities [+-]\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\]", summary
    )
    assert first.stdout.count(": done in ") == STAGES
    stage_modules = [m for m in started_modules(tmp_path / "first.log") if m.startswith("persona_")]
    # every stage, the layout queries for the paths (the pipeline's, each trained model's), and the report
    assert len(stage_modules) == STAGES + 1 + 2 + 1
    check_report(root, first.stdout, test_rows)

    second = run_pipeline(tiny_model_dir, root, tmp_path / "second.log")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    stage_lines = [
        line for line in second.stdout.splitlines() if line.startswith("== ") and "summary" not in line
    ]
    assert len(stage_lines) == STAGES and all(": skipped (" in line for line in stage_lines)
    # The rerun started no stage's module: only the layout queries and the report (always rewritten).
    assert started_modules(tmp_path / "second.log") == [
        *["persona_core.layout_cli"] * 3,
        "persona_tailoring.evaluation.report",
    ]
    assert "== summary" in second.stdout and "missing" not in second.stdout.split("== summary", 1)[1]


def check_report(root: Path, stdout: str, test_rows: int) -> None:
    """The run's report is the script's last word, and shows the numbers its summary printed."""
    from persona_core.layout import report_path

    assert stdout.strip().splitlines()[-1] == f"report: {report_path(root)}"
    page = report_path(root).read_text(encoding="utf-8")
    for section in ("Headline numbers", "Figure 3", "Figure 4", "Table 1", "Row browser", "Run records"):
        assert section in page
    assert page.count('<article class="row"') == 16 + test_rows  # every PI row, every judged test row
    well_formed = re.search(r"personas well-formed: +(\d+/\d+)", stdout).group(1)
    assert f"<td>{well_formed}</td>" in page
    for side, accuracy, valid, invalid in re.findall(
        r"persona accuracy, (\w+): +(\S+) of (\d+) valid answers \((\d+) invalid\)", stdout
    ):
        assert re.search(
            rf"<td>{side}</td><td>{re.escape(accuracy)}[^<]*</td><td>{valid}</td><td>{invalid}</td>", page
        )


def test_dpo_script_runs_sft_first_only_without_a_merged_sft_model(tmp_path):
    from persona_core.layout import MODEL_CONFIG_FILE, PTModelDirs

    models = tmp_path / "models"
    variables = {
        "MODELS": str(models),
        "DATASET": "Demo",
        "PT_NICKNAME": "nick",
        "TAILORING_DATA": "some/data",
    }
    commands = run_script("dpo.sh", tmp_path, **variables)
    assert [(flag(c, "--method"), flag(c, "--stage")) for c in commands] == [
        ("sft", "train"),
        ("sft", "merge"),
        ("sft", "infer"),
        ("dpo", "train"),
        ("dpo", "merge"),
        ("dpo", "infer"),
    ]
    for command in commands:
        assert command[:2] == ["-m", "persona_tailoring.model.run_model"]
        assert flag(command, "--model_save_dir") == str(models) and flag(command, "--dataset_name") == "Demo"
        assert (
            flag(command, "--model_nickname") == "nick" and flag(command, "--hf_dataset_name") == "some/data"
        )
    sft_train, dpo_train = commands[0], commands[3]
    assert (flag(sft_train, "--learning_rate"), flag(dpo_train, "--learning_rate")) == ("1e-3", "1e-4")
    assert (flag(sft_train, "--max_train_samples"), flag(dpo_train, "--max_train_samples")) == ("24", "16")
    assert "--beta" in dpo_train and "--beta" not in sft_train

    merged = PTModelDirs.of(models, "Demo", "nick", "sft", "chosen").merged
    merged.mkdir(parents=True)
    (merged / MODEL_CONFIG_FILE).write_text("{}")
    (tmp_path / "dpo.sh.log").unlink()
    commands = run_script("dpo.sh", tmp_path, **variables)
    assert [(flag(c, "--method"), flag(c, "--stage")) for c in commands] == [
        ("dpo", "train"),
        ("dpo", "merge"),
        ("dpo", "infer"),
    ]


def test_few_shot_and_judge_scripts_take_the_same_variables(tmp_path):
    variables = {"DATASET": "Demo", "PT_NICKNAME": "nick", "GENERATIONS": str(tmp_path / "gen"), "LIMIT": "2"}
    (few_shot,) = run_script("few_shot.sh", tmp_path, **variables)
    assert (flag(few_shot, "--method"), flag(few_shot, "--stage")) == ("fewshot", "all")
    judge, score = run_script("judge.sh", tmp_path, **variables)
    assert (
        judge[1] == "persona_tailoring.evaluation.run_judge"
        and score[1] == "persona_tailoring.evaluation.win_rate"
    )
    for command in (few_shot, judge, score):
        assert flag(command, "--dataset_name") == "Demo" and flag(command, "--model_nickname") == "nick"
        assert flag(command, "--results_save_dir") == str(tmp_path / "gen")
    assert flag(few_shot, "--limit") == flag(judge, "--limit") == "2"


def test_judge_script_passes_a_grid_of_test_configurations(tmp_path):
    grid = {"TRAINING_TEST": "none chosen", "INFERENCE_TEST": "gold-chosen retr-chosen", "VERDICT": "text"}
    judge, score = run_script("judge.sh", tmp_path, **grid)
    for command in (judge, score):
        at = command.index("--training_type_test")
        assert command[at : at + 3] == ["--training_type_test", "none", "chosen"]
        at = command.index("--inference_type_test")
        assert command[at : at + 3] == ["--inference_type_test", "gold-chosen", "retr-chosen"]
    assert flag(judge, "--verdict") == "text"


def test_build_data_script_reads_the_augmented_dataset_where_layout_puts_it(tmp_path):
    from persona_core.layout import augmented_dataset_dir, tailoring_dataset_dir

    variables = {"DATASETS": str(tmp_path / "ds"), "DATASET": "Demo", "PI_NICKNAME": "pi", "RUN_NAME": "r1"}
    augment, tailor = run_script("build_data.sh", tmp_path, **variables)
    assert flag(augment, "--out_dir") == str(tmp_path / "ds") and "--new_dataset_name" not in augment
    assert flag(tailor, "--dataset_name") == str(augmented_dataset_dir(tmp_path / "ds", "Demo", "pi", "r1"))
    assert flag(tailor, "--output") == str(tailoring_dataset_dir(tmp_path / "ds", "Demo"))

    (tmp_path / "build_data.sh.log").unlink()
    augment, tailor = run_script("build_data.sh", tmp_path, **variables, NEW_DATASET_NAME="me/name")
    assert flag(augment, "--new_dataset_name") == "me/name"
    assert flag(tailor, "--dataset_name") == str(tmp_path / "ds" / "me--name")


def test_example_script_summarises_the_file_layout_names(tmp_path):
    from persona_core.layout import pi_files

    variables = {"PI_MODEL": "org/some-model", "PI_DIR": str(tmp_path / "pi"), "DATASET": "Demo"}
    run, summary = run_script("example.sh", tmp_path, **variables)
    assert run[1] == "persona_inference.model.run_model" and flag(run, "--inference_split") == "Demo"
    assert summary[0] == "-"  # then the seconds, then each experiment's results file
    assert summary[2:] == [str(pi_files(tmp_path / "pi", "org--some-model", "Demo", "default").results)]
