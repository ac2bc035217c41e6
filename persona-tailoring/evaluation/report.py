"""One self-contained HTML page of a whole run: headline numbers, figures, a row browser and the run records.

Examples::

    python -m persona_tailoring.evaluation.report --root results/pipeline     # -> results/pipeline/report.html
    python -m persona_tailoring.evaluation.report --root /tmp/run --output /tmp/run.html

It reads whatever stages exist below the results root (a persona-inference-only run gives a persona-inference-only
page), finding every file through ``persona_core.layout``. The page needs no network when it is opened: figures are
inlined as PNG data, and the row browser's search and outcome filter are a few lines of inline JavaScript.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from string import Template

from persona_core import layout
from persona_core.cli import parse_args
from persona_core.errors import UsageError, run_cli
from persona_core.io import read_records
from persona_core.runs import RunRecord

FIGURE_CAPTIONS = {
    "accuracy": "Figure 3: persona accuracy",
    "prefs": "Figure 4: persona preferences",
    "saliency": "Table 1: word saliency",
}
METRICS = ("personalization", "response_quality")
ORDERS = ("base_first", "test_first")
# A judged pair's outcome as the browser names it: from the test (tailored) configuration's side.
OUTCOME_NAMES = {"test": "win", "tie": "tie", "base": "loss", "invalid": "invalid"}
PREFS_OUTCOMES = ("chosen", "tie", "rejected", "invalid")


@dataclass
class Arguments:
    root: str | None = field(
        default=None, metadata={"help": "The results root of a run (scripts/pipeline.sh's ROOT)."}
    )
    output: str | None = field(
        default=None, metadata={"help": "Where to write the page (default: <root>/report.html)."}
    )

    def check(self) -> None:
        if not self.root:
            raise UsageError("pass --root, the results folder of a run (scripts/pipeline.sh's ROOT)")
        if not Path(self.root).is_dir():
            raise UsageError(f"--root '{self.root}' is not a folder: pass the results folder of a run")


# --- reading the run ---------------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One finished stage: a label, its final records and its run record (None when absent)."""

    label: str
    records: list[dict]
    run_record: dict | None


@dataclass
class PIRun(Stage):
    model: str = ""
    split: str = ""
    run_name: str = ""


@dataclass
class Comparison(Stage):
    win_rate: dict | None = None
    win_rate_png: Path | None = None


@dataclass
class Run:
    root: Path
    personas: list[PIRun]
    accuracy: list[PIRun]
    prefs: list[PIRun]
    figures: list[tuple[str, Path, Path]]
    """(caption, PNG, CSV of the numbers) of every figure found."""
    comparisons: list[Comparison]
    grids: list[dict[str, Path]]
    """The files of every ΔPQ grid table (``layout.delta_pq_table_files``) found in the judge's output."""
    generations: list[Stage]
    models: list[layout.PTModelDirs]

    def stages(self) -> dict[str, int]:
        """What the run holds, by stage: how many results of each were found."""
        return {
            "persona inference": len(self.personas),
            "persona accuracy": len(self.accuracy),
            "persona preferences": len(self.prefs),
            "figures": len(self.figures),
            "trained models": len(self.models),
            "generations": len(self.generations),
            "judged comparisons": len(self.comparisons),
            "ΔPQ grid tables": len(self.grids),
        }


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_pi_runs(res_dir: Path, experiment: str) -> list[PIRun]:
    runs = []
    for model, split, run_name in layout.find_pi_runs(res_dir, experiment):
        files = layout.pi_files(res_dir, model, split, run_name, experiment)
        label = f"{model} / {split} / {run_name}"
        records, record = read_records(files.results), read_json(files.run_record)
        runs.append(PIRun(label, records, record, model, split, run_name))
    return runs


def read_run(root: Path) -> Run:
    """Every stage's results found below ``root``; a UsageError when there are none at all."""
    top = layout.results_root_dirs(root)
    personas, accuracy, prefs = (read_pi_runs(top["pi"], experiment) for experiment in layout.PI_EXPERIMENTS)
    figures = []
    for run_name in sorted({r.run_name for r in personas + accuracy + prefs}):
        folder = layout.figures_dir(top["pi"], run_name)
        for figure, caption in FIGURE_CAPTIONS.items():
            png = layout.figure_paths(folder, figure)[0]
            if png.is_file():
                figures.append((f"{caption} (run {run_name})", png, layout.figure_table(folder, figure)))
    comparisons = []
    for folder in layout.find_comparisons(top["judge"]):
        files = layout.judge_files(folder)
        outputs = layout.win_rate_files(folder)
        comparisons.append(
            Comparison(
                layout.comparison_name(folder),
                read_records(files.results),
                read_json(files.run_record),
                read_json(outputs["json"]),
                outputs["png"] if outputs["png"].is_file() else None,
            )
        )
    tables = sorted(top["judge"].rglob(f"{layout.DELTA_PQ_TABLE}.csv"))
    grids = [layout.delta_pq_table_files(path.parent) for path in tables]
    generations = []
    for path in layout.find_pt_outputs(top["generations"]):
        files = layout.pt_files(path)
        label = str(path.relative_to(top["generations"]))
        generations.append(Stage(label, read_records(path), read_json(files.run_record)))
    models = layout.find_pt_models(top["models"])
    run = Run(root, personas, accuracy, prefs, figures, comparisons, grids, generations, models)
    if not any(run.stages().values()):
        raise UsageError(
            f"no results of any stage below '{root}' (looked in {', '.join(str(p) for p in top.values())}): "
            "pass the ROOT of a run, e.g. the one scripts/pipeline.sh printed"
        )
    return run


def preference_rows(run: PIRun) -> tuple[dict[int, dict], str | None]:
    """The rows the personas were inferred from, checked against the persona ids, and a note when some are missing.

    The dataset is the one the run record names, read when it is a local file or folder (relative paths are tried
    from here and from the repository, where the scripts run) in whichever format it has
    (``persona_core.preferences``); ids that do not match its rows are left out.
    """
    from persona_core.preferences import Columns, load_preferences

    arguments = (run.run_record or {}).get("arguments", {})
    name = arguments.get("dataset_name")
    local = [path for path in (Path(name), layout.REPO_ROOT / name) if path.exists()] if name else []
    if not local:
        return {}, f"the dataset '{name}' is not a local file or folder here: prompts and responses not shown"
    columns = Columns(
        *(arguments.get(f"{c}_column") or c for c in ("prompt", "chosen", "rejected"))
    )  # the run's own names; rows in any format are read as text, as persona inference read them
    try:
        dataset = load_preferences(
            str(local[0]),
            arguments.get("inference_split"),
            arguments.get("split", "train"),
            columns=columns,
            skip_bad_rows=bool(arguments.get("skip_bad_rows")),
        )
    except UsageError as err:
        return {}, f"the dataset '{name}' could not be read ({err}): prompts and responses not shown"
    rows = {}
    for record in run.records:
        index = record["row"]
        if index < len(dataset) and layout.persona_id(index, record["side"], dataset[index]) == record["id"]:
            rows[index] = {column: dataset[index][column] for column in layout.PREFERENCE_COLUMNS}
    wanted = {record["row"] for record in run.records}
    if len(rows) < len(wanted):
        return rows, (
            f"{len(wanted) - len(rows)} of {len(wanted)} rows of '{name}' no longer match the persona ids "
            "(the dataset changed since the run): their prompts and responses are not shown"
        )
    return rows, None


# --- formatting --------------------------------------------------------------------------------------------------


def percent(value) -> str:
    """As the pipeline summary prints it: '62.5%', or 'undefined' for None/NaN."""
    return "undefined" if value is None or value != value else f"{100 * value:.1f}%"


def interval(bounds, scale: float = 100, digits: int = 1, unit: str = "%") -> str:
    if not bounds:
        return ""
    low, high = bounds
    return f" [{scale * low:.{digits}f}{unit}, {scale * high:.{digits}f}{unit}]"


def wilson(successes: int, total: int) -> tuple[float, float] | None:
    """The 95% Wilson interval of a proportion (scipy), None without trials."""
    from scipy.stats import binomtest

    if total == 0:
        return None
    ci = binomtest(successes, total).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def table(header: list[str], rows: list[list], cls: str = "") -> str:
    """An HTML table; cells are escaped text, or markup already made when wrapped in ``Markup``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Markup(str):
    """Text that is already HTML (a cell that holds a badge or a nested block)."""


def cell(value) -> str:
    if isinstance(value, Markup):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return escape("" if value is None else str(value))


def csv_table(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return table(rows[0], rows[1:]) if rows else "<p>(empty)</p>"


def markdown_table(path: Path) -> str:
    """A markdown pipe table (win_rate's ΔPQ pivot) as HTML, a cell's ``<br>`` kept as its line break; the file's
    other lines (its note) as paragraphs."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    rows = [row for row in rows if not all(set(c) <= set("-:") for c in row)]  # the header separator
    cells = [[Markup("<br>".join(escape(part) for part in c.split("<br>"))) for c in row] for row in rows]
    notes = "".join(f"<p>{escape(line)}</p>" for line in lines if not line.startswith("|"))
    return (table(rows[0], cells[1:]) if rows else "") + notes


def details(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def pre(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return f"<pre>{escape(text)}</pre>"


def image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def badge(text: str, kind: str | None = None) -> Markup:
    return Markup(f'<span class="badge {escape(kind or text)}">{escape(text)}</span>')


# --- the headline numbers ----------------------------------------------------------------------------------------


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
    from persona_inference.model.persona_accuracy import summarize

    rows = []
    for judged in run.accuracy:
        for line in summarize(judged.records):
            rows.append(
                [
                    judged.label,
                    line["persona_model"],
                    line["side"],
                    percent(line["accuracy"]) + interval(wilson(line["correct"], line["valid"])),
                    line["valid"],
                    line["invalid"],
                    percent(line["first_share"]),
                ]
            )
    header = ["judge / dataset / run", "personas of", "side", "accuracy [95% Wilson]", "valid", "invalid"]
    return table([*header, "answered 1"], rows, "headline accuracy")


def prefs_table(run: Run) -> str:
    from persona_inference.model.persona_prefs import summarize

    rows = []
    for judged in run.prefs:
        for line in summarize(judged.records):
            shares = [f"{percent(line[f'{o}_share'])} ({line[o]})" for o in PREFS_OUTCOMES[:3]]
            rows.append([judged.label, line["persona_model"], line["rows"], *shares, line["invalid"]])
    header = ["judge / dataset / run", "personas of", "rows", "chosen", "tie", "rejected", "invalid"]
    return table(header, rows, "headline prefs")


def number(value, ci, fmt: str = ".3f") -> str:
    """As the pipeline summary prints a win rate or ΔPQ: '0.625 [0.400, 0.850]', or 'undefined'."""
    if value is None:
        return "undefined"
    return f"{value:{fmt}}" + ("" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


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


# --- the row browser ---------------------------------------------------------------------------------------------


def browser(
    title: str, rows: list[tuple[str, list[str]]], filters: list[tuple[str, str]], note: str = ""
) -> str:
    """A searchable, filterable list of row blocks: ``rows`` are (HTML, outcome tokens), ``filters`` (token, label)."""
    options = '<option value="">every outcome</option>' + "".join(
        f'<option value="{escape(token)}">{escape(label)}</option>' for token, label in filters
    )
    blocks = "".join(
        f'<article class="row" data-outcome="{escape(" ".join(tokens))}">{block}</article>'
        for block, tokens in rows
    )
    return (
        f'<section class="browser"><h3>{escape(title)}</h3>{f"<p>{escape(note)}</p>" if note else ""}'
        '<div class="controls"><input class="search" type="search" placeholder="search the text">'
        f'<select class="outcome">{options}</select> <span class="count"></span></div>{blocks}</section>'
    )


def text_block(label: str, text: str | None, cls: str = "") -> str:
    return f'<div class="text {cls}"><b>{escape(label)}</b><p>{escape(text or "")}</p></div>'


def probabilities(values: dict) -> str:
    """'1 0.620, 2 0.310' (an option the backend did not read: 'not read')."""
    return ", ".join(f"{k} {'not read' if v is None else f'{v:.3f}'}" for k, v in values.items())


def verdict_facts(record: dict) -> list[str]:
    """What a probability verdict adds to a judge answer, when it was recorded: probabilities, tokens, mode."""
    facts = []
    if record.get("probabilities"):
        facts.append("p " + probabilities(record["probabilities"]))
    if record.get("p_test") is not None:
        facts.append(f"p(test wins) {record['p_test']:.3f}")
    read = record.get("tokens") or record.get("tokens_read")  # the judge's most probable next tokens
    if isinstance(read, list) and read:
        facts.append(
            "top tokens " + ", ".join(f"{t.get('token')!r} {t.get('prob') or 0:.3f}" for t in read[:5])
        )
    if record.get("verdict_mode"):
        facts.append(f"{record['verdict_mode']} verdict")
    return facts


CORRECTNESS = {True: "correct", False: "wrong", None: "invalid"}


def answer_line(record: dict) -> Markup:
    """One PI judge answer: its order, what it chose against the gold answer, and what else was recorded."""
    facts = [
        f"{record['order']}: answered {record.get('choice') or 'nothing valid'}, gold {record.get('gold')}",
        *verdict_facts(record),
    ]
    raw = details("judge output", pre(record["raw_text"])) if record.get("raw_text") else ""
    return Markup(f"{escape('; '.join(facts))} {badge(CORRECTNESS[record.get('correct')])}{raw}")


def same_run(a: PIRun, b: PIRun) -> bool:
    return (a.split, a.run_name) == (b.split, b.run_name)


def pi_rows(pi: PIRun, run: Run) -> tuple[list[tuple[str, list[str]]], str | None]:
    """One block per dataset row: prompt, both responses, both personas, the accuracy and preference answers."""
    from persona_inference.model.inference import is_well_formed
    from persona_inference.model.persona_prefs import row_outcomes

    data, note = preference_rows(pi)
    accuracy = [
        (j.model, r)
        for j in run.accuracy
        if same_run(j, pi)
        for r in j.records
        if r["persona_model"] == pi.model
    ]
    prefs = [
        (j.model, r)
        for j in run.prefs
        if same_run(j, pi)
        for r in j.records
        if r["persona_model"] == pi.model
    ]
    pref_outcomes = {
        (judge, o["row"]): o["outcome"]
        for judge in {j for j, _ in prefs}
        for o in row_outcomes([r for j, r in prefs if j == judge])
    }
    by_row: dict[int, dict[str, dict]] = {}
    for record in pi.records:
        by_row.setdefault(record["row"], {})[record["side"]] = record
    blocks = []
    for index, sides in sorted(by_row.items()):
        row = data.get(index, {})
        tokens, parts = set(), [f"<h4>row {index}</h4>"]
        if row:
            parts.append(text_block("prompt", row["prompt"], "prompt"))
            parts.append(
                '<div class="pair">'
                + text_block("chosen", row["chosen"])
                + text_block("rejected", row["rejected"])
                + "</div>"
            )
        persona_cells = []
        for side in layout.SIDES:
            persona = sides.get(side, {}).get("persona")
            shape = "" if persona is None or is_well_formed(persona) else " (not well-formed)"
            persona_cells.append(text_block(f"{side}-side persona{shape}", persona, "persona"))
        parts.append('<div class="pair">' + "".join(persona_cells) + "</div>")
        answers = [(judge, r) for judge, r in accuracy if r["row"] == index]
        for _, record in answers:
            tokens.add(CORRECTNESS[record.get("correct")])
        if answers:
            lines = [[judge, r["side"], answer_line(r)] for judge, r in answers]
            parts.append(table(["accuracy judge", "persona side", "answer"], lines, "answers"))
        for judge in sorted({judge for judge, r in prefs if r["row"] == index}):
            outcome = pref_outcomes.get((judge, index), "invalid")
            tokens.add(f"prefs:{outcome}")
            answers = [r for j, r in prefs if j == judge and r["row"] == index]
            lines = [
                [judge, r["order"], r.get("choice"), r.get("preferred"), "; ".join(verdict_facts(r))]
                for r in answers
            ]
            header = ["preference judge", "order", "answered", "prefers", ""]
            if not any(line[-1] for line in lines):  # text verdicts: nothing more was recorded
                header, lines = header[:-1], [line[:-1] for line in lines]
            parts.append(table(header, lines, "answers"))
            parts.append(f"<p>preference outcome ({escape(judge)}): {badge(outcome)}</p>")
        blocks.append(("".join(parts), sorted(tokens)))
    return blocks, note


PI_FILTERS = [
    ("correct", "an accuracy answer correct"),
    ("wrong", "an accuracy answer wrong"),
    ("invalid", "an accuracy answer invalid"),
    *((f"prefs:{o}", f"preference: {o}") for o in PREFS_OUTCOMES),
]


def order_line(order: str, verdict: dict) -> str:
    """One order's verdict: the letter and the side it maps to, attempts, probabilities, the judge's feedback."""
    facts = [f"{order}: {verdict.get('raw_verdict') or 'no verdict'} → {verdict.get('verdict') or 'invalid'}"]
    if verdict.get("attempts", 1) > 1:
        facts.append(f"{verdict['attempts']} attempts")
    facts += verdict_facts(verdict)
    feedback = verdict.get("judge_output") or verdict.get("raw_text")
    return f"<li>{escape('; '.join(facts))}{details('judge output', pre(feedback)) if feedback else ''}</li>"


def pt_rows(comparison: Comparison) -> list[tuple[str, list[str]]]:
    """One block per test row: the persona, both configurations' responses side by side, both metrics' verdicts."""
    by_id: dict[str, dict[str, dict]] = {}
    for record in comparison.records:
        by_id.setdefault(record["id"], {})[record["metric"]] = record
    blocks = []
    for row_id, metrics in by_id.items():
        first = next(iter(metrics.values()))
        tokens = set()
        verdicts = []
        for metric, record in metrics.items():
            outcome = OUTCOME_NAMES.get(record["outcome"], record["outcome"])
            tokens |= {outcome, f"{metric}:{outcome}"}
            facts = escape("; ".join(verdict_facts(record)))
            orders = "".join(order_line(order, record[order]) for order in ORDERS if order in record)
            verdicts.append(f"<div><b>{escape(metric)}</b> {badge(outcome)} {facts}<ul>{orders}</ul></div>")
        blocks.append(
            (
                f"<h4>{escape(str(row_id))}</h4>"
                + text_block("prompt", first.get("prompt"), "prompt")
                + text_block("persona", first.get("persona"), "persona")
                + '<div class="pair">'
                + text_block("base response", first.get("base_response"))
                + text_block("test response", first.get("test_response"))
                + "</div>"
                + '<div class="verdicts">'
                + "".join(verdicts)
                + "</div>",
                sorted(tokens),
            )
        )
    return blocks


OUTCOMES_NOTE = (
    "win: the test configuration's response won in both orders; loss: the base one did; tie: they disagree"
)
PT_FILTERS = [
    *((name, name) for name in OUTCOME_NAMES.values()),
    *((f"{m}:{name}", f"{m}: {name}") for m in METRICS for name in OUTCOME_NAMES.values()),
]


# --- the run records ---------------------------------------------------------------------------------------------


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


# --- the page ----------------------------------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1em 4em; color: #222; }
h1 { margin-top: 1em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; display: block; max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; } th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
figure { display: inline-block; width: 48%; margin: 1em 1% 1em 0; vertical-align: top; }
pre { white-space: pre-wrap; background: #f7f7f7; padding: 0.5em; max-height: 24em; overflow: auto; }
.row { border: 1px solid #ccc; border-radius: 6px; padding: 0.3em 1em; margin: 0.8em 0; }
.row[hidden] { display: none; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.text p { white-space: pre-wrap; margin: 0.2em 0 0.6em; } .persona p { font-style: italic; }
.controls { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #eee; }
.search { width: 24em; padding: 4px; }
.badge { padding: 1px 6px; border-radius: 4px; background: #ddd; font-size: 12px; }
.win, .correct, .chosen { background: #bfe3bf; } .loss, .wrong, .rejected { background: #f3c2b8; }
.invalid { background: #bbb; } .tie { background: #e8e0b0; }
"""
SCRIPT = """
for (const browser of document.querySelectorAll(".browser")) {
  const search = browser.querySelector(".search"), outcome = browser.querySelector(".outcome");
  const rows = [...browser.querySelectorAll(".row")].map(row => [row, row.textContent.toLowerCase()]);
  const update = () => {
    const words = search.value.toLowerCase().trim();
    let shown = 0;
    for (const [row, text] of rows) {
      const outcomes = row.dataset.outcome.split(" ");
      const visible = text.includes(words) && (!outcome.value || outcomes.includes(outcome.value));
      row.hidden = !visible;
      shown += visible;
    }
    browser.querySelector(".count").textContent = `${shown} of ${rows.length} rows shown`;
  };
  search.addEventListener("input", update);
  outcome.addEventListener("change", update);
  update();
}
"""
PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title><style>$style</style></head>
<body><h1>$title</h1><p>$subtitle</p>$body<script>$script</script></body></html>
""")


def grid_name(run: Run, grid: dict[str, Path]) -> str:
    return str(grid["csv"].parent.relative_to(run.root))


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>' if body else ""


def render(run: Run) -> str:
    stages = run.stages()
    found = ", ".join(f"{name} {count}" for name, count in stages.items() if count)
    missing = ", ".join(name for name, count in stages.items() if not count)
    headline = ""
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
    return PAGE.substitute(
        title=escape(f"Run report: {run.root.name}"),
        subtitle=escape(subtitle),
        style=STYLE,
        body=body,
        script=SCRIPT,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    from persona_core.io import write_text_atomic

    root = Path(args.root)
    run = read_run(root)
    output = Path(args.output) if args.output else layout.report_path(root)
    page = render(run)
    write_text_atomic(output, page)
    stages = ", ".join(f"{name} {count}" for name, count in run.stages().items() if count)
    rows = sum(len({r["row"] for r in p.records}) for p in run.personas)
    judged = sum(len({r["id"] for r in c.records}) for c in run.comparisons)
    print(f"report: {stages}; {rows} persona rows and {judged} judged test rows in the browser")
    print(f"{len(page.encode('utf-8')) / 1e6:.2f} MB, self-contained (figures inlined, no network needed)")
    print(f"report: {output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
