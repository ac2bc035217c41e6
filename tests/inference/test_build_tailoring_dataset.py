"""build_tailoring_dataset: six disjoint splits with the paper's columns and retrieved personas."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from persona_core.data import load_splits
from persona_core.errors import UsageError
from persona_core.layout import TAILORING_SPLITS
from persona_inference.model import build_tailoring_dataset as tailoring
from tests.helpers import PAPER_BEAVERTAILS, make_rows, persona, write_jsonl


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
