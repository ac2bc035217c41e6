"""Reading a judge's "1" or "2" out of free text, and the small statistics shared by the judge experiments.

The parser is deliberately strict: an answer that names both options ("1 or 2"), neither, or refuses is
``None`` (invalid) and is counted and reported as such, never silently scored as right or wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from persona_core.arguments import GenerationArguments, Verdict
from persona_core.errors import UsageError
from persona_core.io import read_records
from persona_core.layout import PERSONA_INFERENCE, SIDES, persona_id, pi_files, pi_results_glob
from persona_core.llm.base import GenerationConfig, most_probable, option_share
from persona_core.weak_judge import check_answers
from persona_inference.model.arguments import ExperimentArguments
from persona_inference.model.experiment import Experiment, Inputs, Plan, ResultsPlace

_MARKUP = re.compile(r"[*_`#\"“”()\[\]<>]")
# A lone 1 or 2: not part of 10, 1.5, 2nd, 12 or a date.
_CHOICE = r"(?<![\w.])([12])(?![\w]|[.,]\d)"
_OPTION = r"(?:(?:response|answer|option|choice|user|persona|number|no\.?|#)\s*)?"
_LEADING = re.compile(rf"^(?:the\s+)?{_OPTION}{_CHOICE}")
_BOTH = re.compile(rf"{_CHOICE}\s*(?:or|and|/|&|vs\.?|versus|,)\s*(?:the\s+)?{_OPTION}{_CHOICE}")
_DECISION = re.compile(
    r"(?:(not|n't|never)\s+(?:\w+\s+){0,2})?"
    r"\b(?:choose|chose|choosing|pick|picked|select|selected|prefer|prefers|preferred|go with|going with|"
    r"answer is|answer would be|choice is|choice would be|pick is|option is|response is|would be|is)\s*:?\s+"
    rf"(?:the\s+)?(?:first|second)?\s*{_OPTION}{_CHOICE}"
)
_ORDINAL = re.compile(r"\b(?:the\s+)?(first|second)\s+(?:response|answer|option|one|user|persona)\b")


def parse_choice(text: str | None) -> int | None:
    """1 or 2 if ``text`` clearly picks one option, else None (empty, refusal, both, neither)."""
    if not text:
        return None
    clean = " ".join(_MARKUP.sub(" ", text.lower().replace("’", "'").replace("‘", "'")).split())
    clean = re.sub(r"^(?:answer|choice|response|output|final answer)\s*:\s*", "", clean)
    if not clean:
        return None
    leading = _LEADING.match(clean)
    if leading and not _BOTH.match(clean, leading.start(1)):
        return int(leading.group(1))
    decisions = {int(m.group(2)) for m in _DECISION.finditer(clean) if not m.group(1)}
    if len(decisions) == 1:
        return decisions.pop()
    if decisions:
        return None
    mentioned = {int(m.group(1)) for m in re.finditer(_CHOICE, clean)}
    if len(mentioned) == 1 and not re.search(r"\b(?:neither|both|cannot|can't|unable|sorry)\b", clean):
        return mentioned.pop()
    ordinals = {1 if m.group(1) == "first" else 2 for m in _ORDINAL.finditer(clean)}
    if not mentioned and len(ordinals) == 1 and not re.search(r"\b(?:neither|both|not)\b", clean):
        return ordinals.pop()
    return None


CHOICES = ("1", "2")
"""The answers a persona judge chooses between; probability verdicts read their next-token probabilities."""


def read_choice(record: dict) -> int | None:
    """1 or 2: the more probable answer of a probability verdict (1 on an exact tie), else parsed from the text.

    None only for a text verdict that names no single option, or a probability verdict whose backend read
    neither answer among its top tokens.
    """
    probabilities = record.get("probabilities")
    if probabilities is None:
        return parse_choice(record.get("raw_text"))
    best = most_probable(probabilities, CHOICES)
    return None if best is None else int(best)


def choice_share(record: dict, choice: int) -> float | None:
    """A probability verdict's normalized probability of ``choice`` (1 or 2) between the two answers; an answer
    not read counts as 0. None for text verdicts, or when neither answer was read."""
    probabilities = record.get("probabilities")
    return None if probabilities is None else option_share(probabilities, CHOICES, str(choice))


RUN_PERSONA_INFERENCE_FIRST = (
    "run the persona_inference experiment with the same --inference_split/--run_name first"
)


def find_persona_results(
    res_dir: str | Path,
    inference_split: str,
    run_name: str,
    partition: str,
    models: list[str] | None,
    fix: str = RUN_PERSONA_INFERENCE_FIRST,
) -> dict[str, Path]:
    """``{model folder: persona results file}`` for this split and run; a one-line error naming what exists."""
    root = Path(res_dir)
    model_dirs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    runs = {m: pi_files(root, m, inference_split, run_name, PERSONA_INFERENCE, partition) for m in model_dirs}
    found = {m: files.results for m, files in runs.items() if files.results.is_file()}
    wanted = models or sorted(found)
    missing = [m for m in wanted if m not in found]
    if wanted and not missing:
        return {m: found[m] for m in wanted}
    hints = []
    if found:
        hints.append(f"results exist for: {', '.join(found)}")
    unfinished = [m for m, files in runs.items() if m not in found and files.checkpoint.is_file()]
    if unfinished:
        hints.append(f"unfinished (rerun persona inference to finish): {', '.join(unfinished)}")
    other_runs = sorted({p.parent.name for p in root.glob(pi_results_glob(inference_split))} - {run_name})
    if other_runs:
        hints.append(f"--run_name values with results for this split: {', '.join(other_runs)}")
    subject = f"model(s) {', '.join(missing)}" if missing else "any model"
    where = pi_files(root, "<model>", inference_split, run_name, PERSONA_INFERENCE, partition).results
    raise UsageError(
        f"no persona inference results for {subject} at {where}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + f"; {fix}"
    )


def load_personas(path: Path, dataset, dataset_name: str, rows: range) -> list[dict]:
    """The persona records of ``path`` whose rows lie in ``rows``, checked against ``dataset`` row by row.

    A record whose id does not match the dataset row (another dataset, a reordered file) is an error, so a
    judge never pairs a persona with responses it was not inferred from.
    """
    try:
        records = read_records(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read persona results {path} ({err}): rerun persona inference") from None
    kept = []
    for record in records:
        if not {"id", "row", "side", "persona"} <= record.keys() or record["side"] not in SIDES:
            raise UsageError(
                f"{path} is not a persona inference results file (record {record.get('id')!r}): rerun persona inference"
            )
        row = record["row"]
        if not isinstance(row, int) or not 0 <= row < len(dataset):
            raise UsageError(
                f"{path} has row {row!r} but dataset '{dataset_name}' has {len(dataset)} rows: "
                "pass the --dataset_name/--inference_split that persona inference used"
            )
        if record["id"] != persona_id(row, record["side"], dataset[row]):
            raise UsageError(
                f"{path} does not match dataset '{dataset_name}' (record {record['id']} is not row {row} of it): "
                "pass the --dataset_name/--inference_split that persona inference used, or rerun persona inference"
            )
        if row in rows:
            kept.append(record)
    return kept


class JudgeExperiment(Experiment):
    """A judge experiment: the run's model judges the personas of persona-inference runs, each pair in both orders.

    Subclasses say which persona models to judge by default, and name in their class statement the functions that
    build the requests, finish each record and summarize the judgments:
    ``class PersonaAccuracy(JudgeExperiment, build_requests=..., finish=..., table=...)``.
    """

    def __init_subclass__(cls, build_requests=None, finish=None, table=None, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, function in (("build_requests", build_requests), ("finish", finish), ("table", table)):
            if function is not None:
                setattr(cls, name, staticmethod(function))

    unit: str
    """What two requests judge, for the dry run: 'personas', 'persona pairs'."""
    nothing_to_judge: str
    """Why no request was built, followed by a row range: 'cover none of the rows'."""

    def persona_models(self, settings: ExperimentArguments) -> tuple[list[str] | None, str]:
        """The persona models to judge (None: every one found) and the fix to name when results are missing."""
        return settings.persona_models, RUN_PERSONA_INFERENCE_FIRST

    build_requests: Callable[..., tuple[list, dict]]
    """``(dataset, personas by model, template) -> (requests, meta)``."""
    table: Callable[[list[dict]], list[dict]]
    """The summary table of the judgments."""

    def table_line(self, line: dict) -> str:
        raise NotImplementedError

    def generation(self, settings: ExperimentArguments, generation: GenerationArguments) -> GenerationConfig:
        """The judge's own small token budget: its answer is a single choice (probability verdicts generate
        nothing, so no sampling setting can change them)."""
        if settings.verdict == Verdict.probability:
            return GenerationConfig(max_tokens=1)
        return generation.generation(max_tokens=settings.judge_max_tokens, min_tokens=0)

    def options(self, settings: ExperimentArguments) -> tuple[str, ...] | None:
        return CHOICES if settings.verdict == Verdict.probability else None

    def plan(self, settings: ExperimentArguments, place: ResultsPlace, inputs: Inputs, template: str) -> Plan:
        dataset, rows = inputs.dataset, inputs.rows
        models, fix = self.persona_models(settings)
        paths = find_persona_results(
            place.res_dir, place.inference_split, place.run_name, place.partition, models, fix
        )
        personas = {
            model: load_personas(path, dataset, inputs.dataset_name, rows) for model, path in paths.items()
        }
        requests, meta = self.build_requests(dataset, personas, template)
        if not requests:
            raise UsageError(
                f"the persona results of {', '.join(paths)} {self.nothing_to_judge} {rows.start}-{rows.stop - 1}: "
                "use the --partition/--limit that persona inference used"
            )
        return Plan(
            requests,
            meta,
            f"({len(requests) // 2} {self.unit} x 2 orders) from {', '.join(paths)}",
            fingerprint={"persona_models": list(paths), "verdict": settings.verdict.value},
            record={"persona_results": {m: str(p) for m, p in paths.items()}},
        )

    def summarize(self, records: list[dict], template: str) -> dict:
        return {
            "summary": self.table(records),
            "weak_judge": check_answers(record.get("choice") for record in records),
        }

    def report(self, records: list[dict], stats, summary: dict, llm) -> str:
        head = f"{len(records)} judgments by {llm.model_name} ({stats.reused} reused, {stats.ok} new) in {stats.seconds:.1f}s"
        weak = [f"  {summary['weak_judge']['warning']}"] if summary.get("weak_judge") else []
        return "\n".join([head, *(f"  {self.table_line(line)}" for line in summary["summary"]), *weak])
