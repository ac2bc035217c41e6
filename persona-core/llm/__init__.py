"""LLM backends by name: a plain map from ``ModelType`` to a class, and ``make_llm`` to build one."""

from __future__ import annotations

from enum import Enum

from persona_core.errors import UsageError
from persona_core.llm.api import AnthropicBackend, CohereBackend, OpenAIBackend, OpenAICompletionsBackend
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request
from persona_core.llm.hf import HFBackend
from persona_core.llm.vllm import VLLMBackend
from persona_core.secrets import base_url_from_env, get_key


class ModelType(str, Enum):
    """The backend that serves a model."""

    hf_chat = "hf_chat"
    vllm = "vllm"
    open_ai = "open_ai"
    anthropic = "anthropic"
    cohere = "cohere"


def api_key(model_type: ModelType, base_url: str | None = None) -> str | None:
    """The key an API backend needs (a missing one is a UsageError naming the variable); None for local backends.
    A local OpenAI-compatible server (vLLM, Ollama, llama.cpp) usually needs none: "EMPTY" is sent."""
    model_type = ModelType(model_type)
    if model_type in (ModelType.hf_chat, ModelType.vllm):
        return None
    base_url = base_url or base_url_from_env(model_type.value)
    return get_key(model_type.value, required=not (model_type == ModelType.open_ai and base_url)) or "EMPTY"


def make_llm(
    model_type: ModelType,
    model_name: str,
    *,
    chat: bool = True,
    base_url: str | None = None,
    concurrency: int = 8,
    batch_size: int = 8,
    device_map: str | None = "auto",
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    cache_dir: str | None = None,
    request_timeout: float = 120.0,
    max_retries: int = 5,
    engine_options: dict | None = None,
    adapter: str | None = None,
    dtype: str = "auto",
) -> LLM:
    """Build a backend once per model; every ``generate`` call brings its own ``GenerationConfig``.

    ``chat=False`` continues raw text (PT's tailored models): no chat template locally, the completions endpoint
    of an OpenAI-compatible server. Keys come from the environment (``.env`` loaded by the caller).
    ``engine_options`` (``vllm.EngineArgs`` fields) and ``adapter`` (a LoRA folder served without merging) are the
    vllm backend's; it quantizes through ``engine_options["quantization"]``, not bitsandbytes flags, and takes its
    dtype from ``engine_options`` too (``dtype`` is hf_chat's: ``auto`` keeps the model's stored dtype).
    """
    model_type = ModelType(model_type)
    if model_type == ModelType.vllm:
        if load_in_4bit or load_in_8bit:
            raise UsageError(
                "--model_type vllm quantizes with --quantization (e.g. bitsandbytes, awq, gptq, fp8): "
                "drop --load_in_4bit/--load_in_8bit"
            )
        return VLLMBackend(
            model_name, chat=chat, engine_options=engine_options, adapter=adapter, cache_dir=cache_dir
        )
    if model_type == ModelType.hf_chat:
        weights = dict(load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit, dtype=dtype)
        return HFBackend(model_name, batch_size, chat, device_map=device_map, cache_dir=cache_dir, **weights)
    backends = {
        ModelType.open_ai: OpenAIBackend,
        ModelType.anthropic: AnthropicBackend,
        ModelType.cohere: CohereBackend,
    }
    backend = (
        OpenAICompletionsBackend if model_type == ModelType.open_ai and not chat else backends[model_type]
    )
    base_url = base_url or base_url_from_env(model_type.value)
    key = api_key(model_type, base_url)
    return backend(
        model_name,
        api_key=key,
        base_url=base_url,
        concurrency=concurrency,
        max_retries=max_retries,
        timeout=request_timeout,
    )


__all__ = ["LLM", "Completion", "GenerationConfig", "ModelType", "Request", "api_key", "make_llm"]
