"""Reading a judge's "1" or "2" out of free text, and the small statistics shared by the judge experiments.

The parser is deliberately strict: an answer that names both options ("1 or 2"), neither, or refuses is
``None`` (invalid) and is counted and reported as such, never silently scored as right or wrong.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import math
import re
from pathlib import Path

from persona_core.data import row_key
from persona_core.errors import UsageError
from persona_core.io import read_records

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


def digest(text: str) -> str:
    """A short content hash: judged prompts are keyed by it, so edited personas or templates are judged anew."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def proportion_stderr(successes: int, total: int) -> float:
    """Standard error of a proportion (0 for fewer than two items, where it is undefined)."""
    if total < 2:
        return 0.0
    p = successes / total
    return math.sqrt(p * (1 - p) / total)


PERSONA_FILE = "persona_inference.jsonl"
PERSONA_CHECKPOINT = "persona_inference.checkpoint.jsonl"
RUN_PERSONA_INFERENCE_FIRST = "run the persona_inference experiment with the same --inference_split/--run_name first"


def persona_run_folder(res_dir: str | Path, model: str, inference_split: str, run_name: str, partition: str) -> Path:
    """Where persona inference wrote ``model``'s results (the layout of ``run_model.run_dir``)."""
    folder = Path(res_dir) / model / inference_split / run_name
    return folder if partition == "full" else folder / partition


def find_persona_results(
    res_dir: str | Path,
    inference_split: str,
    run_name: str,
    partition: str,
    models: list[str] | None,
    fix: str = RUN_PERSONA_INFERENCE_FIRST,
) -> dict[str, Path]:
    """``{model folder: persona_inference.jsonl}`` for this split and run; a one-line error naming what exists."""
    root = Path(res_dir)
    model_dirs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    folders = {m: persona_run_folder(root, m, inference_split, run_name, partition) for m in model_dirs}
    found = {m: f / PERSONA_FILE for m, f in folders.items() if (f / PERSONA_FILE).is_file()}
    wanted = models or sorted(found)
    missing = [m for m in wanted if m not in found]
    if wanted and not missing:
        return {m: found[m] for m in wanted}
    hints = []
    if found:
        hints.append(f"results exist for: {', '.join(found)}")
    unfinished = [m for m, f in folders.items() if m not in found and (f / PERSONA_CHECKPOINT).is_file()]
    if unfinished:
        hints.append(f"unfinished (rerun persona inference to finish): {', '.join(unfinished)}")
    pattern = str(root / "*" / glob.escape(inference_split) / "*" / PERSONA_FILE)
    other_runs = sorted({Path(p).parent.name for p in glob.glob(pattern)} - {run_name})
    if other_runs:
        hints.append(f"--run_name values with results for this split: {', '.join(other_runs)}")
    subject = f"model(s) {', '.join(missing)}" if missing else "any model"
    where = persona_run_folder(root, "<model>", inference_split, run_name, partition) / PERSONA_FILE
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
    keys: dict[int, str] = {}
    kept = []
    for record in records:
        if not {"id", "row", "side", "persona"} <= record.keys() or record["side"] not in ("chosen", "rejected"):
            raise UsageError(f"{path} is not a persona inference results file (record {record.get('id')!r}): rerun persona inference")
        row = record["row"]
        if not isinstance(row, int) or not 0 <= row < len(dataset):
            raise UsageError(
                f"{path} has row {row!r} but dataset '{dataset_name}' has {len(dataset)} rows: "
                "pass the --dataset_name/--inference_split that persona inference used"
            )
        if row not in keys:
            keys[row] = row_key(dataset[row])
        if record["id"] != f"{row}-{record['side']}-{keys[row]}":
            raise UsageError(
                f"{path} does not match dataset '{dataset_name}' (record {record['id']} is not row {row} of it): "
                "pass the --dataset_name/--inference_split that persona inference used, or rerun persona inference"
            )
        if row in rows:
            kept.append(record)
    return kept


_LOADED_JUDGES: dict[tuple, object] = {}


def judge_backend(args):
    """The judge's backend with its own small token budget; one loaded model serves every judge experiment of a run."""
    from persona_core.llm.base import GenerationConfig
    from persona_inference.model.run_model import make_backend

    generation = GenerationConfig(args.temperature, args.judge_max_tokens, 0, args.stop_token, args.seed)
    key = (args.model_type, args.model_name, args.base_url, args.device_map, args.load_in_4bit, args.load_in_8bit)
    if key not in _LOADED_JUDGES:
        _LOADED_JUDGES.clear()  # never hold two local models at once
        _LOADED_JUDGES[key] = make_backend(dataclasses.replace(args, max_tokens=args.judge_max_tokens), args.stop_token)
    llm = _LOADED_JUDGES[key]
    llm.generation = generation
    return llm
