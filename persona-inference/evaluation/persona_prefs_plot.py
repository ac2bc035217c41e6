"""Figure 4: which persona a judge considers better (or, with ``--prefs_question more_common``, the more common
user), the chosen-side or the rejected-side one.

Each row's persona pair is judged in both orders; the side picked both times wins the row, and a judge that
flips with the order gives a tie. One panel per dataset (and per judge), one stacked bar per persona-inference
model: shares of chosen persona / tie / rejected persona over rows with two valid answers. Examples::

    python -m persona_inference.evaluation.persona_prefs_plot
    python -m persona_inference.evaluation.persona_prefs_plot --run_name demo --evaluator_models gpt-4o \\
        --datasets BeaverTails Mnemonic --model_names "gpt-4o-mini=GPT-4o mini" --out_dir figures
"""

from __future__ import annotations

import functools

from persona_core.errors import run_cli
from persona_inference.evaluation import common
from persona_inference.model.persona_prefs import OUTCOMES, summarize


def plot(rows: list[dict], panels: common.Panels):
    evaluators, datasets, models = panels.evaluators, panels.datasets, panels.models
    fig, axes = common.new_figure(len(evaluators), len(datasets), 4.2, 0.5 * len(models) + 2.2)
    for i, evaluator in enumerate(evaluators):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            by_model = {
                r["persona_model"]: r for r in rows if (r["evaluator"], r["dataset"]) == (evaluator, dataset)
            }
            shown = [m for m in models if m in by_model and by_model[m]["valid"]]
            left = [0.0] * len(shown)
            ys = [models.index(m) for m in shown]
            for outcome in OUTCOMES:
                shares = [by_model[m][f"{outcome}_share"] for m in shown]
                label = (f"{outcome} persona" if outcome != "tie" else "tie") if (i, j) == (0, 0) else None
                ax.barh(
                    ys,
                    shares,
                    left=left,
                    color=common.OUTCOME_COLORS[outcome],
                    edgecolor="white",
                    label=label,
                )
                for y, start, share in zip(ys, left, shares, strict=True):
                    if share >= 0.08:
                        ax.text(start + share / 2, y, f"{share:.0%}", ha="center", va="center", fontsize=7)
                left = [a + b for a, b in zip(left, shares, strict=True)]
            ax.set_yticks(range(len(models)), panels.model_labels())
            ax.set_ylim(len(models) - 0.5, -0.5)
            ax.set_xlim(0, 1)
            ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
            ax.set_title(panels.title(dataset, evaluator), fontsize=10)
            if i == len(evaluators) - 1:
                ax.set_xlabel("Share of rows")
    return common.with_legend(fig, 1.08)


FIGURE = common.JudgedFigure(
    "persona_prefs",
    "prefs",
    "persona preferences",
    ("persona_model", "row", "order", "preferred"),
    summarize,
    "evaluator dataset persona_model rows valid invalid chosen tie rejected chosen_share tie_share rejected_share".split(),
    plot,
    invalid="rows with an invalid judge answer",
)
main = functools.partial(FIGURE.main, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    run_cli(main)
