"""LoRA training with TRL: SFT on persona-augmented responses, then DPO from the merged SFT model.

Both evaluate every epoch and keep the checkpoint with the lowest eval loss; a rerun resumes from the last
checkpoint in ``checkpoints/``; the finished adapter lands atomically in ``adapter/``. Runs unchanged under
``accelerate launch`` (DDP, DeepSpeed): every process trains, the main one writes the adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from persona_core.cli import public_args
from persona_core.embedded import resolve_model_name
from persona_core.errors import UsageError
from persona_tailoring.model import templates
from persona_tailoring.model.config import RunPaths, wandb_enabled

SPLITS = {"sft": ("sft_train", "sft_val"), "dpo": ("dpo_train", "dpo_val")}
DEFAULT_LEARNING_RATES = {"sft": 2e-5, "dpo": 5e-6}
TRAINING_SUMMARY = "training_summary.json"


def run_paths(args) -> RunPaths:
    return RunPaths(args.model_save_dir, args.results_save_dir, args.dataset_name, args.model_nickname)


def load_tailoring_splits(args):
    from persona_core.data import load_splits

    return load_splits(args.hf_dataset_name, args.dataset_name, args.cache_dir)


def pick_split(splits, name: str, where: str, limit: int | None = None):
    if name not in splits:
        raise UsageError(f"{where} has no split '{name}' (has: {', '.join(splits)}); pass a persona-tailoring dataset")
    split = splits[name]
    if limit is not None:
        split = split.select(range(min(limit, len(split))))
    if len(split) == 0:
        raise UsageError(f"split '{name}' of {where} is empty: pass a dataset with rows there")
    return split


def training_datasets(args, method: str):
    """(train, eval or None) as TRL prompt-completion (SFT) or preference (DPO) datasets; checked before any model loads."""
    import datasets

    splits = load_tailoring_splits(args)
    style = templates.PromptStyle.for_run(args.training_type, args.dataset_name, args.response_prefix)
    build = templates.sft_examples if method == "sft" else templates.dpo_examples
    train_name, eval_name = SPLITS[method]
    train = pick_split(splits, train_name, args.hf_dataset_name, args.max_train_samples)
    train_rows = build(train, args.training_type, style, train_name)
    eval_rows = None
    if eval_name in splits and args.max_eval_samples != 0:
        evaluation = pick_split(splits, eval_name, args.hf_dataset_name, args.max_eval_samples)
        eval_rows = build(evaluation, args.training_type, style, eval_name)
    as_dataset = datasets.Dataset.from_list
    return as_dataset(train_rows), (as_dataset(eval_rows) if eval_rows else None)


def base_model_for(args, method: str) -> str:
    """SFT starts from the base model, DPO from the merged SFT model of the same training type."""
    if method == "sft":
        return absolute_if_local(resolve_model_name(args.base_model_name))
    sft_merged = run_paths(args).merged_dir("sft", args.training_type.value)
    if not (sft_merged / "config.json").exists():
        flags = (
            f"--method sft --training_type {args.training_type.value} --dataset_name '{args.dataset_name}' "
            f"--hf_dataset_name '{args.hf_dataset_name}' --model_nickname '{args.model_nickname}' "
            f"--base_model_name '{args.base_model_name}' --model_save_dir '{args.model_save_dir}'"
        )
        raise UsageError(
            f"DPO starts from the merged SFT model, but {sft_merged} does not exist: first run "
            f"`python -m persona_tailoring.model.run_model {flags} --stage train` and then the same with --stage merge"
        )
    return str(sft_merged.resolve())


def absolute_if_local(name: str) -> str:
    """Adapters record their base by this name; an absolute path keeps merging independent of the cwd."""
    path = Path(name)
    return str(path.resolve()) if path.exists() else name


def use_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def training_device_map(args):
    """One model copy per process under data parallelism; ``device_map`` (e.g. auto) only for a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return args.device_map
    if args.load_in_4bit or args.load_in_8bit:
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return None


def load_for_training(model_name: str, args):
    """Model and tokenizer with a pad token and an end-of-sequence token, quantized only where supported."""
    from persona_core.llm.hf import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(
        model_name,
        device_map=training_device_map(args),
        load_in_4bit=args.load_in_4bit,
        load_in_8bit=args.load_in_8bit,
        cache_dir=args.cache_dir,
        dtype="bfloat16" if use_bf16() else "auto",
    )
    if tokenizer.eos_token is None:
        raise UsageError(f"the tokenizer of '{model_name}' has no end-of-sequence token: set tokenizer.eos_token and save it")
    if args.load_in_4bit or args.load_in_8bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    return model, tokenizer


def lora_config(args):
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def trainer_arguments(args, method: str, output_dir: Path, has_eval: bool) -> dict:
    """Arguments shared by SFTConfig and DPOConfig (the paper's: eval each epoch, best checkpoint by eval loss)."""
    report_to = "wandb" if wandb_enabled(args.use_wandb) else "none"
    learning_rate = args.learning_rate if args.learning_rate is not None else DEFAULT_LEARNING_RATES[method]
    per_epoch = "epoch" if has_eval else "no"
    return dict(
        output_dir=str(output_dir),
        run_name=f"{args.dataset_name}-{args.model_nickname}-{method}-{args.training_type.value}",
        num_train_epochs=args.num_train_epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        activation_checkpointing=args.gradient_checkpointing,  # transformers 5's name for gradient checkpointing
        ddp_find_unused_parameters=False,  # every LoRA weight is used in each step
        max_length=args.max_length,
        eval_strategy=per_epoch,
        save_strategy="epoch",
        load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None,
        save_total_limit=2,  # the best and the latest, so a rerun can resume
        logging_steps=1 if args.num_train_epochs <= 2 else 10,
        report_to=report_to,
        bf16=use_bf16(),
        seed=args.seed,
    )


def is_main_process() -> bool:
    """Rank 0 (or no distributed launch); read from the environment so no process group is created early."""
    return int(os.environ.get("RANK", "0")) == 0


def train(args, method: str) -> Path:
    """Train the LoRA adapter of ``method`` ('sft' or 'dpo') for ``args.training_type``; return the adapter folder."""
    paths = run_paths(args)
    adapter_dir = paths.adapter_dir(method, args.training_type.value)
    if (adapter_dir / "adapter_config.json").exists() and not args.overwrite:
        if is_main_process():
            print(f"{method} adapter already trained: {adapter_dir} (pass --overwrite to retrain)")
        return adapter_dir
    trainer = build_trainer(args, method)
    if args.overwrite:  # drop this method's checkpoints, adapter and merged model (never another method's)
        if trainer.accelerator.is_main_process:
            shutil.rmtree(paths.method_dir(method, args.training_type.value), ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
    return fit_and_save(trainer, args, method)


def build_trainer(args, method: str):
    """An SFTTrainer or DPOTrainer with a fresh LoRA adapter on the method's base model."""
    train_dataset, eval_dataset = training_datasets(args, method)
    base = base_model_for(args, method)
    model, tokenizer = load_for_training(base, args)
    checkpoints = run_paths(args).checkpoints_dir(method, args.training_type.value)
    common = trainer_arguments(args, method, checkpoints, eval_dataset is not None)
    data = dict(train_dataset=train_dataset, eval_dataset=eval_dataset, processing_class=tokenizer)
    if method == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True), peft_config=lora_config(args), **data)
    from trl import DPOConfig, DPOTrainer

    # With a PEFT adapter the reference model is the policy with the adapter off: the merged SFT model.
    return DPOTrainer(model=model, args=DPOConfig(**common, beta=args.beta), peft_config=lora_config(args), **data)


def fit_and_save(trainer, args, method: str) -> Path:
    """Train (resuming from the last checkpoint if any) and save the best adapter."""
    from transformers.trainer_utils import get_last_checkpoint

    training_type = args.training_type.value
    paths = run_paths(args)
    checkpoints, adapter_dir = paths.checkpoints_dir(method, training_type), paths.adapter_dir(method, training_type)
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    save_adapter(trainer, adapter_dir, {
        "method": method,
        "training_type": training_type,
        "base_model": base_model_for(args, method),
        "train_examples": len(trainer.train_dataset),
        "eval_examples": len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
        "resumed_from": resume,
        "global_step": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_eval_loss": trainer.state.best_metric,
        "train_loss": result.training_loss,
        "seconds": round(time.perf_counter() - start, 1),
        "arguments": public_args(args),
    })
    if trainer.accelerator.is_main_process:
        print(
            f"{method} ({training_type}): {len(trainer.train_dataset)} training examples, {trainer.state.global_step} steps, "
            f"train loss {result.training_loss:.4f}, best eval loss {trainer.state.best_metric}, adapter: {adapter_dir}"
        )
    return adapter_dir


def save_adapter(trainer, adapter_dir: Path, summary: dict) -> None:
    """Save the (best) adapter and tokenizer into ``adapter_dir`` via a temporary folder and a rename."""
    tmp = adapter_dir.with_name(adapter_dir.name + ".tmp")
    if trainer.accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # every process joins (DeepSpeed ZeRO-3 gathers); only the main one writes
    if trainer.accelerator.is_main_process:
        (tmp / TRAINING_SUMMARY).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        shutil.rmtree(adapter_dir, ignore_errors=True)
        os.replace(tmp, adapter_dir)
    trainer.accelerator.wait_for_everyone()
