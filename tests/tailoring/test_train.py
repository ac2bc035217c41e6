"""LoRA SFT and DPO with TRL on the tiny random model: what trains, what stays frozen, merging, resuming."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from persona_core.errors import UsageError
from persona_core.layout import TRAINING_SUMMARY_FILE
from persona_tailoring.model import merge, train
from persona_tailoring.model.run_model import main
from persona_tailoring.model.templates import TrainingType
from tests.helpers import adapter_and_merged_logits, make_args, training_flags, write_tailoring_dataset

pytestmark = pytest.mark.slow  # each case trains a model with TRL (a few seconds each)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tailoring_dataset(tmp_path_factory.mktemp("data"))


def snapshot(model):
    """(frozen base weights, LoRA weights) by name, copied."""
    base, lora = {}, {}
    for name, param in model.named_parameters():
        (lora if "lora_" in name else base)[name] = param.detach().clone()
    return base, lora


def train_check_and_merge(args, method):
    plan = train.plan_training(args.tailoring, args.lora, args.generator, method, training_flags())
    trainer = train.trainer_for(plan, args.generator)
    model = trainer.model
    base_before, lora_before = snapshot(model)
    assert lora_before and all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
    adapter_dir = train.fit_and_save(trainer, plan, {})
    base_after, lora_after = snapshot(model)
    assert all(torch.equal(base_before[n], base_after[n]) for n in base_before), "a base weight changed"
    changed = [n for n in lora_before if not torch.equal(lora_before[n], lora_after[n])]
    assert any("lora_B" in n for n in changed), "no LoRA weight moved"
    merged_dir = merge.merge_adapter(adapter_dir, train.model_dirs(args.tailoring, method).merged)
    adapted, merged = adapter_and_merged_logits(adapter_dir, merged_dir)
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-4)
    return trainer, adapter_dir, merged_dir


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_sft_trains_lora_only_on_responses_and_merges_exactly(
    tmp_path, tiny_model_dir, data_dir, training_type
):
    args = make_args(tmp_path, tiny_model_dir, data_dir, training_type=training_type)
    trainer, adapter_dir, merged_dir = train_check_and_merge(args, "sft")
    rows_per_example = 2 if training_type == TrainingType.all else 1
    assert len(trainer.train_dataset) == 4 * rows_per_example
    # loss on the response only, ending with the tokenizer's end-of-sequence token
    example = trainer.train_dataset[0]
    tokenizer = trainer.processing_class
    labels, ids = example["labels"], example["input_ids"]
    first = next(i for i, label in enumerate(labels) if label != -100)
    assert tokenizer.decode(ids[:first]).endswith("Response:")
    assert labels[first:] == ids[first:] and ids[-1] == tokenizer.eos_token_id
    assert "answer sft_train0." in tokenizer.decode(ids[first:])
    summary = json.loads((adapter_dir / TRAINING_SUMMARY_FILE).read_text())
    assert summary["best_eval_loss"] is not None and summary["best_checkpoint"]
    assert (merged_dir / "tokenizer_config.json").exists() and not (
        merged_dir / "adapter_config.json"
    ).exists()


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_dpo_trains_lora_from_the_sft_model_and_merges_exactly(
    tmp_path, tiny_model_dir, data_dir, training_type
):
    args = make_args(tmp_path, tiny_model_dir, data_dir, training_type=training_type)
    sft_merged = train.model_dirs(args.tailoring, "sft").merged
    shutil.copytree(tiny_model_dir, sft_merged)  # stands in for the merged SFT model
    trainer, adapter_dir, _ = train_check_and_merge(args, "dpo")
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        sft_merged.resolve()
    )
    first = trainer.train_dataset[0]
    decode = trainer.processing_class.decode
    preferred = (
        "rejected" if training_type == TrainingType.rejected else "chosen"
    )  # a rejected persona prefers it
    assert decode(first["chosen_ids"]) == f" {preferred} answer dpo_train0.</s>"
    assert decode(first["prompt_ids"]).endswith("\nResponse:")


def test_dpo_refuses_without_the_merged_sft_model(tmp_path, tiny_model_dir, data_dir):
    argv = [
        "--method",
        "dpo",
        "--stage",
        "train",
        "--training_type",
        "rejected",
        "--base_model_name",
        str(tiny_model_dir),
        "--hf_dataset_name",
        str(data_dir),
        "--model_save_dir",
        str(tmp_path / "models"),
    ]
    with pytest.raises(
        UsageError, match=r"merged SFT model.*--method sft --training_type rejected.*--stage train"
    ):
        main(argv)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("adapter_config.json"))


def train_sft(args, flags):
    plan = train.plan_training(args.tailoring, args.lora, args.generator, "sft", flags)
    return train.train(plan, args.generator, overwrite=False, arguments={})


def test_training_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir, data_dir):
    args = make_args(tmp_path, tiny_model_dir, data_dir, max_eval_samples=0)
    flags = training_flags(num_train_epochs=2)
    adapter_dir = train_sft(args, flags)
    checkpoint_dir = train.model_dirs(args.tailoring, "sft").checkpoints
    checkpoints = sorted(checkpoint_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [c.name for c in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    # as if killed after the first epoch: the last checkpoint and the adapter are gone
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(adapter_dir)
    train_sft(args, flags)
    summary = json.loads((adapter_dir / TRAINING_SUMMARY_FILE).read_text())
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["global_step"] == 4
    # a finished adapter is reused, not retrained
    before = (adapter_dir / "adapter_model.safetensors").stat().st_mtime_ns
    train_sft(args, flags)
    assert (adapter_dir / "adapter_model.safetensors").stat().st_mtime_ns == before


def test_training_config_is_trls_own_with_the_papers_defaults(tmp_path, tiny_model_dir, data_dir):
    from trl import DPOConfig, SFTConfig

    args = make_args(tmp_path, tiny_model_dir, data_dir)
    sft = train.parse_training_config(args.tailoring, "sft", [])
    assert type(sft) is SFTConfig
    assert (sft.num_train_epochs, sft.learning_rate, sft.per_device_train_batch_size) == (10, 2e-5, 4)
    assert (sft.gradient_accumulation_steps, sft.max_length, sft.completion_only_loss) == (2, 512, True)
    assert sft.load_best_model_at_end and sft.metric_for_best_model == "eval_loss"
    assert sft.output_dir == str(train.model_dirs(args.tailoring, "sft").checkpoints)
    dpo = train.parse_training_config(
        args.tailoring, "dpo", ["--beta", "0.3", "--lr_scheduler_type", "cosine"], has_eval=False
    )
    assert type(dpo) is DPOConfig and (dpo.learning_rate, dpo.beta) == (5e-6, 0.3)
    assert dpo.lr_scheduler_type.value == "cosine" and dpo.eval_strategy.value == "no"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "sft", "--stage", "train", "--no_such_flag", "1"], "no_such_flag"),
        (["--method", "sft", "--stage", "train", "--num_train_epochs", "many"], "num_train_epochs"),
        (["--method", "sft", "--stage", "infer", "--learning_rate", "1e-3"], "training flags apply only to"),
        (
            ["--method", "fewshot", "--stage", "all", "--learning_rate", "1e-3"],
            "training flags apply only to",
        ),
        (["--max_new_tokens", "0"], "--max_tokens must be positive"),
        (["--temperature", "-1"], "--temperature must be 0 or more"),
    ],
)
def test_bad_training_and_generation_flags_are_one_line_errors(
    tmp_path, tiny_model_dir, data_dir, argv, message
):
    common = [
        "--base_model_name",
        str(tiny_model_dir),
        "--hf_dataset_name",
        str(data_dir),
        "--model_save_dir",
        str(tmp_path / "models"),
        "--results_save_dir",
        str(tmp_path / "results"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "persona_tailoring.model.run_model", *argv, *common],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "results").exists()


def test_help_training_lists_every_trl_field():
    result = subprocess.run(
        [sys.executable, "-m", "persona_tailoring.model.run_model", "--method", "dpo", "--help_training"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in ("--beta", "--lr_scheduler_type", "--warmup_steps", "--padding_free", "--num_train_epochs"):
        assert flag in result.stdout
