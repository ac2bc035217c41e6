"""Argument groups of the persona-inference scripts, composed (never copied) into each script's ``Arguments``.

Kept light (no torch, transformers or datasets), so every script's ``--help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from persona_core.arguments import positive
from persona_core.data import Partition
from persona_core.layout import SAMPLE_PREFERENCES
from persona_core.preferences import Columns


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
