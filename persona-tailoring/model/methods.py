"""The training methods, one row each: TRL's config and trainer, the examples, the starting model, the splits read
and the default hyper-parameters with where each comes from.

``train.py`` looks every method up here, so SFT, DPO, ORPO, SimPO and KTO share one code path: the same training
types, prompt format, LoRA adapter, checkpoints, resume, atomic adapter and training summary. The defaults shared by
every method (epochs, batch size, max length, evaluation) are the paper's, in ``train.PAPER_TRAINING``; a row's
``defaults`` are the method's own. The paper trains only SFT and DPO: the other rows' values are not the paper's
(``sources`` says whose they are), and every one is a command-line flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from persona_core.errors import UsageError
from persona_tailoring.model import templates

BASE_MODEL = "base"
SFT_MODEL = "sft"
"""Where a method starts: the base model, or the merged SFT model of the same training type (also its reference)."""

PREFERENCE_LEARNING_RATE = 5e-6
"""The paper's DPO learning rate with LoRA; SimPO and KTO, which also start from the merged SFT model, take it too, so
the ΔPQ table compares objectives rather than learning rates (TRL's default, 1e-6, is for full fine-tuning)."""


@dataclass(frozen=True)
class TrainingMethod:
    """One method's row; the defaults are those of a preference method trained after SFT on the DPO splits."""

    name: str
    title: str
    config_name: str
    """The TRL config class; its trainer is the class of the same stem (``DPOConfig`` -> ``DPOTrainer``)."""
    defaults: dict
    sources: str
    reference_free: bool
    """True when the loss needs no reference log-probabilities (no forward pass with the adapter switched off)."""
    module: str = "trl"
    examples: Callable = templates.dpo_examples
    """``templates`` builder: (split, training type, prompt style, split name) -> the trainer's rows."""
    starts_from: str = SFT_MODEL
    train_splits: tuple[str, ...] = ("dpo_train",)
    eval_splits: tuple[str, ...] = ("dpo_val",)
    prepends_bos: bool = False
    """TRL's experimental ORPO/CPO put the tokenizer's BOS before every prompt even when the tokenizer adds none."""

    @property
    def trainer_name(self) -> str:
        return self.config_name.removesuffix("Config") + "Trainer"

    def config_class(self):
        return getattr(trl_module(self.module), self.config_name)

    def trainer_class(self):
        trainer = getattr(trl_module(self.module), self.trainer_name)
        return tokens_as_at_inference(trainer) if self.prepends_bos else trainer

    def check(self, config) -> None:
        """Settings under which the method's trainer would not be this method: one line naming the fix."""
        if self.name == "simpo" and config.loss_type != "simpo":
            raise UsageError(
                f"--method simpo trains CPOTrainer with --loss_type simpo, not {config.loss_type}: drop --loss_type"
            )
        if self.name == "kto" and config.loss_type == "kto":
            if config.per_device_train_batch_size < 2:
                raise UsageError(
                    "KTO estimates its KL term from the other examples of a batch: pass "
                    "--per_device_train_batch_size 2 or more"
                )
            if config.train_sampling_strategy != "sequential":
                raise UsageError(
                    "KTO's KL term pairs each example with its neighbours in the built order: keep "
                    "--train_sampling_strategy sequential (the examples are already interleaved)"
                )


def trl_module(name: str):
    """A TRL module; ``trl.experimental`` (ORPO, CPO) without its warning on every run: docs/METHODS.md says which
    methods use it and that its APIs may change between TRL releases."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    return import_module(name)


def by_name(*methods: TrainingMethod) -> dict[str, TrainingMethod]:
    return {m.name: m for m in methods}


METHODS = by_name(
    TrainingMethod(
        name="sft",
        title="SFT",
        config_name="SFTConfig",
        examples=templates.sft_examples,
        starts_from=BASE_MODEL,
        train_splits=("sft_train",),
        eval_splits=("sft_val",),
        defaults={"learning_rate": 2e-5, "completion_only_loss": True},
        sources="the paper's (lr 2e-5, loss on the response only)",
        reference_free=True,
    ),
    TrainingMethod(
        name="dpo",
        title="DPO",
        config_name="DPOConfig",
        defaults={"learning_rate": PREFERENCE_LEARNING_RATE, "beta": 0.1},
        sources="the paper's (lr 5e-6, beta 0.1)",
        reference_free=False,
    ),
    TrainingMethod(
        name="orpo",
        title="ORPO",
        module="trl.experimental.orpo",
        config_name="ORPOConfig",
        starts_from=BASE_MODEL,
        train_splits=("sft_train", "dpo_train"),
        eval_splits=("sft_val", "dpo_val"),
        defaults={"learning_rate": 2e-5, "beta": 0.1},
        sources="lr: the paper's SFT one (ORPO's loss is SFT's plus an odds-ratio term, from the base model); beta "
        "(the ORPO paper's lambda) 0.1: TRL's ORPOConfig default. One stage on the SFT and DPO splits together, "
        "the data SFT -> DPO sees",
        reference_free=True,
        prepends_bos=True,
    ),
    TrainingMethod(
        name="simpo",
        title="SimPO",
        module="trl.experimental.cpo",
        config_name="CPOConfig",
        defaults={
            "learning_rate": PREFERENCE_LEARNING_RATE,
            "loss_type": "simpo",
            "cpo_alpha": 0.0,
            "beta": 2.0,
            "simpo_gamma": 1.0,
        },
        sources="lr: the paper's DPO one; loss_type simpo with cpo_alpha 0: TRL's recipe for SimPO; beta 2.0 and "
        "simpo_gamma 1.0: the SimPO paper's Llama-3-8B-Base setting (Meng et al. 2024, arXiv:2405.14734; TRL's "
        "CPO defaults, beta 0.1 and gamma 0.5, are CPO's). From the merged SFT model, as the SimPO paper starts from an SFT model",
        reference_free=True,
        prepends_bos=True,
    ),
    TrainingMethod(
        name="kto",
        title="KTO",
        config_name="KTOConfig",
        examples=templates.kto_examples,
        defaults={
            "learning_rate": PREFERENCE_LEARNING_RATE,
            "beta": 0.1,
            "desirable_weight": 1.0,
            "undesirable_weight": 1.0,
        },
        sources="lr: the paper's DPO one; beta 0.1 and weights 1.0: TRL's KTOConfig defaults (the examples are "
        "balanced, one desirable per undesirable). From the merged SFT model, its reference, as DPO",
        reference_free=False,
    ),
)
"""Every trained method by ``--method`` value (``fewshot`` trains nothing)."""


def method(name: str) -> TrainingMethod:
    if name not in METHODS:
        raise UsageError(f"--method {name} trains nothing: pass one of {', '.join(METHODS)}")
    return METHODS[name]


def other_owners(name: str, flags: list[str]) -> str | None:
    """'--simpo_gamma is a flag of --method simpo' for the first flag another method's config has and this one lacks."""
    from dataclasses import fields

    own = {f.name for f in fields(method(name).config_class())}
    for flag in flags:
        key = flag.removeprefix("--").split("=", 1)[0]
        if not flag.startswith("--") or key in own:
            continue
        owners = [m for m in METHODS.values() if key in {f.name for f in fields(m.config_class())}]
        if owners:
            where = ", ".join(f"--method {m.name} ({m.config_name})" for m in owners)
            return f"{flag} is a flag of {where}, not of --method {name} ({method(name).config_name})"
    return None


def tokens_as_at_inference(trainer_class):
    """``trainer_class`` whose tokenized rows start as the tokenizer itself starts a text (generation tokenizes
    the model input that way): the BOS that TRL's experimental ORPO/CPO force before each prompt is dropped when
    the tokenizer adds none, so training sees exactly the tokens of ``Prompt: ...`` that inference sees."""

    class SameTokensAsInference(trainer_class):
        def tokenize_row(self, feature, model=None):
            row = super().tokenize_row(feature, model)
            tokenizer = self.processing_class
            bos = tokenizer.bos_token_id
            if bos is None or tokenizer("x").input_ids[:1] == [bos]:
                return row
            for part in ("prompt", "chosen", "rejected"):
                if row[f"{part}_input_ids"][:1] == [bos]:
                    for key in ("input_ids", "attention_mask", "labels"):
                        if f"{part}_{key}" in row:
                            row[f"{part}_{key}"] = row[f"{part}_{key}"][1:]
            return row

    SameTokensAsInference.__name__ = trainer_class.__name__
    return SameTokensAsInference
