"""Persona inference and its evaluations: persona_inference, persona_accuracy, persona_prefs.

Examples::

    # persona inference on the embedded model and the sample data (offline, no keys)
    python -m persona_inference.model.run_model --run_name demo

    # the paper's BeaverTails data with GPT-4o-mini (OPENAI_API_KEY in .env), 16 requests at a time
    python -m persona_inference.model.run_model --model_type open_ai --model_name gpt-4o-mini \\
        --dataset_name nbalepur/persona-inference --inference_split BeaverTails --concurrency 16

    # any OpenAI-compatible server (vLLM, Ollama, llama.cpp)
    python -m persona_inference.model.run_model --model_type open_ai --base_url http://localhost:8000/v1 \\
        --model_name meta-llama/Llama-3.1-8B-Instruct

A rerun under the same ``--run_name`` resumes from its checkpoint; with another template, generation setting,
model or dataset it stops with a one-line error, since old and new results would mix: ``--overwrite`` redoes it.
"""

from __future__ import annotations

import functools

from persona_core.arguments import BackendArguments, RunArguments
from persona_core.cli import parse, public_args
from persona_core.errors import run_cli
from persona_core.llm import api_key, make_llm
from persona_core.protocol import ProtocolArguments
from persona_core.protocol import apply as apply_protocol
from persona_core.secrets import load_env
from persona_core.shards import ShardArguments
from persona_inference.model.arguments import (
    DataArguments,
    ExperimentArguments,
    PartitionArguments,
    PersonaGenerationArguments,
    PromptType,
    ResultsArguments,
)
from persona_inference.model.experiment import ResultsPlace, declare, dry_run, load_inputs, run
from persona_inference.model.inference import PersonaInference
from persona_inference.model.persona_accuracy import PersonaAccuracy
from persona_inference.model.persona_prefs import PersonaPrefs

__all__ = ["GROUPS", "PromptType", "experiments", "main"]

GROUPS = (
    ProtocolArguments,
    RunArguments,
    ShardArguments,
    BackendArguments,
    PersonaGenerationArguments,
    ResultsArguments,
    DataArguments,
    PartitionArguments,
    ExperimentArguments,
)


def experiments() -> dict:
    """The experiment units by name."""
    return {unit.name: unit for unit in (PersonaInference(), PersonaAccuracy(), PersonaPrefs())}


def main(argv: list[str] | None = None) -> int:
    argv = apply_protocol("persona_inference.model.run_model", argv)
    groups = parse(GROUPS, argv, description=__doc__.split("\n\n")[0])
    _, runs, shards, backend_args, generation, results, data, rows, settings = groups
    load_env()
    if runs.dry_run:
        api_key(
            settings.model_type, backend_args.base_url
        )  # a missing key is found now, not after the dry run
    # One backend for the whole invocation: persona inference and both judges share it (each call brings its own
    # generation settings), and a local model is loaded once, only when an experiment really generates.
    backend = functools.cache(
        lambda: make_llm(settings.model_type, settings.model_name, **backend_args.backend_options())
    )
    inputs = load_inputs(settings, data, rows, runs.limit, generation.max_tokens, backend_args.cache_dir)
    place = ResultsPlace(results.res_dir, data.inference_split, runs.run_name, rows.partition.value)
    weights = backend_args.weight_options()
    units = experiments()
    status = 0
    for name in settings.experiments:
        experiment = units[name.value]
        stage, plan, template_path = declare(experiment, settings, place, generation, weights, inputs)
        if runs.dry_run:
            dry_run(stage, plan, template_path)
            continue
        arguments = public_args(*groups)
        status = (
            run(experiment, stage, backend, runs.overwrite, shards, arguments, settings.model_name) or status
        )
    return status


if __name__ == "__main__":
    run_cli(main)
