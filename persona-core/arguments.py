"""Argument dataclasses shared between scripts, composed (never copied) into each script's own arguments.

A script parses the groups it needs as a tuple, e.g. ``script, run, backend, generation =
parse((ScriptArguments, RunArguments, BackendArguments, GenerationArguments))``, and hands each library function the
one group it reads. Each group checks its values in ``check`` (run by ``persona_core.cli.parse``; a group built on
another calls ``super().check()``), so a bad value is a one-line error before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from persona_core.errors import UsageError
from persona_core.llm.base import GenerationConfig


def positive(group, *names: str, allow_zero: bool = False) -> None:
    """A UsageError naming the first of ``names`` that is not positive (or negative, with ``allow_zero``)."""
    for name in names:
        value = getattr(group, name)
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            bound = "0 or more" if allow_zero else "positive"
            raise UsageError(f"--{name} must be {bound} (got {value})")


def parse_engine_args(pairs: list[str]) -> dict:
    """``key=value`` pairs as ``vllm.EngineArgs`` fields; a value is read as JSON where it parses (``true``, ``64``,
    ``{"mode": 0}``), else kept as text."""
    import json

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(
                f"--engine_args '{pair}' is not key=value: write e.g. --engine_args max_num_seqs=64"
            )
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class VLLMArguments:
    """Engine options of the in-process vLLM backend (``--model_type vllm``, PT's ``--backend vllm``); the other
    backends ignore them, except ``--dtype``, which hf_chat loads its model in too."""

    tensor_parallel_size: int = field(
        default=1, metadata={"help": "vllm: GPUs one engine splits the model across (tensor parallelism)."}
    )
    data_parallel_size: int = field(
        default=1,
        metadata={
            "help": "vllm: engines sharing the requests (data parallelism). vLLM runs one engine per process, so "
            "above 1 the error names the ways: shards (--num_shards) or `vllm serve --data-parallel-size`."
        },
    )
    gpu_memory_utilization: float | None = field(
        default=None,
        metadata={
            "help": "vllm: share of GPU memory for weights and KV cache (vLLM's default 0.92). On a CPU it is a "
            "share of RAM; unset there, the KV cache gets 1 GiB."
        },
    )
    max_model_len: int | None = field(
        default=None, metadata={"help": "vllm: longest prompt + answer in tokens (default: the model's own)."}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": f"Weight and activation dtype of a local model, hf_chat or vllm ({', '.join(DTYPES)}; auto: "
            "the model's stored dtype for hf_chat, vLLM's own choice for vllm)."
        },
    )
    quantization: str | None = field(
        default=None,
        metadata={
            "help": "vllm: quantization method (e.g. awq, gptq, fp8, bitsandbytes; default: the model's)."
        },
    )
    engine_args: list[str] = field(
        default_factory=list,
        metadata={
            "help": "vllm: any other vllm.EngineArgs field as key=value, values read as JSON where they parse "
            "(e.g. max_num_seqs=64 enforce_eager=false)."
        },
    )

    def check(self) -> None:
        positive(self, "tensor_parallel_size", "data_parallel_size", "max_model_len")
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)} (got '{self.dtype}')")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError(
                f"--gpu_memory_utilization must be in (0, 1] (got {self.gpu_memory_utilization})"
            )
        parse_engine_args(self.engine_args)

    def engine_options(self) -> dict:
        """The ``vllm.EngineArgs`` fields set here (those left at their defaults are vLLM's own)."""
        options = {
            "tensor_parallel_size": self.tensor_parallel_size,
            "data_parallel_size": self.data_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_model_len": self.max_model_len,
            "dtype": self.dtype,
            "quantization": self.quantization,
        }
        defaults = {"tensor_parallel_size": 1, "data_parallel_size": 1, "dtype": "auto"}
        options = {k: v for k, v in options.items() if v is not None and v != defaults.get(k)}
        return options | parse_engine_args(self.engine_args)


@dataclass
class BackendArguments(VLLMArguments):
    """How to load a local model or reach an API: shared by persona inference, the judges and PT generation."""

    base_url: str | None = field(
        default=None,
        metadata={
            "help": "Base URL of an OpenAI/Anthropic/Cohere-compatible server (vLLM, Ollama, llama.cpp, ...)."
        },
    )
    concurrency: int = field(default=8, metadata={"help": "Requests in flight at once (API backends)."})
    request_timeout: float = field(
        default=120.0, metadata={"help": "Seconds before an API request times out (then retried)."}
    )
    max_retries: int = field(
        default=5,
        metadata={
            "help": "Retries of a failed API request (429, 5xx, timeouts) before it is recorded as failed."
        },
    )
    batch_size: int = field(default=16, metadata={"help": "Requests decoding together (local models)."})
    device_map: str = field(
        default="auto", metadata={"help": "Device map for local models (CPU when no GPU)."}
    )
    load_in_4bit: bool = field(
        default=False, metadata={"help": "Load local models in 4-bit (CUDA + bitsandbytes)."}
    )
    load_in_8bit: bool = field(
        default=False, metadata={"help": "Load local models in 8-bit (CUDA + bitsandbytes)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Cache folder for Hub models and datasets."}
    )

    def check(self) -> None:
        super().check()
        positive(self, "concurrency", "batch_size", "request_timeout")
        positive(self, "max_retries", allow_zero=True)
        if self.load_in_4bit and self.load_in_8bit:
            raise UsageError("pass only one of --load_in_4bit and --load_in_8bit")

    def backend_options(self) -> dict:
        """The keyword arguments of ``persona_core.llm.make_llm``."""
        names = (
            "base_url",
            "concurrency",
            "request_timeout",
            "max_retries",
            "batch_size",
            "device_map",
            "load_in_4bit",
            "load_in_8bit",
            "cache_dir",
        )
        names += ("dtype",)  # hf_chat's; vLLM reads its own from engine_options
        return {name: getattr(self, name) for name in names} | {"engine_options": self.engine_options()}

    def weight_options(self) -> dict:
        """The loading options that change a model's outputs (quantization, dtype, vLLM engine options), for run
        fingerprints: a rerun with other ones never reuses results made with these. Batch sizes, concurrency and
        devices are left out: they change speed, not answers."""
        engine = {
            k: v
            for k, v in self.engine_options().items()
            if k not in ("tensor_parallel_size", "gpu_memory_utilization")
        }
        return {"load_in_4bit": self.load_in_4bit, "load_in_8bit": self.load_in_8bit, **engine}


@dataclass
class GenerationArguments:
    """Sampling settings; each ``generate`` call carries its own (``generation()``)."""

    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling: the top-p share of probability."})
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "Repetition penalty (local models and vLLM servers; 1 = none)."}
    )
    min_tokens: int = field(default=0, metadata={"help": "Minimum new tokens (local models)."})
    max_tokens: int = field(default=96, metadata={"help": "Maximum new tokens."})
    stop_token: list[str] = field(default_factory=lambda: ["\n"], metadata={"help": "Stop strings."})
    seed: int = field(default=0, metadata={"help": "Random seed (sampling and API seeds)."})

    def check(self) -> None:
        positive(self, "temperature", "min_tokens", allow_zero=True)
        positive(self, "max_tokens", "repetition_penalty")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top_p must be in (0, 1] (got {self.top_p})")
        if self.min_tokens > self.max_tokens:
            raise UsageError(
                f"--min_tokens ({self.min_tokens}) must not exceed --max_tokens ({self.max_tokens})"
            )

    def generation(self, **changes) -> GenerationConfig:
        values = dict(
            temperature=self.temperature,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            max_tokens=self.max_tokens,
            min_tokens=self.min_tokens,
            stop=self.stop_token,
            seed=self.seed,
        )
        return GenerationConfig(**(values | changes))


@dataclass
class OverwriteArguments:
    overwrite: bool = field(
        default=False,
        metadata={"help": "Redo this run's results from scratch (needed when its settings changed)."},
    )


@dataclass
class LimitArguments:
    limit: int | None = field(default=None, metadata={"help": "Use only the first N rows."})

    def check(self) -> None:
        positive(self, "limit")


@dataclass
class DryRunArguments:
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Print what would run (requests, settings, files read and written); call no model."
        },
    )


@dataclass
class RunArguments(OverwriteArguments, LimitArguments, DryRunArguments):
    """Naming a run, what happens to an earlier one of the same name, and how much of the data it covers."""

    run_name: str = field(
        default="default", metadata={"help": "Name of this run; results go to a folder of this name."}
    )

    def check(self) -> None:
        super().check()
        if not self.run_name or "/" in self.run_name:
            raise UsageError(f"--run_name '{self.run_name}' must be a non-empty name without '/'")


class Verdict(str, Enum):
    """How a judge's answer is read: from its next-token probabilities, or parsed from generated text."""

    probability = "probability"
    text = "text"


LOCAL_BACKENDS = ("hf_chat", "vllm")
"""Backends whose judges default to probability verdicts (their token probabilities cost nothing extra)."""
NO_PROBABILITIES = ("anthropic", "cohere")
"""Backends whose APIs give no token probabilities."""


def verdict_field(judge_flag: str):
    return field(
        default=None,
        metadata={
            "help": "probability: the judge's answer is read from its next-token probabilities (one forward pass, "
            f"never invalid); text: generated and parsed. Default: probability for local {judge_flag} "
            f"({', '.join(LOCAL_BACKENDS)}), text for API judges. paper: text (the authors' judges generate their "
            "answers)."
        },
    )


def resolve_verdict(verdict: Verdict | None, model_type, judge_flag: str) -> Verdict:
    """The verdict mode of a judge on ``model_type``; probabilities from a backend without them are refused."""
    backend = getattr(model_type, "value", model_type)
    if verdict is None:
        return Verdict.probability if backend in LOCAL_BACKENDS else Verdict.text
    if verdict == Verdict.probability and backend in NO_PROBABILITIES:
        raise UsageError(
            f"--verdict probability needs token probabilities, which {judge_flag} {backend} does not give: "
            "pass --verdict text"
        )
    return verdict
