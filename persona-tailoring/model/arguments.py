"""Argument groups of persona tailoring: ``run_model`` parses them side by side (``persona_core.cli.parse``) with the
core groups, ``chat`` and the benchmarks reuse them; each stage function gets the groups it reads.

Kept light (no torch, transformers or peft at import), so ``--help`` stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from persona_core import layout
from persona_core.arguments import BackendArguments, GenerationArguments
from persona_core.errors import UsageError
from persona_core.llm.base import GenerationConfig
from persona_core.secrets import base_url_from_env
from persona_tailoring.model import config as defaults
from persona_tailoring.model import templates
from persona_tailoring.model.templates import PromptArguments


@dataclass
class TailoringArguments(PromptArguments):
    """Which model and data: the base model, the dataset, where models and generations go, how much data trains."""

    model_nickname: str | None = field(
        default=defaults.model_nickname,
        metadata={"help": "Folder name for this model (default: from --base_model_name, file-safe)."},
    )
    base_model_name: str = field(
        default=defaults.base_model_name, metadata={"help": "Base model: Hub id or local folder."}
    )
    use_wandb: bool = field(
        default=defaults.use_wandb, metadata={"help": "Log training to Weights & Biases (needs a key)."}
    )
    hf_dataset_name: str = field(
        default=defaults.hf_dataset_name,
        metadata={
            "help": "Hub id, save_to_disk folder, or folder of <split>.jsonl files with the tailoring splits."
        },
    )
    model_save_dir: str = field(
        default=defaults.model_save_dir, metadata={"help": "Root for adapters and merged models."}
    )
    results_save_dir: str = field(
        default=defaults.results_save_dir, metadata={"help": "Root for generations."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N rows of each training split (ORPO reads two)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N validation rows (0: no eval)."}
    )

    def __post_init__(self):
        if not self.model_nickname:
            self.model_nickname = layout.model_nickname(self.base_model_name)

    def check(self) -> None:
        if self.max_train_samples is not None and self.max_train_samples <= 0:
            raise UsageError(f"--max_train_samples must be positive (got {self.max_train_samples})")


@dataclass
class LoraArguments:
    """The LoRA adapter (the paper's); the trainer's own settings are its TRL config's flags."""

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

    def check(self) -> None:
        if not 0 <= self.lora_dropout < 1 or self.lora_r <= 0 or self.lora_alpha <= 0:
            raise UsageError("--lora_r and --lora_alpha must be positive and --lora_dropout in [0, 1)")

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=lora_targets(self.lora_target_modules),
            task_type="CAUSAL_LM",
        )


class Backend(str, Enum):
    """Where tailored models run: in process (transformers or vLLM), or behind an OpenAI-compatible server."""

    hf = "hf"
    vllm = "vllm"
    open_ai = "open_ai"


@dataclass
class GeneratorArguments(BackendArguments):
    """Where tailored responses are generated (in process or on a server), for generation, chat and benchmarks."""

    backend: Backend = field(
        default=Backend.hf,
        metadata={"help": "hf (in process), vllm (vLLM in process) or open_ai (a completions server)."},
    )
    no_merge: bool = field(
        default=False,
        metadata={
            "help": "Generate from the trained LoRA adapter on its base model (vLLM serves it: --backend vllm) "
            "instead of the merged model, so no merge is needed."
        },
    )

    def check(self) -> None:
        super().check()
        if self.no_merge and self.backend != Backend.vllm:
            raise UsageError(
                "--no_merge needs --backend vllm (which serves the LoRA adapter on its base model); "
                "drop --no_merge to generate from the merged model"
            )
        if self.backend == Backend.open_ai and not self.base_url:
            if not base_url_from_env("open_ai"):
                raise UsageError(
                    "--backend open_ai needs --base_url (e.g. http://localhost:8000/v1 for `vllm serve`)"
                )


@dataclass
class TailoredGenerationArguments(GenerationArguments):
    """Sampling settings of a tailored model (a response always ends where the next prompt would start)."""

    min_tokens: int = field(
        default=0, metadata={"help": "Minimum new tokens per response (local models). paper: 10."}
    )
    max_tokens: int = field(
        default=256,
        metadata={"help": "Maximum new tokens per response. paper: 512.", "aliases": ["--max_new_tokens"]},
    )
    stop_token: list[str] = field(
        default_factory=list, metadata={"help": "Stop strings besides the next '\\nPrompt:' (always a stop)."}
    )

    def generation(self, **changes) -> GenerationConfig:
        """The shared settings, every one of them honoured, with the tailored stops."""
        return tailored_generation(**asdict(super().generation(**changes)))


@dataclass
class InferenceArguments:
    """What the infer stage generates: which personas, from which model."""

    inference_type: list[templates.InferenceType] = field(
        default_factory=lambda: [templates.InferenceType.gold_chosen],
        metadata={"help": "Personas to infer with (several allowed, one output file each)."},
    )
    system_persona: str | None = field(
        default=None,
        metadata={
            "help": "Persona for --inference_type system (default: one per dataset, the authors' in meaning)."
        },
    )
    model_path: str | None = field(
        default=None, metadata={"help": "Generate from this model instead of the method's own."}
    )
    server_model_name: str | None = field(
        default=None, metadata={"help": "Model name the server serves (default: the merged folder's path)."}
    )


def tailored_generation(stop=(), **settings) -> GenerationConfig:
    """Generation settings of a tailored model: the next ``\\nPrompt:`` always ends a response."""
    stops = templates.STOP_STRINGS + [s for s in stop if s not in templates.STOP_STRINGS]
    return GenerationConfig(stop=stops, **settings)


def lora_targets(names: list[str]):
    """PEFT's ``target_modules``: None (its default for the architecture) for ``peft_default``, the string
    ``all-linear`` as PEFT spells it, else the module names."""
    if names == ["peft_default"]:
        return None
    if names == ["all-linear"]:
        return "all-linear"
    return names
