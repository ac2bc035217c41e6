"""Padding-free SFT batches (TRL's ``padding_free``): the same loss as padded batches, training end to end, and the
cases TRL cannot do refused in one line."""

import json

import pytest

from persona_core.errors import UsageError
from persona_tailoring.model import run_model
from persona_tailoring.model.train import build_trainer
from tests.conftest import make_args, training_flags, write_tailoring_dataset


@pytest.fixture
def data(tmp_path):
    """The hand-made splits, with training prompts of different lengths (so that a padded batch pads)."""
    folder = write_tailoring_dataset(tmp_path / "data")
    train = folder / "sft_train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    for i, row in enumerate(rows):
        row["prompt"] += " Briefly." * i
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def first_batch_loss(trainer, examples: int = 2, **changes) -> float:
    """The model's loss on the trainer's own collation of its first training examples (dropout off)."""
    import torch

    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(examples)])
    batch = {
        key: value
        for key, value in batch.items()
        if key in ("input_ids", "attention_mask", "position_ids", "labels")
    }
    batch |= changes
    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.model(**batch).loss)


def test_padding_free_batches_give_the_padded_loss(tiny_model_dir, data, tmp_path):
    args = make_args(tmp_path, tiny_model_dir, data)
    padded = build_trainer(args, "sft", training_flags())
    flat = build_trainer(args, "sft", training_flags(padding_free=True))
    first = [padded.train_dataset[i]["input_ids"] for i in range(2)]
    assert first == [flat.train_dataset[i]["input_ids"] for i in range(2)] and len(set(map(len, first))) == 2

    padded_batch = padded.data_collator([padded.train_dataset[i] for i in range(2)])
    flat_batch = flat.data_collator([flat.train_dataset[i] for i in range(2)])
    assert padded_batch["input_ids"].numel() > sum(map(len, first))  # the padded batch carries padding
    assert flat_batch["input_ids"].shape == (1, sum(map(len, first)))  # one row, no padding
    assert first_batch_loss(flat) == pytest.approx(first_batch_loss(padded), rel=1e-5)
    # Without the position ids that restart at each example, attention would cross examples: another loss.
    import torch

    crossing = torch.arange(flat_batch["input_ids"].shape[1]).unsqueeze(0)
    assert first_batch_loss(flat, position_ids=crossing) != pytest.approx(first_batch_loss(padded), rel=1e-5)


def test_training_with_padding_free_batches_writes_the_adapter(tiny_model_dir, data, tmp_path):
    common = [
        "--base_model_name",
        str(tiny_model_dir),
        "--model_nickname",
        "tiny",
        "--dataset_name",
        "Handmade",
        "--hf_dataset_name",
        str(data),
        "--model_save_dir",
        str(tmp_path / "models"),
        "--method",
        "sft",
        "--stage",
        "train",
    ]
    assert run_model.main([*common, *training_flags(padding_free=True)]) == 0
    (summary_file,) = (tmp_path / "models").rglob("training_summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["training_config"]["padding_free"] is True and summary["global_step"] > 0
    assert (summary_file.parent / "adapter_config.json").exists()


def test_padding_free_cases_trl_cannot_do_are_refused(tiny_model_dir, data, tmp_path):
    args = make_args(tmp_path, tiny_model_dir, data)
    with pytest.raises(
        UsageError, match="more than --max_length 8, and padding-free batches are not truncated"
    ):
        build_trainer(args, "sft", training_flags(padding_free=True, max_length=8))
    with pytest.raises(UsageError, match="DPOTrainer has padding-free batches disabled"):
        build_trainer(make_args(tmp_path, tiny_model_dir, data), "dpo", training_flags(padding_free=True))


def test_pt_throughput_times_padded_and_padding_free_batches_on_the_same_tokens(
    tiny_model_dir, data, tmp_path
):
    from bench import pt_throughput

    figures_file = tmp_path / "figures.json"
    flags = [
        "--model_name",
        str(tiny_model_dir),
        "--hf_dataset_name",
        str(data),
        "--dataset_name",
        "Handmade",
    ]
    flags += ["--skip_generation", "--train_examples", "4", "--train_batch_size", "2", "--max_length", "128"]
    assert pt_throughput.main([*flags, "--json", str(figures_file)]) == 0
    training = json.loads(figures_file.read_text())["training"]
    real = training["timed_real_tokens"]
    assert real["larger"] == real["padding_free"] > 0  # the same examples, the same real tokens
    assert training["larger_padding_share"] > 0 and training["padding_free_padding_share"] == 0
    assert set(training["real_tokens_per_s"]) == {"paper", "larger", "padding_free"}
