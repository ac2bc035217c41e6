"""One small base class for every LLM backend (lm-evaluation-harness style).

A backend turns a list of ``Request``s into ``Completion``s, calling ``on_result`` as each one finishes so
the caller can checkpoint immediately. A request that fails after the SDK's own retries comes back as a
``Completion`` with ``error`` set: it is never dropped and never turned into an empty answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings of one ``generate`` call: a backend is built once and serves calls with any settings."""

    temperature: float = 0.0
    max_tokens: int = 128
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Request:
    id: str
    prompt: str
    """The user message (chat backends) or the raw text to continue (``chat=False``)."""
    system: str | None = None
    history: list[dict] = field(default_factory=list)
    """Earlier chat turns (few-shot examples) as ``{"role", "content"}`` dicts, before ``prompt``."""
    prefill: str = ""
    """Text the answer must start with; sent as the start of the assistant turn where the backend allows it."""


@dataclass
class Completion:
    id: str
    text: str | None = None
    usage: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


ResultCallback = Callable[[Completion], None]


def cut_at_stop(text: str, stop: list[str]) -> str:
    """Cut ``text`` at the first stop string (servers and ``generate`` may leave it in)."""
    cut = len(text)
    for s in stop:
        index = text.find(s)
        if s and index != -1:
            cut = min(cut, index)
    return text[:cut]


class LLM:
    """Base class: ``generate(requests, on_result, generation)`` calls ``on_result`` once per request."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        raise NotImplementedError

    def render(self, request: Request) -> str:
        """The model input as readable text, recorded with each result."""
        turns = messages_for(request, with_prefill=True)
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in turns)


class APIBackend(LLM):
    """Backends behind an HTTP API: up to ``concurrency`` requests in flight, SDK retries and timeouts."""

    def __init__(
        self,
        model_name: str,
        api_key: str,
        base_url: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 120.0,
    ):
        super().__init__(model_name)
        self.api_key = api_key
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.timeout = timeout

    def make_client(self):
        raise NotImplementedError

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        """Return (text, usage) for one request; raise on failure (after the SDK's retries)."""
        raise NotImplementedError

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        asyncio.run(self._generate(requests, on_result, generation))

    async def _generate(
        self, requests: list[Request], on_result: ResultCallback, gen: GenerationConfig
    ) -> None:
        client = self.make_client()
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(request: Request) -> None:
            async with semaphore:
                try:
                    text, usage = await self.complete(client, request, gen)
                    result = Completion(request.id, cut_at_stop(text, gen.stop), usage)
                except Exception as err:  # recorded as failed and retried on the next run
                    result = Completion(request.id, error=f"{type(err).__name__}: {err}"[:500])
            on_result(result)

        try:
            await asyncio.gather(*(one(r) for r in requests))
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                maybe = close()
                if asyncio.iscoroutine(maybe):
                    await maybe


def messages_for(request: Request, with_prefill: bool, with_system: bool = True) -> list[dict]:
    """The chat messages of a request: system (unless sent separately), few-shot turns, the prompt, a prefill."""
    messages = [{"role": "system", "content": request.system}] if with_system and request.system else []
    messages += [*request.history, {"role": "user", "content": request.prompt}]
    if with_prefill and request.prefill:
        messages.append({"role": "assistant", "content": request.prefill})
    return messages
