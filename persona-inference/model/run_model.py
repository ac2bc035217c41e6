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
from dataclasses import dataclass, field
from enum import Enum

from persona_core.arguments import (
    BackendArguments,
    GenerationArguments,
    RunArguments,
    Verdict,
    positive,
    resolve_verdict,
    verdict_field,
)
from persona_core.cli import parse_args
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import run_cli
from persona_core.llm import ModelType, api_key, make_llm
from persona_core.protocol import ProtocolArguments
from persona_core.protocol import apply as apply_protocol
from persona_core.secrets import load_env
from persona_core.shards import ShardArguments
from persona_inference.model.arguments import (
    DataArguments,
    PartitionArguments,
    PrefsQuestion,
    ResultsArguments,
)
from persona_inference.model.experiment import load_inputs, run
from persona_inference.model.inference import PersonaInference
from persona_inference.model.persona_accuracy import PersonaAccuracy
from persona_inference.model.persona_prefs import PersonaPrefs


class PromptType(str, Enum):
    persona_inference = "persona_inference"
    persona_accuracy = "persona_accuracy"
    persona_prefs = "persona_prefs"


@dataclass
class Arguments(
    ProtocolArguments,
    RunArguments,
    ShardArguments,
    BackendArguments,
    GenerationArguments,
    ResultsArguments,
    PartitionArguments,
    DataArguments,
):
    model_name: str = field(
        default=EMBEDDED_MODEL_NAME,
        metadata={
            "help": "Model: a Hub id, a local folder, an API model name, or the embedded SmolLM2-135M-Instruct."
        },
    )
    model_nickname: str | None = field(
        default=None,
        metadata={"help": "Folder name for this model's results (default: a file-safe model name)."},
    )
    model_type: ModelType = field(default=ModelType.hf_chat, metadata={"help": "Backend."})
    experiments: list[PromptType] = field(
        default_factory=lambda: [PromptType.persona_inference],
        metadata={"help": "Experiments to run, in order.", "aliases": ["--prompt_types"]},
    )
    prompt_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of prompt templates (default: the built-in persona-inference/prompts)."},
    )
    persona_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Text each persona starts with, sent as the start of the answer where the backend allows it "
            "(hf_chat, vllm, anthropic, open_ai with --base_url). Default: 'The user is someone who prefers' for "
            "hf_chat and vllm (keeps small models on the persona form), 'The user is' otherwise. paper: 'The user "
            "is' (the authors' personas all start so)."
        },
    )
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
        metadata={
            "help": "Maximum new tokens of a judge's answer (persona_accuracy, persona_prefs); raise it for reasoning "
            "models. paper: 200 (one setting for every experiment)."
        },
    )

    prefs_question: PrefsQuestion = field(
        default=PrefsQuestion.better,
        metadata={
            "help": "persona_prefs (Figure 4): better (the paper's: which of the two personas is better, the "
            "personas alone) or more_common (whose needs are more common among people asking the prompt, shown)."
        },
    )
    min_tokens: int = field(default=0, metadata={"help": "Minimum new tokens (local models). paper: 5."})
    max_tokens: int = field(default=96, metadata={"help": "Maximum new tokens. paper: 200."})
    stop_token: list[str] = field(
        default_factory=lambda: ["\n"],
        metadata={"help": "Stop strings (default: a newline, one-sentence personas). paper: '\\nPrompt:'."},
    )
    verdict: Verdict | None = verdict_field("--model_type")

    def check(self) -> None:
        positive(self, "judge_max_tokens")
        self.verdict = resolve_verdict(self.verdict, self.model_type, "--model_type")


def experiments() -> dict:
    """The experiment units by name."""

    return {unit.name: unit for unit in (PersonaInference(), PersonaAccuracy(), PersonaPrefs())}


def main(argv: list[str] | None = None) -> int:
    argv = apply_protocol("persona_inference.model.run_model", argv)
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])

    load_env()
    if args.dry_run:
        api_key(args.model_type, args.base_url)  # a missing key is found now, not after the dry run
    # One backend for the whole invocation: persona inference and both judges share it (each call brings its own
    # generation settings), and a local model is loaded once, only when an experiment really generates.
    backend = functools.cache(lambda: make_llm(args.model_type, args.model_name, **args.backend_options()))
    units = experiments()
    inputs = load_inputs(args)
    status = 0
    for experiment in args.experiments:
        status = run(units[experiment.value], args, backend, inputs) or status
    return status


if __name__ == "__main__":
    run_cli(main)
