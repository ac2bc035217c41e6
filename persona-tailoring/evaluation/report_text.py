"""The run report's headline numbers as plain text, for a terminal or a script's last words (scripts/pipeline.sh):
personas well-formed, persona accuracy per side, the judge's invalid verdicts, win rates and ΔPQ, and a warning for
every judge that gave one answer (one position) in nearly all verdicts."""

from __future__ import annotations

from persona_core.weak_judge import check_answers, pairwise_answers
from persona_inference.model.persona_accuracy import summarize as accuracy_summary
from persona_tailoring.evaluation.report_browser import METRICS
from persona_tailoring.evaluation.report_html import number, percent
from persona_tailoring.evaluation.report_reading import Run

LABEL_WIDTH = 28


def line(label: str, text: str) -> str:
    return f"{label + ':':{LABEL_WIDTH}} {text}"


def probability_part(value, ci, fmt: str) -> str:
    return f"; from the verdicts' probabilities {number(value, ci, fmt)}"


def summary_lines(run: Run) -> list[str]:
    """One line per headline number of every stage found; where a stage ran more than once, each run's lines
    end with its label."""
    lines = []
    for pi in run.personas:
        record = pi.run_record or {}
        where = f"  ({pi.label})" if len(run.personas) > 1 else ""
        total = record.get("stats", {}).get("total", len(pi.records))
        lines.append(line("personas well-formed", f"{record.get('well_formed', 'n/a')}/{total}{where}"))
        lines.append(
            line(
                "rows, same persona per side",
                f"{record.get('identical_sides', 'n/a')} identical, {record.get('near_identical_sides', 'n/a')} "
                f"nearly (of {record.get('rows', len({r['row'] for r in pi.records}))} rows){where}",
            )
        )
    for judged in run.accuracy:
        where = f"  ({judged.label})" if len(run.accuracy) > 1 else ""
        for row in accuracy_summary(judged.records):
            lines.append(
                line(
                    f"persona accuracy, {row['side']}",
                    f"{percent(row['accuracy'])} of {row['valid']} valid answers ({row['invalid']} invalid){where}",
                )
            )
    for comparison in run.comparisons:
        where = f"  ({comparison.label})" if len(run.comparisons) > 1 else ""
        record = comparison.run_record or {}
        verdicts = record.get("verdicts")
        if verdicts:
            lines.append(
                line(
                    "judge verdicts",
                    f"{record.get('verdict_mode', 'n/a')}, {verdicts['invalid_after_retry']}/{verdicts['total']} "
                    f"invalid ({verdicts['invalid_first_attempt']} on the first attempt){where}",
                )
            )
        scores = comparison.win_rate
        if scores is None:
            lines.append(
                line("win rates", f"not scored yet (run persona_tailoring.evaluation.win_rate){where}")
            )
            continue
        for metric in (m for m in METRICS if m in scores):
            s = scores[metric]
            ties = "" if s["win_rate"] is not None else f" ({s['counts']['ties']}/{s['n']} pairs tie)"
            lines.append(
                line(
                    f"win rate, {metric}",
                    number(s["win_rate"], s["ci95"])
                    + ties
                    + probability_part(s.get("probability_win_rate"), s.get("probability_ci95"), ".3f")
                    + where,
                )
            )
        delta = scores["delta_pq"]
        lines.append(
            line(
                "ΔPQ",
                number(delta["value"], delta["ci95"], "+.3f")
                + probability_part(delta.get("probability_value"), delta.get("probability_ci95"), "+.3f")
                + where,
            )
        )
    for stage, answers in [
        (judged, (r.get("choice") for r in judged.records)) for judged in run.accuracy + run.prefs
    ] + [(comparison, pairwise_answers(comparison.records)) for comparison in run.comparisons]:
        weak = check_answers(answers)
        if weak:
            lines.append(f"!! weak judge ({stage.label}): {weak['warning']}")
    return lines
