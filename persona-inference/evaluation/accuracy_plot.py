"""Figure 3: how often a judge, told only a persona, picks the response that user preferred.

One panel per dataset (and per judge), one bar pair per persona-inference model: chosen-side vs.
rejected-side personas, with standard-error bars and the 0.5 random baseline. Invalid judge answers are
left out of the accuracy and listed in the table. Examples::

    python -m persona_inference.evaluation.accuracy_plot
    python -m persona_inference.evaluation.accuracy_plot --run_name demo --evaluator_models gpt-4o \\
        --models gpt-4o-mini SmolLM2-135M-Instruct --datasets BeaverTails "Anthropic HHH" \\
        --model_names "gpt-4o-mini=GPT-4o mini" --out_dir figures
"""

from __future__ import annotations

from pathlib import Path

from persona_core.cli import parse_args
from persona_core.errors import UsageError, run_cli
from persona_inference.evaluation import common
from persona_inference.model.persona_accuracy import SIDES, summarize

RESULT_FILE = "persona_accuracy.jsonl"
COLUMNS = ["evaluator", "dataset", "persona_model", "side", "questions", "valid", "invalid", "accuracy", "stderr", "first_share"]


Arguments = common.PlotArguments


def collect(args: Arguments) -> list[dict]:
    """One row per (judge, dataset, persona model, side) with accuracy and standard error."""
    found = common.find_results(args.res_dir, args.run_name, RESULT_FILE)
    if not found:
        raise common.no_results_error(RESULT_FILE, args.res_dir, args.run_name, "run the persona_accuracy experiment first")
    found = common.select(found, args.evaluator_models, "model", "--evaluator_models")
    found = common.select(found, args.datasets, "dataset", "--datasets")
    rows = []
    for result in found:
        records = common.read_result_records(result.path, ("persona_model", "side", "correct"))
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
    fig, axes = common.new_figure(len(evaluators), len(datasets), max(3.2, 1.1 * len(models) + 1), 3.2)
    width = 0.38
    for i, evaluator in enumerate(evaluators):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            for k, side in enumerate(SIDES):
                by_model = {r["persona_model"]: r for r in rows
                            if (r["evaluator"], r["dataset"], r["side"]) == (evaluator, dataset, side)}
                xs = [x + (k - 0.5) * width for x, m in enumerate(models) if m in by_model]
                acc = [by_model[m]["accuracy"] for m in models if m in by_model]
                err = [by_model[m]["stderr"] for m in models if m in by_model]
                ax.bar(xs, acc, width, yerr=err, capsize=3, color=common.SIDE_COLORS[side],
                              hatch="//" if side == "rejected" else None, edgecolor="white",
                              label=f"{side} personas" if (i, j) == (0, 0) else None)
                for x, a, e in zip(xs, acc, err, strict=True):
                    ax.text(x, a + e + 0.02, f"{a:.2f}", ha="center", va="bottom", fontsize=7)
            ax.axhline(0.5, linestyle="--", color="#555555", linewidth=1,
                       label="random (0.5)" if (i, j) == (0, 0) else None)
            ax.set_xticks(range(len(models)), [model_names.get(m, m) for m in models],
                          rotation=25 if len(models) > 2 else 0, ha="right" if len(models) > 2 else "center")
            ax.set_ylim(0, 1.12)
            ax.set_title(f"{dataset_names.get(dataset, dataset)}\njudge: {model_names.get(evaluator, evaluator)}", fontsize=10)
            if j == 0:
                ax.set_ylabel("Persona accuracy")
    fig.legend(loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.06), frameon=False)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    rows = collect(args)
    if not rows:
        raise UsageError("the selected results hold no judgments: check --evaluator_models/--models/--datasets")
    out_dir = common.default_out_dir(args.res_dir, args.run_name) if args.out_dir is None else Path(args.out_dir)
    fig = plot(rows, args)
    figures = common.save_figure(fig, out_dir, "persona_accuracy")
    common.close(fig)
    table = common.write_csv([{c: r[c] for c in COLUMNS} for r in rows], out_dir / "persona_accuracy.csv")
    print(common.format_table(rows, COLUMNS))
    invalid = sum(r["invalid"] for r in rows)
    print(f"\npersona accuracy: {len(rows)} bars from {len({(r['evaluator'], r['dataset']) for r in rows})} result files"
          f"; {invalid} invalid judge answers left out")
    print(f"figure: {', '.join(map(str, figures))}\nnumbers: {table}")
    return 0


if __name__ == "__main__":
    run_cli(main)
