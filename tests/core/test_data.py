"""The sample datasets under data/ and the dataset loaders in persona_core.data."""

import json
from pathlib import Path

import datasets
import pytest

from persona_core.data import PREFERENCE_COLUMNS, load_split, load_splits
from persona_core.errors import UsageError
from persona_core.layout import paper_data_dir
from tests.helpers import REPO_ROOT

DATA = REPO_ROOT / "data"
TAILORING = DATA / "sample-tailoring"
TAILORING_COLUMNS = PREFERENCE_COLUMNS + (
    "chosen_persona_gold",
    "rejected_persona_gold",
    "chosen_persona_retr",
    "rejected_persona_retr",
)
TAILORING_SIZES = {"fewshot": 5, "sft_train": 24, "sft_val": 8, "dpo_train": 24, "dpo_val": 8, "test": 12}
PERSONA_COLUMNS = TAILORING_COLUMNS[3:]
ROWS = [
    {"prompt": "p1", "chosen": "c1", "rejected": "r1"},
    {"prompt": "p2", "chosen": "c2", "rejected": "r2"},
]


def assert_all_nonempty_strings(dataset, where):
    for i, row in enumerate(dataset):
        for column, value in row.items():
            assert isinstance(value, str) and value.strip(), f"{where} row {i} column {column} is empty"


def test_sample_preferences_loads_with_preference_columns():
    dataset = load_split(str(DATA / "sample_preferences.jsonl"))
    assert dataset.column_names == list(PREFERENCE_COLUMNS)
    assert len(dataset) == 16
    assert_all_nonempty_strings(dataset, "sample_preferences")
    assert len(set(dataset["prompt"])) == 16
    assert all(c != r for c, r in zip(dataset["chosen"], dataset["rejected"], strict=True))


@pytest.fixture(scope="module")
def tailoring():
    return load_splits(str(TAILORING))


def test_sample_tailoring_splits_columns_and_sizes(tailoring):
    assert isinstance(tailoring, datasets.DatasetDict)
    assert {name: len(split) for name, split in tailoring.items()} == TAILORING_SIZES
    for name, split in tailoring.items():
        assert split.column_names == list(TAILORING_COLUMNS), name
        assert_all_nonempty_strings(split, name)


def test_sample_tailoring_splits_are_disjoint(tailoring):
    prompts = [prompt for split in tailoring.values() for prompt in split["prompt"]]
    assert len(prompts) == len(set(prompts)) == sum(TAILORING_SIZES.values())


def test_sample_tailoring_personas_are_one_sentence_of_the_expected_shape(tailoring):
    for split in tailoring.values():
        for row in split:
            assert row["chosen_persona_gold"] != row["rejected_persona_gold"]
            for column in PERSONA_COLUMNS:
                persona = row[column]
                assert persona.startswith("The user is ") and " prefers " in persona, persona
                assert persona.endswith(".") and persona.count(". ") == 0, persona


def test_retrieved_personas_come_from_another_training_row(tailoring):
    train = [row for name in ("sft_train", "dpo_train") for row in tailoring[name]]
    pair_of_gold = {
        (row["chosen_persona_gold"], row["rejected_persona_gold"]): row["prompt"] for row in train
    }
    for split in tailoring.values():
        for row in split:
            source = pair_of_gold.get((row["chosen_persona_retr"], row["rejected_persona_retr"]))
            assert source is not None, (
                f"retrieved personas of {row['prompt']!r} are not one training row's gold pair"
            )
            assert source != row["prompt"]
            assert row["chosen_persona_retr"] != row["chosen_persona_gold"]
            assert row["rejected_persona_retr"] != row["rejected_persona_gold"]


def test_load_split_picks_a_split_of_the_jsonl_folder(tailoring):
    test_split = load_split(str(TAILORING), split="test")
    assert test_split["prompt"] == tailoring["test"]["prompt"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_jsonl_folder_loads_every_split(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS[:1])
    loaded = load_splits(str(tmp_path))
    assert sorted(loaded) == ["test", "train"]
    assert loaded["train"]["prompt"] == ["p1", "p2"]
    assert load_split(str(tmp_path), split="test")["chosen"] == ["c1"]


def test_unknown_split_names_the_available_ones(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS)
    with pytest.raises(UsageError, match="split 'dev' not found.*available splits: test, train"):
        load_split(str(tmp_path), split="dev")
    saved = tmp_path / "saved"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS)}
    ).save_to_disk(str(saved))
    with pytest.raises(UsageError, match="available splits: train, test"):
        load_split(str(saved), split="dev")


def test_save_to_disk_dataset_dict(tmp_path):
    saved = tmp_path / "dict"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[1:])}
    ).save_to_disk(str(saved))
    assert load_split(str(saved), split="test")["prompt"] == ["p2"]
    loaded = load_splits(str(saved))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 2, "test": 1}


def test_save_to_disk_dataset_and_single_split_dict(tmp_path):
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "dataset"))
    assert load_split(str(tmp_path / "dataset"), split="anything")["prompt"] == ["p1", "p2"]
    assert list(load_splits(str(tmp_path / "dataset"))) == ["train"]
    datasets.DatasetDict({"only": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "one"))
    assert load_split(str(tmp_path / "one"), split="train")["prompt"] == ["p1", "p2"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_single_files_load_as_train(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    frame = datasets.Dataset.from_list(ROWS)
    {".csv": frame.to_csv, ".parquet": frame.to_parquet}.get(suffix, lambda p: write_jsonl(Path(p), ROWS))(
        str(path)
    )
    assert load_split(str(path))["rejected"] == ["r1", "r2"]
    loaded = load_splits(str(path))
    assert list(loaded) == ["train"] and loaded["train"].column_names == list(PREFERENCE_COLUMNS)


def test_missing_path_and_unsupported_file_are_usage_errors(tmp_path):
    for loader in (load_split, load_splits):
        with pytest.raises(UsageError, match="does not exist"):
            loader(str(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.txt").write_text("hello")
    with pytest.raises(UsageError, match="unsupported data file"):
        load_splits(str(tmp_path / "rows.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        UsageError, match="neither a datasets.save_to_disk folder nor a folder of <split>.jsonl"
    ):
        load_splits(str(tmp_path / "empty"))


PAPER_TAILORING = paper_data_dir() / "persona-tailoring-Mnemonic"


@pytest.mark.skipif(not PAPER_TAILORING.is_dir(), reason="paper data not on this machine")
def test_paper_tailoring_folder_loads_with_the_sample_columns():
    loaded = load_splits(str(PAPER_TAILORING))
    assert set(loaded) == set(TAILORING_SIZES)
    assert all(split.column_names == list(TAILORING_COLUMNS) for split in loaded.values())
    assert len(load_split(str(PAPER_TAILORING), split="fewshot")) == 5
