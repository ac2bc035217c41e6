"""Inference engines side by side in one run: hf_chat vs vLLM in process vs a `vllm serve` server, on the same
persona-inference prompts with the same greedy settings (the embedded SmolLM2-135M-Instruct by default).

For each engine: the start time (model load; for vLLM the engine start; for the server until /health answers), the
generation time of all prompts, generated tokens per second (every engine's answers counted with the same
tokenizer, so the figures compare), and the share of prompts whose answer equals hf_chat's. vLLM runs in its own
environment (``bash scripts/setup.sh --vllm``): the in-process engine in a child process of ``.venv-vllm/bin/python``
(this module again, ``--worker``), the server as ``python -m vllm.entrypoints.openai.api_server``, which the toolkit
reaches like any OpenAI-compatible server (``--model_type open_ai --base_url``, the persona prefix continued).

Prompts: the paper's BeaverTails persona-inference prompts ($PERSONA_PAPER_DATA, default ../shared/data) when present,
else the sample data. Run from the repository root::

    python -m bench.engines                                        # 64 prompts, about 6 minutes on 2 CPU cores
    python -m bench.engines --engines hf_chat vllm --prompts 16 --json bench-engines.json
    python -m bench.engines --prompts 512 --dtype auto --concurrency 128          # a GPU machine
    python -m bench.engines --model_name /tmp/random-1b --batch_size 64 --dtype bfloat16 --hf_dtype bfloat16
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from persona_core.arguments import DTYPES as HF_DTYPES
from persona_core.cli import parse
from persona_core.embedded import EMBEDDED_MODEL_NAME, REPO_ROOT, resolve_model_name
from persona_core.errors import UsageError, run_cli
from persona_core.io import write_json_atomic
from persona_core.llm import make_llm
from persona_core.llm.base import GenerationConfig, Request
from persona_inference.model.inference import GUIDED_PREFIX

if not __package__:  # run as a path (python bench/x.py): `bench` imports from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import finish, load_average  # noqa: E402 (after the path above)
from bench.pi_throughput import load_requests  # noqa: E402 (after the path above)

VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
ENGINES = ("hf_chat", "vllm", "vllm_serve")


@dataclass
class EnginesArguments:
    """The prompts, the model and the engines to compare."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Preference data (default: BeaverTails paper data if present, else the sample)."},
    )
    model_name: str = field(default=EMBEDDED_MODEL_NAME, metadata={"help": "Model every engine runs."})
    engines: list[str] = field(
        default_factory=lambda: list(ENGINES), metadata={"help": f"Engines to run: {', '.join(ENGINES)}."}
    )
    prompts: int = field(
        default=64, metadata={"help": "Persona-inference prompts (both sides of the first rows)."}
    )
    max_tokens: int = field(default=96, metadata={"help": "Maximum new tokens (run_model's default)."})
    batch_size: int = field(default=16, metadata={"help": "hf_chat: requests decoding together."})
    concurrency: int = field(default=64, metadata={"help": "vllm_serve: requests in flight."})
    dtype: str = field(
        default="float32",
        metadata={"help": "vLLM dtype (float32 computes as hf_chat does on a CPU; auto: vLLM's choice)."},
    )
    hf_dtype: str = field(
        default="auto",
        metadata={
            "help": "hf_chat dtype (auto: the model's stored dtype; bfloat16 to match vLLM's on a GPU)."
        },
    )
    max_model_len: int = field(default=4096, metadata={"help": "vLLM: longest prompt + answer."})
    threads: int | None = field(
        default=None, metadata={"help": "hf_chat's torch CPU threads (default: torch's own choice)."}
    )
    json: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})
    worker: str | None = field(
        default=None,
        metadata={
            "help": "Internal: run the in-process vLLM part on this requests file (in vLLM's environment)."
        },
    )

    def check(self) -> None:
        if self.worker:  # started by this module with flags it checked
            return
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown:
            raise UsageError(f"unknown engine '{unknown[0]}': choose from {', '.join(ENGINES)}")
        if "hf_chat" not in self.engines:
            raise UsageError("the comparison is against hf_chat: keep hf_chat in --engines")
        if self.hf_dtype not in HF_DTYPES:
            raise UsageError(f"unknown --hf_dtype '{self.hf_dtype}': choose from {', '.join(HF_DTYPES)}")
        for name in ("prompts", "max_tokens", "batch_size", "concurrency", "max_model_len"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name} must be positive")
        if any(e != "hf_chat" for e in self.engines) and not VLLM_PYTHON.exists():
            raise UsageError(
                "vLLM's environment .venv-vllm is missing: run `bash scripts/setup.sh --vllm`, or pass --engines hf_chat"
            )

    def generation(self) -> GenerationConfig:
        return GenerationConfig(temperature=0.0, max_tokens=self.max_tokens, stop=("\n",))

    def vllm_options(self) -> dict:
        return {"dtype": self.dtype, "max_model_len": self.max_model_len}


def timed_generate(llm, requests, generation) -> tuple[float, dict[str, str]]:
    """Seconds to generate every request, and each answer's text (failures are fatal: a benchmark must be whole)."""
    completions = {}
    start = time.perf_counter()
    llm.generate(requests, lambda c: completions.__setitem__(c.id, c), generation)
    seconds = time.perf_counter() - start
    failed = [c for c in completions.values() if not c.ok]
    if failed or len(completions) != len(requests):
        raise RuntimeError(f"{len(failed)} of {len(requests)} generations failed (first: {failed[:1]})")
    return seconds, {key: c.text for key, c in completions.items()}


def run_hf_chat(
    model_name: str, requests, generation, batch_size: int, dtype: str, threads: int | None
) -> dict:
    import gc

    import torch

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    llm = make_llm("hf_chat", model_name, batch_size=batch_size, dtype=dtype)
    started = time.perf_counter() - start
    seconds, texts = timed_generate(llm, requests, generation)
    placed = {"device": str(llm.model.device), "dtype": str(llm.model.dtype).removeprefix("torch.")}
    del llm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the vLLM engines start next, in other processes: they size caches by free memory
    return {
        "start_s": started,
        "seconds": seconds,
        "texts": texts,
        "threads": torch.get_num_threads(),
        **placed,
    }


def run_vllm_in_process(model_name: str, max_tokens: int, engine_options: dict, requests) -> dict:
    """This module with ``--worker`` in vLLM's environment (vLLM cannot be imported here)."""
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as folder:
        requests_file = Path(folder) / "requests.json"
        write_json_atomic(requests_file, [asdict(r) for r in requests])
        command = [
            str(VLLM_PYTHON),
            "-m",
            "bench.engines",
            "--worker",
            str(requests_file),
            "--model_name",
            model_name,
            "--max_tokens",
            str(max_tokens),
            "--dtype",
            engine_options["dtype"],
            "--max_model_len",
            str(engine_options["max_model_len"]),
        ]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the vLLM worker failed:\n{done.stderr[-3000:]}")
        return json.loads((Path(folder) / "result.json").read_text(encoding="utf-8"))


def worker(requests_file: Path, model_name: str, engine_options: dict, generation: GenerationConfig) -> int:
    """In vLLM's environment: start the engine, generate, write start time, seconds and texts beside the requests."""
    requests = [Request(**r) for r in json.loads(requests_file.read_text(encoding="utf-8"))]
    start = time.perf_counter()
    llm = make_llm("vllm", model_name, engine_options=engine_options)
    started = time.perf_counter() - start
    seconds, texts = timed_generate(llm, requests, generation)
    write_json_atomic(
        requests_file.with_name("result.json"), {"start_s": started, "seconds": seconds, "texts": texts}
    )
    return 0


def run_vllm_serve(
    model_name: str, engine_options: dict, concurrency: int, requests, generation: GenerationConfig
) -> dict:
    """Start a server, time it until /health answers, then generate through the toolkit's OpenAI backend."""
    from urllib.request import urlopen

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        resolve_model_name(model_name),
        "--served-model-name",
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        engine_options["dtype"],
        "--max-model-len",
        str(engine_options["max_model_len"]),
    ]
    if not gpu_present():
        command += ["--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30)]
    log = tempfile.NamedTemporaryFile(prefix="vllm-serve-", suffix=".log", delete=False)
    start = time.perf_counter()
    server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {server.returncode}: see {log.name}")
            try:
                with urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        started = time.perf_counter() - start
        llm = make_llm("open_ai", "bench", base_url=f"http://127.0.0.1:{port}/v1", concurrency=concurrency)
        seconds, texts = timed_generate(llm, requests, generation)
    finally:
        server.terminate()
        server.wait(timeout=60)
    os.unlink(log.name)
    return {"start_s": started, "seconds": seconds, "texts": texts}


def gpu_present() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def summarize(results: dict[str, dict], requests, tokenizer) -> dict:
    """Per engine: start, seconds, tokens/s over the answers (prefill excluded), identical share vs hf_chat."""
    prefills = {r.id: r.prefill for r in requests}
    reference = results["hf_chat"]["texts"]
    figures = {}
    for engine, result in results.items():
        texts = result["texts"]
        tokens = sum(len(tokenizer(texts[key][len(prefills[key]) :]).input_ids) for key in texts)
        figures[engine] = {
            "start_s": round(result["start_s"], 1),
            "seconds": round(result["seconds"], 2),
            "tokens": tokens,
            "tokens_per_s": round(tokens / result["seconds"], 2),
            "same_as_hf_chat": round(sum(texts[k] == reference[k] for k in reference) / len(reference), 4),
        } | {key: result[key] for key in ("threads", "device", "dtype") if key in result}
    return figures


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((EnginesArguments,), argv, description=__doc__.split("\n\n")[0])
    generation = args.generation()
    if args.worker:
        return worker(Path(args.worker), args.model_name, args.vllm_options(), generation)
    from transformers import AutoTokenizer

    requests, _, path = load_requests(args.dataset_name, args.prompts, GUIDED_PREFIX)
    wall, load_start = time.perf_counter(), load_average()
    hf_chat = run_hf_chat(args.model_name, requests, generation, args.batch_size, args.hf_dtype, args.threads)
    results = {"hf_chat": hf_chat}
    if "vllm" in args.engines:
        results["vllm"] = run_vllm_in_process(args.model_name, args.max_tokens, args.vllm_options(), requests)
    if "vllm_serve" in args.engines:
        results["vllm_serve"] = run_vllm_serve(
            args.model_name, args.vllm_options(), args.concurrency, requests, generation
        )
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(args.model_name))
    figures = {
        "data": path,
        "model": args.model_name,
        "prompts": len(requests),
        "prompt_tokens_mean": round(
            sum(len(tokenizer(r.prompt).input_ids) for r in requests) / len(requests), 1
        ),
        "max_tokens": args.max_tokens,
        "vllm_dtype": args.dtype,
        "gpu": gpu_name(),
        "engines": summarize(results, requests, tokenizer),
        "load_average": {"start": load_start, "end": load_average()},
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    hf = figures["engines"]["hf_chat"]
    print(
        f"\n{len(requests)} persona-inference prompts from {path}, model {args.model_name}, greedy, max {args.max_tokens}; "
        f"hf_chat on {hf['device']} in {hf['dtype']} (batch {args.batch_size})"
        + (f", vLLM in {args.dtype}" if len(results) > 1 else "")
        + (f"; GPU {figures['gpu']}" if figures["gpu"] else "")
    )
    rows = [("engine", "start s", "generate s", "tokens", "tokens/s", "same as hf_chat")]
    for engine, f in figures["engines"].items():
        rows.append(
            (
                engine,
                str(f["start_s"]),
                str(f["seconds"]),
                str(f["tokens"]),
                str(f["tokens_per_s"]),
                f"{f['same_as_hf_chat']:.0%}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return finish(figures, args.json)


if __name__ == "__main__":
    run_cli(main)
