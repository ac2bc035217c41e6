"""Padding-free SFT batches (TRL's ``padding_free``): the same loss as padded batches, training end to end, and the
cases TRL cannot do refused in one line."""

import json

import pytest
import torch

from persona_core.errors import UsageError
from persona_tailoring.model import run_model
from persona_tailoring.model.train import build_trainer
from tests.helpers import make_args, training_flags, write_tailoring_dataset


@pytest.fixture
def data(tmp_path):
    """The hand-made splits, with training prompts of different lengths (so that a padded batch pads)."""
    folder = write_tailoring_dataset(tmp_path / "data")
    for split in ("sft_train", "dpo_train"):
        train = folder / f"{split}.jsonl"
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
    padded = build_trainer(args.tailoring, args.lora, args.generator, "sft", training_flags())
    flat = build_trainer(args.tailoring, args.lora, args.generator, "sft", training_flags(padding_free=True))
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


def test_untruncated_padding_free_sft_is_refused(tiny_model_dir, data, tmp_path):
    args = make_args(tmp_path, tiny_model_dir, data)
    with pytest.raises(
        UsageError, match="more than --max_length 8, and padding-free batches are not truncated"
    ):
        build_trainer(
            args.tailoring, args.lora, args.generator, "sft", training_flags(padding_free=True, max_length=8)
        )


def dpo_plan(tmp_path, tiny_model_dir, data, **flags):
    """The DPO training plan on the tiny model, standing in for the merged SFT model."""
    import shutil

    from persona_tailoring.model import train

    args = make_args(tmp_path, tiny_model_dir, data)
    sft_merged = train.model_dirs(args.tailoring, "sft").merged
    if not sft_merged.exists():
        shutil.copytree(tiny_model_dir, sft_merged)
    return args, train.plan_training(
        args.tailoring, args.lora, args.generator, "dpo", training_flags(**flags)
    )


def dpo_trainer(tmp_path, tiny_model_dir, data, plan=None, **flags):
    """A DPO trainer (of ``plan``, else a new one) with the same nonzero LoRA weights."""
    import torch

    from persona_tailoring.model import train

    if plan is None:
        args, plan = dpo_plan(tmp_path, tiny_model_dir, data, **flags)
    else:
        args = make_args(tmp_path, tiny_model_dir, data)
    trainer = train.trainer_for(plan, args.generator)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero, which would make the policy the reference (loss log 2)
        for name, param in sorted(trainer.model.named_parameters()):
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    trainer.model.eval()
    return trainer


def test_padding_free_dpo_gives_the_padded_loss_and_gradients_on_the_real_tokens(
    tiny_model_dir, data, tmp_path
):
    padded = dpo_trainer(tmp_path, tiny_model_dir, data)
    flat = dpo_trainer(tmp_path, tiny_model_dir, data, padding_free=True)
    assert flat.args.padding_free is True and padded.args.padding_free is False
    examples = [padded.train_dataset[i] for i in range(4)]
    batch = padded.data_collator(examples)
    real_tokens = int(batch["attention_mask"].sum())
    assert batch["input_ids"].numel() > real_tokens  # this batch pads

    seen_shapes = []
    base = flat.model.get_base_model()
    hook = base.model.register_forward_pre_hook(
        lambda _, args, kwargs: seen_shapes.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    losses, grads = [], []
    for trainer in (padded, flat):
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        losses.append(float(loss))
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    hook.remove()
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and losses[0] != pytest.approx(0.6931, abs=1e-3)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6)
    # The policy's and the reference's forward each ran once on one row of the real tokens, no padding.
    assert seen_shapes == [(1, real_tokens), (1, real_tokens)]


def test_training_dpo_with_padding_free_batches_writes_the_adapter(tiny_model_dir, data, tmp_path):
    from persona_tailoring.model import train

    args, plan = dpo_plan(tmp_path, tiny_model_dir, data, padding_free=True)
    trainer = dpo_trainer(tmp_path, tiny_model_dir, data, plan=plan)
    adapter = train.fit_and_save(trainer, plan, {})
    summary = json.loads((adapter / "training_summary.json").read_text())
    assert summary["training_config"]["padding_free"] is True and summary["global_step"] > 0
    assert summary["train_loss"] == summary["train_loss"]  # a number, not NaN


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_pt_throughput_times_padded_and_padding_free_batches_on_the_same_tokens(
    tiny_model_dir, data, tmp_path, method
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
    flags += [
        "--skip_generation",
        "--training_method",
        method,
        "--train_examples",
        "4",
        "--train_batch_size",
        "2",
    ]
    assert pt_throughput.main([*flags, "--max_length", "128", "--json", str(figures_file)]) == 0
    training = json.loads(figures_file.read_text())["training"]
    real = training["timed_real_tokens"]
    assert training["method"] == method
    assert real["larger"] == real["padding_free"] > 0  # the same examples, the same real tokens
    # What the model computed on: padding in the padded batches, none in the padding-free ones.
    assert training["larger_padding_share"] > 0 and training["padding_free_padding_share"] == 0
    assert set(training["real_tokens_per_s"]) == {"paper", "larger", "padding_free"}
