"""What the evaluation scripts share: finding result files, display names, and writing figures and tables."""

from __future__ import annotations

import csv
import glob
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.errors import UsageError

# Datasets in the paper's order; any other dataset follows, sorted by name.
KNOWN_DATASETS = ("BeaverTails", "Anthropic HHH", "SHP", "Mnemonic")
SIDE_COLORS = {"chosen": "#2b7bba", "rejected": "#e0703a"}
OUTCOME_COLORS = {"chosen": "#2b7bba", "tie": "#b8b8b8", "rejected": "#e0703a"}


@dataclass(frozen=True)
class ResultFile:
    model: str
    """The results folder directly under ``res_dir``: the judge, or the persona-inference model."""
    dataset: str
    path: Path


def find_results(res_dir: str, run_name: str, filename: str) -> list[ResultFile]:
    """Every ``{res_dir}/{model}/{dataset}/{run_name}/{filename}``."""
    root = Path(res_dir)
    if not root.is_dir():
        return []
    return [
        ResultFile(path.parents[2].name, path.parents[1].name, path)
        for path in sorted(root.glob(f"*/*/{glob.escape(run_name)}/{filename}"))
        if path.is_file()
    ]


def select(found: list[ResultFile], wanted: list[str] | None, attribute: str, flag: str) -> list[ResultFile]:
    """Keep the files whose ``attribute`` is in ``wanted`` (all when None); unknown names are an error."""
    available = sorted({getattr(f, attribute) for f in found})
    if wanted is None:
        return found
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise UsageError(f"{flag} {', '.join(unknown)} not found; available: {', '.join(available) or 'none'}")
    return [f for f in found if getattr(f, attribute) in wanted]


def no_results_error(filename: str, res_dir: str, run_name: str, how: str) -> UsageError:
    """The error for an empty selection, naming the other run names that do have results."""
    root = Path(res_dir)
    others = sorted({p.parent.name for p in root.glob(f"*/*/*/{filename}")} - {run_name}) if root.is_dir() else []
    hint = f" (--run_name values that have it: {', '.join(others)})" if others else ""
    return UsageError(f"no {filename} under {res_dir}/<model>/<dataset>/{run_name}/{hint}: {how}")


def read_result_records(path: Path, required: tuple[str, ...]) -> list[dict]:
    """The records of a results file, each checked for the fields a script needs."""
    from persona_core.io import read_records

    try:
        records = read_records(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path} ({type(err).__name__}): rerun the experiment that writes it") from None
    for record in records:
        missing = [k for k in required if k not in record]
        if missing:
            raise UsageError(f"{path} lacks {', '.join(missing)} in record {record.get('id')!r}: rerun the experiment that writes it")
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
            raise UsageError(f"{flag} takes NAME=DISPLAY pairs, e.g. {flag} 'gpt-4o-mini=GPT-4o mini'; got '{pair}'")
        names[key] = value
    return names


def default_out_dir(res_dir: str, run_name: str) -> Path:
    return Path(res_dir) / "figures" / run_name


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:
    """The figure as PDF and PNG, each written atomically."""
    paths = []
    for fmt in ("pdf", "png"):
        path = out_dir / f"{stem}.{fmt}"
        _atomic(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=200, bbox_inches="tight"))
        paths.append(path)
    return paths


def write_csv(rows: list[dict], path: Path) -> Path:
    """The numbers behind a figure, one row per bar, written atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
            writer.writeheader()
            writer.writerows(rows)

    _atomic(path, write)
    return path


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table (floats to three places) for the terminal."""
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
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


def close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


@dataclass
class PlotArguments:
    """Flags shared by the figure scripts (Figures 3 and 4)."""

    res_dir: str = field(default="results/persona-inference", metadata={"help": "Root folder of the results."})
    run_name: str = field(default="default", metadata={"help": "Run name of the judged results."})
    evaluator_models: list[str] | None = field(
        default=None, metadata={"help": "Judges (result folder names) to plot; default: every judge found."}
    )
    models: list[str] | None = field(
        default=None, metadata={"help": "Persona-inference models to plot, in this order; default: all judged."}
    )
    datasets: list[str] | None = field(
        default=None, metadata={"help": "Datasets (inference splits) to plot, in this order; default: all found."}
    )
    out_dir: str | None = field(default=None, metadata={"help": "Output folder (default: <res_dir>/figures/<run_name>)."})
    model_names: list[str] | None = field(
        default=None, metadata={"help": "Display names for models and judges, as NAME=DISPLAY pairs."}
    )
    dataset_names: list[str] | None = field(
        default=None, metadata={"help": "Display names for datasets, as NAME=DISPLAY pairs."}
    )
