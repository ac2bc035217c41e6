"""Persona tailoring: few-shot, SFT and DPO (LoRA) models that tailor responses to a persona.

Stages: train (LoRA adapter) -> merge (standalone model) -> infer (generations on the test split).

Examples::

    # SFT on the embedded model and the sample data, then generate with gold and retrieved personas
    python -m persona_tailoring.model.run_model --method sft --training_type chosen --stage all \\
        --inference_type gold-chosen retr-chosen --num_train_epochs 1

    # DPO from the merged SFT model of the same training type
    python -m persona_tailoring.model.run_model --method dpo --training_type chosen --stage all

    # few-shot baseline on the base model (no training)
    python -m persona_tailoring.model.run_model --method fewshot --training_type chosen --stage infer

    # the paper's data and model on GPUs (data parallel; see scripts/accelerate/ for DeepSpeed)
    accelerate launch --multi_gpu -m persona_tailoring.model.run_model --method sft --stage train \\
        --base_model_name meta-llama/Llama-3.1-8B --model_nickname llama-3.1-8b \\
        --hf_dataset_name /work/shared/data/persona-tailoring-BeaverTails --dataset_name BeaverTails

    # two data-parallel CPU processes (gloo): `accelerate launch --cpu` would start only one
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --mixed_precision no \
        -m persona_tailoring.model.run_model --method sft --stage train

    # inference through an OpenAI-compatible server (vllm serve <merged folder>)
    python -m persona_tailoring.model.run_model --method sft --stage infer --backend open_ai \\
        --base_url http://localhost:8000/v1
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from persona_core.cli import parse_args
from persona_core.errors import UsageError, run_cli
from persona_tailoring.model import config
from persona_tailoring.model.templates import InferenceType, TrainingType


class ModelType(str, Enum):
    """The tailoring method."""

    fewshot = "fewshot"
    sft = "sft"
    dpo = "dpo"


class Stage(str, Enum):
    train = "train"
    merge = "merge"
    infer = "infer"
    all = "all"


@dataclass
class Arguments:
    method: ModelType = field(
        default=ModelType.sft, metadata={"help": "Tailoring method.", "aliases": ["--model_type"]}
    )
    stage: Stage = field(default=Stage.all, metadata={"help": "Stage to run (all = train, merge, infer)."})
    training_type: TrainingType = field(
        default=TrainingType.chosen,
        metadata={"help": "Personas to train on: chosen, rejected, all (both), none (no persona)."},
    )
    inference_type: list[InferenceType] = field(
        default_factory=lambda: [InferenceType.gold_chosen],
        metadata={"help": "Personas to infer with (several allowed, one output file each)."},
    )
    # shared defaults (persona_tailoring/model/config.py)
    model_nickname: str = field(default=config.model_nickname, metadata={"help": "Folder name for this model."})
    base_model_name: str = field(default=config.base_model_name, metadata={"help": "Base model: Hub id or local folder."})
    use_wandb: bool = field(default=config.use_wandb, metadata={"help": "Log training to Weights & Biases (needs a key)."})
    dataset_name: str = field(
        default=config.dataset_name, metadata={"help": "Dataset name (Hub config; results folder; system persona; primer)."}
    )
    hf_dataset_name: str = field(
        default=config.hf_dataset_name,
        metadata={"help": "Hub id, save_to_disk folder, or folder of <split>.jsonl files with the tailoring splits."},
    )
    load_in_8bit: bool = field(default=config.load_in_8bit, metadata={"help": "8-bit base model (CUDA + bitsandbytes)."})
    load_in_4bit: bool = field(default=config.load_in_4bit, metadata={"help": "4-bit base model (CUDA + bitsandbytes)."})
    cache_dir: str | None = field(default=config.cache_dir, metadata={"help": "Hugging Face cache folder."})
    model_save_dir: str = field(default=config.model_save_dir, metadata={"help": "Root for adapters and merged models."})
    results_save_dir: str = field(default=config.results_save_dir, metadata={"help": "Root for generations."})
    device_map: str = field(default=config.device_map, metadata={"help": "Device map for a single process."})
    # data
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation rows (0: no eval)."})
    limit: int | None = field(default=None, metadata={"help": "Generate for only the first N test rows."})
    response_prefix: str | None = field(
        default=None,
        metadata={"help": "Response primer ({term}/{Term}: the prompt / title-cased); default per dataset, '' for none."},
    )
    system_persona: str | None = field(
        default=None, metadata={"help": "Persona for --inference_type system (default: one per dataset)."}
    )
    # training (the paper's defaults)
    num_train_epochs: float = field(default=10, metadata={"help": "Training epochs."})
    learning_rate: float | None = field(default=None, metadata={"help": "Learning rate (default: SFT 2e-5, DPO 5e-6)."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Batch size per device (also for eval)."})
    gradient_accumulation_steps: int = field(default=2, metadata={"help": "Gradient accumulation steps."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for memory (large models)."})
    max_length: int = field(default=512, metadata={"help": "Maximum tokens per training sequence."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    beta: float = field(default=0.1, metadata={"help": "DPO beta."})
    seed: int = field(default=0, metadata={"help": "Random seed (training and sampling)."})
    overwrite: bool = field(default=False, metadata={"help": "Redo the requested stages instead of reusing their outputs."})
    # inference
    model_path: str | None = field(default=None, metadata={"help": "Generate from this model instead of the method's own."})
    backend: str = field(default="hf", metadata={"help": "hf (in process) or open_ai (an OpenAI-compatible server)."})
    base_url: str | None = field(default=None, metadata={"help": "Server URL for --backend open_ai (e.g. vLLM)."})
    server_model_name: str | None = field(
        default=None, metadata={"help": "Model name the server serves (default: the merged folder's path)."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Maximum new tokens per response."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    batch_size: int = field(default=8, metadata={"help": "Prompts decoding together (hf backend)."})
    concurrency: int = field(default=8, metadata={"help": "Requests in flight (open_ai backend)."})


def check_arguments(args: Arguments) -> None:
    if args.backend not in ("hf", "open_ai"):
        raise UsageError(f"unknown --backend '{args.backend}'; choose one of: hf, open_ai")
    if args.backend == "open_ai" and not args.base_url and not os.environ.get("OPENAI_BASE_URL"):
        raise UsageError("--backend open_ai needs --base_url (e.g. http://localhost:8000/v1 for `vllm serve`)")
    if args.load_in_4bit and args.load_in_8bit:
        raise UsageError("pass only one of --load_in_4bit and --load_in_8bit")
    for name in ("num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name} must be positive")


def run_train(args: Arguments) -> int:
    if args.method == ModelType.fewshot:
        print("few-shot uses the base model with demonstrations: nothing to train")
        return 0
    from persona_tailoring.model.train import train

    train(args, args.method.value)
    return 0


def run_merge(args: Arguments) -> int:
    if args.method == ModelType.fewshot:
        print("few-shot uses the base model: nothing to merge")
        return 0
    from persona_tailoring.model.train import is_main_process, run_paths

    if not is_main_process():  # under accelerate every process trains; merging runs once
        return 0
    from persona_tailoring.model.merge import merge_adapter

    paths = run_paths(args)
    method, training_type = args.method.value, args.training_type.value
    merged = paths.merged_dir(method, training_type)
    if (merged / "config.json").exists() and not args.overwrite:
        print(f"merged model exists: {merged} (pass --overwrite to merge again)")
        return 0
    merge_adapter(paths.adapter_dir(method, training_type), merged, args.cache_dir)
    print(f"merged {method} ({training_type}) model: {merged}")
    return 0


def run_infer(args: Arguments) -> int:
    from persona_tailoring.model.train import is_main_process

    if not is_main_process():  # generation runs once (or through a server: --backend open_ai)
        return 0
    from persona_tailoring.model.generate import infer

    return infer(args, args.method.value)


STAGES = {Stage.train: [run_train], Stage.merge: [run_merge], Stage.infer: [run_infer]}
STAGES[Stage.all] = [run_train, run_merge, run_infer]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    check_arguments(args)
    from persona_core.secrets import load_env

    load_env()
    config.export_hub_token()
    if args.method != ModelType.fewshot and args.stage in (Stage.train, Stage.all):
        config.wandb_enabled(args.use_wandb)  # a missing key fails here, before any model loads
    status = 0
    for stage in STAGES[args.stage]:
        status = stage(args) or status
    return status


if __name__ == "__main__":
    run_cli(main)
