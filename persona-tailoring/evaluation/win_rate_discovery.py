"""Which comparisons ``win_rate`` scores (every judged comparison in or under a folder, or the one named by
run_judge's flags), and where each stands in the ΔPQ table."""

from __future__ import annotations

from pathlib import Path

from persona_core import layout
from persona_core.errors import UsageError
from persona_tailoring.evaluation.configuration import (
    ComparisonArguments,
    comparison_folder,
    resolve_sides,
)
from persona_tailoring.evaluation.win_rate_writers import GRID_COLUMNS, SIDES, csv_row


def names_a_comparison(where: ComparisonArguments) -> bool:
    """Whether a base or test side is named; without one, the comparisons under --output_dir are scored."""
    sides = ("base_file", "test_file", "model_type_base", "training_type_base", "inference_type_base")
    return any(
        getattr(where, f) for f in (*sides, "model_type_test", "training_type_test", "inference_type_test")
    )


def find_comparisons(where: ComparisonArguments, comparison_dir: str | None) -> tuple[Path, list[Path]]:
    """The folder the comparisons were looked for in, and every comparison folder holding judgments: those in or
    under ``comparison_dir`` (or ``where.output_dir`` when no side is named), else the one(s) ``where`` name."""
    judgments = layout.JUDGMENTS_FILE
    if comparison_dir or not names_a_comparison(where):
        flags = [
            f for f in ("base_file", "test_file", "model_type_base", "model_type_test") if getattr(where, f)
        ]
        if flags:
            raise UsageError(
                f"pass either --comparison_dir or the comparison flags (--{flags[0]} ...), not both"
            )
        root = Path(comparison_dir or where.output_dir)
        if not root.is_dir():
            flag = "--comparison_dir" if comparison_dir else "--output_dir"
            raise UsageError(f"{flag} '{root}' does not exist: pass run_judge's --output_dir")
        found = (
            [root]
            if layout.judge_files(root).results.is_file()
            else sorted(p.parent for p in root.rglob(judgments))
        )
    else:
        base, tests = resolve_sides(where)
        folders = [comparison_folder(where, base, test) for test in tests]
        root = folders[0] if len(folders) == 1 else Path(where.output_dir)
        found = [folder for folder in folders if layout.judge_files(folder).results.is_file()]
    if not found:
        raise UsageError(
            f"no {judgments} in or under '{root}': run persona_tailoring.evaluation.run_judge first"
        )
    return root, found


def grid_cell(name: str, summary: dict) -> dict:
    """One comparison as a ΔPQ table cell: its dataset, base and test configurations as the judge stored them."""
    comparison = summary["configuration"]
    test = comparison["test"]
    row = csv_row(name, summary)
    return {
        "dataset": comparison["dataset"],
        "base": comparison["base"]["label"],
        "test": test["label"],
        "method": test["method"],
        "training_type": test["training_type"],
        "inference_type": test["inference_type"],
        **{key: row[key] for key in GRID_COLUMNS[6:12]},
        **{key: row[key] for key in GRID_COLUMNS[12:17]},
        **{f"{side}_{k}": row[f"{side}_{k}"] for side in SIDES for k in ("repetitive", "mean_words")},
    }
