"""What a run report reads: every stage found below a results root (through ``persona_core.layout``), each
with its final records and run record, and the preference rows personas were inferred from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from persona_core import layout
from persona_core.errors import UsageError
from persona_core.io import read_records
from persona_core.preferences import Columns, load_preferences

FIGURE_CAPTIONS = {
    "accuracy": "Figure 3: persona accuracy",
    "prefs": "Figure 4: persona preferences",
    "saliency": "Table 1: word saliency",
}


@dataclass
class Stage:
    """One finished stage: a label, its final records and its run record (None when absent)."""

    label: str
    records: list[dict]
    run_record: dict | None


@dataclass
class PIRun(Stage):
    model: str = ""
    split: str = ""
    run_name: str = ""


@dataclass
class Comparison(Stage):
    win_rate: dict | None = None
    win_rate_png: Path | None = None


@dataclass
class Run:
    root: Path
    personas: list[PIRun]
    accuracy: list[PIRun]
    prefs: list[PIRun]
    figures: list[tuple[str, Path, Path]]
    """(caption, PNG, CSV of the numbers) of every figure found."""
    comparisons: list[Comparison]
    grids: list[dict[str, Path]]
    """The files of every ΔPQ grid table (``layout.delta_pq_table_files``) found in the judge's output."""
    generations: list[Stage]
    models: list[layout.PTModelDirs]

    def stages(self) -> dict[str, int]:
        """What the run holds, by stage: how many results of each were found."""
        return {
            "persona inference": len(self.personas),
            "persona accuracy": len(self.accuracy),
            "persona preferences": len(self.prefs),
            "figures": len(self.figures),
            "trained models": len(self.models),
            "generations": len(self.generations),
            "judged comparisons": len(self.comparisons),
            "ΔPQ grid tables": len(self.grids),
        }


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_pi_runs(res_dir: Path, experiment: str) -> list[PIRun]:
    runs = []
    for model, split, run_name in layout.find_pi_runs(res_dir, experiment):
        files = layout.pi_files(res_dir, model, split, run_name, experiment)
        label = f"{model} / {split} / {run_name}"
        records, record = read_records(files.results), read_json(files.run_record)
        runs.append(PIRun(label, records, record, model, split, run_name))
    return runs


def read_run(root: Path) -> Run:
    """Every stage's results found below ``root``; a UsageError when there are none at all."""
    top = layout.results_root_dirs(root)
    personas, accuracy, prefs = (read_pi_runs(top["pi"], experiment) for experiment in layout.PI_EXPERIMENTS)
    figures = []
    for run_name in sorted({r.run_name for r in personas + accuracy + prefs}):
        folder = layout.figures_dir(top["pi"], run_name)
        for figure, caption in FIGURE_CAPTIONS.items():
            png = layout.figure_paths(folder, figure)[0]
            if png.is_file():
                figures.append((f"{caption} (run {run_name})", png, layout.figure_table(folder, figure)))
    comparisons = []
    for folder in layout.find_comparisons(top["judge"]):
        files = layout.judge_files(folder)
        outputs = layout.win_rate_files(folder)
        comparisons.append(
            Comparison(
                layout.comparison_name(folder),
                read_records(files.results),
                read_json(files.run_record),
                read_json(outputs["json"]),
                outputs["png"] if outputs["png"].is_file() else None,
            )
        )
    tables = sorted(top["judge"].rglob(f"{layout.DELTA_PQ_TABLE}.csv"))
    grids = [layout.delta_pq_table_files(path.parent) for path in tables]
    generations = []
    for path in layout.find_pt_outputs(top["generations"]):
        files = layout.pt_files(path)
        label = str(path.relative_to(top["generations"]))
        generations.append(Stage(label, read_records(path), read_json(files.run_record)))
    models = layout.find_pt_models(top["models"])
    run = Run(root, personas, accuracy, prefs, figures, comparisons, grids, generations, models)
    if not any(run.stages().values()):
        raise UsageError(
            f"no results of any stage below '{root}' (looked in {', '.join(str(p) for p in top.values())}): "
            "pass the ROOT of a run, e.g. the one scripts/pipeline.sh printed"
        )
    return run


def preference_rows(run: PIRun) -> tuple[dict[int, dict], str | None]:
    """The rows the personas were inferred from, checked against the persona ids, and a note when some are missing.

    The dataset is the one the run record names, read when it is a local file or folder (relative paths are tried
    from here and from the repository, where the scripts run) in whichever format it has
    (``persona_core.preferences``); ids that do not match its rows are left out.
    """
    arguments = (run.run_record or {}).get("arguments", {})
    name = arguments.get("dataset_name")
    local = [path for path in (Path(name), layout.REPO_ROOT / name) if path.exists()] if name else []
    if not local:
        return {}, f"the dataset '{name}' is not a local file or folder here: prompts and responses not shown"
    columns = Columns(
        *(arguments.get(f"{c}_column") or c for c in ("prompt", "chosen", "rejected"))
    )  # the run's own names; rows in any format are read as text, as persona inference read them
    try:
        dataset = load_preferences(
            str(local[0]),
            arguments.get("inference_split"),
            arguments.get("split", "train"),
            columns=columns,
            skip_bad_rows=bool(arguments.get("skip_bad_rows")),
        )
    except UsageError as err:
        return {}, f"the dataset '{name}' could not be read ({err}): prompts and responses not shown"
    rows = {}
    for record in run.records:
        index = record["row"]
        if index < len(dataset) and layout.persona_id(index, record["side"], dataset[index]) == record["id"]:
            rows[index] = {column: dataset[index][column] for column in layout.PREFERENCE_COLUMNS}
    wanted = {record["row"] for record in run.records}
    if len(rows) < len(wanted):
        return rows, (
            f"{len(wanted) - len(rows)} of {len(wanted)} rows of '{name}' no longer match the persona ids "
            "(the dataset changed since the run): their prompts and responses are not shown"
        )
    return rows, None
