"""Persona tailoring: few-shot, SFT and DPO (LoRA) models that tailor responses to a persona (also ORPO, SimPO, KTO).

Stages: train (LoRA adapter) -> merge (standalone model) -> infer (generations on the test split).

Examples::

    # SFT on the embedded model and the sample data, then generate with gold and retrieved personas;
    # --num_train_epochs and --lr_scheduler_type are SFTConfig fields (every one is a flag: --help_training)
    python -m persona_tailoring.model.run_model --method sft --training_type chosen --stage all \\
        --inference_type gold-chosen retr-chosen --num_train_epochs 1 --lr_scheduler_type cosine

    # DPO from the merged SFT model of the same training type
    python -m persona_tailoring.model.run_model --method dpo --training_type chosen --stage all

    # ORPO in one stage from the base model; SimPO and KTO from the merged SFT model (docs/METHODS.md)
    python -m persona_tailoring.model.run_model --method orpo --training_type all --stage all
    python -m persona_tailoring.model.run_model --method kto --training_type all --stage all --beta 0.2

    # few-shot baseline on the base model (no training)
    python -m persona_tailoring.model.run_model --method fewshot --training_type chosen --stage infer

    # the paper's data and model on GPUs (data parallel; see scripts/accelerate/ for DeepSpeed)
    accelerate launch --multi_gpu -m persona_tailoring.model.run_model --method sft --stage train \\
        --base_model_name meta-llama/Llama-3.1-8B --model_nickname llama-3.1-8b \\
        --hf_dataset_name ../shared/data/persona-tailoring-BeaverTails --dataset_name BeaverTails

    # two data-parallel CPU processes (gloo): `accelerate launch --cpu` would start only one
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 --mixed_precision no \
        -m persona_tailoring.model.run_model --method sft --stage train

    # inference through an OpenAI-compatible server (vllm serve <merged folder>)
    python -m persona_tailoring.model.run_model --method sft --stage infer --backend open_ai \\
        --base_url http://localhost:8000/v1

    # vLLM in process (its own environment: bash scripts/setup.sh --vllm), the LoRA adapter served unmerged
    .venv-vllm/bin/python -m persona_tailoring.model.run_model --method sft --stage infer --backend vllm --no_merge
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from persona_core.arguments import DryRunArguments, LimitArguments, OverwriteArguments
from persona_core.cli import parse_known_args
from persona_core.errors import UsageError, run_cli
from persona_core.layout import model_nickname
from persona_core.protocol import ProtocolArguments
from persona_core.protocol import apply as apply_protocol
from persona_core.secrets import load_env
from persona_core.shards import ShardArguments
from persona_tailoring.model import config
from persona_tailoring.model.generate import GeneratorArguments, infer
from persona_tailoring.model.merge import merge
from persona_tailoring.model.templates import InferenceType, Method, TrainingType
from persona_tailoring.model.train import (
    describe_training,
    is_main_process,
    model_dirs,
    plan_training,
    print_training_help,
    train,
)

TRAINING_HELP = (
    "Training takes TRL's own configs: every field of the method's config (SFTConfig, DPOConfig; ORPOConfig for orpo, "
    "CPOConfig for simpo, KTOConfig for kto) is a flag too, e.g. --num_train_epochs, --learning_rate, "
    "--per_device_train_batch_size, --gradient_accumulation_steps, --max_length, --beta, --lr_scheduler_type, "
    "--warmup_steps, --activation_checkpointing, --padding_free (sft, dpo), --simpo_gamma (simpo), "
    "--desirable_weight (kto). Defaults: 10 epochs; lr 2e-5 SFT, 5e-6 DPO; beta 0.1; max length 512; evaluation "
    "each epoch, best checkpoint by eval loss (all the paper's); batch 4 x 2 accumulation (paper: batch 1, no "
    "accumulation); SFT loss on the completion only (paper: the whole sequence, --completion_only_loss False). "
    "--protocol paper sets the paper's. The paper trains no ORPO, SimPO or KTO: their defaults are orpo lr 2e-5 "
    "(the paper's SFT rate), beta 0.1 (TRL's); simpo lr 5e-6 (the paper's DPO rate), beta 2.0, simpo_gamma 1.0 "
    "(SimPO paper), cpo_alpha 0; kto lr 5e-6, beta 0.1, weights 1.0 (TRL's); see docs/METHODS.md. "
    "`--method kto --help_training` lists every flag of a method."
)


class Stage(str, Enum):
    train = "train"
    merge = "merge"
    infer = "infer"
    all = "all"


@dataclass
class Arguments(
    ProtocolArguments, OverwriteArguments, DryRunArguments, LimitArguments, ShardArguments, GeneratorArguments
):
    method: Method = field(
        default=Method.sft,
        metadata={
            "help": "Tailoring method: fewshot, sft, dpo (from the merged SFT model), orpo (one stage from the base "
            "model), simpo, kto (both from the merged SFT model).",
            "aliases": ["--model_type"],
        },
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
    model_nickname: str | None = field(
        default=config.model_nickname,
        metadata={"help": "Folder name for this model (default: from --base_model_name, file-safe)."},
    )
    base_model_name: str = field(
        default=config.base_model_name, metadata={"help": "Base model: Hub id or local folder."}
    )
    use_wandb: bool = field(
        default=config.use_wandb, metadata={"help": "Log training to Weights & Biases (needs a key)."}
    )
    dataset_name: str = field(
        default=config.dataset_name,
        metadata={"help": "Dataset name (Hub config; results folder; system persona; primer)."},
    )
    hf_dataset_name: str = field(
        default=config.hf_dataset_name,
        metadata={
            "help": "Hub id, save_to_disk folder, or folder of <split>.jsonl files with the tailoring splits."
        },
    )
    model_save_dir: str = field(
        default=config.model_save_dir, metadata={"help": "Root for adapters and merged models."}
    )
    results_save_dir: str = field(default=config.results_save_dir, metadata={"help": "Root for generations."})
    # data
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N rows of each training split (ORPO reads two)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N validation rows (0: no eval)."}
    )
    response_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Response primer ({term}/{Term}: the prompt / title-cased); default per dataset, '' for none."
        },
    )
    system_persona: str | None = field(
        default=None,
        metadata={
            "help": "Persona for --inference_type system (default: one per dataset, the authors' in meaning)."
        },
    )
    # LoRA (the paper's); the trainer's own settings are its TRL config's flags (see below)
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={
            "help": "Modules LoRA adapts: names, all-linear, or peft_default (PEFT's choice for the architecture, "
            "q_proj v_proj on Llama). paper: peft_default."
        },
    )
    help_training: bool = field(
        default=False, metadata={"help": "List every flag of --method's TRL config and exit."}
    )
    # inference
    model_path: str | None = field(
        default=None, metadata={"help": "Generate from this model instead of the method's own."}
    )
    server_model_name: str | None = field(
        default=None, metadata={"help": "Model name the server serves (default: the merged folder's path)."}
    )

    def __post_init__(self):
        if not self.model_nickname:
            self.model_nickname = model_nickname(self.base_model_name)

    def check(self) -> None:
        if self.max_train_samples is not None and self.max_train_samples <= 0:
            raise UsageError(f"--max_train_samples must be positive (got {self.max_train_samples})")
        if not 0 <= self.lora_dropout < 1 or self.lora_r <= 0 or self.lora_alpha <= 0:
            raise UsageError("--lora_r and --lora_alpha must be positive and --lora_dropout in [0, 1)")


def trains(args: Arguments) -> bool:
    return args.method != Method.fewshot and args.stage in (Stage.train, Stage.all)


def run_train(args: Arguments, training_flags: list[str]) -> int:
    if args.method == Method.fewshot:
        print("few-shot uses the base model with demonstrations: nothing to train")
        return 0

    if args.dry_run:
        print(describe_training(plan_training(args, args.method.value, training_flags)))
        return 0
    train(args, args.method.value, training_flags)
    return 0


def run_merge(args: Arguments, training_flags: list[str]) -> int:
    if args.method == Method.fewshot:
        print("few-shot uses the base model: nothing to merge")
        return 0
    if args.no_merge:
        print("--no_merge: generation serves the LoRA adapter on its base model, nothing to merge")
        return 0

    if args.dry_run:
        dirs = model_dirs(args, args.method.value)
        print(f"[dry run] merge: reads {dirs.adapter} and its base model; writes {dirs.merged}")
        return 0
    if not is_main_process():  # under accelerate every process trains; merging runs once
        return 0
    merge(model_dirs(args, args.method.value), args.overwrite, args.cache_dir)
    return 0


def run_infer(args: Arguments, training_flags: list[str]) -> int:

    if not is_main_process():  # generation runs once (or through a server: --backend open_ai)
        return 0

    return infer(args, args.method.value)


STAGES = {Stage.train: [run_train], Stage.merge: [run_merge], Stage.infer: [run_infer]}
STAGES[Stage.all] = [run_train, run_merge, run_infer]


def main(argv: list[str] | None = None) -> int:
    argv = apply_protocol("persona_tailoring.model.run_model", argv)
    args, training_flags = parse_known_args(
        Arguments, argv, description=__doc__.split("\n\n")[0], epilog=TRAINING_HELP
    )
    if args.help_training:
        if args.method == Method.fewshot:
            raise UsageError(
                "few-shot trains nothing: pass a trained --method (sft, dpo, orpo, simpo, kto) with --help_training"
            )

        print_training_help(args, args.method.value)
        return 0
    if training_flags and not trains(args):
        raise UsageError(
            f"unrecognized arguments: {' '.join(training_flags)} (training flags apply only to --stage train/all "
            "of a trained method; see --help)"
        )

    load_env()
    config.export_hub_token()
    if trains(args):
        config.wandb_enabled(args.use_wandb)  # a missing key fails here, before any model loads
    status = 0
    for stage in STAGES[args.stage]:
        status = stage(args, training_flags) or status
    return status


if __name__ == "__main__":
    run_cli(main)
