"""Add the inferred personas to a preference dataset: ``chosen_persona_gold`` and ``rejected_persona_gold``.

Personas come from a persona inference run (``run_model``), matched to rows by their ids, never by line
order, and checked against each row's content so results of another dataset are refused. The dataset keeps the
input's format and every one of its columns (a conversational dataset stays conversational). It is saved locally
with ``save_to_disk``, with a dataset card (``README.md``: source, PI model and settings, row counts, the columns
added, how to cite the paper); ``--push_to_hub`` also uploads both (token: HF_TOKEN or HF_WRITE_TOKEN).

Examples::

    # the sample run (after `python -m persona_inference.model.run_model`)
    python -m persona_inference.model.build_augmented_dataset

    # the paper's BeaverTails personas from a GPT-4o-mini run, also pushed to the Hub
    python -m persona_inference.model.build_augmented_dataset --dataset_name data/beavertails.jsonl \\
        --inference_split BeaverTails --model gpt-4o-mini --new_dataset_name me/persona-augmented --push_to_hub
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path

from persona_core.arguments import GenerationArguments
from persona_core.cli import parse, public_args
from persona_core.data import Partition, partition_range
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError, run_cli
from persona_core.io import atomic_output, read_records
from persona_core.layout import (
    DATASET_CARD_FILE,
    DATASET_DICT_FILE,
    GOLD_PERSONA_COLUMNS,
    PERSONA_INFERENCE,
    StageFiles,
    augmented_dataset_dir,
    nickname,
    parse_persona_id,
    pi_files,
    pi_run_dir,
    row_key,
)
from persona_core.preferences import Columns, load_preferences
from persona_core.secrets import get_key, load_env
from persona_inference.model.arguments import DataArguments, ResultsArguments
from persona_inference.model.run_model import GROUPS as RUN_MODEL_GROUPS

_SHOWN = 5  # how many row numbers or commands an error message lists
GENERATION_OPTIONS = tuple(f.name for f in fields(GenerationArguments))


@dataclass
class AugmentationArguments:
    """Which persona inference run the personas come from, and where the augmented dataset goes."""

    run_name: str = field(default="default", metadata={"help": "Run name of the persona inference run."})
    model: str = field(
        default=EMBEDDED_MODEL_NAME, metadata={"help": "Model nickname: the results folder under --res_dir."}
    )
    new_dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Name of the new dataset (Hub repo id 'owner/name' with --push_to_hub); "
            "default: augmented-<inference_split>-<model>-<run_name>."
        },
    )
    out_dir: str = field(default="results/datasets", metadata={"help": "Folder for the saved dataset."})
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Also push to the Hub as --new_dataset_name, config --inference_split."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Cache folder for Hub datasets."})

    def check(self) -> None:
        if self.push_to_hub and (not self.new_dataset_name or self.new_dataset_name.count("/") != 1):
            raise UsageError("--push_to_hub needs --new_dataset_name as a Hub repo id 'owner/name'")

    def output_folder(self, inference_split: str) -> Path:
        return augmented_dataset_dir(
            self.out_dir, inference_split, self.model, self.run_name, self.new_dataset_name
        )


@dataclass(frozen=True)
class PersonaRun:
    """The persona inference run the personas come from, and the dataset it read."""

    res_dir: str
    model: str
    inference_split: str
    run_name: str
    dataset_name: str
    split: str

    def folder(self) -> Path:
        return pi_run_dir(self.res_dir, self.model, self.inference_split, self.run_name)

    def files(self, partition: Partition = Partition.full) -> StageFiles:
        return pi_files(
            self.res_dir, self.model, self.inference_split, self.run_name, PERSONA_INFERENCE, partition.value
        )

    def result_files(self) -> list[StageFiles]:
        """The stages whose results make up the run: the full run, plus its partitions when it has no final file."""
        full = self.files()
        if full.results.is_file():
            return [full]
        partitions = [p for p in Partition if p != Partition.full and self.files(p).folder.is_dir()]
        return [full, *(self.files(p) for p in partitions)]


def read_results(stages: list[StageFiles]) -> dict[str, dict]:
    """Records by id: each stage's final file, else its checkpoint (a run with failures only has that)."""
    records = {}
    for files in stages:
        if files.results.is_file():
            records.update({r["id"]: r for r in read_records(files.results)})
        elif (
            files.checkpoint.is_file()
        ):  # read only: a run may still be appending (its torn last line is skipped)
            records.update({r["id"]: r for r in read_records(files.checkpoint, skip_torn_tail=True)})
    return records


def parse_record_id(record_id: str, where: Path) -> tuple[int, str, str]:
    parsed = parse_persona_id(record_id)
    if parsed is None:
        raise UsageError(
            f"'{where}' holds a record with id '{record_id}', not '<row>-<side>-<key>': "
            "point --res_dir/--model/--run_name at a persona inference run"
        )
    return parsed


def match_personas(preferences, records: dict[str, dict], where: Path) -> dict[tuple[int, str], str]:
    """``{(row, side): persona}`` for the ``ok`` records; refuses records whose row content differs."""
    keys = [row_key(row) for row in preferences]
    personas, foreign = {}, []
    for record_id, record in records.items():
        row, side, key = parse_record_id(record_id, where)
        if row >= len(keys) or keys[row] != key:
            foreign.append(row)
        elif record.get("status", "ok") == "ok":
            personas[(row, side)] = record.get("persona", "")
    if foreign:
        raise UsageError(
            f"{len(foreign)} of {len(records)} persona records in '{where}' belong to another dataset "
            f"(their rows' content differs from the current dataset): pass the --dataset_name, --inference_split "
            f"and --split that the run used, or rerun persona inference on this dataset"
        )
    return personas


def run_arguments(run: PersonaRun, partition: Partition | None) -> dict:
    """The arguments of the run (from its run record, else a partition's), for a resume command."""
    full = run.files()
    siblings = sorted(full.folder.glob(f"*/{full.run_record.name}"))
    for path in [run.files(partition or Partition.full).run_record, full.run_record, *siblings]:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8")).get("arguments", {})
    return {}


API_MODEL_PREFIXES = {
    "open_ai": ("gpt-", "o1", "o3", "o4", "chatgpt-"),
    "anthropic": ("claude-",),
    "cohere": ("command",),
}


def api_model_type(model_name: str) -> str | None:
    """The API backend an API model's name implies (``gpt-4o-mini``: open_ai), for a command with no run record to
    copy it from; None for other names (local models: run_model's default backend)."""
    return next((kind for kind, starts in API_MODEL_PREFIXES.items() if model_name.startswith(starts)), None)


def resume_command(run: PersonaRun, partition: Partition | None) -> str:
    """The run_model command that resumes (or starts) the run, with the options that identify it."""
    recorded = run_arguments(run, partition)
    options = {
        "run_name": run.run_name,
        "model_name": recorded.get("model_name", run.model),
        "model_nickname": recorded.get("model_nickname"),
        "model_type": recorded.get("model_type") or api_model_type(recorded.get("model_name", run.model)),
        "base_url": recorded.get("base_url"),
        "dataset_name": recorded.get("dataset_name", run.dataset_name),
        "inference_split": run.inference_split,
        "split": recorded.get("split", run.split),
        "res_dir": run.res_dir,
        "partition": partition.value if partition else None,
        # what the run's fingerprint holds: a resume with other values would be refused
        **{name: recorded.get(name) for name in ("prompt_dir", "persona_prefix", *GENERATION_OPTIONS)},
    }
    if nickname(options["model_name"]) != run.model and not options["model_nickname"]:
        options["model_nickname"] = run.model
    defaults = public_args(
        *(group() for group in RUN_MODEL_GROUPS)
    )  # options equal to run_model's defaults are left out
    words = ["python", "-m", "persona_inference.model.run_model"]
    for name, value in options.items():
        if value is not None and defaults.get(name) != value:
            words += [f"--{name}", *map(str, value if isinstance(value, list) else [value])]
    return shlex.join(words)


def partitions_to_resume(stages: list[StageFiles], rows: list[int], n: int) -> list[Partition | None]:
    """The partitions holding ``rows``, as fine as the finest partition folder there (``[None]``: the full run)."""
    names = {files.folder.name for files in stages}
    sizes = {
        name.split("_")[1] for name in names if name in Partition.__members__ and name != Partition.full.value
    }
    if not sizes:
        return [None]
    size = max(sizes, key=lambda s: {"half": 2, "quarter": 4, "eighth": 8}[s])
    parts = [p for p in Partition if p.value.endswith(f"_{size}")]
    return [p for p in parts if any(row in partition_range(p, n) for row in rows)]


def check_complete(
    run: PersonaRun, n: int, personas: dict, failed_rows: set[int], stages: list[StageFiles]
) -> None:
    """Refuse unless every row has both personas, naming the counts and the command that finishes the run."""
    counts = {"missing": 0, "failed": 0, "empty": 0}
    incomplete = []
    for row in range(n):
        found = [personas.get((row, side)) for side in GOLD_PERSONA_COLUMNS]
        if all(found):
            continue
        incomplete.append(row)
        kind = "failed" if row in failed_rows else "empty" if None not in found else "missing"
        counts[kind] += 1
    if not incomplete:
        return
    rows = ", ".join(str(r) for r in incomplete[:_SHOWN]) + (", ..." if len(incomplete) > _SHOWN else "")
    folder = run.folder()
    commands = [resume_command(run, p) for p in partitions_to_resume(stages, incomplete, n)]
    listed = "; ".join(f"`{c}`" for c in commands[:_SHOWN])
    if len(commands) > _SHOWN:
        listed += f" and {len(commands) - _SHOWN} more partitions"
    summary = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
    empty = (
        " (empty personas are kept on resume: redo them under a new --run_name)" if counts["empty"] else ""
    )
    raise UsageError(
        f"personas are incomplete for {len(incomplete)} of {n} rows ({summary}; rows {rows}) in run '{folder}': "
        f"finish it with {listed}, then rerun this command{empty}"
    )


def augment(run: PersonaRun, columns: Columns, skip_bad_rows: bool, cache_dir: str | None):
    """(the dataset with both persona columns, its rows as read, the run's stages), after every check (nothing is
    written here). The rows are read as persona inference read them (same columns, same bad rows skipped)."""
    preferences = load_preferences(
        run.dataset_name, run.inference_split, run.split, cache_dir, columns, skip_bad_rows
    )
    folder = run.folder()
    stages = run.result_files()
    records = read_results(stages)
    if not records:
        found = sorted(p.name for p in folder.parent.iterdir()) if folder.parent.is_dir() else []
        hint = f" (runs found there: {', '.join(found)})" if found else ""
        raise UsageError(
            f"no persona inference results in '{folder}'{hint}: run "
            f"`{resume_command(run, None)}` first, or pass the right --res_dir/--model/--run_name"
        )
    personas = match_personas(preferences, records, folder)
    failed_rows = {int(r["id"].split("-")[0]) for r in records.values() if r.get("status", "ok") != "ok"}
    check_complete(run, len(preferences), personas, failed_rows, stages)
    dataset = preferences.source_rows()
    dataset = dataset.remove_columns([c for c in GOLD_PERSONA_COLUMNS.values() if c in dataset.column_names])
    for side, column in GOLD_PERSONA_COLUMNS.items():
        dataset = dataset.add_column(column, [personas[(row, side)] for row in range(len(dataset))])
    return dataset, preferences, stages


CITATION = """@inproceedings{balepur-etal-2025-whose,
    title = "Whose Boat Does it Float? Improving Personalization in Preference Tuning via Inferred User Personas",
    author = "Balepur, Nishant and Padmakumar, Vishakh and Yang, Fumeng and Feng, Shi and Rudinger, Rachel and
      Boyd-Graber, Jordan Lee",
    booktitle = "Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics
      (Volume 1: Long Papers)",
    year = "2025",
    address = "Vienna, Austria",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2025.acl-long.168/",
    doi = "10.18653/v1/2025.acl-long.168",
    pages = "3371--3393"
}"""


def run_details(stages: list[StageFiles]) -> list[dict]:
    """What each stage's run record says about how its personas were made (stages without one are left out)."""
    details = []
    for files in stages:
        if not files.run_record.is_file():
            continue
        record = json.loads(files.run_record.read_text(encoding="utf-8"))
        arguments, fingerprint = record.get("arguments", {}), record.get("fingerprint") or {}
        details.append(
            {
                "run": str(files.folder),
                "model": arguments.get("model_name"),
                "backend": arguments.get("model_type"),
                "base_url": arguments.get("base_url"),
                "template": record.get("template"),
                "template_digest": fingerprint.get("template"),
                "persona_prefix": fingerprint.get("persona_prefix"),
                "generation": fingerprint.get("generation"),
                "failed_requests": record.get("stats", {}).get("failed", 0),
                "cut_prompts": len(record.get("cut_prompts", {})),
            }
        )
    return details


def _cell(value) -> str:
    return f"`{value}`" if value not in (None, "") else "unknown"


def dataset_card(title: str, run: PersonaRun, dataset, preferences, stages: list[StageFiles]) -> str:
    """The README.md of the augmented dataset, with Hub metadata (huggingface_hub's ``DatasetCard``)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    runs = run_details(stages) or [{"run": str(run.folder())}]
    lines = [
        f"# {title}",
        "",
        f"The preference data `{run.dataset_name}` with the personas that persona inference "
        "([Balepur et al., ACL 2025](https://aclanthology.org/2025.acl-long.168/)) inferred for each row: a user "
        "who would prefer the chosen response, and one who would prefer the rejected response. Built with "
        "`persona_inference.model.build_augmented_dataset`.",
        "",
        "## Source",
        "",
        "| | |",
        "| --- | --- |",
        f"| dataset | {_cell(run.dataset_name)} (config {_cell(run.inference_split)}, split {_cell(run.split)}) |",
        f"| format | {preferences.format.value} (columns {', '.join(map(_cell, preferences.source.column_names))}) |",
        "",
        "## Persona inference",
        "",
        "| run | model | backend | template (digest) | persona prefix | generation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        generation = ", ".join(f"{k}={v}" for k, v in (run.get("generation") or {}).items()) or None
        backend = run.get("backend") and run["backend"] + (
            f" at {run['base_url']}" if run.get("base_url") else ""
        )
        lines.append(
            f"| {_cell(run['run'])} | {_cell(run.get('model'))} | {_cell(backend)} | {_cell(run.get('template'))} "
            f"({_cell(run.get('template_digest'))}) | {_cell(run.get('persona_prefix'))} | {_cell(generation)} |"
        )
    skipped = preferences.skipped
    lines += [
        "",
        "## Rows",
        "",
        f"- rows in the source: {len(preferences.source)}",
        f"- rows in this dataset: {len(dataset)}",
        f"- bad rows skipped (`--skip_bad_rows`): {len(skipped)}",
        *(f"  - row {bad.row}: {bad.reason}" for bad in skipped),
        f"- failed persona requests: {sum(r.get('failed_requests', 0) for r in runs)} "
        "(the dataset is built only from runs where every row has both personas)",
        f"- prompts cut from their oldest turns to fit a token budget: {sum(r.get('cut_prompts', 0) for r in runs)}",
        "",
        "## Columns added",
        "",
        "Every column of the source is kept unchanged, in its own format. Added:",
        "",
        f"- `{GOLD_PERSONA_COLUMNS['chosen']}`: the persona of a user who would prefer the chosen response",
        f"- `{GOLD_PERSONA_COLUMNS['rejected']}`: the persona of a user who would prefer the rejected response",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    metadata = DatasetCardData(
        pretty_name=title, tags=["persona-inference", "personalization", "preference-data"]
    )
    return str(DatasetCard(f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(lines)))


def check_output_folder(folder: Path) -> None:
    """Only a saved dataset may be replaced, so a mistyped output path never deletes other files."""
    if folder.exists() and not ((folder / DATASET_DICT_FILE).is_file() or (folder / "state.json").is_file()):
        raise UsageError(f"'{folder}' exists and is not a saved dataset: pass another output folder")


def save_dataset_atomic(dataset_dict, folder: Path, card: str | None = None) -> None:
    """``save_to_disk`` (and the dataset card) through ``persona_core.io.atomic_output``: an error never leaves a
    partial folder."""
    check_output_folder(folder)
    with atomic_output(folder, folder=True) as tmp:
        dataset_dict.save_to_disk(str(tmp))
        if card is not None:
            (tmp / DATASET_CARD_FILE).write_text(card, encoding="utf-8")


def push_card(repo_id: str, card: str, token: str) -> None:
    """Our card over the README that ``push_to_hub`` just wrote, keeping that README's metadata (features, configs)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    ours = DatasetCard(card)
    pushed = DatasetCard.load(repo_id, repo_type="dataset", token=token)
    metadata = DatasetCardData(**(pushed.data.to_dict() | ours.data.to_dict()))
    DatasetCard(f"---\n{metadata.to_yaml()}\n---\n{ours.text}").push_to_hub(repo_id, token=token)


def push(dataset_dict, repo_id: str, config_name: str, saved: Path, card: str) -> None:
    token = get_key("hf_write")
    try:
        dataset_dict.push_to_hub(repo_id, config_name=config_name, token=token)
        push_card(repo_id, card, token)
    except Exception as err:  # the Hub unreachable, no write access: the local copy is still there
        raise UsageError(
            f"push to '{repo_id}' failed ({type(err).__name__}); the dataset is saved at '{saved}': "
            "check the network and your token's write access, then rerun with --push_to_hub"
        ) from None


def main(argv: list[str] | None = None) -> int:
    results, data, options = parse(
        (ResultsArguments, DataArguments, AugmentationArguments), argv, description=__doc__.split("\n\n")[0]
    )
    if options.push_to_hub:
        load_env()
        get_key("hf_write")  # fail before any work when no token is set
    import datasets

    folder = options.output_folder(data.inference_split)
    check_output_folder(folder)
    run = PersonaRun(
        results.res_dir, options.model, data.inference_split, options.run_name, data.dataset_name, data.split
    )
    dataset, preferences, stages = augment(run, data.columns(), data.skip_bad_rows, options.cache_dir)
    dataset_dict = datasets.DatasetDict({data.split: dataset})
    card = dataset_card(options.new_dataset_name or folder.name, run, dataset, preferences, stages)
    save_dataset_atomic(dataset_dict, folder, card)
    if options.push_to_hub:
        push(dataset_dict, options.new_dataset_name, data.inference_split, folder, card)
    pushed = (
        f"; pushed to the Hub as {options.new_dataset_name} (config {data.inference_split})"
        if options.push_to_hub
        else ""
    )
    skipped = f", {len(preferences.skipped)} bad rows skipped" if preferences.skipped else ""
    print(
        f"augmented {len(dataset)} rows of '{data.dataset_name}' ({preferences.format.value} format{skipped}) "
        f"with personas from '{run.folder()}'"
    )
    print(f"saved: {folder} (split '{data.split}', dataset card {DATASET_CARD_FILE}){pushed}")
    return 0


if __name__ == "__main__":
    run_cli(main)
