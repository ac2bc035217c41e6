"""Run requests through a backend with an append-only checkpoint: resumable, nothing lost, nothing twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from persona_core.io import JsonlCheckpoint
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request


@dataclass
class RunStats:
    total: int = 0
    reused: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_continued: int = 0
    """Answers of servers that continued the prefill; ``prefill_answered_afresh``: of servers that ignored it."""
    prefill_answered_afresh: int = 0
    cached: int = 0
    """Answers that came from a cache (the judge's verdict cache) instead of the model."""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"first_errors": self.errors[:5]}


def count_prefill(stats: RunStats, record: dict, continued: bool | None) -> None:
    """Record whether a server continued the request's prefill, and count it (no prefill sent: nothing)."""
    if continued is not None:
        record["prefill_continued"] = continued
        stats.prefill_continued += continued
        stats.prefill_answered_afresh += not continued


def run_requests(
    llm: LLM,
    requests: list[Request],
    meta: dict[str, dict],
    checkpoint: JsonlCheckpoint,
    generation: GenerationConfig,
    finish: Callable[[dict], dict] = lambda record: record,
    desc: str = "requests",
    options: tuple[str, ...] | None = None,
    previous: dict[str, dict] | None = None,
) -> tuple[dict[str, dict], RunStats]:
    """Generate every request whose id has no ``ok`` record in the checkpoint yet (``previous``: its records when
    the caller has read them already, as a judge's retry rounds do; the caller opens and closes ``checkpoint``).

    Each result is appended at once as ``{id, prompt, **meta[id], raw_text, usage, status}`` after
    ``finish`` (which adds derived fields such as the cleaned persona). Failed requests are recorded with
    ``status: failed`` and tried again on the next run. Returns the records of all requests, by id.

    With ``options`` (probability verdicts) nothing is generated: each request's next-token probabilities of the
    options are read (``LLM.score_options``), and the record adds ``probabilities`` and ``tokens_read``; its
    ``raw_text`` is the most probable option.
    """
    from tqdm.auto import tqdm

    previous = checkpoint.load() if previous is None else previous
    by_id = {r.id: r for r in requests}
    records = {i: rec for i, rec in previous.items() if i in by_id and rec.get("status") == "ok"}
    todo = [r for r in requests if r.id not in records]
    stats = RunStats(total=len(requests), reused=len(records))
    start = time.perf_counter()
    progress = tqdm(total=len(requests), initial=len(records), desc=desc, unit="req", dynamic_ncols=True)

    def on_result(result: Completion) -> None:
        request = by_id[result.id]
        record = {"id": result.id, "prompt": request.prompt, **meta.get(result.id, {})}
        if result.ok:
            record.update(raw_text=result.text, usage=result.usage, status="ok")
            count_prefill(stats, record, result.prefill_continued)
            if result.cached:
                record["cached"] = True
                stats.cached += 1
            if options is not None:
                record.update(probabilities=result.option_probs, tokens_read=result.tokens_read)
            record = finish(record)
            stats.ok += 1
            for key in ("prompt_tokens", "completion_tokens"):
                setattr(stats, key, getattr(stats, key) + int((result.usage or {}).get(key) or 0))
        else:
            record.update(status="failed", error=result.error)
            stats.failed += 1
            stats.errors.append(result.error)
        checkpoint.append([record])
        records[result.id] = record
        progress.update(1)

    try:
        if todo and options is not None:
            llm.score_options(todo, options, on_result)
        elif todo:
            llm.generate(todo, on_result, generation)
    finally:
        progress.close()
    stats.seconds = round(time.perf_counter() - start, 3)
    return records, stats
