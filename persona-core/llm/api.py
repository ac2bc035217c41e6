"""OpenAI, Anthropic and Cohere backends on their official async SDKs.

vLLM, Ollama and llama.cpp servers speak the OpenAI API: use ``open_ai`` with ``--base_url``.
Retries (with backoff that honours ``Retry-After``) and timeouts are the SDKs' own options.
"""

from __future__ import annotations

from persona_core.llm.base import APIBackend, GenerationConfig, Request, messages_for


class OpenAIBackend(APIBackend):
    def make_client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self.api_key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
        )

    async def complete(self, client, request: Request, gen: GenerationConfig) -> tuple[str, dict | None]:
        messages = messages_for(request, with_prefill=False)
        kwargs = {"stop": list(gen.stop[:4])} if gen.stop else {}
        if gen.seed is not None:
            kwargs["seed"] = gen.seed
        response = await client.chat.completions.create(
            model=self.model_name,
            messages=messages,
            temperature=gen.temperature,
            max_tokens=gen.max_tokens,
            **kwargs,
        )
        usage = response.usage.model_dump() if response.usage else None
        return response.choices[0].message.content or "", usage


class OpenAICompletionsBackend(OpenAIBackend):
    """Raw-text continuation through ``/v1/completions`` (the chat endpoint would wrap prompts in a template)."""

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
        return request.prefill + text if request.prefill else text, usage


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
