"""Persona-tailoring configurations (method, training type, inference type) and where their outputs live.

PT inference writes ``{results_save_dir}/{dataset_name}/{model_nickname}/{method}_Persona(training_type=T,
inference_type=I).jsonl``; the paper's released outputs use the same file names without the nickname folder.
The enums are PT training's own (``persona_tailoring.model``), so both sides accept the same values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from persona_tailoring.model.templates import InferenceType, Method, TrainingType

__all__ = ["Configuration", "InferenceType", "Method", "TrainingType", "output_path", "parse_file_name"]

_FILE_NAME = re.compile(r"^(\w+)_Persona\(training_type=([\w-]+), inference_type=([\w-]+)\)$")

@dataclass(frozen=True)
class Configuration:
    method: Method
    training_type: TrainingType
    inference_type: InferenceType

    @property
    def file_name(self) -> str:
        return (
            f"{self.method.value}_Persona(training_type={self.training_type.value}, "
            f"inference_type={self.inference_type.value}).jsonl"
        )

    @property
    def label(self) -> str:
        """Short file-safe name: 'dpo-chosen-gold-chosen'."""
        return f"{self.method.value}-{self.training_type.value}-{self.inference_type.value}"

def output_path(results_save_dir: str, dataset_name: str, model_nickname: str | None, config: Configuration) -> Path:
    folder = Path(results_save_dir) / dataset_name
    if model_nickname:
        folder = folder / model_nickname
    return folder / config.file_name

def parse_file_name(path: str | Path) -> Configuration | None:
    """The configuration a file is named after (``dpo_Persona(training_type=..., inference_type=...).jsonl``)."""
    stem = Path(path).name.removesuffix(".jsonl").removesuffix(".json")
    match = _FILE_NAME.match(stem)
    if not match:
        return None
    try:
        return Configuration(Method(match[1]), TrainingType(match[2]), InferenceType(match[3]))
    except ValueError:
        return None

def label_for_file(path: str | Path) -> str:
    """The configuration label when the file follows the naming scheme, else a file-safe form of its stem."""
    config = parse_file_name(path)
    if config:
        return config.label
    stem = Path(path).name.removesuffix(".jsonl").removesuffix(".json")
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", stem).strip("-") or "outputs"
