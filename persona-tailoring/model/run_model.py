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
from persona_core.cli import parse, public_args
from persona_core.errors import UsageError, run_cli
from persona_core.protocol import ProtocolArguments
from persona_core.protocol import apply as apply_protocol
from persona_core.secrets import load_env
from persona_core.shards import ShardArguments
from persona_tailoring.model import config
from persona_tailoring.model.arguments import (
    GeneratorArguments,
    InferenceArguments,
    LoraArguments,
    TailoredGenerationArguments,
    TailoringArguments,
)
from persona_tailoring.model.generate import infer, plan_infer
from persona_tailoring.model.merge import merge
from persona_tailoring.model.templates import Method
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
class RunModelArguments(OverwriteArguments, DryRunArguments, LimitArguments):
    """What to run: the method, the stage, and what happens to earlier results."""

    method: Method = field(
        default=Method.sft,
        metadata={
            "help": "Tailoring method: fewshot, sft, dpo (from the merged SFT model), orpo (one stage from the base "
            "model), simpo, kto (both from the merged SFT model).",
            "aliases": ["--model_type"],
        },
    )
    stage: Stage = field(default=Stage.all, metadata={"help": "Stage to run (all = train, merge, infer)."})
    help_training: bool = field(
        default=False, metadata={"help": "List every flag of --method's TRL config and exit."}
    )

    @property
    def trains(self) -> bool:
        return self.method != Method.fewshot and self.stage in (Stage.train, Stage.all)

    @property
    def stages(self) -> tuple[Stage, ...]:
        return (Stage.train, Stage.merge, Stage.infer) if self.stage == Stage.all else (self.stage,)


GROUPS = (
    RunModelArguments,
    TailoringArguments,
    LoraArguments,
    InferenceArguments,
    GeneratorArguments,
    TailoredGenerationArguments,
    ShardArguments,
    ProtocolArguments,
)
"""run_model's argument groups, in the order ``parse`` returns them (the TRL config's flags come back last)."""


def parse_run_model(argv: list[str] | None = None) -> tuple:
    """The groups of ``GROUPS`` and the flags left to the method's TRL config, the protocol's values applied first."""
    argv = apply_protocol("persona_tailoring.model.run_model", argv)
    return parse(
        GROUPS, argv, description=__doc__.split("\n\n")[0], epilog=TRAINING_HELP, return_remaining=True
    )


def run_train(
    script: RunModelArguments,
    tailoring: TailoringArguments,
    lora: LoraArguments,
    generator: GeneratorArguments,
    training_flags: list[str],
    protocol: ProtocolArguments,
    seed: int,
    arguments: dict,
) -> int:
    method = script.method.value
    if script.method == Method.fewshot:
        print("few-shot uses the base model with demonstrations: nothing to train")
        return 0
    plan = plan_training(tailoring, lora, generator, method, training_flags, protocol.protocol, seed)
    if script.dry_run:
        print(describe_training(plan))
        return 0
    train(plan, generator, script.overwrite, arguments)
    return 0


def run_merge(script: RunModelArguments, tailoring: TailoringArguments, generator: GeneratorArguments) -> int:
    if script.method == Method.fewshot:
        print("few-shot uses the base model: nothing to merge")
        return 0
    if generator.no_merge:
        print("--no_merge: generation serves the LoRA adapter on its base model, nothing to merge")
        return 0
    dirs = model_dirs(tailoring, script.method.value)
    if script.dry_run:
        print(f"[dry run] merge: reads {dirs.adapter} and its base model; writes {dirs.merged}")
        return 0
    if not is_main_process():  # under accelerate every process trains; merging runs once
        return 0
    merge(dirs, script.overwrite, generator.cache_dir)
    return 0


def check_together(script: RunModelArguments, training_flags: list[str]) -> None:
    """Training flags only where something trains."""
    if training_flags and not script.trains:
        raise UsageError(
            f"unrecognized arguments: {' '.join(training_flags)} (training flags apply only to --stage train/all "
            "of a trained method; see --help)"
        )


def main(argv: list[str] | None = None) -> int:
    groups = parse_run_model(argv)
    script, tailoring, lora, inference, generator, generation, shards, protocol, training_flags = groups
    if script.help_training:
        if script.method == Method.fewshot:
            raise UsageError(
                "few-shot trains nothing: pass a trained --method (sft, dpo, orpo, simpo, kto) with --help_training"
            )
        print_training_help(tailoring, script.method.value, protocol.protocol, generation.seed)
        return 0
    check_together(script, training_flags)

    load_env()
    config.export_hub_token()
    if script.trains:
        config.wandb_enabled(tailoring.use_wandb)  # a missing key fails here, before any model loads
    arguments = public_args(*groups[:-1])
    status = 0
    if Stage.train in script.stages:
        seed = generation.seed
        status = (
            run_train(script, tailoring, lora, generator, training_flags, protocol, seed, arguments) or status
        )
    if Stage.merge in script.stages:
        status = run_merge(script, tailoring, generator) or status
    if Stage.infer in script.stages and is_main_process():  # generation runs once (or through a server)
        method, limit, dry_run = script.method.value, script.limit, script.dry_run
        plan = plan_infer(tailoring, inference, generator, generation, method, limit, dry_run)
        status = infer(plan, generator, shards, script.overwrite, dry_run, arguments) or status
    return status


if __name__ == "__main__":
    run_cli(main)
