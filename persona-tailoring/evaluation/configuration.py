"""Persona-tailoring configurations (method, training type, inference type), and the two sides of a comparison.

Where PT outputs live and how they are named is ``persona_core.layout``'s (``pt_output_path``); the paper's
released outputs use the same file names without the nickname folder. The enums are PT's own
(``persona_tailoring.model.templates``), so generation and the judge accept the same values. ``run_judge`` and
``win_rate`` name a comparison with the same flags (``ComparisonArguments``), so both find the same folder.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from persona_core import layout
from persona_core.errors import UsageError
from persona_tailoring.model.templates import InferenceType, Method, TrainingType

__all__ = [
    "ComparisonArguments",
    "Configuration",
    "InferenceType",
    "Method",
    "Side",
    "TrainingType",
    "comparison_folder",
    "parse_file_name",
    "resolve_sides",
]

SIDES = ("base", "test")


@dataclass(frozen=True)
class Configuration:
    method: Method
    training_type: TrainingType
    inference_type: InferenceType

    @property
    def label(self) -> str:
        """Short file-safe name: 'dpo-chosen-gold-chosen'."""
        return f"{self.method.value}-{self.training_type.value}-{self.inference_type.value}"

    def output_path(self, results_save_dir, dataset_name: str, model_nickname: str | None) -> Path:
        return layout.pt_output_path(
            results_save_dir,
            dataset_name,
            model_nickname,
            self.method.value,
            self.training_type.value,
            self.inference_type.value,
        )


def parse_file_name(path: str | Path) -> Configuration | None:
    """The configuration a file is named after (``layout.pt_output_name``), else None."""
    parts = layout.parse_pt_output_name(path)
    if parts is None:
        return None
    try:
        return Configuration(Method(parts[0]), TrainingType(parts[1]), InferenceType(parts[2]))
    except ValueError:
        return None


def label_for_file(path: str | Path) -> str:
    """The configuration label when the file follows the naming scheme, else a file-safe form of its stem."""
    config = parse_file_name(path)
    return config.label if config else layout.nickname(layout.pt_output_stem(path))


def _flag(help_text: str, side: str):
    who = "the baseline" if side == "base" else "the configuration under test"
    return field(default=None, metadata={"help": help_text.format(who=who)})


@dataclass
class ComparisonArguments:
    """The flags that name a comparison; shared by run_judge and win_rate so both find the same folder."""

    base_file: str | None = _flag(
        "Outputs of {who} (JSONL records or a JSON array); or the next three flags.", "base"
    )
    model_type_base: Method | None = _flag("Method of {who}.", "base")
    training_type_base: TrainingType | None = _flag("Training type of {who}.", "base")
    inference_type_base: InferenceType | None = _flag("Inference type of {who}.", "base")
    test_file: list[str] | None = _flag(
        "Outputs of {who}, one or more files (each its own comparison against the base); or the next three flags.",
        "test",
    )
    model_type_test: list[Method] | None = _flag(
        "Method(s) of {who}; with several values for these three flags, every combination is judged (a grid).",
        "test",
    )
    training_type_test: list[TrainingType] | None = _flag("Training type(s) of {who}.", "test")
    inference_type_test: list[InferenceType] | None = _flag("Inference type(s) of {who}.", "test")
    results_save_dir: str = field(
        default="results/persona-tailoring",
        metadata={"help": "Root of PT outputs (for the configuration flags)."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Dataset (BeaverTails, Anthropic HHH, Mnemonic, ...): output folder and judge task wording."
        },
    )
    model_nickname: str | None = field(
        default=None,
        metadata={"help": "Model folder inside the dataset folder (omit for the paper's released outputs)."},
    )
    output_dir: str = field(
        default="results/persona-tailoring/judge",
        metadata={"help": "Comparisons go to <output_dir>/comparisons/."},
    )


@dataclass(frozen=True)
class Side:
    name: str
    path: Path
    label: str
    has_persona: bool | None
    configuration: Configuration | None = None
    """The method, training and inference type of the outputs (None for a file not named by configuration)."""

    def as_dict(self) -> dict:
        """What a comparison stores of this side, so readers never parse it back from folder names."""
        config = self.configuration
        return {
            "label": self.label,
            "file": str(self.path),
            "method": config.method.value if config else None,
            "training_type": config.training_type.value if config else None,
            "inference_type": config.inference_type.value if config else None,
        }


def resolve_sides(where: ComparisonArguments) -> tuple[Side, list[Side]]:
    """The base side and every test side (several files, or the product of the test configuration flags)."""
    base = one_side(
        where,
        "base",
        where.base_file,
        [where.model_type_base],
        [where.training_type_base],
        [where.inference_type_base],
    )[0]
    tests = one_side(
        where,
        "test",
        where.test_file,
        where.model_type_test,
        where.training_type_test,
        where.inference_type_test,
    )
    for test in tests:
        if base.path.resolve() == test.path.resolve():
            raise UsageError(
                f"base and test are the same file ({base.path}): compare two different configurations"
            )
    return base, tests


def one_side(where: ComparisonArguments, side: str, files, methods, trainings, inferences) -> list[Side]:
    """A side's files, from that side's own flags only (a list: the test side may name several)."""
    files = [files] if isinstance(files, str) else files
    parts = {"model_type": methods, "training_type": trainings, "inference_type": inferences}
    parts = {key: [v for v in (values or []) if v is not None] for key, values in parts.items()}
    given = [key for key, values in parts.items() if values]
    if files and given:
        raise UsageError(f"pass either --{side}_file or --{given[0]}_{side} (and its companions), not both")
    if files:
        sides = []
        for file in files:
            config = parse_file_name(file)
            has_persona = None if config is None else config.inference_type != InferenceType.none
            sides.append(Side(side, Path(file), label_for_file(file), has_persona, config))
        return sides
    if not given:
        raise UsageError(
            f"no {side} outputs: pass --{side}_file, or --model_type_{side}, --training_type_{side} "
            f"and --inference_type_{side}"
        )
    if len(given) < 3:
        missing = ", ".join(f"--{key}_{side}" for key in parts if key not in given)
        raise UsageError(f"incomplete {side} configuration: also pass {missing}")
    if not where.dataset_name:
        raise UsageError(
            "--dataset_name is needed to find configuration outputs (e.g. --dataset_name BeaverTails)"
        )
    configs = [
        Configuration(*values)
        for values in itertools.product(parts["model_type"], parts["training_type"], parts["inference_type"])
    ]
    return [
        Side(
            side,
            config.output_path(where.results_save_dir, where.dataset_name, where.model_nickname),
            config.label,
            config.inference_type != InferenceType.none,
            config,
        )
        for config in dict.fromkeys(configs)
    ]


def comparison_folder(where: ComparisonArguments, base: Side, test: Side) -> Path:
    return layout.comparison_dir(
        where.output_dir, where.dataset_name, where.model_nickname, base.label, test.label
    )
