"""Generation from persona-tailored models: a small public API, and the ``infer`` stage of ``run_model``.

Public API (for benchmarks, chat scripts, judges)::

    from persona_tailoring.model.generate import load_generator, generate_texts
    from persona_tailoring.model.templates import PromptStyle, TrainingType

    llm = load_generator("models/persona-tailoring/Sample/smollm2-135m/sft_chosen/merged", max_new_tokens=128)
    style = PromptStyle.for_run(TrainingType.chosen, "Sample")
    texts = generate_texts(llm, [style.model_input("How do I boil an egg?", "The user is a beginner cook.")])

``load_generator(..., backend="open_ai", base_url="http://localhost:8000/v1")`` sends the same raw text to
an OpenAI-compatible completions endpoint instead (e.g. ``vllm serve <merged folder>``).

The infer stage writes one JSON line per test row to
``{results_save_dir}/{dataset_name}/{model_nickname}/{method}_Persona(training_type=T, inference_type=I).jsonl``:
``id`` (stable row id), ``index`` (row number in the test split), ``prompt`` (the test prompt as in the
dataset), ``persona`` (the persona given, '' for none), ``response`` (the generation, primer included, cut at
the stop strings) and ``model_input`` (the exact text the model continued). The paper's released outputs are
JSON arrays whose ``prompt`` is the model input; ``persona_core.io.read_records`` reads both.
"""

from __future__ import annotations

import time
from pathlib import Path

from persona_core.errors import UsageError
from persona_core.llm.api import OpenAIBackend
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request
from persona_tailoring.model import templates

BACKENDS = ("hf", "open_ai")
OUTPUT_FIELDS = ("id", "index", "prompt", "persona", "response", "model_input")


class OpenAICompletionsBackend(OpenAIBackend):
    """Raw-text continuation through ``/v1/completions`` (the chat endpoint would wrap prompts in a template)."""

    async def complete(self, client, request: Request) -> tuple[str, dict | None]:
        gen = self.generation
        kwargs = {"stop": gen.stop[:4]} if gen.stop else {}
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


def load_generator(
    model: str,
    *,
    backend: str = "hf",
    base_url: str | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    stop: list[str] | None = None,
    seed: int | None = 0,
    batch_size: int = 8,
    concurrency: int = 8,
    device_map: str | None = "auto",
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    cache_dir: str | None = None,
) -> LLM:
    """A backend that continues raw text (no chat template), stopping at ``\\nPrompt:`` and end of sequence.

    ``model``: a local folder (e.g. a merged model), a Hub id, or the embedded model's name; with
    ``backend="open_ai"`` it is the name the server serves (``vllm serve`` uses the folder path).
    ``stop`` adds stop strings to ``\\nPrompt:``.
    """
    stops = templates.STOP_STRINGS + [s for s in (stop or []) if s not in templates.STOP_STRINGS]
    generation = GenerationConfig(temperature=temperature, max_tokens=max_new_tokens, stop=stops, seed=seed)
    if backend == "open_ai":
        from persona_core.secrets import base_url_from_env, get_key

        base_url = base_url or base_url_from_env("open_ai")
        key = get_key("open_ai", required=not base_url) or "EMPTY"  # local servers usually need no key
        return OpenAICompletionsBackend(model, generation, api_key=key, base_url=base_url, concurrency=concurrency)
    if backend != "hf":
        raise UsageError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    from persona_core.llm.hf import HFBackend, load_model_and_tokenizer

    hf_model, tokenizer = load_model_and_tokenizer(
        model, device_map=device_map, load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit, cache_dir=cache_dir
    )
    stop_at_tokenizer_eos(hf_model, tokenizer)
    return HFBackend(model, generation, batch_size=batch_size, chat=False, model=hf_model, tokenizer=tokenizer)


def stop_at_tokenizer_eos(model, tokenizer) -> None:
    """Training appends the tokenizer's eos; make sure generation stops there even if the model config names another."""
    eos = model.generation_config.eos_token_id
    eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        model.generation_config.eos_token_id = [*eos_ids, tokenizer.eos_token_id]


def generate_completions(llm: LLM, prompts: list[str], prefills: list[str] | None = None) -> list[Completion]:
    """Continue each prompt (in batches or concurrently); completions in prompt order, ``text`` includes the prefill."""
    prefills = prefills or [""] * len(prompts)
    requests = [Request(id=str(i), prompt=p, prefill=f) for i, (p, f) in enumerate(zip(prompts, prefills, strict=True))]
    results: dict[str, Completion] = {}
    llm.generate(requests, lambda completion: results.__setitem__(completion.id, completion))
    return [results[r.id] for r in requests]


def generate_texts(llm: LLM, prompts: list[str], prefills: list[str] | None = None) -> list[str]:
    """Like ``generate_completions`` but plain stripped strings; a failed request raises RuntimeError."""
    completions = generate_completions(llm, prompts, prefills)
    failed = [c for c in completions if not c.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(completions)} generations failed (first: {failed[0].error})")
    return [c.text.strip() for c in completions]


def build_requests(test, personas: list[str], style: templates.PromptStyle, demonstrations: str = ""):
    """One request per test row (id: row number + content digest) and the metadata kept with its output."""
    from persona_core.data import row_key

    requests, meta = [], {}
    for index, (row, persona) in enumerate(zip(test, personas, strict=True)):
        row_id = f"{index:05d}-{row_key(row)}"
        prefix = style.prefix_for(row["prompt"])
        prompt = demonstrations + style.model_input(row["prompt"], persona)
        requests.append(Request(id=row_id, prompt=prompt, prefill=f" {prefix}" if prefix else ""))
        meta[row_id] = {"index": index, "test_prompt": row["prompt"], "persona": persona}
    return requests, meta


def output_record(record: dict) -> dict:
    """Checkpoint record -> documented output fields (plus status/usage, dropped from the final file)."""
    return {
        "id": record["id"],
        "index": record["index"],
        "prompt": record["test_prompt"],
        "persona": record["persona"],
        "response": record["raw_text"].strip(),
        "model_input": record["prompt"],
        "usage": record.get("usage"),
        "status": record["status"],
    }


def checkpoint_path(final_path: Path) -> Path:
    """Checkpoints sit in a hidden sibling folder, so globbing ``*.jsonl`` finds only finished outputs."""
    return final_path.parent / ".checkpoints" / final_path.name


def inference_model(args, method: str) -> str:
    """What to generate from: --model_path, else the base model (few-shot) or the merged model of the method."""
    if args.model_path:
        return args.model_path
    if method == "fewshot":
        return args.base_model_name
    from persona_tailoring.model.train import run_paths

    merged = run_paths(args).merged_dir(method, args.training_type.value)
    if args.backend == "hf" and not (merged / "config.json").exists():
        raise UsageError(f"no merged {method} model in {merged}: run --stage train and --stage merge first (same flags)")
    return str(merged)


def infer(args, method: str) -> int:
    """Generate for every requested inference type; resumable, each final file written atomically."""
    from persona_core.cli import public_args
    from persona_core.io import write_json_atomic, write_jsonl_atomic
    from persona_core.runner import run_requests
    from persona_tailoring.model.train import load_tailoring_splits, pick_split, run_paths

    splits = load_tailoring_splits(args)
    test = pick_split(splits, "test", args.hf_dataset_name, args.limit)
    style = templates.PromptStyle.for_run(args.training_type, args.dataset_name, args.response_prefix)
    demonstrations = ""
    if method == "fewshot":
        fewshot = pick_split(splits, "fewshot", args.hf_dataset_name)
        demonstrations = templates.fewshot_demonstrations(fewshot, args.training_type, style)
    plans = []
    for inference_type in args.inference_type:
        final = run_paths(args).results_path(method, args.training_type.value, inference_type.value)
        if final.exists() and not args.overwrite:
            print(f"{final} exists (pass --overwrite to regenerate)")
            continue
        personas = templates.inference_personas(test, inference_type, args.dataset_name, "test", args.system_persona)
        plans.append((inference_type, final, *build_requests(test, personas, style, demonstrations)))
    if not plans:
        return 0
    model = inference_model(args, method)
    llm = load_generator(
        model if args.backend == "hf" else (args.server_model_name or model),
        backend=args.backend,
        base_url=args.base_url,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        device_map=args.device_map,
        load_in_4bit=args.load_in_4bit,
        load_in_8bit=args.load_in_8bit,
        cache_dir=args.cache_dir,
    )
    status = 0
    for inference_type, final, requests, meta in plans:
        checkpoint = checkpoint_path(final)
        if args.overwrite:
            checkpoint.unlink(missing_ok=True)
        records, stats = run_requests(llm, requests, meta, checkpoint, output_record, desc=inference_type.value)
        ordered = [records[r.id] for r in requests]
        failed = [r for r in ordered if r["status"] != "ok"]
        if failed:
            print(f"{inference_type.value}: {len(failed)} of {len(ordered)} generations failed (first: {failed[0]['error']})")
            print(f"checkpoint kept in {checkpoint}; rerun the same command to retry the failed ones")
            status = 1
            continue
        write_jsonl_atomic(final, [{k: r[k] for k in OUTPUT_FIELDS} for r in ordered])
        write_json_atomic(final.with_suffix(".run.json"), {
            "method": method, "model": model, "arguments": public_args(args), "stats": stats.as_dict(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        checkpoint.unlink(missing_ok=True)
        if not any(checkpoint.parent.iterdir()):
            checkpoint.parent.rmdir()
        print(
            f"{method} {args.training_type.value}/{inference_type.value}: {len(ordered)} responses "
            f"({stats.reused} resumed, {stats.ok} new) in {stats.seconds:.1f}s -> {final}"
        )
    return status
