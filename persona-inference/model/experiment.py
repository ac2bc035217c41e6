"""The shape a persona-inference experiment has, and how each is declared to the stage driver.

An ``Experiment`` builds its requests (``plan``), finishes each record (``finish``), and summarizes the results
(``summarize``, ``report``); ``run`` declares it as a ``persona_core.stage.RequestStage`` and the driver does the
rest for all of them alike (fingerprinted run folder, generation, failure check, results and run record). The
data, the token counter and the templates are loaded once per invocation (``load_inputs``), for every experiment.
A dry run stops after building the requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.cli import public_args
from persona_core.data import partition_range
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError
from persona_core.layout import nickname, pi_files, row_key
from persona_core.llm.base import LLM, GenerationConfig, Request, messages_for
from persona_core.preferences import fit_prompts, load_preferences, load_token_counter
from persona_core.prompts import load_template
from persona_core.runs import digest
from persona_core.stage import RequestStage, check_stage, run_stage
from persona_inference import PROMPT_DIR
from persona_inference.model.arguments import template_folder


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


class Experiment:
    """One experiment of ``run_model``: a name (its results file, template folder), requests, records, summary."""

    name: str
    label: str

    def generation(self, args) -> GenerationConfig:
        return args.generation()

    def options(self, args) -> tuple[str, ...] | None:
        """The answers whose next-token probabilities are read instead of generating (probability verdicts)."""
        return None

    def plan(self, args, dataset, rows: range, template: str) -> Plan:
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


def model_folder(model_nickname: str | None, model_name: str) -> str:
    """The folder under ``--res_dir`` of this run's model: ``--model_nickname``, else a file-safe model name."""
    return model_nickname or nickname(model_name)


@dataclass
class Inputs:
    """What every experiment of one invocation reads: the rows (loaded and fitted once) and each template."""

    dataset: object
    rows: range
    templates: dict[str, tuple[str, Path]]


def load_inputs(args) -> Inputs:
    """The templates of the requested experiments and the rows, once for the whole invocation."""
    templates = {
        experiment.value: load_template(
            template_folder(experiment.value, args.prefs_question),
            args.inference_split,
            args.prompt_dir or PROMPT_DIR,
        )
        for experiment in args.experiments
    }
    dataset, rows = load_rows(args, {name: text for name, (text, _) in templates.items()})
    return Inputs(dataset, rows, templates)


def load_rows(args, templates: dict[str, str] | None = None):
    """The preference rows and the row range to run, after every check of the data (before any model is loaded).

    Rows in any supported format are read as text (``persona_core.preferences``); a bad row stops the run, or is
    skipped with ``--skip_bad_rows``. Prompts are fitted to the context of a local model (or to
    ``--max_prompt_tokens``), leaving room for each experiment's template (``templates``: by experiment name, by
    default the requested experiments' own), its answer and the personas a judge reads; a cut prompt keeps its
    row's ids, so judges with another context still find their personas.
    """
    dataset = load_preferences(
        args.dataset_name,
        args.inference_split,
        args.split,
        args.cache_dir,
        args.columns(),
        args.skip_bad_rows,
    )
    local = args.model_type.value in ("hf_chat", "vllm")  # models whose tokenizer and context are at hand
    if args.max_prompt_tokens is not None or local:
        if templates is None:
            templates = {}
            for experiment in args.experiments:
                try:
                    templates[experiment.value], _ = load_template(
                        template_folder(experiment.value, args.prefs_question),
                        args.inference_split,
                        args.prompt_dir or PROMPT_DIR,
                    )
                except UsageError:  # the run names the missing template itself
                    continue
        counter = load_token_counter(args.model_name if local else EMBEDDED_MODEL_NAME, args.cache_dir)
        room = {  # what each experiment adds to its template and a row: its answer, the personas it shows
            "persona_inference": args.max_tokens,
            "persona_accuracy": args.judge_max_tokens + args.max_tokens,
            "persona_prefs": args.judge_max_tokens + 2 * args.max_tokens,
        }
        reserve = max((counter.count([text])[0] + room[name] for name, text in templates.items()), default=0)
        fit_prompts(dataset, counter, args.max_prompt_tokens, reserve)
    rows = partition_range(args.partition, len(dataset))
    if args.limit is not None:
        rows = rows[: args.limit]
    if len(rows) == 0:
        raise UsageError(
            f"partition '{args.partition.value}' of '{args.dataset_name}' has no rows: use a larger dataset"
        )
    return dataset, rows


def data_digest(dataset) -> str:
    """The whole dataset's content (not only the rows run: ``--limit`` and a resume may cover more of it later),
    and how its prompts were cut to fit, so another cut is another run (nothing cut: the digest of the row keys)."""
    from persona_core.runs import digest

    keys = [row_key(row) for row in dataset]
    return digest([*keys, dataset.cut] if dataset.cut else keys)


def fingerprint(
    experiment: Experiment, args, plan: Plan, template: str, dataset, generation: GenerationConfig
) -> dict:
    """What determines the outputs: model, template, data, generation settings (never batch size or concurrency)."""
    return {
        "experiment": experiment.name,
        "model": {
            "model_name": args.model_name,
            "model_type": args.model_type.value,
            "weights": args.weight_options(),
        },
        "template": digest(template),
        "data": data_digest(dataset),
        "generation": dataclasses.asdict(generation),
        **plan.fingerprint,
    }


def declare(experiment: Experiment, args, inputs: Inputs) -> tuple[RequestStage, Plan, Path]:
    """The experiment as a stage of the driver: its files, requests, fingerprint, records and summary."""
    template, template_path = inputs.templates[experiment.name]
    plan = experiment.plan(args, inputs.dataset, inputs.rows, template)
    files = pi_files(
        args.res_dir,
        model_folder(args.model_nickname, args.model_name),
        args.inference_split,
        args.run_name,
        experiment.name,
        args.partition.value,
    )
    generation = experiment.generation(args)
    stage = RequestStage(
        label=experiment.label,
        files=files,
        requests=plan.requests,
        meta=plan.meta,
        fingerprint=fingerprint(experiment, args, plan, template, inputs.dataset, generation),
        generation=generation,
        finish=experiment.finish,
        summarize=lambda rows, _: experiment.summarize(rows, template),
        options=experiment.options(args),
        model=f"{args.model_name} ({args.model_type.value})",
        prompts=digest(template),
        record={"experiment": experiment.name, "template": str(template_path), **plan.record},
        render_prompts=plan.record_model_input,
    )
    return stage, plan, template_path


def run(experiment: Experiment, args, backend: Callable[[], LLM], inputs: Inputs) -> int:
    """Run ``experiment`` on ``inputs``; ``backend()`` gives the invocation's one backend (built on first use)."""
    stage, plan, template_path = declare(experiment, args, inputs)
    if args.dry_run:
        first = "\n".join(
            f"[{m['role']}] {m['content']}" for m in messages_for(plan.requests[0], with_prefill=True)
        )
        print(f"[dry run] template: {template_path}\n[dry run] {len(plan.requests)} requests {plan.counted}")
        print(f"[dry run] results would go to {stage.files.results}\n[dry run] first prompt:\n{first}")
        return 0
    check_stage(stage, args.overwrite, args)  # a refused rerun stops before a model loads
    outcome = run_stage(stage, backend, args.overwrite, args, public_args(args))
    if outcome.status != "done":
        return 0 if outcome.ok else 1
    llm = LLM(args.model_name) if args.merge_shards else backend()
    print(f"{experiment.label}: {experiment.report(outcome.records, outcome.stats, outcome.summary, llm)}")
    print(f"results: {stage.files.results}\nrun record: {outcome.run_record}")
    return 0
