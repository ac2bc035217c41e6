"""Loading datasets from the Hub, ``save_to_disk`` folders or local files; partitions; row ids.

Reading their rows as preference data, in any supported format, is ``persona_core.preferences``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from persona_core.errors import UsageError
from persona_core.layout import DATASET_DICT_FILE, PREFERENCE_COLUMNS, row_key  # noqa: F401  (re-exported)

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class Partition(str, Enum):
    full = "full"
    first_half = "first_half"
    second_half = "second_half"
    first_quarter = "first_quarter"
    second_quarter = "second_quarter"
    third_quarter = "third_quarter"
    fourth_quarter = "fourth_quarter"
    first_eighth = "first_eighth"
    second_eighth = "second_eighth"
    third_eighth = "third_eighth"
    fourth_eighth = "fourth_eighth"
    fifth_eighth = "fifth_eighth"
    sixth_eighth = "sixth_eighth"
    seventh_eighth = "seventh_eighth"
    eighth_eighth = "eighth_eighth"


_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]
_PARTS = {"half": 2, "quarter": 4, "eighth": 8}


def partition_range(partition: Partition, n: int) -> range:
    """Contiguous row range of ``partition`` in a dataset of ``n`` rows; the parts of one size tile it exactly."""
    if partition == Partition.full:
        return range(n)
    ordinal, size = partition.value.split("_")
    parts, index = _PARTS[size], _ORDINALS.index(ordinal)
    return range(index * n // parts, (index + 1) * n // parts)


def load_split(
    dataset_name: str, config: str | None = None, split: str = "train", cache_dir: str | None = None
):
    """Load one split as a ``datasets.Dataset``.

    ``dataset_name`` may be a local file (.jsonl/.json/.csv/.parquet), a ``save_to_disk`` folder (a Dataset or a
    DatasetDict; with one split, that split is used), a folder of per-split ``<split>.jsonl`` files, or a Hub id
    with ``config`` as its config name.
    """
    path = Path(dataset_name).expanduser()
    if path.is_file():
        if split != "train":
            raise UsageError(
                f"--split {split}: the file '{dataset_name}' holds one split, 'train': drop --split, or pass a "
                "folder of <split>.jsonl files"
            )
        return _load_file(path, cache_dir)
    if path.is_dir():
        jsonl_splits = _jsonl_split_files(path)
        if jsonl_splits:
            return _load_file(_pick_split(jsonl_splits, split, str(path)), cache_dir)
        return _pick_split(_load_from_disk(path), split, str(path))
    return _pick_split(_load_hub(dataset_name, config, cache_dir), split, dataset_name)


def load_splits(dataset_name: str, config: str | None = None, cache_dir: str | None = None):
    """Load every split as a ``datasets.DatasetDict`` (e.g. the persona-tailoring splits, all at once).

    Accepts what ``load_split`` accepts; a single data file or a saved Dataset becomes the one split ``train``.
    """
    import datasets

    path = Path(dataset_name).expanduser()
    if path.is_file():
        return datasets.DatasetDict({"train": _load_file(path, cache_dir)})
    if path.is_dir():
        jsonl_splits = _jsonl_split_files(path)
        if jsonl_splits:
            return datasets.DatasetDict(
                {name: _load_file(file, cache_dir) for name, file in jsonl_splits.items()}
            )
        loaded = _load_from_disk(path)
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    return _load_hub(dataset_name, config, cache_dir)


def _load_file(path: Path, cache_dir: str | None):
    import datasets

    builder = LOCAL_FORMATS.get(path.suffix.lower())
    if builder is None:
        raise UsageError(f"unsupported data file '{path.name}': use one of {', '.join(LOCAL_FORMATS)}")
    if path.stat().st_size == 0:
        raise UsageError(f"data file '{path}' is empty: pass a dataset with at least one row")
    # A local file loads in a blink; its progress bar and log lines would only clutter a one-line error.
    bars_were_on = not datasets.are_progress_bars_disabled()
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir)
    except Exception as err:  # malformed JSON, a CSV without rows: the file's fault, not a bug here
        while err.__cause__ is not None:
            err = err.__cause__
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise UsageError(
            f"could not read '{path}' as {builder} ({reason}): fix the file or pass another dataset"
        ) from None
    finally:
        datasets.logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.enable_progress_bars()


def _jsonl_split_files(folder: Path) -> dict[str, Path]:
    """``{split: file}`` for a folder of ``<split>.jsonl`` files; empty for a ``save_to_disk`` folder."""
    if (folder / DATASET_DICT_FILE).is_file() or (folder / "state.json").is_file():
        return {}
    return {file.stem: file for file in sorted(folder.glob("*.jsonl")) if file.is_file()}


def _load_from_disk(path: Path):
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise UsageError(
            f"'{path}' is neither a datasets.save_to_disk folder nor a folder of <split>.jsonl files: "
            "pass such a folder or a data file"
        ) from None


def looks_like_path(dataset_name: str) -> bool:
    """A name that can only be a local path (so a missing one is reported at once, without asking the Hub): it
    starts like a path, has more than one '/', ends in a data file suffix, or its first folder exists here."""
    first = dataset_name.split("/", 1)[0]
    return (
        dataset_name.startswith((".", "/", "~"))
        or dataset_name.count("/") > 1
        or Path(dataset_name).suffix.lower() in LOCAL_FORMATS
        or ("/" in dataset_name and Path(first).is_dir())
    )


def _load_hub(dataset_name: str, config: str | None, cache_dir: str | None):
    if looks_like_path(dataset_name):
        raise UsageError(
            f"dataset path '{dataset_name}' does not exist: pass an existing file or folder, or a Hub id"
        )
    import datasets

    try:
        return datasets.load_dataset(dataset_name, config, cache_dir=cache_dir)
    except ValueError as err:
        raise UsageError(
            f"could not load '{dataset_name}' config '{config}': {str(err).splitlines()[0][:200]}"
        ) from None
    except Exception as err:  # the Hub unreachable, unknown repo: name the offline alternative
        raise UsageError(
            f"could not load dataset '{dataset_name}' from the Hub ({type(err).__name__}): "
            "pass a local save_to_disk folder or a .jsonl/.csv/.parquet file instead"
        ) from None


def _pick_split(loaded, split: str, where: str):
    """``loaded[split]`` from a DatasetDict or a ``{split: file}`` mapping; a lone split or a Dataset is used as is."""
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded
    if split in loaded:
        return loaded[split]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise UsageError(f"split '{split}' not found in {where}; available splits: {', '.join(loaded)}")
