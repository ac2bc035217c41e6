"""Figure 4: which persona a judge considers the more common user, the chosen-side or the rejected-side one.

Each row's persona pair is judged in both orders; the side picked both times wins the row, and a judge that
flips with the order gives a tie. One panel per dataset (and per judge), one stacked bar per persona-inference
model: shares of chosen persona / tie / rejected persona over rows with two valid answers. Examples::

    python -m persona_inference.evaluation.persona_prefs_plot
    python -m persona_inference.evaluation.persona_prefs_plot --run_name demo --evaluator_models gpt-4o \\
        --datasets BeaverTails Mnemonic --model_names "gpt-4o-mini=GPT-4o mini" --out_dir figures
"""

from __future__ import annotations

from pathlib import Path

from persona_core.cli import parse_args
from persona_core.errors import UsageError, run_cli
from persona_inference.evaluation import common
from persona_inference.model.persona_prefs import OUTCOMES, summarize

RESULT_FILE = "persona_prefs.jsonl"
COLUMNS = ["evaluator", "dataset", "persona_model", "rows", "valid", "invalid", "chosen", "tie", "rejected",
           "chosen_share", "tie_share", "rejected_share"]


Arguments = common.PlotArguments


def collect(args: Arguments) -> list[dict]:
    """One row per (judge, dataset, persona model) with outcome counts and shares."""
    found = common.find_results(args.res_dir, args.run_name, RESULT_FILE)
    if not found:
        raise common.no_results_error(RESULT_FILE, args.res_dir, args.run_name, "run the persona_prefs experiment first")
    found = common.select(found, args.evaluator_models, "model", "--evaluator_models")
    found = common.select(found, args.datasets, "dataset", "--datasets")
    rows = []
    for result in found:
        records = common.read_result_records(result.path, ("persona_model", "row", "order", "preferred"))
        for line in summarize(records):
            rows.append({"evaluator": result.model, "dataset": result.dataset, **line})
    judged = sorted({r["persona_model"] for r in rows})
    unknown = [m for m in args.models or [] if m not in judged]
    if unknown:
        raise UsageError(f"--models {', '.join(unknown)} not judged in the selected results; judged: {', '.join(judged)}")
    if args.models:
        rows = [r for r in rows if r["persona_model"] in args.models]
    return rows


def plot(rows: list[dict], args: Arguments):
    model_names = common.parse_name_map(args.model_names, "--model_names")
    dataset_names = common.parse_name_map(args.dataset_names, "--dataset_names")
    evaluators = args.evaluator_models or sorted({r["evaluator"] for r in rows})
    datasets = args.datasets or common.ordered_datasets(r["dataset"] for r in rows)
    models = args.models or sorted({r["persona_model"] for r in rows})
    fig, axes = common.new_figure(len(evaluators), len(datasets), 4.2, 0.5 * len(models) + 2.2)
    for i, evaluator in enumerate(evaluators):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            by_model = {r["persona_model"]: r for r in rows if (r["evaluator"], r["dataset"]) == (evaluator, dataset)}
            shown = [m for m in models if m in by_model and by_model[m]["valid"]]
            left = [0.0] * len(shown)
            ys = [models.index(m) for m in shown]
            for outcome in OUTCOMES:
                shares = [by_model[m][f"{outcome}_share"] for m in shown]
                label = (f"{outcome} persona" if outcome != "tie" else "tie") if (i, j) == (0, 0) else None
                ax.barh(ys, shares, left=left, color=common.OUTCOME_COLORS[outcome], edgecolor="white", label=label)
                for y, start, share in zip(ys, left, shares, strict=True):
                    if share >= 0.08:
                        ax.text(start + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=7)
                left = [a + b for a, b in zip(left, shares, strict=True)]
            ax.set_yticks(range(len(models)), [model_names.get(m, m) for m in models])
            ax.set_ylim(len(models) - 0.5, -0.5)
            ax.set_xlim(0, 1)
            ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
            ax.set_title(f"{dataset_names.get(dataset, dataset)}\njudge: {model_names.get(evaluator, evaluator)}", fontsize=10)
            if i == len(evaluators) - 1:
                ax.set_xlabel("Share of rows")
    fig.legend(loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.08), frameon=False)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    rows = collect(args)
    if not rows:
        raise UsageError("the selected results hold no judgments: check --evaluator_models/--models/--datasets")
    out_dir = common.default_out_dir(args.res_dir, args.run_name) if args.out_dir is None else Path(args.out_dir)
    fig = plot(rows, args)
    figures = common.save_figure(fig, out_dir, "persona_prefs")
    common.close(fig)
    table = common.write_csv([{c: r[c] for c in COLUMNS} for r in rows], out_dir / "persona_prefs.csv")
    print(common.format_table(rows, COLUMNS))
    invalid = sum(r["invalid"] for r in rows)
    print(f"\npersona preferences: {len(rows)} bars; {invalid} rows with an invalid judge answer left out")
    print(f"figure: {', '.join(map(str, figures))}\nnumbers: {table}")
    return 0


if __name__ == "__main__":
    run_cli(main)
