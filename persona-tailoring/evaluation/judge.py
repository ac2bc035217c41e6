"""Prometheus-2 pairwise judging of base vs test responses, in both orders.

Prompts and the verdict parser are the ``prometheus-eval`` package's own (``RELATIVE_PROMPT_WO_REF``,
``REL_SYSTEM_PROMPT``, ``parse_output(..., mode="relative")``). Two ways to read a verdict:

- text: the judge writes feedback and ``[RESULT] A``/``B``; an unparsable answer is asked again (``retry_requests``,
  as prometheus-eval's relative grading retries);
- probability: the judge's answer is started with the verdict marker ``[RESULT]`` and the next-token
  probabilities of "A" and "B" are read; the more probable letter is the verdict, and ``p_test`` (the test
  response's share of the two) is kept. Never invalid, unless an API read neither letter among its top tokens.

A verdict is mapped back from A/B to base/test by the order it was asked in; a pair's outcome is the winner when
both orders agree, a tie when they disagree, and invalid when either order has no verdict after its retries. A
pair's ``p_test`` is the mean of its two orders' (the position bias cancels out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from persona_core.arguments import Verdict
from persona_core.io import JsonlCheckpoint
from persona_core.llm.base import LLM, GenerationConfig, Request, most_probable, option_share
from persona_core.runner import run_requests
from persona_core.runs import digest
from persona_core.stage import Execution
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
# What the models were asked to do, by dataset slug; the judge sees it before the prompt. In meaning the authors'
# instructions (their evaluation/run_judge.py): a keyword mnemonic for Mnemonic, a response to the prompt otherwise.
TASK_INSTRUCTIONS = {"mnemonic": "Write a keyword mnemonic for the vocabulary term that follows."}
DEFAULT_TASK_INSTRUCTION = "Write a response to the prompt that follows."
OUTCOMES = ("base", "tie", "test", "invalid")
VERDICT_MARKER = "[RESULT]"
"""What a Prometheus verdict follows: a probability verdict's answer is started with it."""
LETTERS = ("A", "B")


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


def read_letter(record: dict) -> str | None:
    """'A' or 'B': the more probable letter of a probability verdict ('A' on an exact tie), else parsed from the
    text; None when neither applies (unparsable text, or neither letter among an API's top tokens)."""
    probabilities = record.get("probabilities")
    if probabilities is None:
        return parse_verdict(record.get("raw_text"))
    return most_probable(probabilities, LETTERS)


def test_probability(record: dict) -> float | None:
    """The test response's share of P(A) + P(B) in a probability verdict (a letter not read counts 0), else None."""
    probabilities = record.get("probabilities")
    if probabilities is None:
        return None
    return option_share(probabilities, LETTERS, "B" if Order(record["order"]) == Order.base_first else "A")


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
    verdict: Verdict = Verdict.text


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
                prefill = VERDICT_MARKER if job.verdict == Verdict.probability else ""
                request_id = f"{pair.id}.{metric.value}.{order.value}.{digest([system, user, prefill])[:10]}"
                requests.append(Request(request_id, user, system=system, prefill=prefill))
                meta[request_id] = {
                    "pair": pair.id,
                    "metric": metric.value,
                    "order": order.value,
                    "attempt": 1,
                }
    return requests, meta


def attempt_id(request_id: str, attempt: int) -> str:
    return request_id if attempt == 1 else f"{request_id}.retry{attempt - 1}"


def retry_requests(requests: list[Request], meta: dict[str, dict], records: dict[str, dict], attempt: int):
    """Attempt ``attempt`` (2, 3, ...) of every request whose previous attempt came back without a parsable verdict
    (text verdicts only: asking a probability verdict again would read the same probabilities)."""
    retries, retry_meta = [], {}
    for request in requests:
        previous = records.get(attempt_id(request.id, attempt - 1))
        if previous and previous.get("status") == "ok" and previous["verdict"] is None:
            if previous.get("probabilities") is not None:
                continue
            retry_id = attempt_id(request.id, attempt)
            retries.append(Request(retry_id, request.prompt, system=request.system, prefill=request.prefill))
            retry_meta[retry_id] = {**meta[request.id], "attempt": attempt}
    return retries, retry_meta


def judge_with_retries(
    llm: LLM,
    requests: list[Request],
    meta: dict[str, dict],
    checkpoint: JsonlCheckpoint,
    first_attempt: GenerationConfig,
    retry: Callable[[int], GenerationConfig],
    retries: int,
    label: str,
    options: tuple[str, ...] | None = None,
) -> Execution:
    """First attempts, then up to ``retries`` rounds asking each unparsable text verdict again (``retry(attempt)``:
    that attempt's settings), all on one open ``checkpoint`` read once; ``options``: probability verdicts."""
    known = checkpoint.load()
    records, first = run_requests(
        llm, requests, meta, checkpoint, first_attempt, finish_record, f"judge {label}", options, known
    )
    known |= records
    stats = {"first_attempts": first.as_dict()}
    for attempt in range(2, retries + 2):
        pending, pending_meta = retry_requests(requests, meta, records, attempt)
        if not pending:
            break
        done, again = run_requests(
            llm,
            pending,
            pending_meta,
            checkpoint,
            retry(attempt),
            finish_record,
            "judge retries",
            previous=known,
        )
        records |= done
        known |= done
        stats[f"attempt_{attempt}"] = again.as_dict()
    return Execution(records, stats, first)


def finish_record(record: dict) -> dict:
    letter = read_letter(record)
    record["raw_verdict"] = letter
    record["verdict"] = winner(letter, Order(record["order"]))
    record["p_test"] = test_probability(record)
    return record


def final_attempt(request: Request, records: dict[str, dict]) -> tuple[dict, dict]:
    """(first attempt, the attempt that counts): the first with a verdict, else the last one made."""
    first = used = records[request.id]
    attempt = 2
    while used["verdict"] is None and attempt_id(request.id, attempt) in records:
        used = records[attempt_id(request.id, attempt)]
        attempt += 1
    return first, used


def judgments(
    pairs: list[Pair], metrics: list[Metric], requests: list[Request], records: dict[str, dict], task: str
) -> list[dict]:
    """One record per pair and metric: both orders' verdicts (after any retry) and the outcome."""
    final: dict[tuple[str, str, str], dict] = {}
    for request in requests:
        first, used = final_attempt(request, records)
        verdict = {
            "verdict": used["verdict"],
            "raw_verdict": used["raw_verdict"],
            "attempts": used["attempt"],
            "first_attempt_verdict": first["raw_verdict"],
            "judge_output": used["raw_text"],
        }
        if used.get("probabilities") is not None:
            verdict |= {
                "probabilities": used["probabilities"],
                "tokens": used.get("tokens_read"),
                "p_test": used["p_test"],
            }
        final[(first["pair"], first["metric"], first["order"])] = verdict
    out = []
    for pair in pairs:
        for metric in metrics:
            verdicts = {order: final[(pair.id, metric.value, order.value)] for order in Order}
            shares = [v.get("p_test") for v in verdicts.values()]
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
                    "verdict_mode": (
                        "probability" if any("probabilities" in v for v in verdicts.values()) else "text"
                    ),
                    "p_test": None if None in shares else round(sum(shares) / 2, 6),
                }
            )
    return out
