"""Persona preferences (the paper's Figure 4): between a row's chosen-side and rejected-side personas, which
does a judge consider the better persona?

By default the judge sees the two personas only and is asked which is better, as in the paper
(``--prefs_question better``); ``--prefs_question more_common`` shows the prompt too and asks whose needs are
more common among the people who ask it (templates in ``prompts/persona_prefs_more_common/``).

Each pair is asked in both orders. A row's outcome is the side picked both times; a judge that flips with the
order has no real preference there, so that row is a tie. A row with an unparsable answer is invalid: counted
and reported, and left out of the shares. Run through ``run_model``::

    # the embedded model compares its own chosen- and rejected-side personas of run "demo"
    python -m persona_inference.model.run_model --experiments persona_inference persona_prefs --run_name demo

    # GPT-4o compares the personas that gpt-4o-mini and Llama inferred
    python -m persona_inference.model.run_model --experiments persona_prefs --model_type open_ai \
        --model_name gpt-4o --persona_model gpt-4o-mini meta-llama--Llama-3.1-8B-Instruct --inference_split Mnemonic
"""

from __future__ import annotations

from collections import defaultdict

from persona_core.intervals import cluster_bootstrap
from persona_core.llm.base import Request
from persona_core.prompts import fill
from persona_core.runs import digest
from persona_inference.model.arguments import ExperimentArguments
from persona_inference.model.judging import RUN_PERSONA_INFERENCE_FIRST, JudgeExperiment, read_choice

ORDERS = ("chosen_first", "rejected_first")

OUTCOMES = ("chosen", "tie", "rejected")


def pair_personas(personas: list[dict]) -> dict[int, dict[str, dict]]:
    """``{row: {side: record}}`` for rows that have both a chosen-side and a rejected-side persona."""
    by_row: dict[int, dict[str, dict]] = defaultdict(dict)
    for record in personas:
        by_row[record["row"]][record["side"]] = record
    return {row: sides for row, sides in sorted(by_row.items()) if len(sides) == 2}


def build_requests(
    dataset, personas_by_model: dict[str, list[dict]], template: str
) -> tuple[list[Request], dict]:
    """Two requests (both orders) per row and persona model."""
    requests, meta = [], {}
    for model, personas in personas_by_model.items():
        for row_index, sides in pair_personas(personas).items():
            row = dataset[row_index]
            chosen, rejected = sides["chosen"]["persona"], sides["rejected"]["persona"]
            for order in ORDERS:
                first, second = (chosen, rejected) if order == "chosen_first" else (rejected, chosen)
                prompt = fill(template, prompt=row["prompt"].strip(), persona_1=first, persona_2=second)
                request_id = (
                    f"{model}/{row_index}-{sides['chosen']['id'].rsplit('-', 1)[-1]}/{order}/{digest(prompt)}"
                )
                requests.append(Request(request_id, prompt))
                meta[request_id] = {
                    "persona_model": model,
                    "row": row_index,
                    "order": order,
                    "chosen_position": 1 if order == "chosen_first" else 2,
                    "chosen_persona": chosen,
                    "rejected_persona": rejected,
                }
    return requests, meta


def finish_record(record: dict) -> dict:
    record["choice"] = read_choice(record)
    if record["choice"] is None:
        record["preferred"] = None
    else:
        record["preferred"] = "chosen" if record["choice"] == record["chosen_position"] else "rejected"
    return record


def row_outcomes(records: list[dict]) -> list[dict]:
    """One outcome per (persona model, row): the side preferred in both orders, ``tie``, or ``invalid``."""
    pairs: dict[tuple[str, int], dict[str, str | None]] = defaultdict(dict)
    for record in records:
        pairs[(record["persona_model"], record["row"])][record["order"]] = record.get("preferred")
    outcomes = []
    for (model, row), by_order in sorted(pairs.items()):
        picks = [by_order.get(order) for order in ORDERS]
        if None in picks:
            outcome = "invalid"
        elif picks[0] == picks[1]:
            outcome = picks[0]
        else:
            outcome = "tie"
        outcomes.append({"persona_model": model, "row": row, "outcome": outcome})
    return outcomes


def summarize(records: list[dict]) -> list[dict]:
    """Shares of chosen / tie / rejected per persona model over rows with two valid answers."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((*OUTCOMES, "invalid"), 0))
    chosen_by_row: dict[str, list[tuple[int, int]]] = defaultdict(list)  # a row (both its orders) is one unit
    for outcome in row_outcomes(records):
        counts[outcome["persona_model"]][outcome["outcome"]] += 1
        if outcome["outcome"] != "invalid":
            chosen_by_row[outcome["persona_model"]].append((int(outcome["outcome"] == "chosen"), 1))
    table = []
    for model, count in sorted(counts.items()):
        valid = sum(count[o] for o in OUTCOMES)
        shares = {f"{o}_share": count[o] / valid if valid else float("nan") for o in OUTCOMES}
        table.append(
            {
                "persona_model": model,
                "rows": valid + count["invalid"],
                "valid": valid,
                **count,
                **shares,
                "chosen_share_interval": cluster_bootstrap(chosen_by_row[model]),
            }
        )
    return table


class PersonaPrefs(JudgeExperiment, build_requests=build_requests, finish=finish_record, table=summarize):
    """By default the judge compares its own personas."""

    name, label, unit = "persona_prefs", "persona preferences", "persona pairs"
    nothing_to_judge = "have no row with both a chosen and a rejected persona in rows"

    def persona_models(self, settings: ExperimentArguments) -> tuple[list[str], str]:
        if settings.persona_models:
            return settings.persona_models, RUN_PERSONA_INFERENCE_FIRST
        own = settings.model_folder
        return [own], (
            f"persona_prefs judges the judge's own personas ({own}) unless --persona_model names others; "
            "pass it, or run persona_inference with this model first"
        )

    def table_line(self, line: dict) -> str:
        return (
            f"{line['persona_model']:<28} chosen {line['chosen_share']:.2f}  tie {line['tie_share']:.2f}  "
            f"rejected {line['rejected_share']:.2f}  ({line['valid']} rows, {line['invalid']} invalid)"
        )
