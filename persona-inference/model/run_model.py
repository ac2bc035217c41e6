"""Persona inference experiments, dispatched by ``PromptType``.

Examples::

    # persona inference on the embedded model and the sample data (offline, no keys)
    python -m persona_inference.model.run_model --run_name demo

    # the paper's BeaverTails data with GPT-4o-mini (OPENAI_API_KEY in .env), 16 requests at a time
    python -m persona_inference.model.run_model --model_type open_ai --model_name gpt-4o-mini \\
        --dataset_name nbalepur/persona-inference --inference_split BeaverTails --concurrency 16

    # any OpenAI-compatible server (vLLM, Ollama, llama.cpp)
    python -m persona_inference.model.run_model --model_type open_ai --base_url http://localhost:8000/v1 \\
        --model_name meta-llama/Llama-3.1-8B-Instruct
"""

from __future__ import annotations

import platform
import re
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from persona_core.cli import parse_args, public_args
from persona_core.data import PREFERENCE_COLUMNS, Partition, check_columns, load_split, partition_range
from persona_core.embedded import EMBEDDED_MODEL_NAME, REPO_ROOT
from persona_core.errors import UsageError, run_cli
from persona_core.llm import ModelType


class PromptType(str, Enum):
    persona_inference = "persona_inference"
    persona_accuracy = "persona_accuracy"
    persona_prefs = "persona_prefs"


SAMPLE_DATA = str(REPO_ROOT / "data" / "sample_preferences.jsonl")


@dataclass
class Arguments:
    run_name: str = field(default="default", metadata={"help": "Name of this run; results go to a folder of this name."})
    model_name: str = field(
        default=EMBEDDED_MODEL_NAME,
        metadata={"help": "Model: a Hub id, a local folder, an API model name, or the embedded SmolLM2-135M-Instruct."},
    )
    model_nickname: str | None = field(
        default=None, metadata={"help": "Folder name for this model's results (default: a file-safe model name)."}
    )
    model_type: ModelType = field(default=ModelType.hf_chat, metadata={"help": "Backend."})
    dataset_name: str = field(
        default=SAMPLE_DATA,
        metadata={"help": "Hub id (config = --inference_split), a save_to_disk folder, or a .jsonl/.json/.csv/.parquet file."},
    )
    inference_split: str = field(
        default="Sample",
        metadata={"help": "Dataset name (Hub config, e.g. BeaverTails); picks the prompt template and results folder."},
    )
    split: str = field(default="train", metadata={"help": "Split to read inside the dataset."})
    partition: Partition = field(default=Partition.full, metadata={"help": "Part of the data to run on."})
    experiments: list[PromptType] = field(
        default_factory=lambda: [PromptType.persona_inference],
        metadata={"help": "Experiments to run, in order.", "aliases": ["--prompt_types"]},
    )
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    min_tokens: int = field(default=0, metadata={"help": "Minimum new tokens (local models)."})
    max_tokens: int = field(default=96, metadata={"help": "Maximum new tokens."})
    stop_token: list[str] = field(default_factory=lambda: ["\n"], metadata={"help": "Stop strings."})
    device_map: str = field(default="auto", metadata={"help": "Device map for local models."})
    load_in_4bit: bool = field(default=False, metadata={"help": "Load local models in 4-bit (CUDA + bitsandbytes)."})
    load_in_8bit: bool = field(default=False, metadata={"help": "Load local models in 8-bit (CUDA + bitsandbytes)."})
    res_dir: str = field(default="results/persona-inference", metadata={"help": "Root folder for results."})
    prompt_dir: str | None = field(default=None, metadata={"help": "Folder of prompt templates (default: built-in)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache folder for Hub models and datasets."})
    base_url: str | None = field(
        default=None, metadata={"help": "Base URL of an OpenAI/Anthropic/Cohere-compatible server (vLLM, Ollama, ...)."}
    )
    concurrency: int = field(default=8, metadata={"help": "Requests in flight at once (API backends)."})
    request_timeout: float = field(default=120.0, metadata={"help": "Seconds before an API request times out (then retried)."})
    max_retries: int = field(default=5, metadata={"help": "Retries of a failed API request (429, 5xx, timeouts) before it is recorded as failed."})
    batch_size: int = field(default=16, metadata={"help": "Requests decoding together (local backends)."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N rows (after partitioning)."})
    seed: int = field(default=0, metadata={"help": "Random seed (sampling and API seeds)."})
    persona_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text each persona starts with, sent as the start of the answer where the backend allows it "
            "(hf_chat, anthropic). Default: 'The user is someone who prefers' for hf_chat (keeps small models on "
            "the persona form), 'The user is' otherwise."
        },
    )
    dry_run: bool = field(default=False, metadata={"help": "Print the first prompt and the request count; call nothing."})
    persona_models: list[str] | None = field(
        default=None,
        metadata={
            "help": "Persona-inference result folders (model nicknames) whose personas the judge reads. "
            "Default: persona_accuracy judges every model found for --inference_split/--run_name; "
            "persona_prefs judges this model's own personas.",
            "aliases": ["--persona_model"],
        },
    )
    judge_max_tokens: int = field(
        default=8,
        metadata={"help": "Maximum new tokens of a judge's answer (persona_accuracy, persona_prefs); raise it for reasoning models."},
    )


def nickname(model_name: str) -> str:
    """A file-system-safe form of a model name: 'meta-llama/Llama-3.1-8B' -> 'meta-llama--Llama-3.1-8B'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_name.strip("/").replace("/", "--")).strip("-") or "model"


def run_dir(args: Arguments) -> Path:
    folder = Path(args.res_dir) / (args.model_nickname or nickname(args.model_name)) / args.inference_split / args.run_name
    return folder if args.partition == Partition.full else folder / args.partition.value


def load_rows(args: Arguments):
    """The dataset and the row range to run, after checking columns (before any model is loaded)."""
    dataset = load_split(args.dataset_name, args.inference_split, args.split, args.cache_dir)
    check_columns(dataset, PREFERENCE_COLUMNS, f"dataset '{args.dataset_name}'")
    rows = partition_range(args.partition, len(dataset))
    if args.limit is not None:
        rows = rows[: args.limit]
    if len(rows) == 0:
        raise UsageError(f"partition '{args.partition.value}' of '{args.dataset_name}' has no rows: use a larger dataset")
    return dataset, rows


def make_backend(args: Arguments, stop: list[str]):
    from persona_core.llm import make_llm
    from persona_core.llm.base import GenerationConfig

    generation = GenerationConfig(args.temperature, args.max_tokens, args.min_tokens, stop, args.seed)
    return make_llm(
        args.model_type,
        args.model_name,
        generation,
        base_url=args.base_url,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        device_map=args.device_map,
        load_in_4bit=args.load_in_4bit,
        load_in_8bit=args.load_in_8bit,
        cache_dir=args.cache_dir,
        request_timeout=args.request_timeout,
        max_retries=args.max_retries,
    )


def versions() -> dict:
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "datasets", "openai", "anthropic", "cohere"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return found


def write_run_json(folder: Path, experiment: str, args: Arguments, stats, extra: dict | None = None) -> Path:
    from persona_core.io import write_json_atomic

    path = folder / f"{experiment}.run.json"
    write_json_atomic(
        path,
        {
            "experiment": experiment,
            "arguments": public_args(args),
            "versions": versions(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "stats": stats.as_dict(),
            **(extra or {}),
        },
    )
    return path


def save_results(folder: Path, experiment: str, args: Arguments, ordered: list[dict], stats, extra: dict, label: str):
    """Write the run record, then the final results atomically, but only when every request succeeded.

    Returns the path of the run record, or None after reporting failures (their requests are retried on a rerun).
    """
    from persona_core.io import write_jsonl_atomic

    run_json = write_run_json(folder, experiment, args, stats, extra)
    failed = [r for r in ordered if r["status"] != "ok"]
    if failed:
        print(f"{label}: {len(failed)} of {len(ordered)} requests failed (first: {failed[0]['error']})")
        print(f"checkpoint kept in {folder}; rerun the same command to retry the failed requests")
        return None
    write_jsonl_atomic(folder / f"{experiment}.jsonl", ordered)
    return run_json


def run_persona_inference(args: Arguments) -> int:
    from persona_core.llm.base import messages_for
    from persona_core.prompts import load_template
    from persona_core.runner import run_requests
    from persona_inference import PROMPT_DIR
    from persona_inference.model.inference import (
        GUIDED_PREFIX,
        PERSONA_PREFIX,
        build_requests,
        copies_example,
        example_personas,
        finish_record,
        is_well_formed,
    )

    dataset, rows = load_rows(args)
    template, template_path = load_template("persona_inference", args.inference_split, args.prompt_dir or PROMPT_DIR)
    prefix = args.persona_prefix or (GUIDED_PREFIX if args.model_type == ModelType.hf_chat else PERSONA_PREFIX)
    requests, meta = build_requests(dataset, rows, template, prefix)
    folder = run_dir(args)
    final_path = folder / "persona_inference.jsonl"
    if args.dry_run:
        print(f"[dry run] template: {template_path}\n[dry run] {len(requests)} requests ({len(rows)} rows x 2 sides)")
        first = "\n".join(f"[{m['role']}] {m['content']}" for m in messages_for(requests[0], with_prefill=True))
        print(f"[dry run] results would go to {final_path}\n[dry run] first prompt:\n{first}")
        return 0
    llm = make_backend(args, args.stop_token)
    for request in requests:
        meta[request.id]["prompt"] = llm.render(request)  # the full model input, recorded with the persona
    records, stats = run_requests(
        llm, requests, meta, folder / "persona_inference.checkpoint.jsonl", finish_record, desc="persona inference"
    )
    ordered = [records[r.id] for r in requests]
    personas = [r["persona"] for r in ordered if r["status"] == "ok"]
    well_formed = sum(map(is_well_formed, personas))
    copied = sum(copies_example(p, example_personas(template)) for p in personas)
    extra = {"template": str(template_path), "rows": len(rows), "well_formed": well_formed, "copied_example": copied}
    run_json = save_results(folder, "persona_inference", args, ordered, stats, extra, "persona inference")
    if run_json is None:
        return 1
    print(
        f"persona inference: {len(ordered)} personas for {len(rows)} rows "
        f"({stats.reused} reused, {stats.ok} new; {well_formed} well-formed, {copied} copying a prompt example) "
        f"in {stats.seconds:.1f}s"
    )
    print(f"results: {final_path}\nrun record: {run_json}")
    return 0


def run_persona_accuracy(args: Arguments) -> int:
    from persona_inference.model import persona_accuracy

    return persona_accuracy.run(args)


def run_persona_prefs(args: Arguments) -> int:
    from persona_inference.model import persona_prefs

    return persona_prefs.run(args)


EXPERIMENTS = {
    PromptType.persona_inference: run_persona_inference,
    PromptType.persona_accuracy: run_persona_accuracy,
    PromptType.persona_prefs: run_persona_prefs,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    from persona_core.secrets import load_env

    load_env()
    status = 0
    for experiment in args.experiments:
        status = EXPERIMENTS[experiment](args) or status
    return status


if __name__ == "__main__":
    run_cli(main)
