"""Win rates, ties and ΔPQ, with 95% bootstrap intervals over prompts, from ``run_judge`` judgments.

Per metric: the shares of base wins, ties, test wins and invalid verdicts, the win rate, the length-controlled
win rate and, from probability verdicts, the probability win rate; ΔPQ over personalization and response quality
(``win_rate_stats`` defines each). Files: ``win_rate_writers``; which comparisons: ``win_rate_discovery``.

Examples::

    # every comparison under a judge output folder (a table, and a JSON and CSV summary in each comparison)
    python -m persona_tailoring.evaluation.win_rate --comparison_dir results/persona-tailoring/judge --plot

    # one comparison, named by the same flags as run_judge
    python -m persona_tailoring.evaluation.win_rate --results_save_dir ../shared/data/paper-outputs \\
        --dataset_name BeaverTails --model_type_base dpo --training_type_base none --inference_type_base none \\
        --model_type_test dpo --training_type_test chosen --inference_type_test gold-chosen
"""

from __future__ import annotations

from dataclasses import dataclass, field

from persona_core import layout
from persona_core.cli import parse
from persona_core.errors import UsageError, run_cli
from persona_core.io import read_records, write_json_atomic
from persona_core.weak_judge import check_answers, pairwise_answers
from persona_tailoring.evaluation.configuration import ComparisonArguments
from persona_tailoring.evaluation.win_rate_discovery import find_comparisons, grid_cell
from persona_tailoring.evaluation.win_rate_stats import (
    outcome_codes,
    responses_by_side,
    summarize,
    test_probabilities,
)
from persona_tailoring.evaluation.win_rate_writers import (
    console_header,
    console_lines,
    csv_row,
    plot,
    write_csv,
    write_delta_pq_table,
)


@dataclass
class ScoringArguments:
    """Which comparisons to score, and how the intervals are drawn."""

    comparison_dir: str | None = field(
        default=None,
        metadata={
            "help": "A comparison folder, or any folder above one (run_judge's --output_dir): all found are scored. "
            "Without it and without a base or test configuration, the comparisons under --output_dir are scored."
        },
    )
    resamples: int = field(default=1000, metadata={"help": "Bootstrap resamples over prompts."})
    seed: int = field(default=0, metadata={"help": "Bootstrap seed."})
    plot: bool = field(default=False, metadata={"help": "Also draw paper-style bars (PNG and PDF)."})

    def check(self) -> None:
        if self.resamples < 1:
            raise UsageError("--resamples must be at least 1")


def main(argv: list[str] | None = None) -> int:
    where, scoring = parse(
        (ComparisonArguments, ScoringArguments), argv, description=__doc__.split("\n\n")[0]
    )
    root, folders = find_comparisons(where, scoring.comparison_dir)
    rows, cells, written = [], [], []
    names = [layout.comparison_name(folder) for folder in folders]
    width = max(len("comparison"), *map(len, names))
    print(console_header(width))
    for folder, name in zip(folders, names, strict=True):
        judged = str(layout.judge_files(folder).results)
        records = read_records(judged)
        summary = summarize(
            outcome_codes(records, judged),
            scoring.resamples,
            scoring.seed,
            responses_by_side(records),
            test_probabilities(records),
        )
        configuration = records[0].get("comparison") if records else None
        if configuration is None:
            raise UsageError(
                f"{judged} has no comparison configuration (judged by an older version): rerun the judge on it"
            )
        summary = {"comparison": name, "configuration": configuration, "judgments": judged, **summary}
        summary["weak_judge"] = check_answers(pairwise_answers(records))
        outputs = layout.win_rate_files(folder)
        write_json_atomic(outputs["json"], summary)
        write_csv(outputs["csv"], [csv_row(name, summary)])
        written += [outputs["json"], outputs["csv"]]
        if scoring.plot:
            written += plot(summary, name, [outputs["png"], outputs["pdf"]])
        rows.append(csv_row(name, summary))
        cells.append(grid_cell(name, summary))
        print("\n".join(console_lines(name, summary, width)))
    if len(folders) > 1:
        write_csv(root / layout.WIN_RATE_TABLE, rows)
        written.append(root / layout.WIN_RATE_TABLE)
        table = write_delta_pq_table(root, cells)
        written = [*table, *written]
        print(f"ΔPQ table ({len(cells)} cells): {table[1]}")
        print(table[1].read_text(encoding="utf-8"))
    print(
        f"{len(folders)} comparison(s) scored ({scoring.resamples} bootstrap resamples); wrote {len(written)} files, e.g.:"
    )
    for path in written[:4]:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
