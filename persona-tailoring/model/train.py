"""LoRA training with TRL: SFT on persona-augmented responses, then DPO from the merged SFT model (and ORPO,
SimPO, KTO: each method's trainer, config, examples, starting model and splits are its row in ``methods.py``).

The trainers take TRL's own configs (``SFTConfig``, ``DPOConfig``, ...): every field is a command-line flag of
``run_model`` (parsed by ``transformers.HfArgumentParser``), with ``TRAINING_DEFAULTS`` and the method's own as
defaults. All evaluate every epoch and keep the checkpoint with the lowest eval loss; the finished adapter lands
atomically in ``adapter/``. Training is a fingerprinted stage (``persona_core.runs``): the base model's identity, the
training examples, the method, the training type, the LoRA settings and every config field that changes the weights.
An unchanged rerun reuses the adapter and trains nothing; a killed one resumes from the last complete checkpoint in
``checkpoints/``; changed settings are refused in one line, or retrained under ``--overwrite`` (which also drops
the merged model made from the old adapter). Runs unchanged under ``accelerate launch`` (DDP, DeepSpeed): every
process trains, the main one holds the lock and writes the adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona_core import layout
from persona_core.arguments import BackendArguments
from persona_core.data import load_splits
from persona_core.embedded import resolve_model_name
from persona_core.errors import UsageError
from persona_core.io import atomic_output
from persona_core.llm.hf import load_model_and_tokenizer
from persona_core.preferences import read_tailoring_split
from persona_core.protocol import Protocol, training_defaults
from persona_core.runs import digest, model_identity, write_run_record
from persona_core.stage import WorkStage, run_work_stage
from persona_tailoring.model.arguments import LoraArguments, TailoringArguments
from persona_tailoring.model.config import wandb_enabled
from persona_tailoring.model.methods import SFT_MODEL, other_owners
from persona_tailoring.model.methods import method as training_method
from persona_tailoring.model.packing import pack_dpo_forward

KEEP_BOTH = "--model_nickname (or --model_save_dir)"


TRAINING_DEFAULTS = {
    "num_train_epochs": 10,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "max_length": 512,
    "save_strategy": "epoch",
    "save_total_limit": 2,  # the best and the latest, so a rerun can resume
    "logging_steps": 10,
    "ddp_find_unused_parameters": False,  # every LoRA weight is used in each step
    "activation_checkpointing": False,  # TRL turns it on by default; on, it trades speed for memory
}
"""Defaults of every method's config flags (the method's own in ``methods.py``): the paper's, except batch 4 x 2
accumulation (paper: 1, none) and SFT's completion-only loss (paper: the whole sequence); ``--protocol paper`` sets
those."""
EVALUATED = {
    "eval_strategy": "epoch",
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
}
"""With a validation split: evaluate each epoch and keep the checkpoint with the lowest eval loss (the paper's)."""
NOT_WEIGHTS = (
    "output_dir",
    "logging_",
    "log_",
    "report_to",
    "run_name",
    "project",
    "trackio_",
    "push_to_hub",
    "hub_",
    "disable_tqdm",
    "save_total_limit",
    "save_on_each_node",
    "save_only_model",
    "resume_from_checkpoint",
    "dataloader_num_workers",
    "dataloader_persistent_workers",
    "dataloader_pin_memory",
    "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context",
    "dataset_num_proc",
    "ddp_timeout",
    "skip_memory_metrics",
    "per_device_eval_batch_size",
    "eval_accumulation_steps",
    "eval_do_concat_batches",
    "eval_use_gather_object",
    "batch_eval_metrics",
    "include_",
    "local_rank",
    "debug",
    "do_predict",
    "torch_empty_cache_steps",
    "activation_checkpointing",
    "gradient_checkpointing",
    "activation_offloading",
)
"""Config fields (or prefixes) that change where and how a run is logged, saved or scheduled, never the weights:
left out of the training fingerprint, so changing them resumes or reuses. Every other field counts."""


@dataclass
class TrainingPlan:
    """What a training run will do, known before any model loads: its folders, data, TRL config and fingerprint."""

    method: str
    dirs: layout.PTModelDirs
    config: Any
    train_dataset: Any
    eval_dataset: Any
    base_model: str
    fingerprint: dict
    lora: Any

    @property
    def files(self) -> layout.StageFiles:
        return self.dirs.stage_files(layout.TRAIN)

    @property
    def stage(self) -> WorkStage:
        """Training as a stage of the driver: done once the adapter exists."""
        finished = self.dirs.adapter / layout.ADAPTER_CONFIG_FILE
        return WorkStage(
            f"{self.method} adapter", self.files, self.fingerprint, self.outputs, finished, KEEP_BOTH
        )

    @property
    def outputs(self) -> list[Path]:
        """What the fingerprint vouches for; ``--overwrite`` deletes it (the merged model comes from the adapter)."""
        merged = self.dirs.stage_files(layout.MERGE)
        return [
            self.dirs.adapter,
            self.dirs.checkpoints,
            self.files.run_record,
            self.dirs.merged,
            merged.run_record,
        ]


def model_dirs(tailoring: TailoringArguments, method: str) -> layout.PTModelDirs:
    return layout.PTModelDirs.of(
        tailoring.model_save_dir,
        tailoring.dataset_name,
        tailoring.model_nickname,
        method,
        tailoring.training_type.value,
    )


def config_class(method: str):
    return training_method(method).config_class()


def training_parser(
    tailoring: TailoringArguments,
    method: str,
    protocol: Protocol = Protocol.toolkit,
    seed: int = 0,
    has_eval: bool = True,
):
    """The one parser of the TRL config: ``HfArgumentParser``, TRL's own parser for TRL's own classes (as TRL's
    scripts parse them); every other flag goes through ``persona_core.cli.parse``. Its defaults are the paper's and
    this run's folders."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        config_class(method), prog=f"run_model --method {method} (training flags)", allow_abbrev=False
    )

    def one_line_error(message: str):
        raise UsageError(
            f"{message} (training flags are {config_class(method).__name__} fields; see --help_training)"
        )

    parser.error = one_line_error
    parser.set_defaults(
        **(
            TRAINING_DEFAULTS
            | training_method(method).defaults
            | (EVALUATED if has_eval else {"eval_strategy": "no"})
            | training_defaults(protocol, method)
        ),
        output_dir=str(model_dirs(tailoring, method).checkpoints),
        run_name=f"{tailoring.dataset_name}-{tailoring.model_nickname}-{method}-{tailoring.training_type.value}",
        seed=seed,
        bf16=use_bf16(),
        report_to="wandb" if wandb_enabled(tailoring.use_wandb) else "none",
    )
    return parser


def parse_training_config(
    tailoring: TailoringArguments,
    method: str,
    flags: list[str],
    protocol: Protocol = Protocol.toolkit,
    seed: int = 0,
    has_eval: bool = True,
):
    """The method's TRL config (``SFTConfig``, ``DPOConfig``, ...) from the training flags; a bad flag or value is
    one line (naming the method whose flag it is, for another method's)."""
    try:
        (config,) = training_parser(tailoring, method, protocol, seed, has_eval).parse_args_into_dataclasses(
            flags
        )
    except ValueError as err:
        owner = other_owners(method, flags)
        if owner:
            raise UsageError(f"{owner}; see --help_training") from None
        raise UsageError(
            f"bad training flag: {str(err).splitlines()[0][:200]} (see --help_training)"
        ) from None
    training_method(method).check(config)
    return config


def print_training_help(tailoring: TailoringArguments, method: str, protocol: Protocol, seed: int) -> None:
    spec = training_method(method)
    print(f"{spec.title} defaults besides the paper's shared ones: {spec.defaults}; from {spec.sources}.\n")
    training_parser(tailoring, method, protocol, seed).print_help(sys.stdout)


def load_tailoring_splits(hf_dataset_name: str, dataset_name: str, cache_dir: str | None = None):
    """Every split, each as text prompt/chosen/rejected columns beside its personas: the paper's string columns as
    they are, TRL's conversational preference and prompt-completion forms (and implicit prompts) normalized by
    ``persona_core.preferences``, so training and generation see the same prompt text whatever the format."""
    import datasets

    splits = load_splits(hf_dataset_name, dataset_name, cache_dir)
    where = f"dataset '{hf_dataset_name}'"
    return datasets.DatasetDict(
        {name: read_tailoring_split(split, f"split '{name}' of {where}") for name, split in splits.items()}
    )


def pick_split(splits, name: str, where: str, limit: int | None = None):
    if name not in splits:
        raise UsageError(
            f"{where} has no split '{name}' (has: {', '.join(splits)}); pass a persona-tailoring dataset"
        )
    split = splits[name]
    if limit is not None:
        split = split.select(range(min(limit, len(split))))
    if len(split) == 0:
        raise UsageError(f"split '{name}' of {where} is empty: pass a dataset with rows there")
    return split


def training_datasets(tailoring: TailoringArguments, method: str, cache_dir: str | None = None):
    """(train, eval or None) as the method's TRL dataset (prompt-completion for SFT, preference pairs for DPO, ORPO,
    SimPO, unpaired for KTO); several splits (ORPO's) are concatenated; checked before any model loads."""
    import datasets

    where = tailoring.hf_dataset_name
    splits = load_tailoring_splits(where, tailoring.dataset_name, cache_dir)
    style, training_type = tailoring.style(), tailoring.training_type
    spec = training_method(method)
    train_rows, eval_rows = [], []
    for train_name in spec.train_splits:
        train = pick_split(splits, train_name, where, tailoring.max_train_samples)
        train_rows += spec.examples(train, training_type, style, train_name)
    for eval_name in spec.eval_splits:
        if eval_name in splits and tailoring.max_eval_samples != 0:
            evaluation = pick_split(splits, eval_name, where, tailoring.max_eval_samples)
            eval_rows += spec.examples(evaluation, training_type, style, eval_name)
    as_dataset = datasets.Dataset.from_list
    return as_dataset(train_rows), (as_dataset(eval_rows) if eval_rows else None)


def base_model_for(tailoring: TailoringArguments, method: str) -> str:
    """SFT and ORPO start from the base model; DPO, SimPO and KTO from the merged SFT model of the same training
    type (``methods.py``)."""
    if training_method(method).starts_from != SFT_MODEL:
        return absolute_if_local(resolve_model_name(tailoring.base_model_name))
    sft_merged = model_dirs(tailoring, "sft").merged
    if not (sft_merged / layout.MODEL_CONFIG_FILE).exists():
        flags = (
            f"--method sft --training_type {tailoring.training_type.value} "
            f"--dataset_name '{tailoring.dataset_name}' --hf_dataset_name '{tailoring.hf_dataset_name}' "
            f"--model_nickname '{tailoring.model_nickname}' --base_model_name '{tailoring.base_model_name}' "
            f"--model_save_dir '{tailoring.model_save_dir}'"
        )
        raise UsageError(
            f"{training_method(method).title} starts from the merged SFT model, but {sft_merged} does not exist: first run "
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


def training_device_map(options: BackendArguments):
    """One model copy per process under data parallelism; ``device_map`` (e.g. auto) only for a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return options.device_map
    if options.load_in_4bit or options.load_in_8bit:
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return None


def load_for_training(model_name: str, options: BackendArguments, config):
    """Model and tokenizer with a pad token and an end-of-sequence token, quantized only where supported."""
    model, tokenizer = load_model_and_tokenizer(
        model_name,
        device_map=training_device_map(options),
        load_in_4bit=options.load_in_4bit,
        load_in_8bit=options.load_in_8bit,
        cache_dir=options.cache_dir,
        dtype="bfloat16" if use_bf16() else "auto",
    )
    if tokenizer.eos_token is None:
        raise UsageError(
            f"the tokenizer of '{model_name}' has no end-of-sequence token: set tokenizer.eos_token and save it"
        )
    if options.load_in_4bit or options.load_in_8bit:
        from peft import prepare_model_for_kbit_training

        checkpointing = bool(config.gradient_checkpointing or config.activation_checkpointing)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    return model, tokenizer


def is_main_process() -> bool:
    """Rank 0 (or no distributed launch); read from the environment so no process group is created early."""
    return int(os.environ.get("RANK", "0")) == 0


def weight_settings(config) -> dict:
    """The TRL config fields that change the weights (every field but ``NOT_WEIGHTS``)."""
    return {k: v for k, v in config.to_dict().items() if not k.startswith(NOT_WEIGHTS)}


def training_fingerprint(
    method: str,
    training_type: str,
    base: str,
    config,
    lora,
    quantization: dict,
    train_dataset,
    eval_dataset,
) -> dict:
    """Everything that determines the adapter; for DPO the base is the merged SFT model, whose own fingerprint
    (``model_identity``) names the SFT adapter and everything that made it."""
    return {
        "method": method,
        "training_type": training_type,
        "base_model": model_identity(base),
        "data": {
            "train": digest(train_dataset.to_list()),
            "eval": digest(eval_dataset.to_list()) if eval_dataset is not None else None,
        },
        "lora": {
            "r": lora.r,
            "alpha": lora.lora_alpha,
            "dropout": lora.lora_dropout,
            "target_modules": (
                sorted(lora.target_modules)
                if isinstance(lora.target_modules, (set, list))
                else lora.target_modules
            ),
        },
        "quantization": quantization,
        "training": weight_settings(config),
    }


def plan_training(
    tailoring: TailoringArguments,
    lora_arguments: LoraArguments,
    backend: BackendArguments,
    method: str,
    flags: list[str],
    protocol: Protocol = Protocol.toolkit,
    seed: int = 0,
) -> TrainingPlan:
    """Data, TRL config (a bad flag is one line here, adapter or not) and fingerprint; loads no model."""
    train_dataset, eval_dataset = training_datasets(tailoring, method, backend.cache_dir)
    config = parse_training_config(tailoring, method, list(flags), protocol, seed, eval_dataset is not None)
    base = base_model_for(tailoring, method)
    lora = lora_arguments.peft_config()
    quantization = {"load_in_4bit": backend.load_in_4bit, "load_in_8bit": backend.load_in_8bit}
    fingerprint = training_fingerprint(
        method, tailoring.training_type.value, base, config, lora, quantization, train_dataset, eval_dataset
    )
    dirs = model_dirs(tailoring, method)
    return TrainingPlan(method, dirs, config, train_dataset, eval_dataset, base, fingerprint, lora)


def describe_training(plan: TrainingPlan) -> str:
    """The dry run of training: the settings that make the adapter, what it reads and writes."""
    fingerprint = plan.fingerprint
    lines = [
        f"[dry run] train {plan.method} ({fingerprint['training_type']}): {len(plan.train_dataset)} examples"
    ]
    lines += [f"[dry run]   setting {key}: {fingerprint[key]}" for key in ("lora", "quantization", "data")]
    lines += [f"[dry run]   setting {key}: {value}" for key, value in sorted(fingerprint["training"].items())]
    lines += [f"[dry run]   reads base model {plan.base_model}"]
    lines += [
        f"[dry run]   writes {path}"
        for path in (plan.dirs.checkpoints, plan.dirs.adapter, plan.files.run_record)
    ]
    return "\n".join(lines)


def train(plan: TrainingPlan, backend: BackendArguments, overwrite: bool, arguments: dict) -> Path:
    """Train the planned LoRA adapter (``plan_training``) unless the same one exists; return its folder.
    ``arguments`` (the command line's groups, ``public_args``) go into the run record."""

    def fit():
        trainer = trainer_for(plan, backend)
        trainer.accelerator.wait_for_everyone()  # the others start once the main process holds the folder
        fit_and_save(trainer, plan, arguments)

    run_work_stage(plan.stage, fit, overwrite, main=is_main_process())
    return plan.dirs.adapter


def build_trainer(
    tailoring: TailoringArguments,
    lora: LoraArguments,
    backend: BackendArguments,
    method: str,
    flags: list[str] = (),
    protocol: Protocol = Protocol.toolkit,
):
    """The trainer ``run_model --stage train`` would build (for benchmarks and tests)."""
    return trainer_for(plan_training(tailoring, lora, backend, method, flags, protocol), backend)


def trainer_for(plan: TrainingPlan, options: BackendArguments):
    """The method's trainer (SFTTrainer, DPOTrainer, ...) with a fresh LoRA adapter on the plan's base model."""
    method, config = plan.method, plan.config
    padding_free_limit = untruncated_padding_free(config, method)
    model, tokenizer = load_for_training(plan.base_model, options, config)
    data = dict(train_dataset=plan.train_dataset, eval_dataset=plan.eval_dataset, processing_class=tokenizer)
    # With a PEFT adapter, DPO's and KTO's reference model is the policy with the adapter off: the merged SFT model.
    trainer_class = training_method(method).trainer_class()
    packed_dpo = method == "dpo" and config.padding_free
    if hasattr(config, "padding_free"):  # TRL 1.16's DPO would pad anyway, with a warning
        config.padding_free = config.padding_free and not packed_dpo
    trainer = trainer_class(model=model, args=config, peft_config=plan.lora, **data)
    if packed_dpo:
        config.padding_free = True  # what the training summary records: the forwards below are padding-free
        pack_dpo_forward(trainer.model)
    if padding_free_limit is not None:
        splits = [d for d in (trainer.train_dataset, trainer.eval_dataset) if d is not None]
        longest = max(len(ids) for split in splits for ids in split["input_ids"])
        if longest > padding_free_limit:
            raise UsageError(
                f"an SFT example has {longest} tokens, more than --max_length {padding_free_limit}, and padding-free "
                "batches are not truncated: raise --max_length, or pass --packing True (bins of --max_length)"
            )
    return trainer


def untruncated_padding_free(config, method: str) -> int | None:
    """``--padding_free True`` without packing: TRL accepts it only with no ``max_length`` (it truncates no padding-free
    batch), so the trainer gets none and the returned limit is checked against the examples instead. Each step sees
    the same examples as with padding, without the padding (the loss is the same)."""
    if (
        not getattr(config, "padding_free", False) or method == "dpo"
    ):  # DPO truncates in its collator, then packs (packing.py)
        return None
    if config.packing or config.max_length is None:
        return None
    limit, config.max_length = config.max_length, None
    return limit


def fit_and_save(trainer, plan: TrainingPlan, arguments: dict) -> Path:
    """Train (resuming from the last complete checkpoint if any: the caller holds the folder under the same
    fingerprint) and save the best adapter with its fingerprint and the run record."""
    training_type, method, dirs = plan.fingerprint["training_type"], plan.method, plan.dirs
    resume = last_complete_checkpoint(dirs.checkpoints)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    save_adapter(
        trainer,
        dirs.adapter,
        {
            "method": method,
            "training_type": training_type,
            "base_model": plan.base_model,
            "train_examples": len(trainer.train_dataset),
            "eval_examples": len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0,
            "resumed_from": resume,
            "global_step": trainer.state.global_step,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "best_eval_loss": trainer.state.best_metric,
            "train_loss": result.training_loss,
            "seconds": round(time.perf_counter() - start, 1),
            "arguments": arguments,
            "training_config": trainer.args.to_dict(),
        },
        plan.fingerprint,
    )
    if trainer.accelerator.is_main_process:
        write_run_record(
            plan.files,
            arguments,
            {"global_step": trainer.state.global_step, "train_loss": result.training_loss},
            model=plan.base_model,
            seconds=round(time.perf_counter() - start, 1),
            method=method,
            resumed_from=resume,
        )
        print(
            f"{method} ({training_type}): {len(trainer.train_dataset)} training examples, {trainer.state.global_step} steps, "
            f"train loss {result.training_loss:.4f}, best eval loss {trainer.state.best_metric}, adapter: {dirs.adapter}"
        )
    return dirs.adapter


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint whose trainer state (written last) reads back: one cut short by a kill is skipped."""
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    steps = []
    for checkpoint in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if folder.is_dir() else []:
        try:
            json.loads((checkpoint / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
            steps.append((int(checkpoint.name.rsplit("-", 1)[1]), checkpoint))
        except (OSError, ValueError):
            continue
    return str(max(steps)[1]) if steps else None


def save_adapter(trainer, adapter_dir: Path, summary: dict, fingerprint: dict) -> None:
    """Save the (best) adapter, tokenizer, training summary and fingerprint into ``adapter_dir`` atomically.

    Every process joins ``save_model`` (DeepSpeed ZeRO-3 gathers the weights); only the main one writes, into a
    shared temporary folder that then replaces ``adapter_dir`` in one rename.
    """
    shared_tmp = adapter_dir.with_name(adapter_dir.name + ".saving")
    if trainer.accelerator.is_main_process:
        shutil.rmtree(shared_tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(shared_tmp))
    if trainer.accelerator.is_main_process:
        with atomic_output(adapter_dir, folder=True) as tmp:
            for item in shared_tmp.iterdir():
                os.replace(item, tmp / item.name)
            (tmp / layout.TRAINING_SUMMARY_FILE).write_text(
                json.dumps(summary, indent=2, default=str), encoding="utf-8"
            )
            (tmp / layout.MODEL_FINGERPRINT_FILE).write_text(
                json.dumps(fingerprint, indent=2, default=str), encoding="utf-8"
            )
        shutil.rmtree(shared_tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
