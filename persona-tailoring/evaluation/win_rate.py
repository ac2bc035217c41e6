"""Win rates, ties and ΔPQ, with 95% bootstrap intervals over prompts, from ``run_judge`` judgments.

Per metric: the shares of base wins, ties (the two orders disagree), test wins and invalid verdicts;
win rate = test wins / (test wins + base wins), undefined (null) without decisive verdicts;
ΔPQ = ½[(p_win − ½)/½ + (q_win − ½)/½] over the personalization (p) and response-quality (q) win rates.

Degenerate outputs and length, from the two responses each judgment records: per side (base/test) the number of
repetitive responses (``degenerate.is_repetitive``) and the mean response length in words; and per metric a
length-controlled win rate (``lc_win_rate``, in the spirit of alpaca_eval's): a logistic regression of the
decisive verdicts (test win 1, base win 0) on the normalized length difference (test − base words, over its
standard deviation), read at zero difference, sigmoid(intercept). Undefined (null, with a note) when the
judgments lack the responses, when the decisive verdicts are all one way, or when length separates them.

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
from pathlib import Path

from persona_core import layout
from persona_core.cli import parse_args
from persona_core.errors import UsageError, run_cli
from persona_tailoring.evaluation.configuration import ComparisonArguments, comparison_folder, resolve_sides

METRICS = ("personalization", "response_quality")
SIDES = ("base", "test")
SIDE_STATS = ("responses", "repetitive", "mean_words")  # degenerate.response_stats
OUTCOME_CODES = {"base": 0, "tie": 1, "test": 2, "invalid": 3}
SHARE_NAMES = ("base_wins", "ties", "test_wins", "invalid")  # in OUTCOME_CODES order
NO_RESPONSES = "the judgments do not record the two responses (rerun run_judge to rewrite them)"


@dataclass
class Arguments(ComparisonArguments):
    comparison_dir: str | None = field(
        default=None,
        metadata={
            "help": "A comparison folder, or any folder above one (run_judge's --output_dir): all found are scored."
        },
    )
    resamples: int = field(default=1000, metadata={"help": "Bootstrap resamples over prompts."})
    seed: int = field(default=0, metadata={"help": "Bootstrap seed."})
    plot: bool = field(default=False, metadata={"help": "Also draw paper-style bars (PNG and PDF)."})

    def check(self) -> None:
        if self.resamples < 1:
            raise UsageError("--resamples must be at least 1")


def delta_pq(p_win: float | None, q_win: float | None) -> float | None:
    if p_win is None or q_win is None:
        return None
    return 0.5 * ((p_win - 0.5) / 0.5 + (q_win - 0.5) / 0.5)


def outcome_codes(rows: list[dict], where: str) -> dict[str, list[int]]:
    """Outcome codes per metric, aligned over the prompts (ids) in first-seen order."""
    by_id: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("outcome") not in OUTCOME_CODES or row.get("metric") not in METRICS:
            raise UsageError(
                f"{where} has a row without a known metric/outcome: rerun run_judge to rewrite it"
            )
        by_id.setdefault(row["id"], {})[row["metric"]] = OUTCOME_CODES[row["outcome"]]
    metrics = [m for m in METRICS if any(m in outcomes for outcomes in by_id.values())]
    incomplete = [i for i, outcomes in by_id.items() if any(m not in outcomes for m in metrics)]
    if incomplete:
        raise UsageError(f"{where}: prompt '{incomplete[0]}' lacks a metric the others have: rerun run_judge")
    return {m: [outcomes[m] for outcomes in by_id.values()] for m in metrics}


def responses_by_side(rows: list[dict]) -> dict[str, list[str]] | None:
    """Each prompt's base and test response (the ids in ``outcome_codes``' order); None if a row lacks either."""
    by_id: dict[str, dict[str, str]] = {}
    for row in rows:
        pair = {side: row.get(f"{side}_response") for side in SIDES}
        if not all(isinstance(text, str) for text in pair.values()):
            return None
        by_id.setdefault(row["id"], pair)
    return {side: [pair[side] for pair in by_id.values()] for side in SIDES}


def test_probabilities(rows: list[dict]) -> dict[str, list[float]] | None:
    """Each prompt's ``p_test`` per metric (the ids in ``outcome_codes``' order), from probability verdicts; None
    when any judgment lacks one (text verdicts)."""
    by_metric: dict[str, dict[str, float]] = {}
    for row in rows:
        if not isinstance(row.get("p_test"), (int, float)):
            return None
        by_metric.setdefault(row["metric"], {})[row["id"]] = float(row["p_test"])
    return {metric: list(values.values()) for metric, values in by_metric.items()}


def normalized_length_difference(base: list[str], test: list[str]) -> list[float]:
    """(test words − base words) / their standard deviation over the pairs; all 0.0 when it is constant."""
    import numpy as np

    from persona_tailoring.evaluation.degenerate import words

    diff = np.array([len(words(t)) - len(words(b)) for b, t in zip(base, test, strict=True)], dtype=float)
    std = diff.std()
    return (diff / std if std > 0 else np.zeros_like(diff)).tolist()


def length_controlled_win_rate(codes: list[int], length_diff: list[float]) -> dict:
    """``{"lc_win_rate", "lc_length_coef"}`` (+ ``lc_note`` when undefined), from one metric's outcome codes.

    Maximum likelihood logistic regression (scipy.optimize, unpenalized) of the decisive verdicts on the
    normalized length difference with an intercept; ``lc_win_rate`` = sigmoid(intercept), the win rate the fit
    predicts at equal lengths. Its maximum likelihood estimate does not exist when the decisive verdicts are all
    one way, or when length separates them (every test win at least as long, relative to base, as every base
    win, or the reverse): then both are None and the note says why. A constant length difference leaves the
    intercept alone, so the LC win rate is the raw one.
    """
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    codes, x = np.asarray(codes), np.asarray(length_diff, dtype=float)
    decisive = np.isin(codes, [OUTCOME_CODES["test"], OUTCOME_CODES["base"]])
    y, x = (codes[decisive] == OUTCOME_CODES["test"]).astype(float), x[decisive]
    undefined = {"lc_win_rate": None, "lc_length_coef": None}
    if not decisive.any():
        return {**undefined, "lc_note": "no decisive verdicts"}
    if y.min() == y.max():
        side = "test" if y[0] else "base"
        return {**undefined, "lc_note": f"every decisive verdict is a {side} win: no regression to fit"}
    constant = bool(np.ptp(x) == 0)
    wins, losses = x[y == 1], x[y == 0]
    if not constant and (losses.max() <= wins.min() or wins.max() <= losses.min()):
        return {
            **undefined,
            "lc_note": "the length difference separates the verdicts: the regression has no finite fit",
        }
    design = np.column_stack([np.ones_like(x), x]) if not constant else np.ones((x.size, 1))

    def loss(theta):
        z = design @ theta
        gradient = design.T @ (expit(z) - y)
        return -(y * log_expit(z) + (1 - y) * log_expit(-z)).sum(), gradient

    fit = minimize(loss, np.zeros(design.shape[1]), jac=True, method="BFGS")
    if not np.all(np.isfinite(fit.x)) or np.abs(fit.jac).max() > 1e-3:
        return {**undefined, "lc_note": f"the regression did not converge ({fit.message})"}
    return {
        "lc_win_rate": round(float(expit(fit.x[0])), 4),
        "lc_length_coef": 0.0 if constant else round(float(fit.x[1]), 4),
    }


def _win_rates(codes):
    """Win rate per row of a (resamples, prompts) code array; NaN where a row has no decisive verdict."""
    import numpy as np

    test = (codes == OUTCOME_CODES["test"]).sum(axis=-1)
    decisive = test + (codes == OUTCOME_CODES["base"]).sum(axis=-1)
    return np.divide(test, decisive, out=np.full(test.shape, np.nan), where=decisive > 0)


def _interval(values) -> list[float] | None:
    """The 95% percentile interval of the defined resamples (``undefined`` counts the others)."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def count_undefined(values) -> int:
    """Resamples whose statistic is undefined (no decisive verdict drawn): reported, never dropped silently."""
    import numpy as np

    return int((~np.isfinite(values)).sum())


def summarize(
    codes_by_metric: dict[str, list[int]],
    resamples: int = 1000,
    seed: int = 0,
    responses: dict[str, list[str]] | None = None,
    p_tests: dict[str, list[float]] | None = None,
) -> dict:
    """Shares, win rate and ΔPQ, each with a percentile bootstrap interval over prompts (resampled jointly).

    With ``responses`` (``responses_by_side``: each prompt's base and test response, aligned with the codes):
    per side the repetitive responses and mean words, and per metric the length-controlled win rate. With
    ``p_tests`` (``test_probabilities``, from probability verdicts): per metric the probability win rate, the mean
    over prompts of P(test wins) averaged over the two orders (alpaca_eval's preference average; a judge's constant
    position bias cancels out, so a judge that always picks the first response scores 0.5 where the discrete win
    rate has only ties), and ΔPQ from those.
    """
    import numpy as np

    from persona_tailoring.evaluation.degenerate import response_stats

    n = len(next(iter(codes_by_metric.values())))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(resamples, n))
    out: dict = {"prompts": n, "bootstrap": {"resamples": resamples, "seed": seed}}
    boot_wins, boot_soft = {}, {}
    if responses is not None:
        out["responses"] = {side: response_stats(responses[side]) for side in SIDES}
        length_diff = normalized_length_difference(responses["base"], responses["test"])
    else:
        out["responses"] = {"note": NO_RESPONSES}
        length_diff = None
    for metric, codes in codes_by_metric.items():
        codes = np.asarray(codes)
        counts = {name: int((codes == k).sum()) for name, k in zip(SHARE_NAMES, range(4), strict=True)}
        decisive = counts["test_wins"] + counts["base_wins"]
        samples = codes[index]
        boot_wins[metric] = _win_rates(samples)
        out[metric] = {
            "n": n,
            "counts": counts,
            **{name: round(count / n, 4) for name, count in counts.items()},
            "share_ci95": {
                name: _interval((samples == k).mean(axis=1))
                for name, k in zip(SHARE_NAMES, range(4), strict=True)
            },
            "win_rate": round(counts["test_wins"] / decisive, 4) if decisive else None,
            "ci95": _interval(boot_wins[metric]),
            "undefined_resamples": count_undefined(boot_wins[metric]),
            **(
                length_controlled_win_rate(codes, length_diff)
                if length_diff is not None
                else {"lc_win_rate": None, "lc_length_coef": None, "lc_note": NO_RESPONSES}
            ),
        }
        if not decisive:
            out[metric]["note"] = "no decisive verdicts (all ties or invalid): win rate undefined"
        if p_tests is not None:
            shares = np.asarray(p_tests[metric])
            boot_soft[metric] = shares[index].mean(axis=1)
            out[metric]["probability_win_rate"] = round(float(shares.mean()), 4)
            out[metric]["probability_ci95"] = _interval(boot_soft[metric])
    if all(m in codes_by_metric for m in METRICS):
        value = delta_pq(out["personalization"]["win_rate"], out["response_quality"]["win_rate"])
        boot = 0.5 * (
            (boot_wins["personalization"] - 0.5) / 0.5 + (boot_wins["response_quality"] - 0.5) / 0.5
        )
        out["delta_pq"] = {
            "value": None if value is None else round(value, 4),
            "ci95": _interval(boot),
            "undefined_resamples": count_undefined(boot),
        }
        if p_tests is not None:
            soft = delta_pq(
                out["personalization"]["probability_win_rate"],
                out["response_quality"]["probability_win_rate"],
            )
            boot = 0.5 * (
                (boot_soft["personalization"] - 0.5) / 0.5 + (boot_soft["response_quality"] - 0.5) / 0.5
            )
            out["delta_pq"]["probability_value"] = round(soft, 4)
            out["delta_pq"]["probability_ci95"] = _interval(boot)
    else:
        out["delta_pq"] = {
            "value": None,
            "ci95": None,
            "undefined_resamples": resamples,
            "note": "needs both personalization and response_quality",
        }
    return out


def find_comparisons(args: Arguments) -> tuple[Path, list[Path]]:
    """The folder the comparisons were looked for in, and every comparison folder holding judgments."""
    judgments = layout.JUDGMENTS_FILE
    if args.comparison_dir:
        flags = [
            f for f in ("base_file", "test_file", "model_type_base", "model_type_test") if getattr(args, f)
        ]
        if flags:
            raise UsageError(
                f"pass either --comparison_dir or the comparison flags (--{flags[0]} ...), not both"
            )
        root = Path(args.comparison_dir)
        if not root.is_dir():
            raise UsageError(f"--comparison_dir '{root}' does not exist: pass run_judge's --output_dir")
        found = (
            [root]
            if layout.judge_files(root).results.is_file()
            else sorted(p.parent for p in root.rglob(judgments))
        )
    else:
        base, tests = resolve_sides(args)
        folders = [comparison_folder(args, base, test) for test in tests]
        root = folders[0] if len(folders) == 1 else Path(args.output_dir)
        found = [folder for folder in folders if layout.judge_files(folder).results.is_file()]
    if not found:
        raise UsageError(
            f"no {judgments} in or under '{root}': run persona_tailoring.evaluation.run_judge first"
        )
    return root, found


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
    import csv

    from persona_core.io import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot(summary: dict, title: str, paths: list[Path]) -> list[Path]:
    """Stacked horizontal bars per metric, base wins | ties | test wins | invalid, as in the paper's figures."""
    import matplotlib

    from persona_core.io import atomic_output

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
    import csv

    import matplotlib

    from persona_core.io import atomic_output, write_text_atomic

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    from persona_core.io import read_records, write_json_atomic

    root, folders = find_comparisons(args)
    rows, cells, written = [], [], []
    names = [layout.comparison_name(folder) for folder in folders]
    width = max(len("comparison"), *map(len, names))
    print(
        f"{'comparison':<{width}} {'metric':<17} {'n':>4} {'base':>6} {'tie':>6} {'test':>6} {'inv':>6} "
        f"{'LC win':>7}  win rate [95% CI]"
    )
    for folder, name in zip(folders, names, strict=True):
        where = str(layout.judge_files(folder).results)
        records = read_records(where)
        summary = summarize(
            outcome_codes(records, where),
            args.resamples,
            args.seed,
            responses_by_side(records),
            test_probabilities(records),
        )
        configuration = records[0].get("comparison") if records else None
        if configuration is None:
            raise UsageError(
                f"{where} has no comparison configuration (judged by an older version): rerun the judge on it"
            )
        summary = {"comparison": name, "configuration": configuration, "judgments": where, **summary}
        outputs = layout.win_rate_files(folder)
        write_json_atomic(outputs["json"], summary)
        write_csv(outputs["csv"], [csv_row(name, summary)])
        written += [outputs["json"], outputs["csv"]]
        if args.plot:
            written += plot(summary, name, [outputs["png"], outputs["pdf"]])
        rows.append(csv_row(name, summary))
        cells.append(grid_cell(name, summary))
        for metric in METRICS:
            if metric in summary:
                s = summary[metric]
                print(
                    f"{name:<{width}} {metric:<17} {s['n']:>4} {s['base_wins']:>6.1%} {s['ties']:>6.1%} "
                    f"{s['test_wins']:>6.1%} {s['invalid']:>6.1%} {fmt_lc(s):>7}  {fmt_rate(s)}"
                    + fmt_probability(s.get("probability_win_rate"), s.get("probability_ci95"))
                )
        delta = summary["delta_pq"]
        print(
            f"{name:<{width}} {'ΔPQ':<17} {'':>4} {'':>6} {'':>6} {'':>6} {'':>6}  "
            f"{fmt_rate(delta, 'needs both win rates')}"
            + fmt_probability(delta.get("probability_value"), delta.get("probability_ci95"))
        )
        print(f"{name:<{width}} {'responses':<17} {fmt_responses(summary['responses'])}")
    if len(folders) > 1:
        write_csv(root / layout.WIN_RATE_TABLE, rows)
        written.append(root / layout.WIN_RATE_TABLE)
        table = write_delta_pq_table(root, cells)
        written = [*table, *written]
        print(f"ΔPQ table ({len(cells)} cells): {table[1]}")
        print(table[1].read_text(encoding="utf-8"))
    print(
        f"{len(folders)} comparison(s) scored ({args.resamples} bootstrap resamples); wrote {len(written)} files, e.g.:"
    )
    for path in written[:4]:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
