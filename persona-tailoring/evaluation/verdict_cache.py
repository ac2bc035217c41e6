"""A judge backend behind a verdict cache, the way lm-evaluation-harness's ``CachingLM`` wraps any LM.

``CachingJudge`` is itself an ``LLM``: a request whose verdict is in the cache is answered from it (its
``Completion`` marked ``cached``), the others go to the wrapped backend and each answer is appended to the cache as
it arrives. The key is everything that decides an answer: the judge (name, backend, weight options, verdict mode),
the request (system prompt, prompt, prefill) and how it is asked (the generation settings, the seed included, so a
retry with a new seed is its own entry; or the options whose probabilities are read). So a prompt judged before
anywhere under the same output folder (another comparison of a grid, an earlier or overwritten run) costs nothing,
and another judge or setting never reads it. The wrapped backend is built on the first miss only: a grid answered
from the cache loads no model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from persona_core.io import JsonlCheckpoint
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request, ResultCallback
from persona_core.runs import digest

ANSWER_FIELDS = ("text", "usage", "option_probs", "tokens_read", "prefill_continued")
"""What the cache keeps of a ``Completion``: everything but its id (the key replaces it) and errors (never kept)."""


class CachingJudge(LLM):
    """``backend()`` (built on first use) behind an append-only cache file; ``read=False`` (``--overwrite``) asks
    the judge again but still records its answers."""

    def __init__(self, path: str | Path, judge: dict, backend: Callable[[], LLM], read: bool = True):
        super().__init__(judge.get("model_name", "judge"))
        self.file = JsonlCheckpoint(path)
        self.judge = digest(judge)
        self.backend = backend
        self.read = read
        self.entries = self.file.load()
        self.hits = 0

    def key(self, request: Request, asked: object) -> str:
        return digest([self.judge, request.system, request.prompt, request.prefill, asked])

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        asked = dataclasses.asdict(generation)
        misses = self._answer_cached(requests, asked, on_result)
        if misses:
            self.backend().generate(misses, self._recording(misses, asked, on_result), generation)

    def score_options(
        self, requests: list[Request], options: tuple[str, ...], on_result: ResultCallback
    ) -> None:
        asked = {"options": list(options)}
        misses = self._answer_cached(requests, asked, on_result)
        if misses:
            self.backend().score_options(misses, options, self._recording(misses, asked, on_result))

    def render(self, request: Request) -> str:
        return self.backend().render(request)

    def _answer_cached(
        self, requests: list[Request], asked: object, on_result: ResultCallback
    ) -> list[Request]:
        """Answer the cached requests; the rest, to ask the judge."""
        misses = []
        for request in requests:
            entry = self.entries.get(self.key(request, asked)) if self.read else None
            if entry is None:
                misses.append(request)
                continue
            self.hits += 1
            on_result(Completion(request.id, cached=True, **{f: entry.get(f) for f in ANSWER_FIELDS}))
        return misses

    def _recording(self, requests: list[Request], asked: object, on_result: ResultCallback) -> ResultCallback:
        """``on_result`` that first appends each successful answer to the cache."""
        keys = {request.id: self.key(request, asked) for request in requests}

        def record(result: Completion) -> None:
            key = keys[result.id]
            if result.ok and key not in self.entries:
                entry = {"id": key, **{f: getattr(result, f) for f in ANSWER_FIELDS}}
                self.entries[key] = entry
                self.file.append([entry])
            on_result(result)

        return record

    def close(self) -> None:
        self.file.close()
