"""Judge a test configuration against a base configuration: personalization and response quality, both orders.

Examples::

    # the paper's released BeaverTails outputs, judged by the embedded model (offline, no keys)
    python -m persona_tailoring.evaluation.run_judge --results_save_dir ../shared/data/paper-outputs \\
        --dataset_name BeaverTails --model_type_base dpo --training_type_base none --inference_type_base none \\
        --model_type_test dpo --training_type_test chosen --inference_type_test gold-chosen --limit 5

    # two explicit files, judged by the paper's judge on a vLLM server
    #   (vllm serve prometheus-eval/prometheus-7b-v2.0 --port 8000)
    python -m persona_tailoring.evaluation.run_judge --base_file base.jsonl --test_file test.jsonl \\
        --judge_model_type open_ai --judge_model_name prometheus-eval/prometheus-7b-v2.0 \\
        --base_url http://localhost:8000/v1 --merge_system_prompt --concurrency 32

    # any API model as judge (key in .env)
    python -m persona_tailoring.evaluation.run_judge --judge_model_type anthropic \\
        --judge_model_name claude-sonnet-4-5 --dataset_name BeaverTails --model_nickname llama-3.1-8b ...

A rerun of the same comparison resumes from its checkpoint; with another judge, generation setting, judge prompt
or other outputs it stops with a one-line error, since old and new verdicts would mix: ``--overwrite`` redoes it,
another ``--output_dir`` keeps both.

Then: ``python -m persona_tailoring.evaluation.win_rate --comparison_dir <output_dir>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from persona_core.arguments import (
    BackendArguments,
    DryRunArguments,
    GenerationArguments,
    LimitArguments,
    OverwriteArguments,
    positive,
)
from persona_core.cli import parse_args, public_args
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError, run_cli
from persona_core.llm import ModelType
from persona_tailoring.evaluation.configuration import (
    ComparisonArguments,
    Side,
    comparison_folder,
    resolve_sides,
)
from persona_tailoring.evaluation.judge import Metric

KEEP_BOTH = "--output_dir"


@dataclass
class JudgeArguments:
    """Which judge, on which rubrics, and how its prompts and retries are made."""

    judge_model_type: ModelType = field(default=ModelType.hf_chat, metadata={"help": "Judge backend."})
    judge_model_name: str = field(
        default=EMBEDDED_MODEL_NAME,
        metadata={
            "help": "Judge: prometheus-eval/prometheus-7b-v2.0 (paper), an API model, or a local folder."
        },
    )
    metrics: list[Metric] = field(
        default_factory=lambda: list(Metric), metadata={"help": "Rubrics to judge."}
    )
    task_instruction: str | None = field(
        default=None,
        metadata={"help": "What the models were asked to do (default: chosen by --dataset_name)."},
    )
    retry_temperature: float = field(
        default=1.0,
        metadata={"help": "Temperature of the one retry of an unparsable verdict (0 would repeat it)."},
    )
    merge_system_prompt: bool = field(
        default=False,
        metadata={
            "help": "Put Prometheus' system prompt into the user turn (for chat templates without a system role)."
        },
    )

    def check(self) -> None:
        positive(self, "retry_temperature", allow_zero=True)


@dataclass
class Arguments(
    OverwriteArguments,
    LimitArguments,
    DryRunArguments,
    BackendArguments,
    GenerationArguments,
    JudgeArguments,
    ComparisonArguments,
):
    # The judge writes feedback before its verdict: a larger budget, and no stop string cutting the feedback.
    max_tokens: int = field(
        default=1024, metadata={"help": "Maximum tokens of the judge's feedback and verdict."}
    )
    stop_token: list[str] = field(
        default_factory=list, metadata={"help": "Stop strings (none: the verdict comes last)."}
    )


def check_system_role(llm) -> None:
    """A local judge whose chat template refuses system messages (Mistral-style, e.g. Prometheus) needs merging."""
    tokenizer = getattr(llm, "tokenizer", None)
    if tokenizer is None or not getattr(llm, "chat", False):
        return
    try:
        tokenizer.apply_chat_template(
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            tokenize=False,
            add_generation_prompt=True,
        )
    except Exception as err:  # jinja raises its own TemplateError types
        raise UsageError(
            f"the judge's chat template rejects a system message ({str(err)[:80]}): pass --merge_system_prompt"
        ) from None


def judge_backend(args: Arguments):
    """The run's one judge backend; both passes (first attempts, retries) call it with their own settings."""
    from persona_core.llm import make_llm

    llm = make_llm(args.judge_model_type, args.judge_model_name, **args.backend_options())
    if not args.merge_system_prompt:
        check_system_role(llm)
    return llm


def load_pairs(args: Arguments, base: Side, test: Side):
    """The pairs to judge (the first ``--limit``) and a digest of all pairs' content, for the fingerprint."""
    from persona_core.runs import digest
    from persona_tailoring.evaluation.outputs import match_rows, read_outputs

    base_rows = read_outputs(base.path, base.has_persona, flag="base file")
    test_rows = read_outputs(test.path, test.has_persona, flag="test file")
    pairs = match_rows(base_rows, test_rows, f"base '{base.path.name}'", f"test '{test.path.name}'")
    content = digest([[p.id, p.question, p.persona, p.base.response, p.test.response] for p in pairs])
    pairs = pairs[: args.limit]
    if Metric.personalization in args.metrics and not any(p.persona for p in pairs):
        raise UsageError(
            "neither configuration carries a persona, so personalization cannot be judged: "
            "pass --metrics response_quality or a test configuration with personas"
        )
    return pairs, content


def fingerprint(args: Arguments, templates: dict, generation, pairs_digest: str) -> dict:
    """What determines the verdicts: judge, prompts, generation settings and the pairs' content.

    Not ``--metrics`` or ``--limit``: they choose which verdicts exist, and the checkpoint is keyed by request.
    """
    from persona_core.runs import digest

    return {
        "judge": {"model_type": args.judge_model_type.value, "model_name": args.judge_model_name},
        "prompts": digest(templates),
        "generation": {
            **dataclasses.asdict(generation),
            "retry_temperature": args.retry_temperature,
            "merge_system_prompt": args.merge_system_prompt,
        },
        "pairs": pairs_digest,
    }


def needs_judge(files, requests, meta, overwrite: bool) -> bool:
    """Whether any first attempt or retry is missing from the checkpoint (else no model is loaded at all)."""
    from persona_core.io import JsonlCheckpoint
    from persona_tailoring.evaluation.judge import retry_requests

    if overwrite:
        return True
    done = {i: r for i, r in JsonlCheckpoint(files.checkpoint).load().items() if r.get("status") == "ok"}
    retries, _ = retry_requests(requests, meta, done)
    return any(r.id not in done for r in [*requests, *retries])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    from persona_core import layout
    from persona_core.io import write_jsonl_atomic
    from persona_core.llm.base import LLM
    from persona_core.prompts import dataset_slug
    from persona_core.runner import run_requests
    from persona_core.runs import check_fingerprint, open_run, write_run_record
    from persona_core.secrets import load_env
    from persona_tailoring.evaluation import judge

    load_env()
    base, test = resolve_sides(args)
    files = layout.judge_files(comparison_folder(args, base, test))
    pairs, pairs_digest = load_pairs(args, base, test)
    task = args.task_instruction or judge.task_instruction(
        dataset_slug(args.dataset_name or test.path.parent.name)
    )
    requests, meta = judge.build_requests(pairs, args.metrics, judge.JudgeJob(task, args.merge_system_prompt))
    if args.dry_run:
        print(
            f"[dry run] {len(pairs)} pairs x {len(args.metrics)} metrics x 2 orders = {len(requests)} judge requests"
        )
        print(
            f"[dry run] base: {base.path}\n[dry run] test: {test.path}\n[dry run] results would go to {files.results}"
        )
        print(
            f"[dry run] first system prompt:\n{requests[0].system}\n[dry run] first judge prompt:\n{requests[0].prompt}"
        )
        return 0

    first_attempt = args.generation()
    retry = args.generation(temperature=args.retry_temperature)
    settings = fingerprint(args, judge.templates(task), first_attempt, pairs_digest)
    check_fingerprint(files, settings, args.overwrite, keep_both=KEEP_BOTH)  # a refused rerun loads no model
    # Built before the folder is taken, so a missing key or model leaves nothing behind. A finished comparison
    # loads no model: every verdict is in the checkpoint, so the bare ``LLM`` placeholder is never asked.
    needed = needs_judge(files, requests, meta, args.overwrite)
    llm = judge_backend(args) if needed else LLM(args.judge_model_name)
    identity = f"{args.judge_model_type.value}:{args.judge_model_name}"
    with open_run(files, settings, args.overwrite, keep_both=KEEP_BOTH):
        records, first = run_requests(
            llm, requests, meta, files.checkpoint, first_attempt, judge.finish_record, desc="judge"
        )
        retries, retry_meta = judge.retry_requests(requests, meta, records)
        retried, second = run_requests(
            llm, retries, retry_meta, files.checkpoint, retry, judge.finish_record, desc="judge retries"
        )
        records.update(retried)
        failed = [r for r in records.values() if r.get("status") != "ok"]
        stats = {"first_attempts": first.as_dict(), "retries": second.as_dict()}
        extra = {
            "base_file": str(base.path),
            "test_file": str(test.path),
            "judge": identity,
            "task_instruction": task,
            "pairs": len(pairs),
        }
        if failed:
            write_run_record(files, public_args(args), stats, **extra)
            print(f"judge: {len(failed)} of {len(records)} requests failed (first: {failed[0]['error']})")
            if any("role" in (r.get("error") or "").lower() for r in failed):
                print("the judge seems to reject the system role: rerun with --merge_system_prompt")
            print(f"checkpoint kept in {files.folder}; rerun the same command to retry the failed requests")
            return 1
        rows = judge.judgments(pairs, args.metrics, requests, records, task)
        invalid_first = sum(records[r.id]["verdict"] is None for r in requests)
        invalid_final = sum(row[o.value]["verdict"] is None for row in rows for o in judge.Order)
        verdicts = {
            "total": len(requests),
            "invalid_first_attempt": invalid_first,
            "invalid_after_retry": invalid_final,
        }
        write_jsonl_atomic(files.results, rows)
        write_run_record(files, public_args(args), stats, **extra, verdicts=verdicts)

    print(
        f"judge: {len(pairs)} pairs x {len(args.metrics)} metrics x 2 orders = {len(requests)} verdicts by {identity} "
        f"({first.reused} reused, {first.ok} new, {len(retries)} retried) in {first.seconds + second.seconds:.1f}s"
    )
    print(
        f"invalid verdicts: {invalid_first}/{len(requests)} on the first attempt, {invalid_final}/{len(requests)} "
        f"after one retry ({invalid_final / len(requests):.1%})"
    )
    for metric in args.metrics:
        counts = {
            o: sum(r["outcome"] == o for r in rows if r["metric"] == metric.value) for o in judge.OUTCOMES
        }
        print(f"{metric.value}: " + ", ".join(f"{o} {n}" for o, n in counts.items()))
    print(f"results: {files.results}\nrun record: {files.run_record}")
    print(f"next: python -m persona_tailoring.evaluation.win_rate --comparison_dir {files.folder}")
    return 0


if __name__ == "__main__":
    run_cli(main)
