"""Augmented and persona-tailoring datasets: persona matching by id, refusals, splits and retrieval."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from persona_core.errors import UsageError
from persona_core.layout import row_key
from persona_inference.model import build_augmented_dataset as augmentation
from tests.helpers import make_rows, persona, write_jsonl


def persona_records(rows: list[dict], indices, failed: tuple[tuple[int, str], ...] = ()) -> list[dict]:
    """Records as run_model writes them, with ids from ``row_key``."""
    records = []
    for side in ("chosen", "rejected"):
        for i in indices:
            record = {"id": f"{i}-{side}-{row_key(rows[i])}", "row": i, "side": side}
            if (i, side) in failed:
                record.update(status="failed", error="HTTP 500")
            else:
                record.update(persona=persona(i, side), status="ok")
            records.append(record)
    return records


@pytest.fixture
def sample(tmp_path):
    """A 16-row dataset file and the arguments that point at its (not yet written) persona inference run."""
    rows = make_rows(16)
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    argv = [
        "--dataset_name",
        str(data),
        "--inference_split",
        "Tiny",
        "--run_name",
        "r1",
        "--model",
        "fake-model",
        "--res_dir",
        str(tmp_path / "res"),
        "--out_dir",
        str(tmp_path / "out"),
    ]
    run = tmp_path / "res" / "fake-model" / "Tiny" / "r1"
    return rows, argv, run


def load_augmented(tmp_path: Path):
    (folder,) = (tmp_path / "out").iterdir()
    return datasets.load_from_disk(str(folder))["train"]


def test_augmentation_matches_rows_by_id_in_a_shuffled_file(sample, tmp_path):
    rows, argv, run = sample
    records = persona_records(rows, range(len(rows)))
    random.Random(0).shuffle(records)
    write_jsonl(run / "persona_inference.jsonl", records)
    assert augmentation.main(argv) == 0
    augmented = load_augmented(tmp_path)
    assert augmented["prompt"] == [r["prompt"] for r in rows]
    assert augmented["chosen_persona_gold"] == [persona(i, "chosen") for i in range(len(rows))]
    assert augmented["rejected_persona_gold"] == [persona(i, "rejected") for i in range(len(rows))]


def test_partition_results_are_merged_when_the_full_file_is_absent(sample, tmp_path):
    rows, argv, run = sample
    write_jsonl(run / "second_half" / "persona_inference.jsonl", persona_records(rows, range(8, 16)))
    write_jsonl(run / "first_half" / "persona_inference.jsonl", persona_records(rows, range(8)))
    assert augmentation.main(argv) == 0
    assert load_augmented(tmp_path)["rejected_persona_gold"][12] == persona(12, "rejected")


def test_missing_and_failed_personas_are_refused_with_counts_and_the_resume_command(sample, tmp_path):
    rows, argv, run = sample
    present = [i for i in range(len(rows)) if i != 9]
    # A run with a failed request keeps only its checkpoint and its run.json.
    write_jsonl(
        run / "persona_inference.checkpoint.jsonl", persona_records(rows, present, failed=((5, "chosen"),))
    )
    arguments = {
        "model_name": "my-model",
        "model_nickname": "fake-model",
        "model_type": "open_ai",
        "base_url": "http://localhost:8000/v1",
        "dataset_name": argv[1],
        "split": "train",
        "max_tokens": 50,
        "stop_token": ["\n", "Persona:"],
        "temperature": 0.0,
    }  # (the default is left out)
    (run / "persona_inference.run.json").write_text(json.dumps({"arguments": arguments}))
    with pytest.raises(UsageError) as error:
        augmentation.main(argv)
    message = str(error.value)
    assert "incomplete for 2 of 16 rows (1 missing, 1 failed; rows 5, 9)" in message
    assert (
        f"python -m persona_inference.model.run_model --run_name r1 --model_name my-model --model_nickname fake-model "
        f"--model_type open_ai --base_url http://localhost:8000/v1 --dataset_name {argv[1]} --inference_split Tiny "
        f"--res_dir {tmp_path / 'res'} --max_tokens 50 --stop_token '\n' Persona:" in message
    )  # with the generation settings the run's fingerprint holds, so the resume is not refused
    assert not (tmp_path / "out").exists()


def test_missing_partition_names_the_partition_to_run(sample, tmp_path):
    rows, argv, run = sample
    write_jsonl(run / "first_quarter" / "persona_inference.jsonl", persona_records(rows, range(4)))
    write_jsonl(run / "second_quarter" / "persona_inference.jsonl", persona_records(rows, range(4, 8)))
    with pytest.raises(UsageError) as error:
        augmentation.main(argv)
    message = str(error.value)
    assert "8 missing" in message
    assert "--partition third_quarter" in message and "--partition fourth_quarter" in message
    assert "--partition first_quarter" not in message


def test_results_of_another_dataset_are_refused(sample, tmp_path):
    rows, argv, run = sample
    other = [dict(r, chosen=r["chosen"] + " (edited)") for r in rows]
    write_jsonl(run / "persona_inference.jsonl", persona_records(other, range(len(other))))
    with pytest.raises(UsageError, match="belong to another dataset"):
        augmentation.main(argv)
    assert not (tmp_path / "out").exists()


def test_no_results_names_the_command_that_makes_them(sample):
    _, argv, _ = sample
    with pytest.raises(UsageError, match=r"no persona inference results .* run `python -m persona_inference"):
        augmentation.main(argv)


def test_push_to_hub_is_opt_in_and_needs_a_repo_id(sample, tmp_path, monkeypatch):
    _, argv, _ = sample
    assert augmentation.AugmentationArguments().push_to_hub is False
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with pytest.raises(UsageError, match="owner/name"):
        augmentation.main([*argv, "--push_to_hub"])


def test_push_to_hub_uses_the_write_token_from_the_environment(sample, tmp_path, monkeypatch):
    rows, argv, run = sample
    write_jsonl(run / "persona_inference.jsonl", persona_records(rows, range(len(rows))))
    pushed = []
    monkeypatch.setattr(
        datasets.DatasetDict, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, kw))
    )
    cards = []
    monkeypatch.setattr(
        augmentation, "push_card", lambda repo, card, token: cards.append((repo, card, token))
    )
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_WRITE_TOKEN", "hf_write_test")
    assert augmentation.main([*argv, "--new_dataset_name", "me/augmented", "--push_to_hub"]) == 0
    assert pushed == [("me/augmented", {"config_name": "Tiny", "token": "hf_write_test"})]
    saved_card = (tmp_path / "out" / "me--augmented" / "README.md").read_text(encoding="utf-8")
    assert cards == [("me/augmented", saved_card, "hf_write_test")]
    assert (tmp_path / "out" / "me--augmented" / "dataset_dict.json").is_file()


def test_cli_error_is_one_line_with_exit_status_2(sample, tmp_path):
    _, argv, _ = sample
    done = subprocess.run(
        [sys.executable, "-m", "persona_inference.model.build_augmented_dataset", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("error: no persona inference results")
    assert "Traceback" not in done.stderr
