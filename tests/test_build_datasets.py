"""Augmented and persona-tailoring datasets: persona matching by id, refusals, splits and retrieval."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from persona_core.data import load_splits
from persona_core.errors import UsageError
from persona_core.layout import TAILORING_SPLITS, paper_data_dir, row_key
from persona_inference.model import build_augmented_dataset as augmentation
from persona_inference.model import build_tailoring_dataset as tailoring

WORDS = (
    "apple bridge candle dolphin engine falcon garden harbor island jungle kettle lantern meadow needle orchard "
    "pepper quartz river saddle tunnel umbrella violin walnut yacht zebra anchor basket cactus desert ember "
    "forest glacier hammer igloo jacket koala lemon marble nectar oyster parrot quiver rocket signal timber "
    "urchin velvet willow xylophone yogurt zipper acorn beacon cobalt dagger"
).split()
PAPER_BEAVERTAILS = paper_data_dir() / "persona-tailoring-BeaverTails"


def make_rows(n: int, twins: int = 0) -> list[dict]:
    """``n`` rows with prompts sharing no word; the last ``twins`` rows repeat the prompts of the first ones."""
    rows = []
    for i in range(n):
        source = i - (n - twins) if i >= n - twins else i
        prompt = f"Tell me about {WORDS[source % len(WORDS)]} {WORDS[(3 * source + 1) % len(WORDS)]}?"
        rows.append(
            {"prompt": prompt, "chosen": f"Short answer {i}.", "rejected": f"A long answer number {i}."}
        )
    return rows


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def persona(row: int, side: str) -> str:
    return f"The user is reader {row} and prefers {side} answers."


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


def save_augmented(tmp_path: Path, rows: list[dict]) -> Path:
    """An augmented dataset whose personas name their row, so a retrieved persona tells where it came from."""
    columns = {key: [r[key] for r in rows] for key in ("prompt", "chosen", "rejected")}
    for side in ("chosen", "rejected"):
        columns[f"{side}_persona_gold"] = [persona(i, side) for i in range(len(rows))]
    folder = tmp_path / "augmented"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns)}).save_to_disk(str(folder))
    return folder


def build(tmp_path: Path, rows: list[dict], *extra: str):
    output = tmp_path / "tailoring"
    argv = ["--dataset_name", str(save_augmented(tmp_path, rows)), "--output", str(output), *extra]
    assert tailoring.main(argv) == 0
    return load_splits(str(output))


def source_row(persona_text: str) -> int:
    return int(persona_text.split()[4])


def test_tailoring_dataset_has_six_disjoint_splits_and_the_paper_columns(tmp_path):
    rows = make_rows(40)
    built = build(tmp_path, rows, "--retriever", "bm25")
    assert set(built) == set(TAILORING_SPLITS)
    assert len(built["fewshot"]) == 5
    prompts = [set(built[name]["prompt"]) for name in TAILORING_SPLITS]
    assert sum(len(p) for p in prompts) == len(set().union(*prompts)) == len(rows)
    for split in built.values():
        assert split.column_names == list(tailoring.COLUMNS)
        assert all(feature == datasets.Value("string") for feature in split.features.values())
    if PAPER_BEAVERTAILS.is_dir():
        paper = datasets.load_from_disk(str(PAPER_BEAVERTAILS))
        assert set(paper) == set(built)
        assert paper["test"].features == built["test"].features


@pytest.mark.parametrize("retriever", ["bm25", "embedding"])
def test_retrieval_searches_training_rows_and_never_the_row_itself(tmp_path, retriever):
    rows = make_rows(40)
    built = build(tmp_path, rows, "--retriever", retriever)
    train_rows = {
        name: {
            rows.index(dict(prompt=p, chosen=c, rejected=r))
            for p, c, r in zip(
                built[name]["prompt"], built[name]["chosen"], built[name]["rejected"], strict=True
            )
        }
        for name in ("sft_train", "dpo_train")
    }
    for name, split in built.items():
        pool = set().union(*(train_rows[source] for source in tailoring.RETRIEVAL_POOLS[name]))
        for row in split:
            own = source_row(row["chosen_persona_gold"])
            retrieved = source_row(row["chosen_persona_retr"])
            assert retrieved != own and retrieved in pool
            assert row["rejected_persona_retr"] == persona(retrieved, "rejected")


@pytest.mark.parametrize("retriever", ["bm25", "embedding"])
def test_a_duplicated_prompt_retrieves_its_duplicate(tmp_path, retriever):
    rows = make_rows(48, twins=20)  # rows 28..47 repeat the prompts of rows 0..19
    twin = {i: i + 28 for i in range(20)} | {i + 28: i for i in range(20)}
    built = build(tmp_path, rows, "--retriever", retriever)
    checked = 0
    for name in ("sft_train", "dpo_train"):
        for row in built[name]:
            own = source_row(row["chosen_persona_gold"])
            if own in twin:
                assert source_row(row["chosen_persona_retr"]) == twin[own]
                checked += 1
    assert checked >= 10


def test_splits_keep_duplicated_prompts_together_and_follow_the_seed(tmp_path):
    rows = make_rows(48, twins=20)
    sizes = tailoring.SplitArguments().sizes(len(rows))
    first = tailoring.assign_splits([r["prompt"] for r in rows], sizes, seed=0)
    again = tailoring.assign_splits([r["prompt"] for r in rows], sizes, seed=0)
    other = tailoring.assign_splits([r["prompt"] for r in rows], sizes, seed=1)
    assert first == again and first != other
    where = {i: name for name, indices in first.items() for i in indices}
    assert all(where[i] == where[i + 28] for i in range(20))


def test_default_sizes_match_the_paper_on_beavertails_sized_data():
    sizes = tailoring.SplitArguments().sizes(2948)
    assert sizes == {
        "fewshot": 5,
        "test": 500,
        "sft_val": 244,
        "dpo_val": 244,
        "sft_train": 978,
        "dpo_train": 977,
    }


def test_too_few_rows_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="too few for the six splits"):
        build(tmp_path, make_rows(10), "--retriever", "bm25")
    assert not (tmp_path / "tailoring").exists()


def test_a_failed_save_leaves_no_partial_folder_and_keeps_the_previous_one(tmp_path, monkeypatch):
    rows = make_rows(40)
    built = build(tmp_path, rows, "--retriever", "bm25")

    def fail_halfway(self, path, **kwargs):
        next(iter(self.values())).save_to_disk(str(Path(path) / "fewshot"))
        raise OSError("disk full")

    monkeypatch.setattr(datasets.DatasetDict, "save_to_disk", fail_halfway)
    argv = [
        "--dataset_name",
        str(tmp_path / "augmented"),
        "--output",
        str(tmp_path / "fresh"),
        "--retriever",
        "bm25",
    ]
    with pytest.raises(OSError):
        tailoring.main(argv)
    with pytest.raises(OSError):
        tailoring.main([*argv[:3], str(tmp_path / "tailoring"), *argv[4:], "--seed", "1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["augmented", "tailoring"]
    assert load_splits(str(tmp_path / "tailoring"))["test"]["prompt"] == built["test"]["prompt"]


def test_output_over_a_folder_that_is_not_a_dataset_is_refused(tmp_path):
    (tmp_path / "tailoring").mkdir()
    (tmp_path / "tailoring" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="is not a saved dataset"):
        build(tmp_path, make_rows(40), "--retriever", "bm25")
    assert (tmp_path / "tailoring" / "notes.txt").read_text() == "keep me"


def test_tailoring_needs_gold_personas(tmp_path):
    data = write_jsonl(tmp_path / "prefs.jsonl", make_rows(20))
    with pytest.raises(UsageError, match="build_augmented_dataset"):
        tailoring.main(["--dataset_name", str(data), "--output", str(tmp_path / "out")])
