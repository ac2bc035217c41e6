"""Judge a test configuration against a base configuration: personalization and response quality, both orders.

Examples::

    # the paper's released BeaverTails outputs, judged by the embedded model (offline, no keys)
    python -m persona_tailoring.evaluation.run_judge --results_save_dir /work/shared/data/paper-outputs \\
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

Then: ``python -m persona_tailoring.evaluation.win_rate --comparison_dir <output_dir>``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.cli import parse_args, public_args
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError, run_cli
from persona_core.llm import ModelType
from persona_core.llm.base import LLM, GenerationConfig
from persona_tailoring.evaluation.configuration import (
    Configuration,
    InferenceType,
    Method,
    TrainingType,
    label_for_file,
    output_path,
    parse_file_name,
)
from persona_tailoring.evaluation.judge import Metric

JUDGMENTS_FILE = "judgments.jsonl"
CHECKPOINT_FILE = "judge.checkpoint.jsonl"
RUN_FILE = "judge.run.json"
SIDES = ("base", "test")


def _flag(help_text: str, side: str):
    who = "the baseline" if side == "base" else "the configuration under test"
    return field(default=None, metadata={"help": help_text.format(who=who)})


@dataclass
class ComparisonArguments:
    """The flags that name a comparison; shared with win_rate so both find the same folder."""

    base_file: str | None = _flag("Outputs of {who} (JSONL records or a JSON array); or the next three flags.", "base")
    model_type_base: Method | None = _flag("Method of {who}.", "base")
    training_type_base: TrainingType | None = _flag("Training type of {who}.", "base")
    inference_type_base: InferenceType | None = _flag("Inference type of {who}.", "base")
    test_file: str | None = _flag("Outputs of {who} (JSONL records or a JSON array); or the next three flags.", "test")
    model_type_test: Method | None = _flag("Method of {who}.", "test")
    training_type_test: TrainingType | None = _flag("Training type of {who}.", "test")
    inference_type_test: InferenceType | None = _flag("Inference type of {who}.", "test")
    results_save_dir: str = field(
        default="results/persona-tailoring", metadata={"help": "Root of PT outputs (for the configuration flags)."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Dataset (BeaverTails, Anthropic HHH, Mnemonic, ...): output folder and judge task wording."},
    )
    model_nickname: str | None = field(
        default=None, metadata={"help": "Model folder inside the dataset folder (omit for the paper's released outputs)."}
    )
    output_dir: str = field(
        default="results/persona-tailoring/judge", metadata={"help": "Comparisons go to <output_dir>/comparisons/."}
    )


@dataclass
class Arguments(ComparisonArguments):
    judge_model_type: ModelType = field(default=ModelType.hf_chat, metadata={"help": "Judge backend."})
    judge_model_name: str = field(
        default=EMBEDDED_MODEL_NAME,
        metadata={"help": "Judge: prometheus-eval/prometheus-7b-v2.0 (paper), an API model, or a local folder."},
    )
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server URL (vLLM, Ollama, ...)."})
    concurrency: int = field(default=8, metadata={"help": "Judge requests in flight at once (API backends)."})
    batch_size: int = field(default=8, metadata={"help": "Judge prompts per batch (local models)."})
    metrics: list[Metric] = field(
        default_factory=lambda: list(Metric), metadata={"help": "Rubrics to judge."}
    )
    task_instruction: str | None = field(
        default=None, metadata={"help": "What the models were asked to do (default: chosen by --dataset_name)."}
    )
    max_tokens: int = field(default=1024, metadata={"help": "Maximum tokens of the judge's feedback and verdict."})
    temperature: float = field(default=0.0, metadata={"help": "Judge temperature for the first attempt."})
    retry_temperature: float = field(
        default=1.0, metadata={"help": "Temperature of the one retry of an unparsable verdict (0 would repeat it)."}
    )
    merge_system_prompt: bool = field(
        default=False,
        metadata={"help": "Put Prometheus' system prompt into the user turn (for chat templates without a system role)."},
    )
    limit: int | None = field(default=None, metadata={"help": "Judge only the first N pairs."})
    seed: int = field(default=0, metadata={"help": "Seed for sampled retries and API seeds."})
    device_map: str = field(default="auto", metadata={"help": "Device map for a local judge."})
    load_in_4bit: bool = field(default=False, metadata={"help": "Load a local judge in 4-bit (CUDA + bitsandbytes)."})
    load_in_8bit: bool = field(default=False, metadata={"help": "Load a local judge in 8-bit (CUDA + bitsandbytes)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache folder for Hub models."})
    dry_run: bool = field(default=False, metadata={"help": "Print the first judge prompt and the request count only."})


@dataclass(frozen=True)
class Side:
    name: str
    path: Path
    label: str
    has_persona: bool | None


def resolve_side(args: ComparisonArguments, side: str) -> Side:
    """One side's file, from that side's own flags only (the seed built the test path from the base flags)."""
    file = getattr(args, f"{side}_file")
    parts = {key: getattr(args, f"{key}_{side}") for key in ("model_type", "training_type", "inference_type")}
    given = [key for key, value in parts.items() if value is not None]
    if file and given:
        raise UsageError(f"pass either --{side}_file or --{given[0]}_{side} (and its companions), not both")
    if file:
        config = parse_file_name(file)
        has_persona = None if config is None else config.inference_type != InferenceType.none
        return Side(side, Path(file), label_for_file(file), has_persona)
    if not given:
        raise UsageError(
            f"no {side} outputs: pass --{side}_file, or --model_type_{side}, --training_type_{side} "
            f"and --inference_type_{side}"
        )
    if len(given) < 3:
        missing = ", ".join(f"--{key}_{side}" for key in parts if key not in given)
        raise UsageError(f"incomplete {side} configuration: also pass {missing}")
    if not args.dataset_name:
        raise UsageError("--dataset_name is needed to find configuration outputs (e.g. --dataset_name BeaverTails)")
    config = Configuration(parts["model_type"], parts["training_type"], parts["inference_type"])
    path = output_path(args.results_save_dir, args.dataset_name, args.model_nickname, config)
    return Side(side, path, config.label, config.inference_type != InferenceType.none)


def resolve_sides(args: ComparisonArguments) -> tuple[Side, Side]:
    base, test = (resolve_side(args, side) for side in SIDES)
    if base.path.resolve() == test.path.resolve():
        raise UsageError(f"base and test are the same file ({base.path}): compare two different configurations")
    return base, test


def comparison_folder(args: ComparisonArguments, base: Side, test: Side) -> Path:
    folder = Path(args.output_dir) / "comparisons"
    for part in (args.dataset_name, args.model_nickname):
        if part:
            folder = folder / part
    return folder / f"{base.label}_vs_{test.label}"


def judge_identity(args: Arguments) -> str:
    return f"{args.judge_model_type.value}:{args.judge_model_name}:t={args.temperature}:max={args.max_tokens}"


class LazyJudge:
    """Builds the judge backend on the first ``generate`` call, so a fully resumed run loads no model.

    Both passes (first attempts, retries at another temperature) share the one backend.
    """

    def __init__(self, args: Arguments):
        self.args = args
        self._backend = None

    def at(self, temperature: float) -> JudgePass:
        generation = GenerationConfig(temperature=temperature, max_tokens=self.args.max_tokens, seed=self.args.seed)
        return JudgePass(self, generation)

    def backend(self):
        if self._backend is None:
            from persona_core.llm import make_llm

            args = self.args
            self._backend = make_llm(
                args.judge_model_type,
                args.judge_model_name,
                GenerationConfig(max_tokens=args.max_tokens, seed=args.seed),
                base_url=args.base_url,
                concurrency=args.concurrency,
                batch_size=args.batch_size,
                device_map=args.device_map,
                load_in_4bit=args.load_in_4bit,
                load_in_8bit=args.load_in_8bit,
                cache_dir=args.cache_dir,
            )
            if not args.merge_system_prompt:
                check_system_role(self._backend)
        return self._backend


class JudgePass(LLM):
    """One pass (first attempts, or retries at another temperature) over the shared judge backend."""

    def __init__(self, judge: LazyJudge, generation: GenerationConfig):
        super().__init__(judge.args.judge_model_name, generation)
        self.judge = judge

    def generate(self, requests, on_result) -> None:
        backend = copy.copy(self.judge.backend())  # shares the loaded model or client settings
        backend.generation = self.generation
        backend.generate(requests, on_result)


def check_system_role(llm) -> None:
    """A local judge whose chat template refuses system messages (Mistral-style, e.g. Prometheus) needs merging."""
    tokenizer = getattr(llm, "tokenizer", None)
    if tokenizer is None or not getattr(llm, "chat", False):
        return
    try:
        tokenizer.apply_chat_template(
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], tokenize=False, add_generation_prompt=True
        )
    except Exception as err:  # jinja raises its own TemplateError types
        raise UsageError(
            f"the judge's chat template rejects a system message ({str(err)[:80]}): pass --merge_system_prompt"
        ) from None


def load_pairs(args: Arguments, base: Side, test: Side):
    from persona_tailoring.evaluation.outputs import match_rows, read_outputs

    base_rows = read_outputs(base.path, base.has_persona, flag="base file")
    test_rows = read_outputs(test.path, test.has_persona, flag="test file")
    pairs = match_rows(base_rows, test_rows, f"base '{base.path.name}'", f"test '{test.path.name}'")
    if args.limit is not None:
        pairs = pairs[: max(0, args.limit)]
    if not pairs:
        raise UsageError("no pairs to judge: drop --limit 0")
    if Metric.personalization in args.metrics and not any(p.persona for p in pairs):
        raise UsageError(
            "neither configuration carries a persona, so personalization cannot be judged: "
            "pass --metrics response_quality or a test configuration with personas"
        )
    return pairs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(Arguments, argv, description=__doc__.split("\n\n")[0])
    from persona_core.io import write_json_atomic, write_jsonl_atomic
    from persona_core.prompts import dataset_slug
    from persona_core.runner import run_requests
    from persona_core.secrets import load_env
    from persona_tailoring.evaluation import judge

    load_env()
    base, test = resolve_sides(args)
    folder = comparison_folder(args, base, test)
    pairs = load_pairs(args, base, test)
    dataset = args.dataset_name or test.path.parent.name
    job = judge.JudgeJob(
        judge_identity(args), args.task_instruction or judge.task_instruction(dataset_slug(dataset)), args.merge_system_prompt
    )
    requests, meta = judge.build_requests(pairs, args.metrics, job)
    if args.dry_run:
        print(f"[dry run] {len(pairs)} pairs x {len(args.metrics)} metrics x 2 orders = {len(requests)} judge requests")
        print(f"[dry run] base: {base.path}\n[dry run] test: {test.path}\n[dry run] results would go to {folder}")
        print(f"[dry run] first system prompt:\n{requests[0].system}\n[dry run] first judge prompt:\n{requests[0].prompt}")
        return 0

    judge_model = LazyJudge(args)
    checkpoint = folder / CHECKPOINT_FILE
    records, first = run_requests(
        judge_model.at(args.temperature), requests, meta, checkpoint, judge.finish_record, desc="judge"
    )
    retries, retry_meta = judge.retry_requests(requests, meta, records)
    retried, second = run_requests(
        judge_model.at(args.retry_temperature), retries, retry_meta, checkpoint, judge.finish_record, desc="judge retries"
    )
    records.update(retried)
    failed = [r for r in records.values() if r.get("status") != "ok"]
    run_info = {
        "arguments": public_args(args),
        "base_file": str(base.path),
        "test_file": str(test.path),
        "judge": job.identity,
        "task_instruction": job.task,
        "pairs": len(pairs),
        "first_attempts": first.as_dict(),
        "retries": second.as_dict(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if failed:
        write_json_atomic(folder / RUN_FILE, run_info)
        print(f"judge: {len(failed)} of {len(records)} requests failed (first: {failed[0]['error']})")
        if any("role" in (r.get("error") or "").lower() for r in failed):
            print("the judge seems to reject the system role: rerun with --merge_system_prompt")
        print(f"checkpoint kept in {folder}; rerun the same command to retry the failed requests")
        return 1
    rows = judge.judgments(pairs, args.metrics, requests, records, job.task)
    invalid_first = sum(records[r.id]["verdict"] is None for r in requests)
    invalid_final = sum(row[o.value]["verdict"] is None for row in rows for o in judge.Order)
    run_info["verdicts"] = {"total": len(requests), "invalid_first_attempt": invalid_first, "invalid_after_retry": invalid_final}
    write_jsonl_atomic(folder / JUDGMENTS_FILE, rows)
    write_json_atomic(folder / RUN_FILE, run_info)

    print(
        f"judge: {len(pairs)} pairs x {len(args.metrics)} metrics x 2 orders = {len(requests)} verdicts by {job.identity} "
        f"({first.reused} reused, {first.ok} new, {len(retries)} retried) in {first.seconds + second.seconds:.1f}s"
    )
    print(
        f"invalid verdicts: {invalid_first}/{len(requests)} on the first attempt, {invalid_final}/{len(requests)} "
        f"after one retry ({invalid_final / len(requests):.1%})"
    )
    for metric in args.metrics:
        counts = {o: sum(r["outcome"] == o for r in rows if r["metric"] == metric.value) for o in judge.OUTCOMES}
        print(f"{metric.value}: " + ", ".join(f"{o} {n}" for o, n in counts.items()))
    print(f"results: {folder / JUDGMENTS_FILE}\nrun record: {folder / RUN_FILE}")
    print(f"next: python -m persona_tailoring.evaluation.win_rate --comparison_dir {folder}")
    return 0


if __name__ == "__main__":
    run_cli(main)
