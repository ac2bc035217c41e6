"""The shape a persona-inference experiment has, and how each is declared to the stage driver.

An ``Experiment`` builds its requests (``plan``), finishes each record (``finish``), and summarizes the results
(``summarize``, ``report``); ``run`` declares it as a ``persona_core.stage.RequestStage`` and the driver does the
rest for all of them alike (fingerprinted run folder, generation, failure check, results and run record). The
data, the token counter and the templates are loaded once per invocation (``load_inputs``), for every experiment.
A dry run stops after building the requests. Functions take the argument groups they read, never the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.arguments import GenerationArguments
from persona_core.data import partition_range
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError
from persona_core.layout import StageFiles, pi_files, row_key
from persona_core.llm.base import LLM, GenerationConfig, Request, messages_for
from persona_core.preferences import fit_prompts, load_preferences, load_token_counter
from persona_core.prompts import load_template
from persona_core.runs import digest
from persona_core.shards import ShardArguments
from persona_core.stage import RequestStage, check_stage, run_stage
from persona_inference import PROMPT_DIR
from persona_inference.model.arguments import (
    DataArguments,
    ExperimentArguments,
    PartitionArguments,
    template_folder,
)


@dataclass
class Plan:
    """The requests of one experiment run, and what its fingerprint and run record add to the common ones."""

    requests: list[Request]
    meta: dict[str, dict]
    counted: str
    """What the requests are, for the dry run: '(12 rows x 2 sides)'."""
    fingerprint: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    record_model_input: bool = False
    """Record the full model input (the backend's rendering) as each record's ``prompt``."""


@dataclass(frozen=True)
class ResultsPlace:
    """Where one invocation's results live, ``{res_dir}/{model}/{inference_split}/{run_name}/`` of a partition;
    the judges find the personas they read in the same place."""

    res_dir: str
    inference_split: str
    run_name: str
    partition: str

    def files(self, model_folder: str, experiment: str) -> StageFiles:
        return pi_files(
            self.res_dir, model_folder, self.inference_split, self.run_name, experiment, self.partition
        )


@dataclass
class Inputs:
    """What every experiment of one invocation reads: the rows (loaded and fitted once) and each template."""

    dataset_name: str
    dataset: object
    rows: range
    templates: dict[str, tuple[str, Path]]


class Experiment:
    """One experiment of ``run_model``: a name (its results file, template folder), requests, records, summary."""

    name: str
    label: str

    def generation(self, settings: ExperimentArguments, generation: GenerationArguments) -> GenerationConfig:
        return generation.generation()

    def options(self, settings: ExperimentArguments) -> tuple[str, ...] | None:
        """The answers whose next-token probabilities are read instead of generating (probability verdicts)."""
        return None

    def plan(self, settings: ExperimentArguments, place: ResultsPlace, inputs: Inputs, template: str) -> Plan:
        raise NotImplementedError

    def finish(self, record: dict) -> dict:
        """Add the fields derived from the answer (the persona, the judge's choice)."""
        raise NotImplementedError

    def summarize(self, records: list[dict], template: str) -> dict:
        """The run record's summary fields, from the successful records."""
        raise NotImplementedError

    def report(self, records: list[dict], stats, summary: dict, llm: LLM) -> str:
        """What the console shows after a successful run."""
        raise NotImplementedError


def load_inputs(
    settings: ExperimentArguments,
    data: DataArguments,
    rows: PartitionArguments,
    limit: int | None,
    answer_tokens: int,
    cache_dir: str | None,
) -> Inputs:
    """The templates of the requested experiments and the rows to run, once for the whole invocation, after every
    check of the data (before any model is loaded).

    Rows in any supported format are read as text (``persona_core.preferences``); a bad row stops the run, or is
    skipped with ``--skip_bad_rows``. Prompts are fitted to the context (``fit_to_context``).
    """
    templates = {
        experiment.value: load_template(
            template_folder(experiment.value, settings.prefs_question),
            data.inference_split,
            settings.prompt_dir or PROMPT_DIR,
        )
        for experiment in settings.experiments
    }
    dataset = load_preferences(
        data.dataset_name, data.inference_split, data.split, cache_dir, data.columns(), data.skip_bad_rows
    )
    texts = {name: text for name, (text, _) in templates.items()}
    fit_to_context(dataset, settings, rows.max_prompt_tokens, answer_tokens, cache_dir, texts)
    selected = partition_range(rows.partition, len(dataset))[:limit]
    if len(selected) == 0:
        raise UsageError(
            f"partition '{rows.partition.value}' of '{data.dataset_name}' has no rows: use a larger dataset"
        )
    return Inputs(data.dataset_name, dataset, selected, templates)


def fit_to_context(
    dataset,
    settings: ExperimentArguments,
    max_prompt_tokens: int | None,
    answer_tokens: int,
    cache_dir: str | None,
    templates: dict[str, str],
) -> None:
    """Cut prompts to the context of a local model (or to ``--max_prompt_tokens``), leaving room for each
    experiment's template (``templates``, by experiment name), its answer (``answer_tokens``) and the personas a
    judge reads; a cut prompt keeps its row's ids, so judges with another context still find their personas."""
    local = settings.model_type.value in ("hf_chat", "vllm")  # models whose tokenizer and context are at hand
    if max_prompt_tokens is None and not local:
        return
    counter = load_token_counter(settings.model_name if local else EMBEDDED_MODEL_NAME, cache_dir)
    room = {  # what each experiment adds to its template and a row: its answer, the personas it shows
        "persona_inference": answer_tokens,
        "persona_accuracy": settings.judge_max_tokens + answer_tokens,
        "persona_prefs": settings.judge_max_tokens + 2 * answer_tokens,
    }
    reserve = max((counter.count([text])[0] + room[name] for name, text in templates.items()), default=0)
    fit_prompts(dataset, counter, max_prompt_tokens, reserve)


def data_digest(dataset) -> str:
    """The whole dataset's content (not only the rows run: ``--limit`` and a resume may cover more of it later),
    and how its prompts were cut to fit, so another cut is another run (nothing cut: the digest of the row keys)."""
    keys = [row_key(row) for row in dataset]
    return digest([*keys, dataset.cut] if dataset.cut else keys)


def fingerprint(
    experiment: Experiment,
    settings: ExperimentArguments,
    weights: dict,
    plan: Plan,
    template: str,
    dataset,
    generation: GenerationConfig,
) -> dict:
    """What determines the outputs: model, template, data, generation settings (never batch size or concurrency)."""
    return {
        "experiment": experiment.name,
        "model": {
            "model_name": settings.model_name,
            "model_type": settings.model_type.value,
            "weights": weights,
        },
        "template": digest(template),
        "data": data_digest(dataset),
        "generation": dataclasses.asdict(generation),
        **plan.fingerprint,
    }


def declare(
    experiment: Experiment,
    settings: ExperimentArguments,
    place: ResultsPlace,
    generation_settings: GenerationArguments,
    weights: dict,
    inputs: Inputs,
) -> tuple[RequestStage, Plan, Path]:
    """The experiment as a stage of the driver: its files, requests, fingerprint, records and summary."""
    template, template_path = inputs.templates[experiment.name]
    plan = experiment.plan(settings, place, inputs, template)
    generation = experiment.generation(settings, generation_settings)
    stage = RequestStage(
        label=experiment.label,
        files=place.files(settings.model_folder, experiment.name),
        requests=plan.requests,
        meta=plan.meta,
        fingerprint=fingerprint(experiment, settings, weights, plan, template, inputs.dataset, generation),
        generation=generation,
        finish=experiment.finish,
        summarize=lambda rows, _: experiment.summarize(rows, template),
        options=experiment.options(settings),
        model=f"{settings.model_name} ({settings.model_type.value})",
        prompts=digest(template),
        record={"experiment": experiment.name, "template": str(template_path), **plan.record},
        render_prompts=plan.record_model_input,
    )
    return stage, plan, template_path


def dry_run(stage: RequestStage, plan: Plan, template_path: Path) -> None:
    """What the stage would send and where its results would go; nothing runs."""
    first = "\n".join(
        f"[{m['role']}] {m['content']}" for m in messages_for(plan.requests[0], with_prefill=True)
    )
    print(f"[dry run] template: {template_path}\n[dry run] {len(plan.requests)} requests {plan.counted}")
    print(f"[dry run] results would go to {stage.files.results}\n[dry run] first prompt:\n{first}")


def run(
    experiment: Experiment,
    stage: RequestStage,
    backend: Callable[[], LLM],
    overwrite: bool,
    shards: ShardArguments,
    arguments: dict,
    model_name: str,
) -> int:
    """Run the declared ``stage``; ``backend()`` gives the invocation's one backend (built on first use);
    ``arguments`` go into the run record."""
    check_stage(stage, overwrite, shards)  # a refused rerun stops before a model loads
    outcome = run_stage(stage, backend, overwrite, shards, arguments)
    if outcome.status != "done":
        return 0 if outcome.ok else 1
    llm = LLM(model_name) if shards.merge_shards else backend()
    print(f"{experiment.label}: {experiment.report(outcome.records, outcome.stats, outcome.summary, llm)}")
    print(f"results: {stage.files.results}\nrun record: {outcome.run_record}")
    return 0
