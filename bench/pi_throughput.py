"""Persona-inference throughput, measured side by side in one run.

1. API backends: concurrent vs one-at-a-time requests (the real OpenAI SDK through ``run_requests``, checkpoint
   included) against a loopback server with a fixed latency. Target: at least 12x at concurrency 16.
2. Local backend: ``HFBackend`` (shared prompt prefix, continuous batching) vs plain ``model.generate`` on each prompt
   alone, greedy, on the embedded SmolLM2-135M-Instruct. Targets: at least 3x tokens/s, and the same outputs for at
   least 95% of prompts (padding may shift floating-point ties). ``--time_batch_size_1`` also times the backend at
   batch size 1, to show what the shared prefix gives without batching.

Prompts are the persona-inference prompts of the paper's BeaverTails data (``persona_core.layout.paper_data_dir()``:
$PERSONA_PAPER_DATA, default ../shared/data) when present, else of data/sample_preferences.jsonl. Run from the
repository root::

    python -m bench.pi_throughput                                  # defaults: about 5 minutes on 2 CPU cores
    python -m bench.pi_throughput --prompts 256 --batch_size 64    # a larger local comparison (GPU)
    python -m bench.pi_throughput --skip_local --requests 256 --latency 0.5
    python -m bench.pi_throughput --skip_api --threads 1 --json bench-pi.json
"""

from __future__ import annotations

import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.cli import parse
from persona_core.data import load_split
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import run_cli
from persona_core.io import JsonlCheckpoint
from persona_core.layout import PERSONA_INFERENCE, SAMPLE_PREFERENCES, StageFiles, paper_data_dir
from persona_core.llm import ModelType, make_llm
from persona_core.llm.base import Completion, GenerationConfig, cut_at_stop
from persona_core.llm.batching import ROUND_TOKENS, answer_length
from persona_core.llm.hf import HFBackend, load_model_and_tokenizer
from persona_core.prompts import load_template
from persona_core.runner import run_requests
from persona_inference import PROMPT_DIR
from persona_inference.model.inference import GUIDED_PREFIX, PERSONA_PREFIX, build_requests

if not __package__:  # run as a path (python bench/x.py): `bench` imports from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import finish  # noqa: E402 (after the path above)
from bench.loopback import LoopbackLLMServer  # noqa: E402 (after the path above)

PAPER_DATA = paper_data_dir() / "persona-inference-BeaverTails"


@dataclass
class SharedArguments:
    """The data and generation length both parts use."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Preference data (default: BeaverTails paper data if present, else the sample)."},
    )
    max_tokens: int = field(default=96, metadata={"help": "Maximum new tokens (run_model's default)."})
    json: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


@dataclass
class ApiArguments:
    """The API part: one request at a time vs many in flight, against a loopback server with a fixed latency."""

    requests: int = field(default=96, metadata={"help": "API requests per mode."})
    latency: float = field(default=0.2, metadata={"help": "Seconds the loopback server takes per request."})
    concurrency: int = field(default=16, metadata={"help": "Requests in flight in the concurrent mode."})
    skip_api: bool = field(default=False, metadata={"help": "Skip the API part."})


@dataclass
class LocalArguments:
    """The local part: the continuously batched backend vs ``model.generate`` on each prompt alone."""

    prompts: int = field(default=64, metadata={"help": "Prompts generated per mode on the local model."})
    batch_size: int = field(default=16, metadata={"help": "Rows decoding together in the batched mode."})
    round_tokens: int = field(
        default=ROUND_TOKENS, metadata={"help": "New tokens per generate call (HFBackend)."}
    )
    time_batch_size_1: bool = field(
        default=False,
        metadata={"help": "Also time the backend at batch size 1: its shared prefix without batching."},
    )
    model_name: str = field(
        default=EMBEDDED_MODEL_NAME, metadata={"help": "Local model for the generation part."}
    )
    device_map: str = field(
        default="auto", metadata={"help": "Device map of the local model (CUDA when present)."}
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (default: torch's own choice)."}
    )
    skip_local: bool = field(default=False, metadata={"help": "Skip the local generation part."})


def load_requests(dataset_name: str | None, count: int, prefix: str):
    """Up to ``count`` persona-inference requests (both sides of the first rows), their metadata, the data path.

    ``prefix`` is the answer's opening, as run_model sends it to this kind of backend.
    """
    path = dataset_name or str(PAPER_DATA if PAPER_DATA.exists() else SAMPLE_PREFERENCES)
    dataset = load_split(path)
    name = "BeaverTails" if path == str(PAPER_DATA) else Path(path).stem
    rows = range(min(len(dataset), (count + 1) // 2))
    template, _ = load_template(PERSONA_INFERENCE, name, PROMPT_DIR)
    requests, meta = build_requests(dataset, rows, template, prefix)
    # build_requests lists every chosen side, then every rejected side: interleave them, then keep ``count``.
    half = len(rows)
    interleaved = [r for pair in zip(requests[:half], requests[half:], strict=True) for r in pair]
    return interleaved[:count], meta, path


def fake_persona(prompt: str, body: dict | None = None) -> str:
    return f"The user is someone who prefers answer {zlib.crc32(prompt.encode()) % 997}."


def serve_loopback(latency: float, connection) -> None:
    """Run the loopback server in its own process (as a real server is), answering ``peak`` and ``stop``."""
    with LoopbackLLMServer(fake_persona, latency=latency) as server:
        connection.send(server.url)
        while connection.recv() == "peak":
            connection.send(server.max_in_flight)
            server.max_in_flight = 0


def time_api(
    requests, meta, server_url: str, concurrency: int, generation: GenerationConfig
) -> tuple[float, dict]:
    llm = make_llm(
        ModelType.open_ai, "loopback", base_url=server_url, concurrency=concurrency, request_timeout=30
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        checkpoint = JsonlCheckpoint(StageFiles(Path(folder), "bench").checkpoint)
        records, stats = run_requests(llm, requests, meta, checkpoint, generation, desc=f"API x{concurrency}")
        checkpoint.close()
        seconds = time.perf_counter() - start
    if stats.ok != len(requests):
        raise RuntimeError(f"{stats.failed} requests failed: {stats.errors[:1]}")
    return seconds, {i: r["raw_text"] for i, r in records.items()}


def bench_api(dataset_name: str | None, generation: GenerationConfig, api: ApiArguments) -> dict:
    import multiprocessing

    requests, meta, path = load_requests(dataset_name, api.requests, PERSONA_PREFIX)
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve_loopback, args=(api.latency, theirs), daemon=True)
    server.start()
    try:
        url = ours.recv() + "/v1"
        time_api(
            requests[:1], meta, url, 1, generation
        )  # warm-up: SDK import and first-call setup stay out of the timings
        sequential, seq_texts = time_api(requests, meta, url, 1, generation)
        ours.send("peak")
        seq_peak = ours.recv()
        concurrent, conc_texts = time_api(requests, meta, url, api.concurrency, generation)
        ours.send("peak")
        conc_peak = ours.recv()
    finally:
        ours.send("stop")
        server.join(timeout=10)
    if seq_texts != conc_texts:
        raise RuntimeError("concurrent answers differ from one-at-a-time answers")
    return {
        "data": path,
        "requests": len(requests),
        "latency_s": api.latency,
        "concurrency": api.concurrency,
        "sequential_s": round(sequential, 2),
        "concurrent_s": round(concurrent, 2),
        "speedup": round(sequential / concurrent, 2),
        "peak_in_flight": {"sequential": seq_peak, "concurrent": conc_peak},
        "target": 12.0,
    }


def time_backend(backend, requests, generation) -> tuple[float, dict]:
    completions = {}
    start = time.perf_counter()
    backend.generate(requests, lambda c: completions.__setitem__(c.id, c), generation)
    seconds = time.perf_counter() - start
    if len(completions) != len(requests) or not all(c.ok for c in completions.values()):
        raise RuntimeError("a local generation was lost or failed")
    return seconds, completions


def time_alone(backend, requests, generation) -> tuple[float, dict]:
    """The baseline: plain ``model.generate`` on each prompt alone, with the backend's prompts and settings."""
    import torch

    model, tokenizer, ends = backend.model, backend.tokenizer, backend.engine.end_ids()
    completions = {}
    start = time.perf_counter()
    for request in requests:
        ids = tokenizer(
            backend.render(request), add_special_tokens=not backend.chat, return_tensors="pt"
        ).input_ids
        ids = ids.to(model.device)
        with torch.inference_mode():
            output = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=generation.max_tokens,
                **backend.engine.generate_kwargs(generation),
            )
        new = output[0, ids.shape[1] :].tolist()
        n_new = answer_length(new, ends)
        text = cut_at_stop(tokenizer.decode(new[:n_new], skip_special_tokens=True), generation.stop)
        usage = {"prompt_tokens": ids.shape[1], "completion_tokens": n_new}
        completions[request.id] = Completion(request.id, request.prefill + text, usage)
    return time.perf_counter() - start, completions


def bench_local(dataset_name: str | None, generation: GenerationConfig, local: LocalArguments) -> dict:
    import torch

    if local.threads:
        torch.set_num_threads(local.threads)
    requests, _, path = load_requests(dataset_name, local.prompts, GUIDED_PREFIX)
    model, tokenizer = load_model_and_tokenizer(local.model_name, device_map=local.device_map)

    def backend(batch_size: int) -> HFBackend:
        return HFBackend(
            local.model_name,
            batch_size=batch_size,
            round_tokens=local.round_tokens,
            model=model,
            tokenizer=tokenizer,
        )

    # Warm-up of both paths (kernels, stop-string tables, and the allocator's pools for batch-sized caches), untimed.
    time_backend(backend(local.batch_size), requests[: local.batch_size], generation)
    time_alone(backend(1), requests[:1], generation)
    timings = {
        "batched": time_backend(backend(local.batch_size), requests, generation),
        "alone": time_alone(backend(1), requests, generation),
    }
    if local.time_batch_size_1:
        timings["batch_size_1"] = time_backend(backend(1), requests, generation)
    figures = {
        "data": path,
        "model": local.model_name,
        "device": str(model.device),
        "dtype": str(model.dtype),
        "threads": torch.get_num_threads(),
        "prompts": len(requests),
        "batch_size": local.batch_size,
        "round_tokens": local.round_tokens,
        "max_tokens": generation.max_tokens,
    }
    alone = timings["alone"][1]
    figures["prompt_tokens_mean"] = round(
        sum(c.usage["prompt_tokens"] for c in alone.values()) / len(requests), 1
    )
    for mode, (seconds, completions) in timings.items():
        tokens = sum(c.usage["completion_tokens"] for c in completions.values())
        same = [r.id for r in requests if completions[r.id].text == alone[r.id].text]
        figures[mode] = {
            "seconds": round(seconds, 2),
            "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 2),
            "same_output_as_alone": round(len(same) / len(requests), 4),
            "differing_ids": [r.id for r in requests if r.id not in set(same)][:10],
        }
    for mode in figures.keys() & {"batched", "batch_size_1"}:
        figures[mode]["speedup_tokens_per_s"] = round(
            figures[mode]["tokens_per_s"] / figures["alone"]["tokens_per_s"], 2
        )
    figures.update(target_speedup=3.0, target_same_output=0.95)
    return figures


def verdict(value: float, target: float) -> str:
    return "meets target" if value >= target else "BELOW target"


def main(argv: list[str] | None = None) -> int:
    shared, api_bench, local_bench = parse(
        (SharedArguments, ApiArguments, LocalArguments), argv, description=__doc__.split("\n\n")[0]
    )
    figures = {}
    generation = GenerationConfig(max_tokens=shared.max_tokens, stop=("\n",))
    if not api_bench.skip_api:
        api = figures["api"] = bench_api(shared.dataset_name, generation, api_bench)
        print(
            f"API   {api['requests']} requests, {api['latency_s']}s latency: one at a time {api['sequential_s']}s, "
            f"{api['concurrency']} at once {api['concurrent_s']}s (peak {api['peak_in_flight']['concurrent']} in flight) -> "
            f"{api['speedup']}x ({verdict(api['speedup'], api['target'])} {api['target']}x)"
        )
    if not local_bench.skip_local:
        local = figures["local"] = bench_local(shared.dataset_name, generation, local_bench)
        alone, batched = local["alone"], local["batched"]
        print(
            f"LOCAL {local['prompts']} prompts (~{local['prompt_tokens_mean']} tokens) on {local['device']} "
            f"{local['dtype']} ({local['threads']} threads): generate on each alone {alone['tokens_per_s']} tok/s "
            f"({alone['seconds']}s), batch {local['batch_size']} {batched['tokens_per_s']} tok/s ({batched['seconds']}s) "
            f"-> {batched['speedup_tokens_per_s']}x ({verdict(batched['speedup_tokens_per_s'], 3.0)} 3x); same output "
            f"{batched['same_output_as_alone']:.0%} ({verdict(batched['same_output_as_alone'], 0.95)} 95%)"
        )
        if "batch_size_1" in local:
            one = local["batch_size_1"]
            print(
                f"      the backend at batch size 1 (shared prefix, no batching): {one['tokens_per_s']} tok/s "
                f"({one['seconds']}s) -> {one['speedup_tokens_per_s']}x; same output {one['same_output_as_alone']:.0%}"
            )
    return finish(figures, shared.json)


if __name__ == "__main__":
    run_cli(main)
