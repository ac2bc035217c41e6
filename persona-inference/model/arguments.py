"""Argument groups of the persona-inference scripts: each script parses the groups it needs side by side
(``persona_core.cli.parse``) and hands each function the group it reads.

Kept light (no torch, transformers or datasets), so every script's ``--help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from persona_core.arguments import GenerationArguments, Verdict, positive, resolve_verdict, verdict_field
from persona_core.data import Partition
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.layout import SAMPLE_PREFERENCES, nickname
from persona_core.llm import ModelType
from persona_core.preferences import Columns


class PromptType(str, Enum):
    persona_inference = "persona_inference"
    persona_accuracy = "persona_accuracy"
    persona_prefs = "persona_prefs"


class PrefsQuestion(str, Enum):
    """What persona_prefs (Figure 4) asks its judge."""

    better = "better"  # the paper's: which of the two personas is better, the personas alone
    more_common = (
        "more_common"  # whose needs are more common among those who ask the prompt, the prompt shown
    )


def template_folder(experiment: str, prefs_question: PrefsQuestion) -> str:
    """The prompt folder of an experiment; persona_prefs has one per question."""
    if experiment == "persona_prefs" and prefs_question == PrefsQuestion.more_common:
        return "persona_prefs_more_common"
    return experiment


@dataclass
class PreferenceArguments:
    """Where the prompt and the two responses are, in any supported format, and what to do with bad rows."""

    prompt_column: str = field(
        default="prompt",
        metadata={
            "help": "Column of the prompt: text or {role, content} messages. Without it, chosen and rejected must "
            "hold whole conversations (message lists, or HH-RLHF '\\n\\nHuman: ... \\n\\nAssistant: ...' text)."
        },
    )
    chosen_column: str = field(default="chosen", metadata={"help": "Column of the preferred response."})
    rejected_column: str = field(default="rejected", metadata={"help": "Column of the other response."})
    skip_bad_rows: bool = field(
        default=False,
        metadata={
            "help": "Run on the rows that can be read and record the others in the run record (default: a bad "
            "row stops the run, naming it)."
        },
    )

    def columns(self) -> Columns:
        return Columns(self.prompt_column, self.chosen_column, self.rejected_column)


@dataclass
class DataArguments(PreferenceArguments):
    """The preference rows persona inference reads; the judges and the augmented dataset read the same ones."""

    dataset_name: str = field(
        default=str(SAMPLE_PREFERENCES),
        metadata={
            "help": "Hub id (config = --inference_split), a save_to_disk folder, or a .jsonl/.json/.csv/.parquet file."
        },
    )
    inference_split: str = field(
        default="Sample",
        metadata={
            "help": "Dataset name (Hub config, e.g. BeaverTails); picks the prompt template and results folder."
        },
    )
    split: str = field(default="train", metadata={"help": "Split to read inside the dataset."})


@dataclass
class ContextArguments:
    """How much of a long multi-turn prompt a persona-inference run sends."""

    max_prompt_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Most tokens of a row's prompt; a longer one loses its oldest turns (whole turns, recorded in "
            "the run record). Default: what the context of a local model (hf_chat, vllm) leaves after the template, "
            "the two responses and the answers; no cut for API models, which count with the embedded tokenizer."
        },
    )

    def check(self) -> None:
        positive(self, "max_prompt_tokens")


@dataclass
class PartitionArguments(ContextArguments):
    """Which part of the rows a persona-inference run covers (its own results subfolder)."""

    partition: Partition = field(default=Partition.full, metadata={"help": "Part of the data to run on."})


@dataclass
class ResultsArguments:
    """Where persona-inference results live: run_model writes them, the later scripts read them."""

    res_dir: str = field(
        default="results/persona-inference", metadata={"help": "Root folder of persona-inference results."}
    )


@dataclass
class ExperimentArguments:
    """The model that runs, the experiments it runs, and how they ask it."""

    model_name: str = field(
        default=EMBEDDED_MODEL_NAME,
        metadata={
            "help": "Model: a Hub id, a local folder, an API model name, or the embedded SmolLM2-135M-Instruct."
        },
    )
    model_nickname: str | None = field(
        default=None,
        metadata={"help": "Folder name for this model's results (default: a file-safe model name)."},
    )
    model_type: ModelType = field(default=ModelType.hf_chat, metadata={"help": "Backend."})
    experiments: list[PromptType] = field(
        default_factory=lambda: [PromptType.persona_inference],
        metadata={"help": "Experiments to run, in order.", "aliases": ["--prompt_types"]},
    )
    prompt_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of prompt templates (default: the built-in persona-inference/prompts)."},
    )
    persona_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text each persona starts with, sent as the start of the answer where the backend allows it "
            "(hf_chat, vllm, anthropic, open_ai with --base_url). Default: 'The user is someone who prefers' for "
            "hf_chat and vllm (keeps small models on the persona form), 'The user is' otherwise. paper: 'The user "
            "is' (the authors' personas all start so)."
        },
    )
    persona_models: list[str] | None = field(
        default=None,
        metadata={
            "help": "Persona-inference result folders (model nicknames) whose personas the judge reads. "
            "Default: persona_accuracy judges every model found for --inference_split/--run_name; "
            "persona_prefs judges this model's own personas.",
            "aliases": ["--persona_model"],
        },
    )
    judge_max_tokens: int = field(
        default=8,
        metadata={
            "help": "Maximum new tokens of a judge's answer (persona_accuracy, persona_prefs); raise it for reasoning "
            "models. paper: 200 (one setting for every experiment)."
        },
    )

    prefs_question: PrefsQuestion = field(
        default=PrefsQuestion.better,
        metadata={
            "help": "persona_prefs (Figure 4): better (the paper's: which of the two personas is better, the "
            "personas alone) or more_common (whose needs are more common among people asking the prompt, shown)."
        },
    )
    verdict: Verdict | None = verdict_field("--model_type")

    def check(self) -> None:
        positive(self, "judge_max_tokens")
        self.verdict = resolve_verdict(self.verdict, self.model_type, "--model_type")

    @property
    def model_folder(self) -> str:
        """The folder under ``--res_dir`` of this run's model: ``--model_nickname``, else a file-safe model name."""
        return self.model_nickname or nickname(self.model_name)


@dataclass
class PersonaGenerationArguments(GenerationArguments):
    """Sampling settings of persona inference (the judges keep their own token budget, ``--judge_max_tokens``)."""

    min_tokens: int = field(default=0, metadata={"help": "Minimum new tokens (local models). paper: 5."})
    max_tokens: int = field(default=96, metadata={"help": "Maximum new tokens. paper: 200."})
    stop_token: list[str] = field(
        default_factory=lambda: ["\n"],
        metadata={"help": "Stop strings (default: a newline, one-sentence personas). paper: '\\nPrompt:'."},
    )
