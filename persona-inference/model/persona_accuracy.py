"""Persona accuracy (the paper's Figure 3): told only a persona, does a judge pick the response that user preferred?

Every persona of every persona-inference model found for the split and run is judged twice, once with the
chosen response first and once with it second, so a judge's position bias cancels out: a judge that always
answers "1" scores exactly 0.5. The gold answer is the position of the response on the persona's own side.
``first_share`` (how often a valid answer was "1") shows the judge's position bias. A persona's two answers are
one unit of its standard error and 95% interval (cluster-robust, cluster bootstrap): they are not independent. Run through ``run_model``::

    # the embedded model judges every persona model's BeaverTails personas of run "demo"
    python -m persona_inference.model.run_model --experiments persona_accuracy --run_name demo \
        --dataset_name nbalepur/persona-inference --inference_split BeaverTails

    # GPT-4o judges only gpt-4o-mini's personas, 16 requests at a time
    python -m persona_inference.model.run_model --experiments persona_accuracy --model_type open_ai \
        --model_name gpt-4o --persona_model gpt-4o-mini --inference_split BeaverTails --concurrency 16
"""

from __future__ import annotations

from collections import defaultdict

from persona_core.intervals import cluster_bootstrap, cluster_stderr
from persona_core.layout import SIDES
from persona_core.llm.base import Request
from persona_core.prompts import fill
from persona_core.runs import digest
from persona_inference.model.inference import side_agreement
from persona_inference.model.judging import JudgeExperiment, choice_share, read_choice

ORDERS = ("chosen_first", "rejected_first")


def responses_in_order(row: dict, order: str) -> tuple[str, str]:
    first, second = ("chosen", "rejected") if order == "chosen_first" else ("rejected", "chosen")
    return row[first].strip(), row[second].strip()


def gold_position(side: str, order: str) -> int:
    """1 or 2: where the response that a ``side`` persona prefers sits in ``order``."""
    return 1 if (side == "chosen") == (order == "chosen_first") else 2


def build_requests(
    dataset, personas_by_model: dict[str, list[dict]], template: str
) -> tuple[list[Request], dict]:
    """Two requests (both orders) per persona; ids carry a digest of the prompt so any change is judged anew."""
    requests, meta = [], {}
    for model, personas in personas_by_model.items():
        for persona in personas:
            row = dataset[persona["row"]]
            for order in ORDERS:
                response_1, response_2 = responses_in_order(row, order)
                prompt = fill(
                    template,
                    prompt=row["prompt"].strip(),
                    response_1=response_1,
                    response_2=response_2,
                    persona=persona["persona"],
                )
                request_id = f"{model}/{persona['id']}/{order}/{digest(prompt)}"
                requests.append(Request(request_id, prompt))
                meta[request_id] = {
                    "persona_model": model,
                    "persona_id": persona["id"],
                    "row": persona["row"],
                    "side": persona["side"],
                    "order": order,
                    "gold": gold_position(persona["side"], order),
                    "persona": persona["persona"],
                }
    return requests, meta


def finish_record(record: dict) -> dict:
    record["choice"] = read_choice(record)
    record["correct"] = None if record["choice"] is None else record["choice"] == record["gold"]
    record["p_gold"] = choice_share(record, record["gold"])
    return record


def summarize(records: list[dict]) -> list[dict]:
    """Accuracy per (persona model, side) over valid answers; invalid answers counted apart, never scored."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["persona_model"], record["side"])].append(record)
    # Rows whose two sides got the same persona explain no preference: counted per persona model, beside accuracy.
    agreement = {
        model: side_agreement([r for r in records if r["persona_model"] == model])
        for model in {model for model, _ in groups}
    }
    rows = []
    for (model, side), group in sorted(groups.items(), key=lambda kv: (kv[0][0], SIDES.index(kv[0][1]))):
        valid = [r for r in group if r.get("correct") is not None]
        correct = sum(r["correct"] for r in valid)
        by_persona: dict[int, list[bool]] = defaultdict(list)  # a persona's two orders are one unit
        for record in valid:
            by_persona[record["row"]].append(record["correct"])
        clusters = [(sum(answers), len(answers)) for answers in by_persona.values()]
        first = sum(r["choice"] == 1 for r in valid)
        p_gold = [r["p_gold"] for r in valid if r.get("p_gold") is not None]
        rows.append(
            {
                "persona_model": model,
                "side": side,
                "questions": len(group),
                "valid": len(valid),
                "invalid": len(group) - len(valid),
                "correct": correct,
                "accuracy": correct / len(valid) if valid else float("nan"),
                "stderr": cluster_stderr(clusters),
                "interval": cluster_bootstrap(clusters),
                "first_share": first / len(valid) if valid else float("nan"),
                "mean_p_gold": sum(p_gold) / len(p_gold) if p_gold else None,
                **agreement[model],
            }
        )
    return rows


class PersonaAccuracy(JudgeExperiment, build_requests=build_requests, finish=finish_record, table=summarize):
    """By default every persona model found for the split and run is judged."""

    name, label, unit = "persona_accuracy", "persona accuracy", "personas"
    nothing_to_judge = "cover none of the rows"

    def table_line(self, line: dict) -> str:
        return (
            f"{line['persona_model']:<28} {line['side']:<8} accuracy {line['accuracy']:.3f} ± {line['stderr']:.3f}  "
            f"({line['valid']} valid, {line['invalid']} invalid, {line['first_share']:.0%} answered 1"
            + ("" if line.get("mean_p_gold") is None else f", mean P(gold) {line['mean_p_gold']:.3f}")
            + ")"
        )
