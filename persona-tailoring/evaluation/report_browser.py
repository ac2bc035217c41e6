"""The report's row browser: one block per persona-inference row (prompt, responses, personas, the judges'
answers) and per judged test row (persona, both responses, both metrics' verdicts), searchable and filtered by
outcome in the page (``report_assets/report.js``)."""

from __future__ import annotations

from html import escape

from persona_core import layout
from persona_inference.model.inference import is_well_formed
from persona_inference.model.persona_prefs import row_outcomes
from persona_tailoring.evaluation.report_html import Markup, badge, details, pre, table
from persona_tailoring.evaluation.report_reading import Comparison, PIRun, Run, preference_rows

METRICS = ("personalization", "response_quality")
ORDERS = ("base_first", "test_first")
# A judged pair's outcome as the browser names it: from the test (tailored) configuration's side.
OUTCOME_NAMES = {"test": "win", "tie": "tie", "base": "loss", "invalid": "invalid"}
PREFS_OUTCOMES = ("chosen", "tie", "rejected", "invalid")


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


def answers_about(pi: PIRun, judged: list[PIRun]) -> list[tuple[str, dict]]:
    """(judge model, answer) of every judge answer about ``pi``'s personas in the same split and run."""
    return [
        (j.model, r) for j in judged if same_run(j, pi) for r in j.records if r["persona_model"] == pi.model
    ]


def pi_rows(pi: PIRun, run: Run) -> tuple[list[tuple[str, list[str]]], str | None]:
    """One block per dataset row: prompt, both responses, both personas, the accuracy and preference answers."""
    data, note = preference_rows(pi)
    accuracy, prefs = answers_about(pi, run.accuracy), answers_about(pi, run.prefs)
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
