"""What the evaluation scripts share: their arguments, finding and reading result files, display names, and
writing figures and tables (atomically, through ``persona_core.io``). The two judged figures (Figures 3 and 4)
share their whole command line: ``JudgedFigure`` holds what differs between them."""

from __future__ import annotations

import csv
import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.cli import parse
from persona_core.errors import UsageError
from persona_core.io import atomic_output, read_records
from persona_core.layout import figure_paths, figure_table, figures_dir, pi_files
from persona_inference.model.arguments import ResultsArguments

# Datasets in the paper's order; any other dataset follows, sorted by name.
KNOWN_DATASETS = ("BeaverTails", "Anthropic HHH", "SHP", "Mnemonic")
SIDE_COLORS = {"chosen": "#2b7bba", "rejected": "#e0703a"}
OUTCOME_COLORS = {"chosen": "#2b7bba", "tie": "#b8b8b8", "rejected": "#e0703a"}


@dataclass
class FigureArguments(ResultsArguments):
    """Flags shared by the figure scripts (Figures 3 and 4, Table 1)."""

    run_name: str = field(default="default", metadata={"help": "Run name of the results to read."})
    models: list[str] | None = field(
        default=None,
        metadata={"help": "Persona-inference models to include, in this order; default: all found."},
    )
    datasets: list[str] | None = field(
        default=None,
        metadata={"help": "Datasets (inference splits) to include, in this order; default: all found."},
    )
    out_dir: str | None = field(
        default=None, metadata={"help": "Output folder (default: <res_dir>/figures/<run_name>)."}
    )
    model_names: list[str] | None = field(
        default=None, metadata={"help": "Display names for models and judges, as NAME=DISPLAY pairs."}
    )
    dataset_names: list[str] | None = field(
        default=None, metadata={"help": "Display names for datasets, as NAME=DISPLAY pairs."}
    )

    def out_folder(self) -> Path:
        return figures_dir(self.res_dir, self.run_name) if self.out_dir is None else Path(self.out_dir)


@dataclass
class JudgedFigureArguments(FigureArguments):
    """The figures of judged results also choose their judges."""

    evaluator_models: list[str] | None = field(
        default=None, metadata={"help": "Judges (result folder names) to plot; default: every judge found."}
    )


@dataclass(frozen=True)
class ResultFile:
    model: str
    """The results folder directly under ``res_dir``: the judge, or the persona-inference model."""
    dataset: str
    path: Path


def results_pattern(run_name: str, experiment: str) -> str:
    """A glob, relative to ``res_dir``, of one experiment's results for every model and dataset of a run."""
    return str(pi_files(".", "*", "*", run_name, experiment).results)


def find_results(res_dir: str, run_name: str, experiment: str) -> list[ResultFile]:
    """Every final results file of ``experiment`` under ``res_dir`` for ``run_name`` (any model, any dataset)."""
    root = Path(res_dir)
    if not root.is_dir():
        return []
    return [
        ResultFile(path.parents[2].name, path.parents[1].name, path)
        for path in sorted(root.glob(results_pattern(glob.escape(run_name), experiment)))
        if path.is_file()
    ]


def select(found: list[ResultFile], wanted: list[str] | None, attribute: str, flag: str) -> list[ResultFile]:
    """Keep the files whose ``attribute`` is in ``wanted`` (all when None); unknown names are an error."""
    available = sorted({getattr(f, attribute) for f in found})
    if wanted is None:
        return found
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise UsageError(
            f"{flag} {', '.join(unknown)} not found; available: {', '.join(available) or 'none'}"
        )
    return [f for f in found if getattr(f, attribute) in wanted]


def find_selected(
    selection: FigureArguments, experiment: str, models: list[str] | None, models_flag: str
) -> list[ResultFile]:
    """The results of ``experiment`` for the run, narrowed by ``--datasets`` and ``models``; none is an error."""
    found = find_results(selection.res_dir, selection.run_name, experiment)
    if not found:
        root = Path(selection.res_dir)
        others = (
            {p.parent.name for p in root.glob(results_pattern("*", experiment))} if root.is_dir() else set()
        )
        others.discard(selection.run_name)
        hint = f" (--run_name values that have it: {', '.join(sorted(others))})" if others else ""
        raise UsageError(
            f"no {Path(results_pattern('*', experiment)).name} under "
            f"{selection.res_dir}/<model>/<dataset>/{selection.run_name}/{hint}: run the {experiment} experiment first"
        )
    return select(select(found, models, "model", models_flag), selection.datasets, "dataset", "--datasets")


def read_result_records(path: Path, required: tuple[str, ...]) -> list[dict]:
    """The records of a results file, each checked for the fields a script needs."""
    try:
        records = read_records(path)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"cannot read {path} ({type(err).__name__}): rerun the experiment that writes it"
        ) from None
    for record in records:
        missing = [k for k in required if k not in record]
        if missing:
            raise UsageError(
                f"{path} lacks {', '.join(missing)} in record {record.get('id')!r}: rerun the experiment that writes it"
            )
    return records


def ordered_datasets(names) -> list[str]:
    names = set(names)
    return [d for d in KNOWN_DATASETS if d in names] + sorted(names - set(KNOWN_DATASETS))


def parse_name_map(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """``["gpt-4o=GPT-4o", ...]`` -> ``{"gpt-4o": "GPT-4o"}``: display names for models or datasets."""
    names = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UsageError(
                f"{flag} takes NAME=DISPLAY pairs, e.g. {flag} 'gpt-4o-mini=GPT-4o mini'; got '{pair}'"
            )
        names[key] = value
    return names


def save_figure(fig, out_dir: Path, figure: str) -> list[Path]:
    """The figure as PNG and PDF (``persona_core.layout.figure_paths``), each written atomically."""
    paths = figure_paths(out_dir, figure)
    for path in paths:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=200, bbox_inches="tight")
    return paths


def write_csv(rows: list[dict], path: Path) -> Path:
    """The numbers behind a figure, one row per bar, written atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table (floats to three places) for the terminal."""
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def new_figure(n_rows: int, n_cols: int, width: float, height: float):
    """A grid of panels on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return fig, axes


def with_legend(fig, height: float):
    """The figure with its legend centred above the panels at ``height`` (figure coordinates), laid out."""
    fig.legend(loc="upper center", ncol=3, bbox_to_anchor=(0.5, height), frameon=False)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


@dataclass(frozen=True)
class Panels:
    """The grid of a judged figure: one panel per (judge, dataset), one bar (group) per persona model."""

    evaluators: list[str]
    datasets: list[str]
    models: list[str]
    model_names: dict[str, str]
    dataset_names: dict[str, str]

    @classmethod
    def of(cls, rows: list[dict], selection: JudgedFigureArguments) -> Panels:
        return cls(
            selection.evaluator_models or sorted({r["evaluator"] for r in rows}),
            selection.datasets or ordered_datasets(r["dataset"] for r in rows),
            selection.models or sorted({r["persona_model"] for r in rows}),
            parse_name_map(selection.model_names, "--model_names"),
            parse_name_map(selection.dataset_names, "--dataset_names"),
        )

    def title(self, dataset: str, evaluator: str) -> str:
        return (
            f"{self.dataset_names.get(dataset, dataset)}\njudge: {self.model_names.get(evaluator, evaluator)}"
        )

    def model_labels(self) -> list[str]:
        return [self.model_names.get(m, m) for m in self.models]


@dataclass(frozen=True)
class JudgedFigure:
    """What differs between the figures of the two judge experiments."""

    experiment: str
    figure: str
    """The figure's name in ``persona_core.layout.FIGURE_NAMES``."""
    label: str
    required: tuple[str, ...]
    """The record fields ``summarize`` reads."""
    summarize: Callable[[list[dict]], list[dict]]
    columns: list[str]
    draw: Callable[[list[dict], Panels], object]
    """``(rows, panels) -> figure``."""
    invalid: str
    """What the ``invalid`` counts count: 'invalid judge answers'."""

    def collect(self, selection: JudgedFigureArguments) -> list[dict]:
        """One row per (judge, dataset, persona model[, side]) of the selected results."""
        rows = []
        for result in find_selected(
            selection, self.experiment, selection.evaluator_models, "--evaluator_models"
        ):
            records = read_result_records(result.path, self.required)
            rows += [
                {"evaluator": result.model, "dataset": result.dataset, **line}
                for line in self.summarize(records)
            ]
        judged = sorted({r["persona_model"] for r in rows})
        unknown = [m for m in selection.models or [] if m not in judged]
        if unknown:
            raise UsageError(
                f"--models {', '.join(unknown)} not judged in the selected results; judged: {', '.join(judged)}"
            )
        return [r for r in rows if r["persona_model"] in selection.models] if selection.models else rows

    def main(self, argv: list[str] | None = None, description: str | None = None) -> int:
        """The figure script's command line."""
        (args,) = parse((JudgedFigureArguments,), argv, description=description)
        rows = self.collect(args)
        if not rows:
            raise UsageError(
                "the selected results hold no judgments: check --evaluator_models/--models/--datasets"
            )
        out_dir = args.out_folder()
        fig = self.draw(rows, Panels.of(rows, args))
        figures = save_figure(fig, out_dir, self.figure)
        close(fig)
        table = write_csv([{c: r[c] for c in self.columns} for r in rows], figure_table(out_dir, self.figure))
        print(format_table(rows, self.columns))
        files = len({(r["evaluator"], r["dataset"]) for r in rows})
        print(
            f"\n{self.label}: {len(rows)} bars from {files} result files; "
            f"{sum(r['invalid'] for r in rows)} {self.invalid} left out"
        )
        print(f"figure: {', '.join(map(str, figures))}\nnumbers: {table}")
        return 0
