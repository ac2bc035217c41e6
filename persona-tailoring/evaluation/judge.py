"""Prometheus-2 pairwise judging of base vs test responses, in both orders, with one retry for unparsable verdicts.

Prompts and the verdict parser are the ``prometheus-eval`` package's own (``RELATIVE_PROMPT_WO_REF``,
``REL_SYSTEM_PROMPT``, ``parse_output(..., mode="relative")``). A verdict is mapped back from A/B to
base/test by the order it was asked in; a pair's outcome is the winner when both orders agree, a tie when
they disagree, and invalid when either order has no parsable verdict after its retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from persona_core.llm.base import Request
from persona_core.runs import digest
from persona_tailoring.evaluation.outputs import Pair


class Metric(str, Enum):
    personalization = "personalization"
    response_quality = "response_quality"


class Order(str, Enum):
    base_first = "base_first"  # Response A = base, Response B = test
    test_first = "test_first"  # Response A = test, Response B = base


RUBRICS = {
    Metric.response_quality: "Is the response high-quality?",
    Metric.personalization: "Does the response answer the prompt and align with the user's specified persona?",
}
# What the models were asked to do, by dataset slug; the judge sees it before the prompt.
TASK_INSTRUCTIONS = {
    "mnemonic": "Write a keyword mnemonic that helps the user remember the vocabulary term below."
}
DEFAULT_TASK_INSTRUCTION = "Respond to the user's prompt below."
OUTCOMES = ("base", "tie", "test", "invalid")


def task_instruction(dataset_slug: str) -> str:
    return TASK_INSTRUCTIONS.get(dataset_slug, DEFAULT_TASK_INSTRUCTION)


def instruction_for(pair: Pair, metric: Metric, task: str) -> str:
    text = f"{task} Prompt: {pair.question}"
    return f"{text} Persona: {pair.persona}" if metric == Metric.personalization else text


def templates(task: str) -> dict:
    """Every text the judge prompts are made of besides the pairs: its part of the run fingerprint."""
    from prometheus_eval.prompts import REL_SYSTEM_PROMPT, RELATIVE_PROMPT_WO_REF

    return {
        "system": REL_SYSTEM_PROMPT,
        "user": RELATIVE_PROMPT_WO_REF,
        "rubrics": {m.value: r for m, r in RUBRICS.items()},
        "task": task,
    }


def judge_messages(instruction: str, response_a: str, response_b: str, rubric: str) -> tuple[str, str]:
    """(system, user) messages exactly as prometheus-eval's ``relative_grade`` builds them."""
    from prometheus_eval.prompts import REL_SYSTEM_PROMPT, RELATIVE_PROMPT_WO_REF

    user = RELATIVE_PROMPT_WO_REF.format(
        instruction=instruction, response_A=response_a, response_B=response_b, rubric=rubric
    )
    return REL_SYSTEM_PROMPT, user


def parse_verdict(text: str | None) -> str | None:
    """'A', 'B' or None (unparsable), by prometheus-eval's relative-mode parser."""
    from prometheus_eval.parser import parse_output

    return parse_output(text, mode="relative")[1]


def winner(letter: str | None, order: Order) -> str | None:
    """'base' or 'test' for the letter the judge picked in ``order``; None stays None (invalid)."""
    if letter not in ("A", "B"):
        return None
    first, second = ("base", "test") if order == Order.base_first else ("test", "base")
    return first if letter == "A" else second


def outcome(base_first: str | None, test_first: str | None) -> str:
    if base_first is None or test_first is None:
        return "invalid"
    return base_first if base_first == test_first else "tie"


@dataclass
class JudgeJob:
    """What shapes the judge prompts beyond the pairs (the judge model and settings are the run fingerprint's)."""

    task: str
    merge_system_prompt: bool = False


def build_requests(
    pairs: list[Pair], metrics: list[Metric], job: JudgeJob
) -> tuple[list[Request], dict[str, dict]]:
    """Two requests (both orders) per pair and metric; ids carry a digest of the prompt."""
    requests, meta = [], {}
    for pair in pairs:
        for metric in metrics:
            instruction = instruction_for(pair, metric, job.task)
            for order in Order:
                a, b = (pair.base, pair.test) if order == Order.base_first else (pair.test, pair.base)
                system, user = judge_messages(instruction, a.response, b.response, RUBRICS[metric])
                if job.merge_system_prompt:  # as prometheus-eval's Mistral conversation template does
                    system, user = None, f"{system}\n{user}"
                request_id = f"{pair.id}.{metric.value}.{order.value}.{digest([system, user])[:10]}"
                requests.append(Request(request_id, user, system=system))
                meta[request_id] = {
                    "pair": pair.id,
                    "metric": metric.value,
                    "order": order.value,
                    "attempt": 1,
                }
    return requests, meta


def retry_requests(requests: list[Request], meta: dict[str, dict], records: dict[str, dict]):
    """A second request for every first attempt that came back without a parsable verdict."""
    retries, retry_meta = [], {}
    for request in requests:
        record = records.get(request.id)
        if record and record.get("status") == "ok" and record["verdict"] is None:
            retry_id = f"{request.id}.retry"
            retries.append(Request(retry_id, request.prompt, system=request.system))
            retry_meta[retry_id] = {**meta[request.id], "attempt": 2}
    return retries, retry_meta


def finish_record(record: dict) -> dict:
    letter = parse_verdict(record.get("raw_text"))
    record["raw_verdict"] = letter
    record["verdict"] = winner(letter, Order(record["order"]))
    return record


def judgments(
    pairs: list[Pair], metrics: list[Metric], requests: list[Request], records: dict[str, dict], task: str
) -> list[dict]:
    """One record per pair and metric: both orders' verdicts (after any retry) and the outcome."""
    final: dict[tuple[str, str, str], dict] = {}
    for request in requests:
        first = records[request.id]
        retry = records.get(f"{request.id}.retry")
        used = retry if first["verdict"] is None and retry is not None else first
        final[(first["pair"], first["metric"], first["order"])] = {
            "verdict": used["verdict"],
            "raw_verdict": used["raw_verdict"],
            "attempts": used["attempt"],
            "first_attempt_verdict": first["raw_verdict"],
            "judge_output": used["raw_text"],
        }
    out = []
    for pair in pairs:
        for metric in metrics:
            verdicts = {order: final[(pair.id, metric.value, order.value)] for order in Order}
            out.append(
                {
                    "id": pair.id,
                    "metric": metric.value,
                    "prompt": pair.question,
                    "persona": pair.persona,
                    "instruction": instruction_for(pair, metric, task),
                    "base_response": pair.base.response,
                    "test_response": pair.test.response,
                    "base_row": pair.base.row_id if pair.base.row_id is not None else pair.base.position,
                    "test_row": pair.test.row_id if pair.test.row_id is not None else pair.test.position,
                    Order.base_first.value: verdicts[Order.base_first],
                    Order.test_first.value: verdicts[Order.test_first],
                    "outcome": outcome(
                        verdicts[Order.base_first]["verdict"], verdicts[Order.test_first]["verdict"]
                    ),
                }
            )
    return out
