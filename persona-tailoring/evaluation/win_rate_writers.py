"""What ``win_rate`` writes: the console lines, each comparison's JSON-ready CSV row and plot, and over a grid the
paper's ΔPQ table (CSV, markdown pivot, figure)."""

from __future__ import annotations

import csv
from pathlib import Path

from persona_core import layout
from persona_core.io import atomic_output, write_text_atomic
from persona_tailoring.evaluation.win_rate_stats import METRICS, SHARE_NAMES, SIDES

SIDE_STATS = ("responses", "repetitive", "mean_words")  # degenerate.response_stats


def fmt_rate(stats: dict, why_undefined: str = "no decisive verdicts") -> str:
    """'0.625 [0.400, 0.850]', with the resamples left out of the interval named (their win rate was undefined)."""
    value, interval, left_out = (
        stats.get("win_rate", stats.get("value")),
        stats["ci95"],
        stats["undefined_resamples"],
    )
    if value is None:
        return f"undefined ({why_undefined})"
    ci = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    return f"{value:.3f}{ci}" + (
        f" ({left_out} resamples undefined, left out of the interval)" if left_out else ""
    )


def fmt_probability(value: float | None, interval: list[float] | None) -> str:
    """'; from probabilities 0.512 [0.480, 0.540]' for probability verdicts, else nothing."""
    if value is None:
        return ""
    return f"; from probabilities {value:.3f}" + (
        f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    )


def fmt_lc(stats: dict) -> str:
    """The length-controlled win rate, or 'n/a' (its note is in the JSON)."""
    return "n/a" if stats.get("lc_win_rate") is None else f"{stats['lc_win_rate']:.3f}"


def fmt_responses(responses: dict) -> str:
    """'base 499 (2 repetitive, 120.4 words on average) | test ...', or the note when they are not recorded."""
    if "note" in responses:
        return f"n/a ({responses['note']})"
    parts = []
    for side in SIDES:
        s = responses[side]
        mean = "n/a" if s["mean_words"] is None else f"{s['mean_words']:.1f}"
        parts.append(f"{side} {s['responses']} ({s['repetitive']} repetitive, {mean} words on average)")
    return " | ".join(parts)


CSV_COLUMNS = (
    ["comparison", "prompts"]
    + [
        f"{m}_{k}"
        for m in METRICS
        for k in (
            *SHARE_NAMES,
            "win_rate",
            "ci95_low",
            "ci95_high",
            "undefined_resamples",
            "lc_win_rate",
            "probability_win_rate",
        )
    ]
    + ["delta_pq", "delta_pq_ci95_low", "delta_pq_ci95_high", "delta_pq_undefined_resamples"]
    + ["delta_pq_probability", "delta_pq_probability_ci95_low", "delta_pq_probability_ci95_high"]
    + [f"{side}_{k}" for side in SIDES for k in SIDE_STATS]
)


def csv_row(name: str, summary: dict) -> dict:
    row = {"comparison": name, "prompts": summary["prompts"]}
    for metric in METRICS:
        stats = summary.get(metric, {})
        for key in (*SHARE_NAMES, "win_rate", "undefined_resamples", "lc_win_rate", "probability_win_rate"):
            row[f"{metric}_{key}"] = stats.get(key)
        low, high = stats.get("ci95") or (None, None)
        row[f"{metric}_ci95_low"], row[f"{metric}_ci95_high"] = low, high
    row["delta_pq"] = summary["delta_pq"]["value"]
    row["delta_pq_ci95_low"], row["delta_pq_ci95_high"] = summary["delta_pq"]["ci95"] or (None, None)
    row["delta_pq_undefined_resamples"] = summary["delta_pq"].get("undefined_resamples")
    row["delta_pq_probability"] = summary["delta_pq"].get("probability_value")
    low, high = summary["delta_pq"].get("probability_ci95") or (None, None)
    row["delta_pq_probability_ci95_low"], row["delta_pq_probability_ci95_high"] = low, high
    for side in SIDES:
        stats = summary.get("responses", {}).get(side, {})
        for key in SIDE_STATS:
            row[f"{side}_{key}"] = stats.get(key)
    return row


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot(summary: dict, title: str, paths: list[Path]) -> list[Path]:
    """Stacked horizontal bars per metric, base wins | ties | test wins | invalid, as in the paper's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m in summary]
    colors = {"base_wins": "#d9826b", "ties": "#d9d9d9", "test_wins": "#5b8fc9", "invalid": "#8c8c8c"}
    labels = {"base_wins": "Base wins", "ties": "Tie", "test_wins": "Test wins", "invalid": "Invalid"}
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.7 * len(metrics)))
    for y, metric in enumerate(metrics):
        left = 0.0
        for name in SHARE_NAMES:
            share = summary[metric][name]
            ax.barh(
                y,
                share,
                left=left,
                color=colors[name],
                label=labels[name] if y == 0 else None,
                edgecolor="white",
            )
            if share >= 0.06:
                ax.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=9)
            left += share
    names = []
    for metric in metrics:
        rate = summary[metric]["win_rate"]
        names.append(
            f"{metric.replace('_', ' ').capitalize()}\nwin rate {'n/a' if rate is None else f'{rate:.2f}'}"
        )
    ax.set_yticks(range(len(metrics)), names)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    value = summary["delta_pq"]["value"]
    ax.set_title(f"{title}  (ΔPQ = {'n/a' if value is None else f'{value:+.3f}'})", fontsize=9)
    ax.legend(ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False, fontsize=8)
    fig.tight_layout()
    for path in paths:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=200, bbox_inches="tight")
    plt.close(fig)
    return paths


GRID_COLUMNS = (
    "dataset",
    "base",
    "test",
    "method",
    "training_type",
    "inference_type",
    "prompts",
    "delta_pq",
    "delta_pq_ci95_low",
    "delta_pq_ci95_high",
    "personalization_win_rate",
    "response_quality_win_rate",
    "personalization_lc_win_rate",
    "response_quality_lc_win_rate",
    "delta_pq_probability",
    "delta_pq_probability_ci95_low",
    "delta_pq_probability_ci95_high",
    "base_repetitive",
    "test_repetitive",
    "base_mean_words",
    "test_mean_words",
)


def fmt_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fmt_cell(cell: dict) -> str:
    """'+0.250 [-0.100, 0.600]<br>P 0.625 · Q 0.625' (undefined parts as n/a)."""
    value = "n/a" if cell["delta_pq"] is None else f"{cell['delta_pq']:+.3f}"
    ci = (
        ""
        if cell["delta_pq_ci95_low"] is None
        else f" [{cell['delta_pq_ci95_low']:+.3f}, {cell['delta_pq_ci95_high']:+.3f}]"
    )
    return f"{value}{ci}<br>P {fmt_value(cell['personalization_win_rate'])} · Q {fmt_value(cell['response_quality_win_rate'])}"


def write_delta_pq_table(output_dir: Path, cells: list[dict]) -> list[Path]:
    """The paper's ΔPQ table: rows are test configurations (method x persona source), columns datasets; each cell
    ΔPQ with its 95% interval and the personalization (P) and quality (Q) win rates. CSV (one line per cell, every
    number), markdown (the pivot) and a figure (ΔPQ bars with intervals)."""
    import matplotlib

    files = layout.delta_pq_table_files(output_dir)
    with atomic_output(files["csv"]) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, GRID_COLUMNS)
        writer.writeheader()
        writer.writerows(cells)
    datasets = sorted({c["dataset"] for c in cells})
    bases = sorted({c["base"] for c in cells})
    row_names = list(
        dict.fromkeys(c["test"] if len(bases) == 1 else f"{c['test']} vs {c['base']}" for c in cells)
    )
    by_place = {
        (c["test"] if len(bases) == 1 else f"{c['test']} vs {c['base']}", c["dataset"]): c for c in cells
    }
    header = f"| test configuration (vs {bases[0]}) |" if len(bases) == 1 else "| configuration |"
    lines = [
        header + "".join(f" {d or '(dataset)'} |" for d in datasets),
        "|---|" + "---|" * len(datasets),
    ]
    for name in row_names:
        lines.append(
            f"| {name} |"
            + "".join(
                f" {fmt_cell(by_place[(name, d)]) if (name, d) in by_place else '–'} |" for d in datasets
            )
        )
    note = "ΔPQ = ½[(P − ½)/½ + (Q − ½)/½] with its 95% bootstrap interval; P, Q: personalization and quality win rates."
    write_text_atomic(files["md"], "\n".join([*lines, "", note, ""]))

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * len(row_names) * max(1, len(datasets))))
    height = 0.8 / max(1, len(datasets))
    for j, dataset in enumerate(datasets):
        ys, values, errors = [], [], [[], []]
        for i, name in enumerate(row_names):
            cell = by_place.get((name, dataset))
            if cell is None or cell["delta_pq"] is None:
                continue
            ys.append(i + j * height)
            values.append(cell["delta_pq"])
            low, high = cell["delta_pq_ci95_low"], cell["delta_pq_ci95_high"]
            errors[0].append(0 if low is None else cell["delta_pq"] - low)
            errors[1].append(0 if high is None else high - cell["delta_pq"])
        ax.barh(ys, values, height=height, xerr=errors, capsize=2, label=dataset or None)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(
        [i + height * (len(datasets) - 1) / 2 for i in range(len(row_names))], row_names, fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlim(-1, 1)
    ax.set_xlabel("ΔPQ (95% bootstrap interval)")
    if any(datasets):
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        with atomic_output(files[ext]) as tmp:
            fig.savefig(tmp, format=ext, dpi=200, bbox_inches="tight")
    plt.close(fig)
    return list(files.values())


def console_header(width: int) -> str:
    return (
        f"{'comparison':<{width}} {'metric':<17} {'n':>4} {'base':>6} {'tie':>6} {'test':>6} {'inv':>6} "
        f"{'LC win':>7}  win rate [95% CI]"
    )


def console_lines(name: str, summary: dict, width: int) -> list[str]:
    """One comparison's console lines: each metric's shares and win rates, ΔPQ, the responses' lengths."""
    lines = []
    for metric in METRICS:
        if metric in summary:
            s = summary[metric]
            lines.append(
                f"{name:<{width}} {metric:<17} {s['n']:>4} {s['base_wins']:>6.1%} {s['ties']:>6.1%} "
                f"{s['test_wins']:>6.1%} {s['invalid']:>6.1%} {fmt_lc(s):>7}  {fmt_rate(s)}"
                + fmt_probability(s.get("probability_win_rate"), s.get("probability_ci95"))
            )
    delta = summary["delta_pq"]
    lines.append(
        f"{name:<{width}} {'ΔPQ':<17} {'':>4} {'':>6} {'':>6} {'':>6} {'':>6}  "
        f"{fmt_rate(delta, 'needs both win rates')}"
        + fmt_probability(delta.get("probability_value"), delta.get("probability_ci95"))
    )
    lines.append(f"{name:<{width}} {'responses':<17} {fmt_responses(summary['responses'])}")
    if summary.get("weak_judge"):
        lines.append(f"{name:<{width}} {summary['weak_judge']['warning']}")
    return lines
