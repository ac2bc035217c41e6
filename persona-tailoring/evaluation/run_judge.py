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
from persona_core.cli import parse, public_args
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError, run_cli
from persona_core.llm import ModelType, api_key, make_llm
from persona_core.llm.base import LLM, GenerationConfig
from persona_core.prompts import dataset_slug
from persona_core.protocol import ProtocolArguments
from persona_core.protocol import apply as apply_protocol
from persona_core.runs import digest
from persona_core.secrets import load_env
from persona_core.shards import ShardArguments, this_shard
from persona_core.stage import RequestStage, check_stage, run_stage
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
from persona_tailoring.evaluation.verdict_cache import CachingJudge

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

    def first_attempt(self, generation: GenerationArguments) -> GenerationConfig:
        """Probability verdicts generate nothing: one token's probabilities are read."""
        return generation.generation() if self.verdict == Verdict.text else GenerationConfig(max_tokens=1)

    def retry(self, generation: GenerationArguments, attempt: int) -> GenerationConfig:
        """Attempt ``attempt``'s settings: a new seed, and ``--retry_temperature`` when given."""
        temperature = generation.temperature if self.retry_temperature is None else self.retry_temperature
        return generation.generation(temperature=temperature, seed=generation.seed + attempt - 1)

    def identity(self, weights: dict) -> dict:
        """The judge, as verdicts depend on it: backend, model, weight options, verdict mode."""
        return {
            "model_type": self.judge_model_type.value,
            "model_name": self.judge_model_name,
            "weights": weights,
            "verdict": self.verdict.value,
        }

    @property
    def label(self) -> str:
        return f"{self.judge_model_type.value}:{self.judge_model_name}"


@dataclass
class JudgeGenerationArguments(GenerationArguments):
    """Text verdicts sample as prometheus-eval's relative grading does (its default parameters); probability
    verdicts generate nothing, so these do not apply to them."""

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


GROUPS = (
    ProtocolArguments,
    OverwriteArguments,
    LimitArguments,
    DryRunArguments,
    ShardArguments,
    BackendArguments,
    JudgeGenerationArguments,
    JudgeArguments,
    ComparisonArguments,
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


def judge_backend(judging: JudgeArguments, backend: BackendArguments) -> LLM:
    """The run's one judge backend, shared by every comparison, first attempts and retries."""
    llm = make_llm(judging.judge_model_type, judging.judge_model_name, **backend.backend_options())
    if not judging.merge_system_prompt:
        check_system_role(llm)
    if judging.verdict == Verdict.probability:
        llm.require_prefill_continued()  # the verdict marker must start the answer
    return llm


def load_pairs(judging: JudgeArguments, limit: int | None, base: Side, test: Side):
    """The pairs to judge (the first ``limit``, less repetitive ones with ``--drop_repetitive``), how many were
    dropped, and a digest of all pairs' content, for the fingerprint."""
    base_rows = read_outputs(base.path, base.has_persona, flag="base file", view=judging.response_view)
    test_rows = read_outputs(test.path, test.has_persona, flag="test file", view=judging.response_view)
    pairs = match_rows(base_rows, test_rows, f"base '{base.path.name}'", f"test '{test.path.name}'")
    content = digest([[p.id, p.question, p.persona, p.base.response, p.test.response] for p in pairs])
    pairs = pairs[:limit]
    dropped = 0
    if judging.drop_repetitive:
        kept = [p for p in pairs if not (is_repetitive(p.base.response) or is_repetitive(p.test.response))]
        pairs, dropped = kept, len(pairs) - len(kept)
        if not pairs:
            raise UsageError(
                f"every pair of {test.label} has a repetitive response: drop --drop_repetitive to judge them"
            )
    if Metric.personalization in judging.metrics and not any(p.persona for p in pairs):
        raise UsageError(
            "neither configuration carries a persona, so personalization cannot be judged: "
            "pass --metrics response_quality or a test configuration with personas"
        )
    return pairs, dropped, content


def fingerprint(
    judging: JudgeArguments, weights: dict, templates: dict, generation, pairs_digest: str
) -> dict:
    """What determines the verdicts: judge, verdict mode, prompts, generation settings and the pairs' content.

    Not ``--metrics`` or ``--limit``: they choose which verdicts exist, and the checkpoint is keyed by request.
    """
    identity = judging.identity(weights)
    settings = {"judge": {k: identity[k] for k in ("model_type", "model_name", "weights")}}
    settings["verdict"] = identity["verdict"]
    if judging.verdict == Verdict.text:
        settings["generation"] = {
            **dataclasses.asdict(generation.generation()),
            "retry_temperature": judging.retry_temperature,
            "verdict_retries": judging.verdict_retries,
        }
    return {
        **settings,
        "prompts": digest(templates),
        "merge_system_prompt": judging.merge_system_prompt,
        "drop_repetitive": judging.drop_repetitive,
        "pairs": pairs_digest,
    }


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
    judging: JudgeArguments,
    generation: GenerationArguments,
    weights: dict,
    where: ComparisonArguments,
    limit: int | None,
    base: Side,
    test: Side,
) -> Comparison:
    """The comparison's pairs and requests, and how the driver judges them (first attempts, then retries), makes
    the final judgments and summarizes them."""
    task = judging.task_instruction or judge.task_instruction(
        dataset_slug(where.dataset_name or test.path.parent.name)
    )
    pairs, dropped, pairs_digest = load_pairs(judging, limit, base, test)
    job = judge.JudgeJob(task, judging.merge_system_prompt, judging.verdict)
    requests, meta = judge.build_requests(pairs, judging.metrics, job)
    settings = fingerprint(judging, weights, judge.templates(task), generation, pairs_digest)
    comparison = comparison_settings(where, base, test)
    options = judge.LETTERS if judging.verdict == Verdict.probability else None

    def execute(llm, own_requests, checkpoint):
        first_attempt = judging.first_attempt(generation)
        retry = functools.partial(judging.retry, generation)
        return judge.judge_with_retries(
            llm,
            own_requests,
            meta,
            checkpoint,
            first_attempt,
            retry,
            judging.verdict_retries,
            test.label,
            options,
        )

    def assemble(records: dict) -> list[dict]:
        rows = judge.judgments(pairs, judging.metrics, requests, records, task)
        return [row | {"comparison": comparison} for row in rows]

    stage = RequestStage(
        label=f"judge {test.label}",
        files=layout.judge_files(comparison_folder(where, base, test)),
        requests=requests,
        meta=meta,
        fingerprint=settings,
        generation=judging.first_attempt(generation),
        finish=judge.finish_record,
        summarize=functools.partial(verdict_counts, requests),
        options=options,
        model=f"{judging.judge_model_name} ({judging.judge_model_type.value})",
        prompts=settings["prompts"],
        record={
            "base_file": str(base.path),
            "test_file": str(test.path),
            "judge": judging.label,
            "verdict_mode": judging.verdict.value,
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


def verdict_counts(requests: list, rows: list[dict], records: dict) -> dict:
    """The run record's verdict counts of a comparison: invalid before and after retries, retried, cached."""
    verdicts = {
        "total": len(requests),
        "invalid_first_attempt": sum(records[r.id]["verdict"] is None for r in requests),
        "invalid_after_retry": sum(row[o.value]["verdict"] is None for row in rows for o in judge.Order),
        "retried": sum(r.get("attempt", 1) > 1 for r in records.values()),
        "cached": sum(bool(records[r.id].get("cached")) for r in requests),
    }
    return {"verdicts": verdicts}


def comparison_settings(where: ComparisonArguments, base: Side, test: Side) -> dict:
    """A comparison's configuration, stored in its judgments and carried into ``win_rate.json``."""
    return {
        "dataset": where.dataset_name or "",
        "model_nickname": where.model_nickname,
        "base": base.as_dict(),
        "test": test.as_dict(),
    }


def print_dry_run(plans: list[Comparison], base: Side, judging: JudgeArguments) -> None:
    for plan in plans:
        print(
            f"[dry run] {plan.test.label}: {len(plan.pairs)} pairs x {len(judging.metrics)} metrics x 2 orders = "
            f"{len(plan.stage.requests)} judge requests ({judging.verdict.value} verdicts) -> {plan.files.results}"
        )
    first = plans[0].stage.requests[0]
    print(f"[dry run] base: {base.path}")
    print(f"[dry run] first system prompt:\n{first.system}\n[dry run] first judge prompt:\n{first.prompt}")
    if first.prefill:
        print(f"[dry run] the answer starts with: {first.prefill}")


def needs_judge(plans: list[Comparison], overwrite: bool, shards: ShardArguments) -> bool:
    """Whether a comparison is still to judge (a finished one is resumed whole from its checkpoint)."""
    if shards.merge_shards:
        return False
    return overwrite or any(not this_shard(p.files, [], shards)[0].results.exists() for p in plans)


def print_outcome(
    plan: Comparison, outcome, base: Side, judging: JudgeArguments, shards: ShardArguments
) -> None:
    """The console summary of one judged comparison: counts, invalid verdicts, a weak judge, outcomes."""
    rows, verdicts, first = outcome.records, outcome.summary["verdicts"], outcome.stats
    total = verdicts["total"]
    asked = (
        f"{first.reused} reused, {first.cached} from the cache, {first.ok - first.cached} new, "
        f"{verdicts['retried']} retried, in {first.seconds:.1f}s"
        if not shards.merge_shards
        else f"assembled from {shards.num_shards} shards"
    )
    print(
        f"{plan.test.label} vs {base.label}: {len(plan.pairs)} pairs x {len(judging.metrics)} metrics x 2 orders = "
        f"{total} {judging.verdict.value} verdicts by {judging.label} ({asked})"
        + (f"; {plan.dropped} pairs with a repetitive response dropped" if judging.drop_repetitive else "")
    )
    print(
        f"  invalid verdicts: {verdicts['invalid_first_attempt']}/{total} on the first attempt, "
        f"{verdicts['invalid_after_retry']}/{total} after retries ({verdicts['invalid_after_retry'] / total:.1%})"
    )
    weak = check_answers(pairwise_answers(rows))
    if weak:
        print(f"  {weak['warning']}")
    for metric in judging.metrics:
        counts = {
            o: sum(r["outcome"] == o for r in rows if r["metric"] == metric.value) for o in judge.OUTCOMES
        }
        print(f"  {metric.value}: " + ", ".join(f"{o} {n}" for o, n in counts.items()))
    print(f"  results: {plan.files.results}")


def main(argv: list[str] | None = None) -> int:
    argv = apply_protocol("persona_tailoring.evaluation.run_judge", argv)
    groups = parse(GROUPS, argv, description=__doc__.split("\n\n")[0])
    _, overwrite, limit, dry_run, shards, backend, generation, judging, where = groups
    load_env()
    base, tests = resolve_sides(where)
    weights = backend.weight_options()
    plans = [plan_comparison(judging, generation, weights, where, limit.limit, base, test) for test in tests]
    if dry_run.dry_run:
        api_key(
            judging.judge_model_type, backend.base_url
        )  # a missing key is found now, not after the dry run
        print_dry_run(plans, base, judging)
        return 0
    for plan in plans:  # a refused rerun loads no model and touches no comparison
        check_stage(plan.stage, overwrite.overwrite, shards)
    model = functools.cache(lambda: judge_backend(judging, backend))
    if needs_judge(plans, overwrite.overwrite, shards):
        model()  # built before any folder is taken, so a missing key or model leaves nothing behind
    cache_path = layout.verdict_cache_path(where.output_dir)
    cached = CachingJudge(cache_path, judging.identity(weights), model, read=not overwrite.overwrite)
    status = 0
    try:
        for plan in plans:
            outcome = run_stage(plan.stage, lambda: cached, overwrite.overwrite, shards, public_args(*groups))
            if outcome.status == "failed":
                status = 1
                if any("role" in (r.get("error") or "").lower() for r in outcome.records):
                    print("the judge seems to reject the system role: rerun with --merge_system_prompt")
            elif outcome.status == "done":
                print_outcome(plan, outcome, base, judging, shards)
    finally:
        cached.close()
    print(
        f"{len(plans)} comparison(s) under {where.output_dir}; verdict cache: {cache_path} ({cached.hits} hits)"
    )
    print(f"next: python -m persona_tailoring.evaluation.win_rate --comparison_dir {where.output_dir}")
    return status


if __name__ == "__main__":
    run_cli(main)
