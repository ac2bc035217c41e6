"""The run report's page: headline numbers (personas, persona accuracy and preferences, win rates and ΔPQ, the
ΔPQ grid), figures inlined, the row browser and the run records, from a ``report_reading.Run``."""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from persona_core import layout
from persona_core.runs import RunRecord
from persona_core.weak_judge import check_answers, pairwise_answers
from persona_inference.model.persona_accuracy import summarize as accuracy_summary
from persona_inference.model.persona_prefs import summarize as prefs_summary
from persona_tailoring.evaluation.report_browser import (
    METRICS,
    OUTCOMES_NOTE,
    PI_FILTERS,
    PREFS_OUTCOMES,
    PT_FILTERS,
    browser,
    pi_rows,
    pt_rows,
)
from persona_tailoring.evaluation.report_html import (
    Markup,
    csv_table,
    details,
    image,
    interval,
    markdown_table,
    number,
    page,
    percent,
    pre,
    section,
    table,
)
from persona_tailoring.evaluation.report_reading import Comparison, Run, Stage, read_json


def persona_table(run: Run) -> str:
    rows = []
    for pi in run.personas:
        record = pi.run_record or {}
        total = record.get("stats", {}).get("total", len(pi.records))
        rows.append(
            [
                pi.label,
                record.get("rows", len({r["row"] for r in pi.records})),
                f"{record.get('well_formed', 'n/a')}/{total}",
                record.get("copied_example", "n/a"),
                record.get("identical_sides", "n/a"),
                record.get("near_identical_sides", "n/a"),
            ]
        )
    header = [
        "model / dataset / run",
        "rows",
        "well-formed",
        "copying an example",
        "identical sides",
        "nearly identical",
    ]
    return table(header, rows, "headline personas")


def accuracy_table(run: Run) -> str:
    rows = []
    for judged in run.accuracy:
        for line in accuracy_summary(judged.records):
            rows.append(
                [
                    judged.label,
                    line["persona_model"],
                    line["side"],
                    percent(line["accuracy"]) + interval(line["interval"]),
                    line["valid"],
                    line["invalid"],
                    percent(line["first_share"]),
                ]
            )
    header = [
        "judge / dataset / run",
        "personas of",
        "side",
        "accuracy [95%, a persona's two orders one unit]",
        "valid",
        "invalid",
    ]
    return table([*header, "answered 1"], rows, "headline accuracy")


def prefs_table(run: Run) -> str:
    rows = []
    for judged in run.prefs:
        for line in prefs_summary(judged.records):
            shares = [f"{percent(line[f'{o}_share'])} ({line[o]})" for o in PREFS_OUTCOMES[:3]]
            rows.append([judged.label, line["persona_model"], line["rows"], *shares, line["invalid"]])
    header = ["judge / dataset / run", "personas of", "rows", "chosen", "tie", "rejected", "invalid"]
    return table(header, rows, "headline prefs")


VERDICT_COUNTS = ("total", "invalid_after_retry", "invalid_first_attempt")


def win_rate_table(comparison: Comparison) -> str:
    """The judge's verdicts, win rates (raw, from the verdicts' probabilities where recorded, length-controlled),
    ΔPQ and the responses' lengths, as the run record and win_rate.json have them."""
    record = comparison.run_record or {}
    verdicts = record.get("verdicts")
    modes = sorted({r["verdict_mode"] for r in comparison.records if r.get("verdict_mode")})
    mode = record.get("verdict_mode") or ", ".join(modes) or "n/a"
    lines = [
        f"judge {record.get('judge', 'n/a')}; {len({r['id'] for r in comparison.records})} test rows judged"
    ]
    lines.append(f"verdict mode: {mode}")
    if verdicts:
        lines.append(
            f"invalid verdicts: {verdicts['invalid_after_retry']}/{verdicts['total']} after retries "
            f"({verdicts['invalid_first_attempt']} on the first attempt)"
        )
        others = {k: v for k, v in verdicts.items() if k not in VERDICT_COUNTS}
        if others:
            lines.append("verdicts: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in others.items()))
    notes = "".join(f"<p>{escape(line)}</p>" for line in lines)
    scores = comparison.win_rate
    if scores is None:
        return (
            notes + "<p>No win rates yet: run persona_tailoring.evaluation.win_rate on this comparison.</p>"
        )
    metrics = [m for m in METRICS if m in scores]
    with_probabilities = any(scores[m].get("probability_win_rate") is not None for m in metrics)
    rows = []
    for metric in metrics:
        s = scores[metric]
        counts = [s["counts"][k] for k in ("base_wins", "ties", "test_wins", "invalid")]
        rates = [number(s["win_rate"], s["ci95"]), s.get("undefined_resamples")]
        if with_probabilities:
            rates.append(number(s.get("probability_win_rate"), s.get("probability_ci95")))
        rows.append([metric, s["n"], *counts, *rates, number(s.get("lc_win_rate"), None)])
    delta = scores["delta_pq"]
    rates = [number(delta["value"], delta["ci95"], "+.3f"), delta.get("undefined_resamples")]
    if with_probabilities:
        rates.append(number(delta.get("probability_value"), delta.get("probability_ci95"), "+.3f"))
    rows.append(["ΔPQ", *[""] * 5, *rates, ""])
    header = [
        "metric",
        "n",
        "base wins",
        "ties",
        "test wins",
        "invalid",
        "win rate [95% CI]",
        "undefined resamples",
    ]
    header += ["from probabilities [95% CI]"] * with_probabilities + ["LC win rate"]
    out = notes + table(header, rows, "headline win-rate")
    responses = scores.get("responses", {})
    if "note" in responses:
        return out + f"<p>Responses: {escape(responses['note'])}</p>"
    side_rows = [
        [
            side,
            s["responses"],
            s["repetitive"],
            "n/a" if s["mean_words"] is None else f"{s['mean_words']:.1f}",
        ]
        for side, s in responses.items()
    ]
    return out + table(["side", "responses", "repetitive", "mean words"], side_rows, "headline responses")


def versions_text(record: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())


def record_row(kind: str, stage: Stage) -> list:
    """Model, prompt digest, generation settings and timing of one stage's run record (all of it folded below)."""
    record = stage.run_record or {}
    typed = RunRecord.from_dict(record) if record else RunRecord(stage="")
    settings = ", ".join(f"{k} {v}" for k, v in typed.generation.items())
    full = Markup(details("run record", pre(record))) if record else "no run record"
    return [
        kind,
        stage.label,
        typed.model,
        typed.prompts,
        settings,
        typed.finished_at,
        typed.seconds,
        full,
    ]


def records_section(run: Run) -> str:
    stages = [("persona inference", s) for s in run.personas] + [
        ("persona accuracy", s) for s in run.accuracy
    ]
    stages += [("persona preferences", s) for s in run.prefs] + [("generation", s) for s in run.generations]
    stages += [("judge", s) for s in run.comparisons]
    versions = {versions_text(s.run_record or {}) for _, s in stages} - {""}
    rows = [record_row(kind, stage) for kind, stage in stages]
    header = ["stage", "where", "model", "prompt digest", "generation settings", "finished", "seconds", ""]
    if len(versions) > 1:
        header.insert(-1, "versions")
        for row, (_, stage) in zip(rows, stages, strict=True):
            row.insert(-1, versions_text(stage.run_record or {}))
    shared = f"<p>Versions: {escape(versions.pop())}</p>" if len(versions) == 1 else ""
    out = shared + table(header, rows, "records")
    trained = []
    for dirs in run.models:
        summary = read_json(dirs.training_summary) or {}
        merge = read_json(dirs.merged / layout.MERGE_INFO_FILE)
        label = str(dirs.root.relative_to(layout.results_root_dirs(run.root)["models"]))
        shown = {"training summary": summary, "merged": merge or "not merged"}
        trained.append([label, summary.get("base_model"), Markup(details("training summary", pre(shown)))])
    if trained:
        out += "<h3>Trained models</h3>" + table(["model", "trained from", ""], trained, "records")
    return out


def grid_name(run: Run, grid: dict[str, Path]) -> str:
    return str(grid["csv"].parent.relative_to(run.root))


def weak_judge_notes(run: Run) -> str:
    """A warning above the numbers for every judge that gave one answer (one position) in nearly all verdicts."""
    checks = [
        (stage.label, check_answers(r.get("choice") for r in stage.records))
        for stage in run.accuracy + run.prefs
    ]
    checks += [(stage.label, check_answers(pairwise_answers(stage.records))) for stage in run.comparisons]
    return "".join(
        f'<p class="warning"><strong>{escape(label)}</strong>: {escape(weak["warning"])}</p>'
        for label, weak in checks
        if weak
    )


def render(run: Run) -> str:
    stages = run.stages()
    found = ", ".join(f"{name} {count}" for name, count in stages.items() if count)
    missing = ", ".join(name for name, count in stages.items() if not count)
    headline = weak_judge_notes(run)
    if run.personas:
        headline += "<h3>Personas</h3>" + persona_table(run)
    if run.accuracy:
        headline += "<h3>Persona accuracy</h3>" + accuracy_table(run)
    if run.prefs:
        headline += "<h3>Persona preferences</h3>" + prefs_table(run)
    for comparison in run.comparisons:
        headline += f"<h3>Win rates: {escape(comparison.label)}</h3>" + win_rate_table(comparison)
    for grid in run.grids:
        pivot = markdown_table(grid["md"]) if grid["md"].is_file() else ""
        headline += f"<h3>ΔPQ grid ({escape(grid_name(run, grid))})</h3>{pivot}"
        headline += details("every number of the grid", csv_table(grid["csv"]))
    figures = ""
    for caption, png, numbers in run.figures:
        numbers_table = details("the numbers behind it", csv_table(numbers)) if numbers.is_file() else ""
        figures += (
            f"<figure>{image(png, caption)}<figcaption>{escape(caption)}</figcaption>{numbers_table}</figure>"
        )
    for grid in run.grids:
        if grid["png"].is_file():
            caption = f"ΔPQ grid ({grid_name(run, grid)})"
            figures += (
                f"<figure>{image(grid['png'], caption)}<figcaption>{escape(caption)}</figcaption></figure>"
            )
    for comparison in run.comparisons:
        if comparison.win_rate_png:
            caption = f"Win rates: {comparison.label}"
            figures += (
                f"<figure>{image(comparison.win_rate_png, caption)}<figcaption>{escape(caption)}</figcaption>"
            )
            figures += "</figure>"
    rows = ""
    for pi in run.personas:
        blocks, note = pi_rows(pi, run)
        rows += browser(f"Persona inference rows: {pi.label}", blocks, PI_FILTERS, note or "")
    for comparison in run.comparisons:
        title = f"Tailored test rows: {comparison.label}"
        rows += browser(title, pt_rows(comparison), PT_FILTERS, OUTCOMES_NOTE)
    sections = [
        ("Headline numbers", headline, "headline"),
        ("Figures", figures, "figures"),
        ("Row browser", rows, "rows"),
        ("Run records", records_section(run), "records"),
    ]
    nav = " · ".join(f'<a href="#{anchor}">{escape(title)}</a>' for title, text, anchor in sections if text)
    body = (
        f"<nav>{nav}</nav>"
        f"<p>Stages found: {escape(found)}{escape(f'. Not in this run: {missing}') if missing else ''}.</p>"
        + "".join(section(*parts) for parts in sections)
    )
    subtitle = f"results root {run.root.resolve()}; page written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    return page(f"Run report: {run.root.name}", subtitle, body)
