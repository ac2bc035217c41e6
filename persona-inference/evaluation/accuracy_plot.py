"""Figure 3: how often a judge, told only a persona, picks the response that user preferred.

One panel per dataset (and per judge), one bar pair per persona-inference model: chosen-side vs.
rejected-side personas, with standard-error bars and the 0.5 random baseline. Invalid judge answers are
left out of the accuracy and listed in the table. Under each model, the rows whose chosen-side and rejected-side
personas are the same (or nearly: word overlap >= 0.8), which explain no preference. Examples::

    python -m persona_inference.evaluation.accuracy_plot
    python -m persona_inference.evaluation.accuracy_plot --run_name demo --evaluator_models gpt-4o \\
        --models gpt-4o-mini SmolLM2-135M-Instruct --datasets BeaverTails "Anthropic HHH" \\
        --model_names "gpt-4o-mini=GPT-4o mini" --out_dir figures
"""

from __future__ import annotations

import functools

from persona_core.errors import run_cli
from persona_inference.evaluation import common
from persona_inference.model.persona_accuracy import SIDES, summarize


def plot(rows: list[dict], panels: common.Panels):
    evaluators, datasets, models = panels.evaluators, panels.datasets, panels.models
    fig, axes = common.new_figure(len(evaluators), len(datasets), max(3.2, 1.1 * len(models) + 1), 3.2)
    width = 0.38
    for i, evaluator in enumerate(evaluators):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            for k, side in enumerate(SIDES):
                by_model = {
                    r["persona_model"]: r
                    for r in rows
                    if (r["evaluator"], r["dataset"], r["side"]) == (evaluator, dataset, side)
                }
                xs = [x + (k - 0.5) * width for x, m in enumerate(models) if m in by_model]
                acc = [by_model[m]["accuracy"] for m in models if m in by_model]
                err = [by_model[m]["stderr"] for m in models if m in by_model]
                ax.bar(
                    xs,
                    acc,
                    width,
                    yerr=err,
                    capsize=3,
                    color=common.SIDE_COLORS[side],
                    hatch="//" if side == "rejected" else None,
                    edgecolor="white",
                    label=f"{side} personas" if (i, j) == (0, 0) else None,
                )
                for x, a, e in zip(xs, acc, err, strict=True):
                    ax.text(x, a + e + 0.02, f"{a:.2f}", ha="center", va="bottom", fontsize=7)
            ax.axhline(
                0.5,
                linestyle="--",
                color="#555555",
                linewidth=1,
                label="random (0.5)" if (i, j) == (0, 0) else None,
            )
            same = {
                r["persona_model"]: r
                for r in rows
                if (r["evaluator"], r["dataset"]) == (evaluator, dataset) and "identical_sides" in r
            }
            ax.set_xticks(
                range(len(models)),
                [
                    label
                    + (
                        f"\nsame persona: {same[m]['identical_sides']} (+{same[m]['near_identical_sides']} near)"
                        if m in same
                        else ""
                    )
                    for m, label in zip(models, panels.model_labels(), strict=True)
                ],
                rotation=25 if len(models) > 2 else 0,
                ha="right" if len(models) > 2 else "center",
            )
            ax.set_ylim(0, 1.12)
            ax.set_title(panels.title(dataset, evaluator), fontsize=10)
            if j == 0:
                ax.set_ylabel("Persona accuracy")
    return common.with_legend(fig, 1.06)


FIGURE = common.JudgedFigure(
    "persona_accuracy",
    "accuracy",
    "persona accuracy",
    ("persona_model", "side", "correct", "row", "persona"),
    summarize,
    "evaluator dataset persona_model side questions valid invalid accuracy stderr first_share "
    "identical_sides near_identical_sides".split(),
    plot,
    invalid="invalid judge answers",
)
main = functools.partial(FIGURE.main, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    run_cli(main)
