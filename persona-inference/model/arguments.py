"""Argument groups of the persona-inference scripts, composed (never copied) into each script's ``Arguments``.

Kept light (no torch, transformers or datasets), so every script's ``--help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from persona_core.data import Partition
from persona_core.layout import SAMPLE_PREFERENCES


@dataclass
class DataArguments:
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
class PartitionArguments:
    """Which part of the rows a persona-inference run covers (its own results subfolder)."""

    partition: Partition = field(default=Partition.full, metadata={"help": "Part of the data to run on."})


@dataclass
class ResultsArguments:
    """Where persona-inference results live: run_model writes them, the later scripts read them."""

    res_dir: str = field(
        default="results/persona-inference", metadata={"help": "Root folder of persona-inference results."}
    )
