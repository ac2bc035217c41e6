"""Generation from persona-tailored models: a small public API, and the ``infer`` stage of ``run_model``.

Public API (for benchmarks, chat scripts, judges)::

    from persona_tailoring.model.generate import load_generator, generate_texts
    from persona_tailoring.model.templates import PromptStyle, TrainingType

    llm = load_generator("models/persona-tailoring/Sample/smollm2-135m/sft_chosen/merged")
    style = PromptStyle.for_run(TrainingType.chosen, "Sample")
    prompt = style.model_input("How do I boil an egg?", "The user is a beginner cook.")
    texts = generate_texts(llm, [prompt], tailored_generation(max_tokens=128))

``load_generator(model, GeneratorArguments(backend=Backend.open_ai, base_url="http://localhost:8000/v1"))`` sends
the same raw text to an OpenAI-compatible completions endpoint instead (e.g. ``vllm serve <merged folder>``);
``Backend.vllm`` runs vLLM in process, and with ``--no_merge`` serves the trained LoRA adapter on its base model.

The infer stage writes one JSON line per test row to
``{results_save_dir}/{dataset_name}/{model_nickname}/{method}_Persona(training_type=T, inference_type=I).jsonl``:
``id`` (stable row id), ``index`` (row number in the test split), ``prompt`` (the test prompt as in the
dataset), ``persona`` (the persona given, '' for none), ``response`` (the generation, primer included, cut at
the stop strings) and ``model_input`` (the exact text the model continued). The paper's released outputs are
JSON arrays whose ``prompt`` is the model input; ``persona_core.io.read_records`` reads both. Checkpoints, run
records and fingerprints sit in the hidden ``.runs/`` folder beside the outputs (``persona_core.layout.pt_files``).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

from persona_core import layout
from persona_core.errors import UsageError
from persona_core.llm import make_llm
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request
from persona_core.runs import digest, model_identity
from persona_core.shards import ShardArguments
from persona_core.stage import RequestStage, check_stage, describe, run_stage
from persona_tailoring.model import templates
from persona_tailoring.model.arguments import (
    Backend,
    GeneratorArguments,
    InferenceArguments,
    TailoredGenerationArguments,
    TailoringArguments,
)
from persona_tailoring.model.train import load_tailoring_splits, model_dirs, pick_split

KEEP_BOTH = "--results_save_dir (or --model_nickname)"


BACKEND_MODEL_TYPES = {Backend.hf: "hf_chat", Backend.vllm: "vllm", Backend.open_ai: "open_ai"}


def load_generator(model: str, options: GeneratorArguments | None = None, adapter: str | None = None) -> LLM:
    """A backend that continues raw text (no chat template), stopping at ``\\nPrompt:`` and end of sequence.

    ``model``: a local folder (e.g. a merged model), a Hub id, or the embedded model's name; with
    ``Backend.open_ai`` it is the name the server serves (``vllm serve`` uses the folder path). ``adapter``: a LoRA
    folder that ``Backend.vllm`` serves on top of ``model`` (its base).
    """
    options = options or GeneratorArguments()
    model_type = BACKEND_MODEL_TYPES[options.backend]
    llm = make_llm(model_type, model, chat=False, adapter=adapter, **options.backend_options())
    if options.backend == Backend.hf:
        stop_at_tokenizer_eos(llm.model, llm.tokenizer)
    return llm


def stop_at_tokenizer_eos(model, tokenizer) -> None:
    """Training appends the tokenizer's eos; make sure generation stops there even if the model config names another."""
    eos = model.generation_config.eos_token_id
    eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        model.generation_config.eos_token_id = [*eos_ids, tokenizer.eos_token_id]


def generate_completions(
    llm: LLM, prompts: list[str], generation: GenerationConfig, prefills: list[str] | None = None
) -> list[Completion]:
    """Continue each prompt (in batches or concurrently); completions in prompt order, ``text`` includes the prefill."""
    prefills = prefills or [""] * len(prompts)
    requests = [
        Request(id=str(i), prompt=p, prefill=f)
        for i, (p, f) in enumerate(zip(prompts, prefills, strict=True))
    ]
    results: dict[str, Completion] = {}
    llm.generate(requests, lambda completion: results.__setitem__(completion.id, completion), generation)
    return [results[r.id] for r in requests]


def generate_texts(
    llm: LLM, prompts: list[str], generation: GenerationConfig, prefills: list[str] | None = None
) -> list[str]:
    """Like ``generate_completions`` but plain stripped strings; a failed request raises RuntimeError."""
    completions = generate_completions(llm, prompts, generation, prefills)
    failed = [c for c in completions if not c.ok]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(completions)} generations failed (first: {failed[0].error})"
        )
    return [c.text.strip() for c in completions]


def build_requests(test, personas: list[str], style: templates.PromptStyle, demonstrations: str = ""):
    """One request per test row (id: row number + content digest) and the metadata kept with its output."""
    requests, meta = [], {}
    for index, (row, persona) in enumerate(zip(test, personas, strict=True)):
        row_id = f"{index:05d}-{layout.row_key(row)}"
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


def inference_adapter(
    tailoring: TailoringArguments, inference: InferenceArguments, generator: GeneratorArguments, method: str
) -> Path | None:
    """With ``--no_merge``, the method's trained LoRA adapter (served on its base model); else None."""
    if not generator.no_merge or inference.model_path or method == "fewshot":
        return None
    adapter = model_dirs(tailoring, method).adapter
    if not (adapter / layout.ADAPTER_CONFIG_FILE).exists():
        raise UsageError(f"no trained {method} adapter in {adapter}: run --stage train first (same flags)")
    return adapter


def inference_model(
    tailoring: TailoringArguments,
    inference: InferenceArguments,
    generator: GeneratorArguments,
    method: str,
    dry_run: bool = False,
) -> str:
    """What to generate from: --model_path, else the base model (few-shot), the merged model of the method, or with
    --no_merge the base its adapter was trained on."""
    if inference.model_path:
        return inference.model_path
    if method == "fewshot":
        return tailoring.base_model_name
    adapter = inference_adapter(tailoring, inference, generator, method)
    if adapter is not None:
        import json

        return json.loads((adapter / layout.ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))[
            "base_model_name_or_path"
        ]
    merged = model_dirs(tailoring, method).merged
    if (
        generator.backend != Backend.open_ai
        and not dry_run
        and not (merged / layout.MODEL_CONFIG_FILE).exists()
    ):
        raise UsageError(
            f"no merged {method} model in {merged}: run --stage train and --stage merge first (same flags)"
        )
    return str(merged)


def generation_fingerprint(
    model: str,
    options: GeneratorArguments,
    requests: list[Request],
    generation: GenerationConfig,
    adapter: Path | None = None,
) -> dict:
    """What determines the outputs; a trained model is identified by its own fingerprint (what made its weights)."""
    inputs = [(r.id, r.prompt, r.prefill) for r in requests]
    return {
        "model": model_identity(model),
        **({"adapter": model_identity(str(adapter))} if adapter is not None else {}),
        "backend": options.backend.value,
        "weights": options.weight_options(),
        "inputs": digest(inputs),
        "generation": asdict(generation),
    }


def final_fields(record: dict) -> dict:
    """What an output file keeps of a record (the documented fields)."""
    return {k: record[k] for k in layout.PT_OUTPUT_FIELDS}


@dataclass
class InferPlan:
    """The infer stage of one method, known before any model loads: what it generates from, and one stage per
    inference type for the driver."""

    model: str
    adapter: Path | None
    stages: list[RequestStage]
    name: str
    """Method and training type, as the summary lines name the run."""
    dry_run: dict
    """What ``--dry_run`` lists besides each stage's requests: what it reads and its settings."""


def plan_infer(
    tailoring: TailoringArguments,
    inference: InferenceArguments,
    generator: GeneratorArguments,
    generation: TailoredGenerationArguments,
    method: str,
    limit: int | None = None,
    dry_run: bool = False,
) -> InferPlan:
    """Test rows, prompts, the model's identity and one ``RequestStage`` per inference type; loads no model."""
    where, dataset_name = tailoring.hf_dataset_name, tailoring.dataset_name
    splits = load_tailoring_splits(where, dataset_name, generator.cache_dir)
    test = pick_split(splits, "test", where, limit)
    style = tailoring.style()
    demonstrations = ""
    if method == "fewshot":
        fewshot = pick_split(splits, "fewshot", where)
        demonstrations = templates.fewshot_demonstrations(fewshot, tailoring.training_type, style)
    model = inference_model(tailoring, inference, generator, method, dry_run)
    adapter = inference_adapter(tailoring, inference, generator, method)
    served = model if generator.backend != Backend.open_ai else (inference.server_model_name or model)
    generation_config = generation.generation()
    run = (
        tailoring.results_save_dir,
        dataset_name,
        tailoring.model_nickname,
        method,
        tailoring.training_type.value,
    )
    stages = []
    for inference_type in inference.inference_type:
        final = layout.pt_output_path(*run, inference_type.value)
        personas = templates.inference_personas(
            test, inference_type, dataset_name, "test", inference.system_persona
        )
        requests, meta = build_requests(test, personas, style, demonstrations)
        fingerprint = generation_fingerprint(served, generator, requests, generation_config, adapter)
        stages.append(
            RequestStage(
                label=inference_type.value,
                files=layout.pt_files(final),
                requests=requests,
                meta=meta,
                fingerprint=fingerprint,
                generation=generation_config,
                finish=output_record,
                final_record=final_fields,
                model=served,
                prompts=fingerprint["inputs"],
                record={"method": method},
                keep_both=KEEP_BOTH,
                reuse_finished=True,
            )
        )
    reads = [where, served]
    settings = {"model": served, "backend": generator.backend.value, "generation": asdict(generation_config)}
    name = f"{method} {tailoring.training_type.value}"
    return InferPlan(served, adapter, stages, name, {"reads": reads, "settings": settings})


def infer(
    plan: InferPlan,
    generator: GeneratorArguments,
    shards: ShardArguments,
    overwrite: bool = False,
    dry_run: bool = False,
    arguments: dict | None = None,
) -> int:
    """Generate every planned inference type (``plan_infer``) through the stage driver, one backend for all.
    ``arguments`` (the command line's groups, ``public_args``) go into the run records."""
    if dry_run:
        for stage in plan.stages:
            print(describe(stage, **plan.dry_run))
        return 0
    pending = [stage for stage in plan.stages if check_stage(stage, overwrite, shards)]
    adapter = None if plan.adapter is None else str(plan.adapter)
    backend = functools.cache(lambda: load_generator(plan.model, generator, adapter=adapter))
    status = 0
    for stage in pending:
        outcome = run_stage(stage, backend, overwrite, shards, arguments or {})
        if outcome.status == "done":
            stats = outcome.stats
            done = f"{stats.reused} resumed, {stats.ok} new, in {stats.seconds:.1f}s"
            if shards.merge_shards:
                done = f"assembled from {shards.num_shards} shards"
            print(
                f"{plan.name}/{stage.label}: {len(outcome.records)} responses ({done}) -> {stage.files.results}"
            )
        status = status if outcome.ok else 1
    return status
