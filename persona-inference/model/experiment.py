"""The one sequence every persona-inference experiment runs, and the shape an experiment has.

An ``Experiment`` builds its requests (``plan``), finishes each record (``finish``), and summarizes the results
(``summarize``, ``report``); ``run`` does the rest for all of them alike: load the rows, build the requests, open
the run folder under its fingerprint, generate, refuse to write results while any request failed, write the
results and the run record, and print the summary. A dry run stops after building the requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from persona_core.data import partition_range
from persona_core.errors import UsageError
from persona_core.layout import nickname, pi_files, row_key
from persona_core.llm.base import LLM, GenerationConfig, Request, messages_for
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

    def template_folder(self, args) -> str:
        """The folder of this experiment's templates in the prompt folder."""
        return template_folder(self.name, args.prefs_question)

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


def model_folder(args) -> str:
    """The folder under ``--res_dir`` of this run's model: ``--model_nickname``, else a file-safe model name."""
    return args.model_nickname or nickname(args.model_name)


def load_rows(args):
    """The preference rows and the row range to run, after every check of the data (before any model is loaded).

    Rows in any supported format are read as text (``persona_core.preferences``); a bad row stops the run, or is
    skipped with ``--skip_bad_rows``. Prompts are fitted to the context of a local model (or to
    ``--max_prompt_tokens``), leaving room for each experiment's template, its answer and the personas a judge
    reads; a cut prompt keeps its row's ids, so judges with another context still find their personas.
    """
    from persona_core.preferences import fit_prompts, load_preferences, load_token_counter

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
        from persona_core.embedded import EMBEDDED_MODEL_NAME
        from persona_core.prompts import load_template
        from persona_inference import PROMPT_DIR

        counter = load_token_counter(args.model_name if local else EMBEDDED_MODEL_NAME, args.cache_dir)
        room = {  # what each experiment adds to its template and a row: its answer, the personas it shows
            "persona_inference": args.max_tokens,
            "persona_accuracy": args.judge_max_tokens + args.max_tokens,
            "persona_prefs": args.judge_max_tokens + 2 * args.max_tokens,
        }
        reserve = 0
        for experiment in args.experiments:
            try:
                template, _ = load_template(
                    template_folder(experiment.value, args.prefs_question),
                    args.inference_split,
                    args.prompt_dir or PROMPT_DIR,
                )
            except UsageError:  # run() names the missing template itself
                continue
            reserve = max(reserve, counter.count([template])[0] + room[experiment.value])
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
    from persona_core.runs import digest

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


def run(experiment: Experiment, args, backend: Callable[[], LLM]) -> int:
    """Run ``experiment`` with ``args``; ``backend()`` gives the run's one backend (built on first use)."""
    from persona_core.cli import public_args
    from persona_core.io import write_jsonl_atomic
    from persona_core.prompts import load_template
    from persona_core.runner import RunStats, run_requests
    from persona_core.runs import check_fingerprint, open_run, write_run_record
    from persona_core.shards import assemble, missing_shards, this_shard, unfinished
    from persona_inference import PROMPT_DIR

    dataset, rows = load_rows(args)
    template, template_path = load_template(
        experiment.template_folder(args), args.inference_split, args.prompt_dir or PROMPT_DIR
    )
    plan = experiment.plan(args, dataset, rows, template)
    files = pi_files(
        args.res_dir,
        model_folder(args),
        args.inference_split,
        args.run_name,
        experiment.name,
        args.partition.value,
    )
    generation = experiment.generation(args)
    if args.dry_run:
        first = "\n".join(
            f"[{m['role']}] {m['content']}" for m in messages_for(plan.requests[0], with_prefill=True)
        )
        print(f"[dry run] template: {template_path}\n[dry run] {len(plan.requests)} requests {plan.counted}")
        print(f"[dry run] results would go to {files.results}\n[dry run] first prompt:\n{first}")
        return 0
    settings = fingerprint(experiment, args, plan, template, dataset, generation)
    own_files, own_requests = this_shard(files, plan.requests, args)  # everything, unless --num_shards
    if args.merge_shards:
        if missing_shards(files, args):
            raise UsageError(f"cannot merge yet: {unfinished(files, args)}")
        llm, stats = LLM(args.model_name), RunStats(total=len(plan.requests))
    else:
        check_fingerprint(own_files, settings, args.overwrite)  # a refused rerun stops before a model loads
        llm = backend()  # before the run folder exists: a missing key or model leaves no files behind
        if plan.record_model_input:
            for request in own_requests:
                plan.meta[request.id]["prompt"] = llm.render(request)
        with open_run(own_files, settings, args.overwrite):
            records, stats = run_requests(
                llm,
                own_requests,
                plan.meta,
                own_files.checkpoint,
                generation,
                experiment.finish,
                desc=experiment.label,
                options=experiment.options(args),
            )
            ordered = [records[r.id] for r in own_requests]
            summary = experiment.summarize([r for r in ordered if r["status"] == "ok"], template)
            extra = {"experiment": experiment.name, "template": str(template_path), **plan.record, **summary}
            run_record = write_run_record(own_files, public_args(args), stats.as_dict(), **extra)
            failed = [r for r in ordered if r["status"] != "ok"]
            if failed:
                print(
                    f"{experiment.label}: {len(failed)} of {len(ordered)} requests failed "
                    f"(first: {failed[0]['error']})"
                )
                print(
                    f"checkpoint kept in {own_files.folder}; rerun the same command to retry the failed requests"
                )
                return 1
            write_jsonl_atomic(own_files.results, ordered)
    if args.sharded:
        records = assemble(files, plan.requests, settings, args)
        if records is None:
            print(
                f"{experiment.label}: shard {args.shard_index} done ({len(own_requests)} requests); "
                f"{unfinished(files, args)}"
            )
            return 0
        ordered = [records[r.id] for r in plan.requests]
        summary = experiment.summarize(ordered, template)
        extra = {"experiment": experiment.name, "template": str(template_path), **plan.record, **summary}
        run_record = write_run_record(
            files, public_args(args), stats.as_dict(), shards=args.num_shards, **extra
        )
        write_jsonl_atomic(files.results, ordered)
    print(f"{experiment.label}: {experiment.report(ordered, stats, summary, llm)}")
    print(f"results: {files.results}\nrun record: {run_record}")
    return 0
