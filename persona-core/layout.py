"""The contract between stages: every results path, file name, column name and id recipe, in one place.

Python stages import these; bash scripts ask ``persona_core.layout_cli``.

Each stage writes, in its folder, ``{name}.jsonl`` (final results, written atomically when nothing failed),
``{name}.checkpoint.jsonl`` (append-only), ``{name}.run.json`` (the run record) and ``{name}.fingerprint.json``
(what determines the outputs; see ``persona_core.runs``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER_DATA_VARIABLE = "PERSONA_PAPER_DATA"
SAMPLE_PREFERENCES = REPO_ROOT / "data" / "sample_preferences.jsonl"
SAMPLE_TAILORING = REPO_ROOT / "data" / "sample-tailoring"
MODELS_DIR = REPO_ROOT / "models"


def paper_data_dir() -> Path:
    """The paper's released data (``save_to_disk`` folders, ``paper-outputs/``): ``$PERSONA_PAPER_DATA``, else
    ``../shared/data`` beside the repository. Benchmarks and optional tests read it; nothing requires it."""
    return Path(os.environ.get(PAPER_DATA_VARIABLE) or REPO_ROOT.parent / "shared" / "data")


# --- columns and ids ---------------------------------------------------------------------------------------------

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
SIDES = ("chosen", "rejected")
GOLD_PERSONA_COLUMNS = {"chosen": "chosen_persona_gold", "rejected": "rejected_persona_gold"}
RETRIEVED_PERSONA_COLUMNS = {"chosen": "chosen_persona_retr", "rejected": "rejected_persona_retr"}
TAILORING_SPLITS = ("fewshot", "sft_train", "sft_val", "dpo_train", "dpo_val", "test")
PT_OUTPUT_FIELDS = ("id", "index", "prompt", "persona", "response", "model_input")


ROW_KEY_COLUMN = "preference_row_key"
"""A normalized row's key, computed before its prompt was cut to fit a context (``persona_core.preferences``)."""


def row_key(row: dict) -> str:
    """A short digest of a preference row, so ids from another dataset never match this one.

    A row read from a conversational format carries the key of its normalized, uncut form (``ROW_KEY_COLUMN``), so
    its ids stay the same whatever context its prompt was cut to."""
    if row.get(ROW_KEY_COLUMN):
        return row[ROW_KEY_COLUMN]
    text = "\x1f".join(str(row.get(c, "")) for c in PREFERENCE_COLUMNS)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def persona_id(index: int, side: str, row: dict) -> str:
    """The id of a row's persona for one side: ``{row}-{side}-{row_key}``."""
    return f"{index}-{side}-{row_key(row)}"


def parse_persona_id(record_id: str) -> tuple[int, str, str] | None:
    """(row, side, row key) of an id made by ``persona_id``, else None."""
    match = re.fullmatch(r"(\d+)-(chosen|rejected)-([0-9a-f]+)", str(record_id))
    return (int(match[1]), match[2], match[3]) if match else None


def nickname(model_name: str) -> str:
    """A file-system-safe form of a model name: 'meta-llama/Llama-3.1-8B' -> 'meta-llama--Llama-3.1-8B'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_name.strip("/").replace("/", "--")).strip("-") or "model"


def model_nickname(model_name: str) -> str:
    """The default results folder name of a model: a local folder's own name, or the file-safe Hub id."""
    local = Path(model_name).expanduser().exists() or model_name.startswith((".", "/", "~"))
    return nickname(Path(model_name).expanduser().name if local else model_name)


# --- the files of one stage --------------------------------------------------------------------------------------


class NamedFile:
    """A read-only attribute of ``StageFiles``: the file ``pattern`` names in the stage's folder, ``{name}`` the
    stage's name."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __get__(self, files: StageFiles | None, owner: type | None = None):
        return self if files is None else files.folder / self.pattern.format(name=files.name)


@dataclass(frozen=True)
class StageFiles:
    """The files one stage keeps in its folder, all named after the stage."""

    folder: Path
    name: str
    results_file: Path | None = None
    """The final file when it is not ``{folder}/{name}.jsonl`` (the judge's ``judgments.jsonl``, PT outputs)."""

    @property
    def results(self) -> Path:
        return self.results_file or self.folder / f"{self.name}.jsonl"

    checkpoint = NamedFile("{name}.checkpoint.jsonl")
    run_record = NamedFile("{name}.run.json")
    fingerprint = NamedFile("{name}.fingerprint.json")
    lock = NamedFile(".{name}.lock")


def shard_files(files: StageFiles, index: int, count: int) -> StageFiles:
    """The files of shard ``index`` (0-based) of ``count`` of a stage, beside the stage's own: each shard has its
    lock, checkpoint, fingerprint, run record and results, ``{name}.shard-{index + 1}-of-{count}.*``."""
    return StageFiles(files.folder, f"{files.name}.shard-{index + 1}-of-{count}")


# --- persona inference -------------------------------------------------------------------------------------------

PI_EXPERIMENTS = ("persona_inference", "persona_accuracy", "persona_prefs")
PERSONA_INFERENCE = "persona_inference"
FULL_PARTITION = "full"
FIGURE_NAMES = {"accuracy": "persona_accuracy", "prefs": "persona_prefs", "saliency": "word_saliency"}


def pi_run_dir(
    res_dir, model_nickname: str, inference_split: str, run_name: str, partition: str = FULL_PARTITION
) -> Path:
    """``{res_dir}/{model_nickname}/{inference_split}/{run_name}[/{partition}]``."""
    folder = Path(res_dir) / model_nickname / inference_split / run_name
    return folder if partition == FULL_PARTITION else folder / partition


def pi_files(
    res_dir, model_nickname, inference_split, run_name, experiment=PERSONA_INFERENCE, partition=FULL_PARTITION
):
    return StageFiles(pi_run_dir(res_dir, model_nickname, inference_split, run_name, partition), experiment)


def pi_results_glob(inference_split: str, experiment: str = PERSONA_INFERENCE) -> str:
    """A glob, relative to ``res_dir``, of one experiment's final results for every model and run of a split."""
    from glob import escape

    return f"*/{escape(inference_split)}/*/{experiment}.jsonl"


def figures_dir(res_dir, run_name: str) -> Path:
    return Path(res_dir) / "figures" / run_name


def figure_paths(folder: Path, figure: str) -> list[Path]:
    """The PNG and PDF of one figure (``accuracy``, ``prefs``, ``saliency``)."""
    name = FIGURE_NAMES[figure]
    return [folder / f"{name}.png", folder / f"{name}.pdf"]


def saliency_table(folder: Path) -> Path:
    return folder / f"{FIGURE_NAMES['saliency']}.csv"


def figure_table(folder: Path, figure: str) -> Path:
    """The CSV of the numbers behind one figure (``accuracy``, ``prefs``, ``saliency``)."""
    return Path(folder) / f"{FIGURE_NAMES[figure]}.csv"


# --- datasets built from personas -------------------------------------------------------------------------------


def augmented_dataset_dir(
    out_dir, inference_split: str, model_nickname: str, run_name: str, name: str | None = None
) -> Path:
    """``{out_dir}/augmented-{split}-{nickname}-{run}``, or ``{out_dir}/{name}`` (``--new_dataset_name``), file-system safe."""
    return Path(out_dir) / nickname(name or f"augmented-{inference_split}-{model_nickname}-{run_name}")


def tailoring_dataset_dir(out_dir, inference_split: str) -> Path:
    return Path(out_dir) / nickname(f"persona-tailoring-{inference_split}")


DATASET_DICT_FILE = "dataset_dict.json"
DATASET_CARD_FILE = "README.md"
"""The dataset card written into a saved augmented dataset (and pushed with it to the Hub)."""

# --- persona tailoring -------------------------------------------------------------------------------------------

MODEL_CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
TRAINING_SUMMARY_FILE = "training_summary.json"
MERGE_INFO_FILE = "merge_info.json"
MODEL_FINGERPRINT_FILE = "fingerprint.json"
"""In an adapter or merged model folder: the fingerprint of the stage that made it (what its weights come from)."""
TRAIN = "train"
MERGE = "merge"
_PT_OUTPUT = re.compile(r"^(\w+)_Persona\(training_type=([\w-]+), inference_type=([\w-]+)\)$")


@dataclass(frozen=True)
class PTModelDirs:
    """Where one (dataset, model, method, training type) keeps its checkpoints, adapter and merged model."""

    root: Path

    @classmethod
    def of(cls, model_save_dir, dataset_name: str, model_nickname: str, method: str, training_type: str):
        return cls(Path(model_save_dir) / dataset_name / model_nickname / f"{method}_{training_type}")

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def training_summary(self) -> Path:
        return self.adapter / TRAINING_SUMMARY_FILE

    def stage_files(self, stage: str) -> StageFiles:
        """The lock, fingerprint and run record of ``train`` or ``merge`` (``{root}/{stage}.*``)."""
        return StageFiles(self.root, stage)


def pt_output_name(method: str, training_type: str, inference_type: str) -> str:
    """The paper's output file name: ``dpo_Persona(training_type=chosen, inference_type=gold-chosen).jsonl``."""
    return f"{method}_Persona(training_type={training_type}, inference_type={inference_type}).jsonl"


def pt_output_path(
    results_save_dir, dataset_name: str, model_nickname: str | None, method, training_type, inference_type
):
    """``{results_save_dir}/{dataset}/[{nickname}/]{pt_output_name}`` (the paper's released outputs have no nickname)."""
    folder = Path(results_save_dir) / dataset_name
    if model_nickname:
        folder = folder / model_nickname
    return folder / pt_output_name(method, training_type, inference_type)


def parse_pt_output_name(path) -> tuple[str, str, str] | None:
    """(method, training type, inference type) of a file named by ``pt_output_name``, else None."""
    match = _PT_OUTPUT.match(pt_output_stem(path))
    return (match[1], match[2], match[3]) if match else None


def pt_output_stem(path) -> str:
    """A PT output's name without ``.jsonl`` (or the paper's ``.json``)."""
    return Path(path).name.removesuffix(".jsonl").removesuffix(".json")


PT_RUNS_DIR = ".runs"


def pt_files(output_path: Path) -> StageFiles:
    """A PT output is its own stage; its checkpoint, run record and fingerprint sit in a hidden ``.runs/`` sibling
    folder, so a glob of ``*.jsonl`` / ``*.json`` beside the outputs finds only finished outputs."""
    output_path = Path(output_path)
    return StageFiles(output_path.parent / PT_RUNS_DIR, pt_output_stem(output_path), output_path)


# --- judge and win rates -----------------------------------------------------------------------------------------

COMPARISONS = "comparisons"
JUDGE = "judge"
JUDGMENTS_FILE = "judgments.jsonl"
WIN_RATE = "win_rate"
WIN_RATE_TABLE = "win_rates.csv"
DELTA_PQ_TABLE = "delta_pq_table"
"""The paper's ΔPQ grid table in a judge output folder: ``.csv``, ``.md``, ``.png`` and ``.pdf``."""
VERDICT_CACHE = "verdict_cache.jsonl"
"""Verdicts of a judge output folder by (judge identity, verdict settings, rubric, rendered prompt)."""


def comparison_dir(
    output_dir, dataset_name: str | None, model_nickname: str | None, base_label: str, test_label: str
):
    """``{output_dir}/comparisons/[{dataset}/][{nickname}/]{base}_vs_{test}``."""
    folder = Path(output_dir) / COMPARISONS
    for part in (dataset_name, model_nickname):
        if part:
            folder = folder / part
    return folder / f"{base_label}_vs_{test_label}"


def comparison_name(folder: Path) -> str:
    """What follows the last ``comparisons/`` of a folder, e.g. 'BeaverTails/dpo-none-none_vs_dpo-chosen-gold-chosen'."""
    parts = Path(folder).resolve().parts
    if COMPARISONS in parts:
        return "/".join(parts[len(parts) - parts[::-1].index(COMPARISONS) :])
    return Path(folder).name


def verdict_cache_path(output_dir) -> Path:
    return Path(output_dir) / VERDICT_CACHE


def delta_pq_table_files(output_dir) -> dict[str, Path]:
    return {ext: Path(output_dir) / f"{DELTA_PQ_TABLE}.{ext}" for ext in ("csv", "md", "png", "pdf")}


def judge_files(folder: Path) -> StageFiles:
    return StageFiles(Path(folder), JUDGE, Path(folder) / JUDGMENTS_FILE)


def win_rate_files(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    return {ext: folder / f"{WIN_RATE}.{ext}" for ext in ("json", "csv", "png", "pdf")}


# --- what a results root holds (scripts/pipeline.sh, the run report) ------------------------------------------

REPORT_FILE = "report.html"


def results_root_dirs(root) -> dict[str, Path]:
    """The top folders of one results root: PI results, datasets, PT models, PT outputs, the judge's output."""
    root = Path(root)
    return {
        "pi": root / "persona-inference",
        "datasets": root / "datasets",
        "models": root / "models",
        "generations": root / "persona-tailoring",
        "judge": root / JUDGE,
    }


def report_path(root) -> Path:
    """The one HTML page of a whole run (``persona_tailoring.evaluation.report``)."""
    return Path(root) / REPORT_FILE


def find_pi_runs(res_dir, experiment: str = PERSONA_INFERENCE) -> list[tuple[str, str, str]]:
    """(model folder, split, run name) of every finished full run of ``experiment`` under ``res_dir``."""
    results = sorted(Path(res_dir).glob(str(pi_files(".", "*", "*", "*", experiment).results)))
    return [(path.parents[2].name, path.parents[1].name, path.parent.name) for path in results]


def find_comparisons(output_dir) -> list[Path]:
    """Every comparison folder holding judgments in or under a judge output folder."""
    output_dir = Path(output_dir)
    if judge_files(output_dir).results.is_file():
        return [output_dir]
    return sorted(path.parent for path in output_dir.rglob(JUDGMENTS_FILE))


def find_pt_outputs(results_save_dir) -> list[Path]:
    """Every finished PT output (named by ``pt_output_name``) under a PT results folder."""
    found = Path(results_save_dir).rglob("*.jsonl")
    return sorted(p for p in found if p.parent.name != PT_RUNS_DIR and parse_pt_output_name(p))


def find_pt_models(model_save_dir) -> list[PTModelDirs]:
    """Every trained PT model (``{dataset}/{nickname}/{method}_{training_type}``) under a model folder."""
    folders = map(PTModelDirs, sorted(Path(model_save_dir).glob("*/*/*")))
    return [dirs for dirs in folders if (dirs.adapter / ADAPTER_CONFIG_FILE).is_file()]
