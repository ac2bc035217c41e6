"""Judge test configurations against a base configuration: personalization and response quality, both orders.

Examples::

    # the paper's BeaverTails grid from its released outputs (DPO with and without persona training, gold and
    # retrieved personas, each against the no-persona baseline), judged by the embedded model (offline, no keys)
    python -m persona_tailoring.evaluation.run_judge --results_save_dir ../shared/data/paper-outputs \\
        --dataset_name BeaverTails --model_type_base dpo --training_type_base none --inference_type_base none \\
        --model_type_test dpo --training_type_test none chosen --inference_type_test gold-chosen retr-chosen \\
        --limit 20

    # two explicit test files against one base, judged by the paper's judge on a vLLM server
    #   (python -m vllm.entrypoints.openai.api_server --model prometheus-eval/prometheus-7b-v2.0 --port 8000)
    python -m persona_tailoring.evaluation.run_judge --base_file base.jsonl --test_file a.jsonl b.jsonl \\
        --judge_model_type open_ai --judge_model_name prometheus-eval/prometheus-7b-v2.0 \\
        --base_url http://localhost:8000/v1 --merge_system_prompt --verdict probability --concurrency 32

    # any API model as judge (key in .env); text verdicts, as the API gives no token probabilities
    python -m persona_tailoring.evaluation.run_judge --judge_model_type anthropic \\
        --judge_model_name claude-sonnet-4-5 --dataset_name BeaverTails --model_nickname llama-3.1-8b ...

Each test configuration is its own comparison (folder) under ``--output_dir``; a rerun resumes each from its
checkpoint, and with another judge, verdict mode, generation setting, judge prompt or other outputs it stops with a
one-line error, since old and new verdicts would mix: ``--overwrite`` redoes it, another ``--output_dir`` keeps
both. The verdict cache of ``--output_dir`` (keyed by judge, verdict settings and the rendered prompt, rubric
included) answers any prompt judged before, in any comparison or run, without asking the judge again.

Then: ``python -m persona_tailoring.evaluation.win_rate --comparison_dir <output_dir>`` (the ΔPQ table of a grid).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from persona_core import layout
from persona_core.arguments import (
    BackendArguments,
    DryRunArguments,
    GenerationArguments,
    LimitArguments,
    OverwriteArguments,
    Verdict,
    positive,
    resolve_verdict,
    verdict_field,
)
from persona_core.cli import parse_args, public_args
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError, run_cli
from persona_core.io import JsonlCheckpoint
from persona_core.llm import ModelType, api_key, make_llm
from persona_core.llm.base import LLM, GenerationConfig
from persona_core.prompts import dataset_slug
from persona_core.protocol import ProtocolArguments
from persona_core.protocol import apply as apply_protocol
from persona_core.runner import run_requests
from persona_core.runs import digest
from persona_core.secrets import load_env
from persona_core.shards import ShardArguments, this_shard
from persona_core.stage import Execution, RequestStage, check_stage, run_stage
from persona_core.weak_judge import check_answers, pairwise_answers
from persona_tailoring.evaluation import judge
from persona_tailoring.evaluation.configuration import (
    ComparisonArguments,
    Side,
    comparison_folder,
    resolve_sides,
)
from persona_tailoring.evaluation.degenerate import is_repetitive
from persona_tailoring.evaluation.judge import Metric
from persona_tailoring.evaluation.outputs import ResponseView, match_rows, read_outputs

KEEP_BOTH = "--output_dir"


@dataclass
class JudgeArguments:
    """Which judge, on which rubrics, how its verdicts are read, and how its prompts and retries are made."""

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
    verdict: Verdict | None = verdict_field("--judge_model_type")
    response_view: ResponseView = field(
        default=ResponseView.cleaned,
        metadata={
            "help": "What of each response the judge sees: cleaned (special tokens dropped, cut at a template "
            "leftover such as a 'Persona:' line, the dataset's primer in front) or paper (as the authors' judge saw "
            "it: 'Prompt:' and end-of-text removed, nothing cut, no primer). paper: paper."
        },
    )
    task_instruction: str | None = field(
        default=None,
        metadata={"help": "What the models were asked to do (default: chosen by --dataset_name)."},
    )
    verdict_retries: int = field(
        default=10,
        metadata={
            "help": "Text verdicts: times an unparsable verdict is asked again, each with a new seed "
            "(prometheus-eval's relative grading retries up to 10 times)."
        },
    )
    retry_temperature: float | None = field(
        default=None,
        metadata={
            "help": "Text verdicts: temperature of the retries (default: --temperature, as prometheus-eval)."
        },
    )
    merge_system_prompt: bool = field(
        default=False,
        metadata={
            "help": "Put Prometheus' system prompt into the user turn (for chat templates without a system role). "
            "paper: on (prometheus-eval builds Mistral's prompt so on vLLM)."
        },
    )
    drop_repetitive: bool = field(
        default=False,
        metadata={
            "help": "Leave out of judging the pairs where either response is repetitive (degenerate.is_repetitive), "
            "as the paper filtered degenerate outputs; the dropped count is reported."
        },
    )

    def check(self) -> None:
        positive(self, "retry_temperature", "verdict_retries", allow_zero=True)
        self.verdict = resolve_verdict(self.verdict, self.judge_model_type, "--judge_model_type")


@dataclass
class Arguments(
    ProtocolArguments,
    OverwriteArguments,
    LimitArguments,
    DryRunArguments,
    ShardArguments,
    BackendArguments,
    GenerationArguments,
    JudgeArguments,
    ComparisonArguments,
):
    # Text verdicts sample as prometheus-eval's relative grading does (its default parameters); probability
    # verdicts generate nothing, so these do not apply to them.
    temperature: float = field(
        default=1.0, metadata={"help": "Text verdicts: sampling temperature (prometheus-eval: 1.0)."}
    )
    top_p: float = field(default=0.9, metadata={"help": "Text verdicts: top-p (prometheus-eval: 0.9)."})
    repetition_penalty: float = field(
        default=1.03,
        metadata={
            "help": "Text verdicts: repetition penalty, local judges and vLLM servers (prometheus-eval: 1.03)."
        },
    )
    max_tokens: int = field(
        default=1024,
        metadata={
            "help": "Text verdicts: maximum tokens of the feedback and verdict (prometheus-eval: 1024)."
        },
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
    """The run's one judge backend, shared by every comparison, first attempts and retries."""

    llm = make_llm(args.judge_model_type, args.judge_model_name, **args.backend_options())
    if not args.merge_system_prompt:
        check_system_role(llm)
    if args.verdict == Verdict.probability:
        llm.require_prefill_continued()  # the verdict marker must start the answer
    return llm


def load_pairs(args: Arguments, base: Side, test: Side):
    """The pairs to judge (the first ``--limit``, less repetitive ones with ``--drop_repetitive``), how many were
    dropped, and a digest of all pairs' content, for the fingerprint."""

    base_rows = read_outputs(base.path, base.has_persona, flag="base file", view=args.response_view)
    test_rows = read_outputs(test.path, test.has_persona, flag="test file", view=args.response_view)
    pairs = match_rows(base_rows, test_rows, f"base '{base.path.name}'", f"test '{test.path.name}'")
    content = digest([[p.id, p.question, p.persona, p.base.response, p.test.response] for p in pairs])
    pairs = pairs[: args.limit]
    dropped = 0
    if args.drop_repetitive:
        kept = [p for p in pairs if not (is_repetitive(p.base.response) or is_repetitive(p.test.response))]
        pairs, dropped = kept, len(pairs) - len(kept)
        if not pairs:
            raise UsageError(
                f"every pair of {test.label} has a repetitive response: drop --drop_repetitive to judge them"
            )
    if Metric.personalization in args.metrics and not any(p.persona for p in pairs):
        raise UsageError(
            "neither configuration carries a persona, so personalization cannot be judged: "
            "pass --metrics response_quality or a test configuration with personas"
        )
    return pairs, dropped, content


def verdict_settings(args: Arguments, generation) -> dict:
    """What, besides the prompt, decides a verdict: the judge and how its verdict is read."""
    settings = {
        "judge": {
            "model_type": args.judge_model_type.value,
            "model_name": args.judge_model_name,
            "weights": args.weight_options(),
        },
        "verdict": args.verdict.value,
    }
    if args.verdict == Verdict.text:
        settings["generation"] = {
            **dataclasses.asdict(generation),
            "retry_temperature": args.retry_temperature,
            "verdict_retries": args.verdict_retries,
        }
    return settings


def fingerprint(args: Arguments, templates: dict, generation, pairs_digest: str) -> dict:
    """What determines the verdicts: judge, verdict mode, prompts, generation settings and the pairs' content.

    Not ``--metrics`` or ``--limit``: they choose which verdicts exist, and the checkpoint is keyed by request.
    """

    return {
        **verdict_settings(args, generation),
        "prompts": digest(templates),
        "merge_system_prompt": args.merge_system_prompt,
        "drop_repetitive": args.drop_repetitive,
        "pairs": pairs_digest,
    }


class VerdictCache:
    """Verdicts by (judge settings, rendered prompt, attempt): an append-only JSONL file in ``--output_dir``.

    Each comparison keeps its own checkpoint; the cache adds that a prompt judged before anywhere under the same
    output folder (another comparison of a grid, an earlier or overwritten run) is answered without the judge.
    """

    FIELDS = ("raw_text", "usage", "probabilities", "tokens_read")

    def __init__(self, path, settings: dict):

        self.file = JsonlCheckpoint(path)
        self.settings = digest(settings)
        self.entries = {key: entry for key, entry in self.file.load().items()}
        self.hits = 0

    def key(self, request, attempt: int) -> str:

        return digest([self.settings, request.system, request.prompt, request.prefill, attempt])

    def fill(self, requests, meta, checkpoint_path) -> None:
        """Copy the cached verdicts of ``requests`` missing from a comparison's checkpoint into it."""

        checkpoint = JsonlCheckpoint(checkpoint_path)
        done = {i for i, r in checkpoint.load().items() if r.get("status") == "ok"}
        found = []
        for request in requests:
            entry = self.entries.get(self.key(request, meta[request.id]["attempt"]))
            if request.id not in done and entry is not None:
                fields = {k: entry.get(k) for k in self.FIELDS if k in entry}
                record = {"id": request.id, "prompt": request.prompt, **meta[request.id], **fields}
                found.append(judge.finish_record({**record, "status": "ok", "cached": True}))
        if found:
            checkpoint.append(found)
            self.hits += len(found)
        checkpoint.close()

    def add(self, requests, meta, records: dict) -> None:
        new = []
        for request in requests:
            record = records.get(request.id)
            key = self.key(request, meta[request.id]["attempt"])
            if (
                record
                and record.get("status") == "ok"
                and not record.get("cached")
                and key not in self.entries
            ):
                entry = {"id": key, **{k: record[k] for k in self.FIELDS if k in record}}
                self.entries[key] = entry
                new.append(entry)
        if new:
            self.file.append(new)

    def close(self) -> None:
        self.file.close()


def attempts_needed(requests, meta, done: dict, retries: int) -> bool:
    """Whether any first attempt or needed retry is missing from ``done`` (else no model is loaded at all)."""

    if any(r.id not in done for r in requests):
        return True
    for attempt in range(2, retries + 2):
        pending, _ = judge.retry_requests(requests, meta, done, attempt)
        if any(r.id not in done for r in pending):
            return True
    return False


@dataclass
class Comparison:
    """One base-vs-test comparison of a run: its pairs, and itself as a stage of the driver."""

    test: Side
    pairs: list
    dropped: int
    stage: RequestStage

    @property
    def files(self):
        return self.stage.files


def plan_comparison(
    args: Arguments, base: Side, test: Side, task: str, generation, cache: VerdictCache
) -> Comparison:
    """The comparison's pairs and requests, and how the driver judges them (through ``cache``, then retries), makes
    the final judgments and summarizes them."""
    files = layout.judge_files(comparison_folder(args, base, test))
    pairs, dropped, pairs_digest = load_pairs(args, base, test)
    job = judge.JudgeJob(task, args.merge_system_prompt, args.verdict)
    requests, meta = judge.build_requests(pairs, args.metrics, job)
    settings = fingerprint(args, judge.templates(task), generation, pairs_digest)
    comparison = comparison_settings(args, base, test)
    probability = args.verdict == Verdict.probability

    def execute(llm, own_requests, checkpoint, overwrite: bool) -> Execution:
        return judge_requests(args, llm, own_requests, meta, checkpoint, overwrite, cache, test.label)

    def assemble(records: dict) -> list[dict]:
        rows = judge.judgments(pairs, args.metrics, requests, records, task)
        return [row | {"comparison": comparison} for row in rows]

    def summarize(rows: list[dict], records: dict) -> dict:
        attempts = [r for r in records.values() if r.get("attempt", 1) > 1]
        verdicts = {
            "total": len(requests),
            "invalid_first_attempt": sum(records[r.id]["verdict"] is None for r in requests),
            "invalid_after_retry": sum(row[o.value]["verdict"] is None for row in rows for o in judge.Order),
            "retried": len(attempts),
            "cached": sum(bool(records[r.id].get("cached")) for r in requests),
        }
        return {"verdicts": verdicts}

    stage = RequestStage(
        label=f"judge {test.label}",
        files=files,
        requests=requests,
        meta=meta,
        fingerprint=settings,
        generation=generation,
        finish=judge.finish_record,
        summarize=summarize,
        options=judge.LETTERS if probability else None,
        model=f"{args.judge_model_name} ({args.judge_model_type.value})",
        prompts=settings["prompts"],
        record={
            "base_file": str(base.path),
            "test_file": str(test.path),
            "judge": f"{args.judge_model_type.value}:{args.judge_model_name}",
            "verdict_mode": args.verdict.value,
            "task_instruction": task,
            "pairs": len(pairs),
            "dropped_repetitive": dropped,
            "comparison": comparison,
        },
        keep_both=KEEP_BOTH,
        execute=execute,
        assemble=assemble,
    )
    return Comparison(test, pairs, dropped, stage)


def judge_requests(
    args: Arguments, llm, requests, meta, checkpoint, overwrite: bool, cache: VerdictCache, label: str
) -> Execution:
    """First attempts, then the text retries of invalid verdicts; every verdict through the cache."""
    probability = args.verdict == Verdict.probability
    first_attempt = args.generation() if not probability else GenerationConfig(max_tokens=1)
    if not overwrite:
        cache.fill(requests, meta, checkpoint)
    records, first = run_requests(
        llm,
        requests,
        meta,
        checkpoint,
        first_attempt,
        judge.finish_record,
        desc=f"judge {label}",
        options=judge.LETTERS if probability else None,
    )
    cache.add(requests, meta, records)
    stats = {"first_attempts": first.as_dict()}
    for attempt in range(2, args.verdict_retries + 2):
        retries, retry_meta = judge.retry_requests(requests, meta, records, attempt)
        if not retries:
            break
        if not overwrite:
            cache.fill(retries, retry_meta, checkpoint)
        temperature = args.temperature if args.retry_temperature is None else args.retry_temperature
        retry = args.generation(temperature=temperature, seed=args.seed + attempt - 1)
        done, again = run_requests(
            llm, retries, retry_meta, checkpoint, retry, judge.finish_record, desc="judge retries"
        )
        cache.add(retries, retry_meta, done)
        records.update(done)
        stats[f"attempt_{attempt}"] = again.as_dict()
    return Execution(records, stats, first)


def comparison_settings(args: Arguments, base: Side, test: Side) -> dict:
    """A comparison's configuration, stored in its judgments and carried into ``win_rate.json``."""
    return {
        "dataset": args.dataset_name or "",
        "model_nickname": args.model_nickname,
        "base": base.as_dict(),
        "test": test.as_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = apply_protocol("persona_tailoring.evaluation.run_judge", argv)
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    load_env()
    base, tests = resolve_sides(args)
    probability = args.verdict == Verdict.probability
    generation = args.generation() if not probability else GenerationConfig(max_tokens=1)
    cache = VerdictCache(layout.verdict_cache_path(args.output_dir), verdict_settings(args, generation))
    try:
        return judge_grid(args, base, tests, generation, cache)
    finally:
        cache.close()


def judge_grid(args: Arguments, base: Side, tests: list[Side], generation, cache: VerdictCache) -> int:
    """Every comparison of the grid through the stage driver, on one judge backend; a summary of each."""
    plans = []
    for test in tests:
        task = args.task_instruction or judge.task_instruction(
            dataset_slug(args.dataset_name or test.path.parent.name)
        )
        plans.append(plan_comparison(args, base, test, task, generation, cache))
    if args.dry_run:
        api_key(args.judge_model_type, args.base_url)  # a missing key is found now, not after the dry run
        for plan in plans:
            print(
                f"[dry run] {plan.test.label}: {len(plan.pairs)} pairs x {len(args.metrics)} metrics x 2 orders = "
                f"{len(plan.stage.requests)} judge requests ({args.verdict.value} verdicts) -> {plan.files.results}"
            )
        first = plans[0].stage.requests[0]
        print(f"[dry run] base: {base.path}")
        print(
            f"[dry run] first system prompt:\n{first.system}\n[dry run] first judge prompt:\n{first.prompt}"
        )
        if first.prefill:
            print(f"[dry run] the answer starts with: {first.prefill}")
        return 0
    for plan in plans:  # a refused rerun loads no model and touches no comparison
        check_stage(plan.stage, args.overwrite, args)
    # Built before any folder is taken, so a missing key or model leaves nothing behind; a grid whose every verdict
    # is in the checkpoints or the cache loads no model (the bare ``LLM`` placeholder is never asked).
    needed = False
    for plan in plans:
        own_files, own_requests = this_shard(plan.files, plan.stage.requests, args)
        done = {} if args.overwrite else JsonlCheckpoint(own_files.checkpoint).load()
        done = {i: r for i, r in done.items() if r.get("status") == "ok"}
        needed = needed or attempts_needed(own_requests, plan.stage.meta, done, args.verdict_retries)
    needed = needed and not args.merge_shards
    backend = functools.cache(lambda: judge_backend(args) if needed else LLM(args.judge_model_name))
    identity = f"{args.judge_model_type.value}:{args.judge_model_name}"
    status = 0
    for plan in plans:
        outcome = run_stage(plan.stage, backend, args.overwrite, args, public_args(args))
        if outcome.status == "failed":
            status = 1
            if any("role" in (r.get("error") or "").lower() for r in outcome.records):
                print("the judge seems to reject the system role: rerun with --merge_system_prompt")
            continue
        if outcome.status != "done":
            continue
        rows, verdicts, first = outcome.records, outcome.summary["verdicts"], outcome.stats
        total = verdicts["total"]
        asked = (
            f"{first.reused} reused, {verdicts['cached']} from the cache, {first.ok} new, "
            f"{verdicts['retried']} retried, in {first.seconds:.1f}s"
            if not args.merge_shards
            else f"assembled from {args.num_shards} shards"
        )
        print(
            f"{plan.test.label} vs {base.label}: {len(plan.pairs)} pairs x {len(args.metrics)} metrics x 2 orders = "
            f"{total} {args.verdict.value} verdicts by {identity} ({asked})"
            + (f"; {plan.dropped} pairs with a repetitive response dropped" if args.drop_repetitive else "")
        )
        print(
            f"  invalid verdicts: {verdicts['invalid_first_attempt']}/{total} on the first attempt, "
            f"{verdicts['invalid_after_retry']}/{total} after retries ({verdicts['invalid_after_retry'] / total:.1%})"
        )
        weak = check_answers(pairwise_answers(rows))
        if weak:
            print(f"  {weak['warning']}")
        for metric in args.metrics:
            counts = {
                o: sum(r["outcome"] == o for r in rows if r["metric"] == metric.value) for o in judge.OUTCOMES
            }
            print(f"  {metric.value}: " + ", ".join(f"{o} {n}" for o, n in counts.items()))
        print(f"  results: {plan.files.results}")
    print(
        f"{len(plans)} comparison(s) under {args.output_dir}; verdict cache: {cache.file.path} ({cache.hits} hits)"
    )
    print(f"next: python -m persona_tailoring.evaluation.win_rate --comparison_dir {args.output_dir}")
    return status


if __name__ == "__main__":
    run_cli(main)
