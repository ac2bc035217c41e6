"""One small base class for every LLM backend (lm-evaluation-harness style).

A backend turns a list of ``Request``s into ``Completion``s, calling ``on_result`` as each one finishes so
the caller can checkpoint immediately. A request that fails after the SDK's own retries comes back as a
``Completion`` with ``error`` set: it is never dropped and never turned into an empty answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from persona_core.errors import UsageError


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings of one ``generate`` call: a backend is built once and serves calls with any settings."""

    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    """Local models and vLLM servers only (OpenAI-style APIs have no such option)."""
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
    option_probs: dict[str, float | None] | None = None
    """``score_options`` only: each option's probability as the next token (None: not among the tokens read)."""
    tokens_read: list[dict] | None = None
    """``score_options`` only: the most probable next tokens, as ``{"token", "prob"}``, for auditing a verdict."""
    prefill_continued: bool | None = None
    """Servers reached over HTTP: whether the answer continued the prefill (True) or the server answered afresh
    (False); None where there was no prefill or the backend continues it itself."""
    cached: bool = False
    """Answered from a cache (the judge's verdict cache), not by the model."""

    @property
    def ok(self) -> bool:
        return self.error is None


ResultCallback = Callable[[Completion], None]


def join_prefill(prefill: str, answer: str) -> tuple[str, bool]:
    """The whole answer to a prefilled request, and whether the server continued the prefill.

    A server that continues a final assistant message returns only the continuation; one that ignores it answers
    afresh, and an answer on the persona form then starts with the prefill itself. So an answer starting with the
    prefill (leading whitespace aside) is kept as it is, and any other is the continuation: never doubled, never
    without its prefix.
    """
    if prefill.strip() and answer.lstrip().startswith(prefill.strip()):
        return answer.lstrip(), False
    return prefill + answer, True


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

    gives_probabilities = False
    """Whether ``score_options`` works (the backend exposes next-token probabilities)."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        raise NotImplementedError

    def score_options(
        self, requests: list[Request], options: tuple[str, ...], on_result: ResultCallback
    ) -> None:
        """Read each request's next-token distribution at the answer position (after its prefill) instead of
        generating: ``on_result`` gets a ``Completion`` with ``option_probs`` and ``tokens_read``. A backend whose
        API gives no token probabilities refuses."""
        raise UsageError(
            f"the {type(self).__name__} backend gives no token probabilities: use --verdict text with this judge"
        )

    def require_prefill_continued(self) -> None:
        """Refuse (``UsageError``) when a prefill would not start the answer; local backends always continue it."""

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

    def sends_prefill(self, request: Request) -> bool:
        """Whether ``request``'s prefill goes to the server as the start of the answer (``complete`` then returns
        the server's answer alone, joined to the prefill by ``generate``)."""
        return False

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        """Return (text, usage) for one request; raise on failure (after the SDK's retries)."""
        raise NotImplementedError

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        async def call(client, request: Request) -> Completion:
            text, usage = await self.complete(client, request, generation)
            continued = None
            if self.sends_prefill(request):
                text, continued = join_prefill(request.prefill, text)
            return Completion(
                request.id, cut_at_stop(text, generation.stop), usage, prefill_continued=continued
            )

        self.run_all(requests, on_result, call)

    def run_all(self, requests: list[Request], on_result: ResultCallback, call) -> None:
        asyncio.run(self._run(requests, on_result, call))

    async def _run(self, requests: list[Request], on_result: ResultCallback, call) -> None:
        """``call(client, request)`` for every request, ``concurrency`` at a time; a failure becomes a ``Completion``
        with ``error`` (recorded, and retried on the next run)."""
        client = self.make_client()
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(request: Request) -> None:
            async with semaphore:
                try:
                    result = await call(client, request)
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


TOKENS_READ = 20
"""How many of the most probable next tokens a probability verdict reads (and records); OpenAI's maximum."""


def option_probabilities(top: list[tuple[str, float]], options: tuple[str, ...]) -> dict[str, float | None]:
    """Each option's probability among ``top`` ``(token text, probability)`` pairs: the sum over the tokens that are
    the option up to surrounding whitespace (" A" and "A" are both A), None when no such token was read."""
    probs: dict[str, float | None] = dict.fromkeys(options)
    for token, prob in top:
        option = token.strip()
        if option in probs:
            probs[option] = (probs[option] or 0.0) + prob
    return probs


def most_probable(probabilities: dict[str, float | None], options: tuple[str, ...]) -> str | None:
    """The option with the highest probability (the first on an exact tie; an option not read counts 0); None when
    no option was read at all."""
    if all(probabilities.get(o) is None for o in options):
        return None
    return max(options, key=lambda o: probabilities.get(o) or 0.0)


def option_share(
    probabilities: dict[str, float | None], options: tuple[str, ...], option: str
) -> float | None:
    """``option``'s share of the options' total probability (an option not read counts 0); None when it is 0."""
    total = sum(probabilities.get(o) or 0.0 for o in options)
    return (probabilities.get(option) or 0.0) / total if total > 0 else None


def messages_for(request: Request, with_prefill: bool, with_system: bool = True) -> list[dict]:
    """The chat messages of a request: system (unless sent separately), few-shot turns, the prompt, a prefill."""
    messages = [{"role": "system", "content": request.system}] if with_system and request.system else []
    messages += [*request.history, {"role": "user", "content": request.prompt}]
    if with_prefill and request.prefill:
        messages.append({"role": "assistant", "content": request.prefill})
    return messages
