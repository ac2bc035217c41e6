"""OpenAI, Anthropic and Cohere backends on their official async SDKs.

vLLM, Ollama and llama.cpp servers speak the OpenAI API: use ``open_ai`` with ``--base_url``.
Retries (with backoff that honours ``Retry-After``) and timeouts are the SDKs' own options.
"""

from __future__ import annotations

import math

from persona_core.errors import UsageError
from persona_core.llm.base import (
    TOKENS_READ,
    APIBackend,
    Completion,
    GenerationConfig,
    Request,
    ResultCallback,
    messages_for,
    option_probabilities,
)

CONTINUE_ANSWER = {"continue_final_message": True, "add_generation_prompt": False}
"""vLLM's chat request options that make the model continue a final assistant message (the prefill)."""
PROBE_SENTENCE = "The quick brown fox jumps over the lazy dog."
PROBE_PREFILL = "The quick brown fox jumps"
"""What ``OpenAIBackend.probe_prefill`` asks a server to continue."""


class OpenAIBackend(APIBackend):
    """OpenAI's chat API, or any server speaking it (``base_url``).

    A prefill (the persona prefix, a verdict marker) reaches a server at ``base_url`` as a final assistant message
    with vLLM's ``continue_final_message``; OpenAI's own API cannot start an answer, so there it is dropped. Servers
    differ: vLLM continues the message, others (llama.cpp's Python server, many proxies) answer afresh. Each answer
    says which (``join_prefill``); probability verdicts, which read the token right after the prefill, first probe
    the server once and refuse where it answers afresh.
    """

    gives_probabilities = True
    continues_prefill: bool | None = None
    """The probe's finding for this server (None: not probed yet)."""

    def make_client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self.api_key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
        )

    def sends_prefill(self, request: Request) -> bool:
        return bool(request.prefill and self.base_url)

    def chat_arguments(self, request: Request) -> dict:
        """The messages, with the prefill continued where the server can (see the class docstring)."""
        prefilled = self.sends_prefill(request)
        arguments = {"model": self.model_name, "messages": messages_for(request, with_prefill=prefilled)}
        if prefilled:
            arguments["extra_body"] = CONTINUE_ANSWER
        return arguments

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        kwargs = {"stop": list(gen.stop[:4])} if gen.stop else {}
        if gen.seed is not None:
            kwargs["seed"] = gen.seed
        if gen.top_p != 1.0:
            kwargs["top_p"] = gen.top_p
        # vLLM servers take these beyond the OpenAI API; OpenAI's own has no such options.
        server_options = {"min_tokens": gen.min_tokens, "repetition_penalty": gen.repetition_penalty}
        server_options = {k: v for k, v in server_options.items() if v not in (0, 1.0)}
        if server_options and self.base_url:
            kwargs["extra_body"] = server_options
        arguments = self.chat_arguments(request)
        if "extra_body" in kwargs:
            arguments["extra_body"] = {**arguments.get("extra_body", {}), **kwargs.pop("extra_body")}
        response = await client.chat.completions.create(
            temperature=gen.temperature, max_tokens=gen.max_tokens, **arguments, **kwargs
        )
        usage = response.usage.model_dump() if response.usage else None
        text = response.choices[0].message.content or ""
        return text, usage

    def score_options(
        self, requests: list[Request], options: tuple[str, ...], on_result: ResultCallback
    ) -> None:
        """One token per request with ``top_logprobs``; an option not among them is recorded as None."""
        unstartable = next((r for r in requests if r.prefill and not self.base_url), None)
        if unstartable is not None:
            raise UsageError(
                f"a probability verdict must start the answer with {unstartable.prefill!r}, which OpenAI's API "
                "cannot do: use --verdict text, or --base_url of a vLLM server"
            )
        if any(r.prefill for r in requests):
            self.require_prefill_continued()

        async def call(client, request: Request) -> Completion:
            response = await client.chat.completions.create(
                temperature=0.0,
                max_tokens=1,
                logprobs=True,
                top_logprobs=TOKENS_READ,
                **self.chat_arguments(request),
            )
            content = response.choices[0].logprobs.content if response.choices[0].logprobs else None
            if not content:
                raise ValueError("the server returned no logprobs for the answer token")
            top = [(entry.token, math.exp(entry.logprob)) for entry in content[0].top_logprobs]
            probs = option_probabilities(top, options)
            usage = response.usage.model_dump() if response.usage else None
            best = max(options, key=lambda o: probs[o] or 0.0)
            read = [{"token": token, "prob": round(prob, 6)} for token, prob in top]
            continued = True if request.prefill else None  # the probe found the server continues it
            return Completion(
                request.id, best, usage, option_probs=probs, tokens_read=read, prefill_continued=continued
            )

        self.run_all(requests, on_result, call)

    def require_prefill_continued(self) -> None:
        if self.base_url and not self.probe_prefill():
            raise UsageError(
                f"the server at {self.base_url} answers afresh instead of continuing a final assistant message, so "
                "it cannot read the verdict token after the prefill: use --verdict text, or a server that continues "
                "it (vLLM, see docs/SERVERS.md)"
            )

    def probe_prefill(self) -> bool:
        """Whether the server continues a final assistant message: asked once per backend, greedily, to continue a
        sentence it is told to repeat. A server that answers afresh repeats the sentence from its start (maybe
        quoted, or after a word or two), so its first tokens hold "quick brown"; a continuation holds " over the
        lazy dog." in those tokens."""
        if self.continues_prefill is None:
            from openai import OpenAI

            with OpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=self.max_retries) as client:
                try:
                    response = client.chat.completions.create(
                        model=self.model_name,
                        messages=[
                            {
                                "role": "user",
                                "content": f"Repeat exactly this sentence and nothing else: {PROBE_SENTENCE}",
                            },
                            {"role": "assistant", "content": PROBE_PREFILL},
                        ],
                        temperature=0.0,
                        max_tokens=6,
                        extra_body=CONTINUE_ANSWER,
                        timeout=self.timeout,
                    )
                except Exception as err:  # the SDK's retries are spent
                    raise UsageError(
                        f"the server at {self.base_url} did not answer ({type(err).__name__}: {err})"[:300]
                    ) from None
            answer = response.choices[0].message.content or ""
            self.continues_prefill = "quick brown" not in answer.lower()
        return self.continues_prefill


class OpenAICompletionsBackend(OpenAIBackend):
    """Raw-text continuation through ``/v1/completions`` (the chat endpoint would wrap prompts in a template)."""

    gives_probabilities = False
    score_options = APIBackend.score_options  # the refusal: raw-text models are not judges

    def sends_prefill(self, request: Request) -> bool:
        return False  # the prefill ends the raw text, which a completions endpoint always continues

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        kwargs = {"stop": list(gen.stop[:4])} if gen.stop else {}
        if gen.seed is not None:
            kwargs["seed"] = gen.seed
        response = await client.completions.create(
            model=self.model_name,
            prompt=request.prompt + request.prefill,
            temperature=gen.temperature,
            max_tokens=gen.max_tokens,
            **kwargs,
        )
        usage = response.usage.model_dump() if response.usage else None
        return request.prefill + (response.choices[0].text or ""), usage


class AnthropicBackend(APIBackend):
    def make_client(self):
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self.api_key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
        )

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        kwargs = {"system": request.system} if request.system else {}
        if gen.stop:
            kwargs["stop_sequences"] = list(gen.stop)
        if gen.top_p != 1.0:
            kwargs["top_p"] = gen.top_p
        # Newer SDKs dropped the typed ``temperature`` argument; the API still takes it in the body.
        response = await client.messages.create(
            model=self.model_name,
            messages=messages_for(request, with_prefill=True, with_system=False),
            max_tokens=gen.max_tokens,
            extra_body={"temperature": gen.temperature},
            **kwargs,
        )
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = {
            "prompt_tokens": response.usage.input_tokens,
            "completion_tokens": response.usage.output_tokens,
        }
        return text, usage

    def sends_prefill(self, request: Request) -> bool:
        return bool(request.prefill)


class CohereBackend(APIBackend):
    def make_client(self):
        import cohere

        kwargs = {"base_url": self.base_url} if self.base_url else {}
        return cohere.AsyncClientV2(
            api_key=self.api_key, timeout=self.timeout, max_retries=self.max_retries, **kwargs
        )

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        messages = messages_for(request, with_prefill=False)
        kwargs = {"stop_sequences": list(gen.stop)} if gen.stop else {}
        if gen.seed is not None:
            kwargs["seed"] = gen.seed
        if gen.top_p != 1.0:
            kwargs["p"] = gen.top_p
        response = await self._chat_retrying_timeouts(
            client,
            model=self.model_name,
            messages=messages,
            temperature=gen.temperature,
            max_tokens=gen.max_tokens,
            **kwargs,
        )
        text = "".join(item.text for item in (response.message.content or []) if getattr(item, "text", None))
        usage = None
        if response.usage and response.usage.tokens:
            tokens = response.usage.tokens
            usage = {"prompt_tokens": tokens.input_tokens, "completion_tokens": tokens.output_tokens}
        return text, usage

    async def _chat_retrying_timeouts(self, client, **kwargs):
        """``client.chat``, retried on timeouts: the Cohere SDK retries 429/5xx answers but not timeouts."""
        import asyncio

        import httpx

        for attempt in range(self.max_retries + 1):
            try:
                return await client.chat(**kwargs)
            except httpx.TimeoutException:
                if attempt == self.max_retries:
                    raise
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
