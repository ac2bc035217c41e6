"""Run folders: one process at a time, results never mixed across settings, and a record of every run.

``open_run`` holds a stage's folder while it runs:

- a lock (``fcntl.flock`` on a hidden file, released by the kernel if the process dies) refuses a second process
  on the same folder, which would otherwise pay for every request again and interleave two checkpoints;
- a fingerprint (``{stage}.fingerprint.json``) records what determines the outputs (model, prompt digests,
  generation settings, data digest, options). A rerun with the same fingerprint resumes from the checkpoint; a
  different one is refused with a one-line error naming ``--run_name`` and ``--overwrite``; ``--overwrite`` deletes
  the stage's old files and starts afresh.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

from persona_core.errors import UsageError
from persona_core.io import write_json_atomic
from persona_core.layout import MODEL_CONFIG_FILE, MODEL_FINGERPRINT_FILE, StageFiles

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")

VERSIONED_PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "openai",
    "anthropic",
    "cohere",
    "vllm",
)


def digest(obj) -> str:
    """A short, stable digest of text or of any JSON-ready value."""
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two fingerprints."""
    found = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(
                f"{prefix}{key}: {json.dumps(a, default=str)[:40]} -> {json.dumps(b, default=str)[:40]}"
            )
    return found


def model_identity(name: str) -> dict:
    """What identifies a model's weights: a trained or merged model's own fingerprint (``fingerprint.json`` in its
    folder, which names everything it was made from); else, for a folder, a digest of its config, weight index and
    weight files (names, sizes, first and last megabyte; never their times); else its name (a Hub id)."""
    folder = Path(name)
    if not folder.is_dir():
        return {"name": name}
    identity = {"name": str(folder.resolve())}
    lineage = folder / MODEL_FINGERPRINT_FILE
    if lineage.exists():
        return identity | {"fingerprint": json.loads(lineage.read_text(encoding="utf-8"))}
    config = folder / MODEL_CONFIG_FILE
    indexes = sorted(folder.glob("*.index.json"))
    weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return identity | {
        "config": digest(config.read_text(encoding="utf-8")) if config.exists() else None,
        "index": digest([p.read_text(encoding="utf-8") for p in indexes]) if indexes else None,
        "weights": digest({p.name: [p.stat().st_size, sample_digest(p)] for p in weights}),
    }


def sample_digest(path: Path, span: int = 1 << 20) -> str:
    """A digest of a file's first and last ``span`` bytes: cheap on many-gigabyte weights, yet it tells apart two
    models of the same shape (the tail holds weights), where sizes alone would not."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(span)
        file.seek(max(size - span, 0))
        tail = file.read(span)
    return hashlib.sha1(head + tail).hexdigest()[:12]


def stage_outputs(files: StageFiles) -> list[Path]:
    """A stage's outputs: its final file, checkpoint and run record."""
    return [files.results, files.checkpoint, files.run_record]


@contextmanager
def open_run(
    files: StageFiles,
    fingerprint: dict,
    overwrite: bool = False,
    keep_both: str = "--run_name",
    outputs: Sequence[Path] | None = None,
) -> Iterator[StageFiles]:
    """Lock ``files.folder`` for this process and check (or write) its fingerprint; yields ``files``.

    ``fingerprint`` must be JSON-ready. ``outputs`` (files or folders; default ``stage_outputs(files)``) are what the
    fingerprint vouches for: ``overwrite`` deletes them. Raises a UsageError when another process holds the folder,
    or when it holds outputs made with another fingerprint and ``overwrite`` is off.
    """
    files.folder.mkdir(parents=True, exist_ok=True)
    with open(files.lock, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise UsageError(
                f"{files.folder} is being written by another process (pid {holder}): wait for it to finish, "
                f"or pass another {keep_both}"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            _check_fingerprint(
                files,
                json.loads(json.dumps(fingerprint, default=str)),
                overwrite,
                keep_both=keep_both,
                outputs=outputs,
            )
            yield files
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_fingerprint(
    files: StageFiles,
    fingerprint: dict,
    overwrite: bool = False,
    keep_both: str = "--run_name",
    outputs: Sequence[Path] | None = None,
) -> None:
    """The refusal ``open_run`` gives for results made with other settings, without taking the folder or writing:
    a stage can call it before loading a model, so a refused rerun stops at once (``open_run`` checks again)."""
    if not overwrite:
        _check_fingerprint(
            files,
            json.loads(json.dumps(fingerprint, default=str)),
            overwrite,
            write=False,
            keep_both=keep_both,
            outputs=outputs,
        )


def holds_something(path: Path) -> bool:
    """A file, or a folder with anything in it: an empty folder (a trainer's output folder made by building the
    trainer, say) holds no result to vouch for."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _check_fingerprint(
    files: StageFiles,
    fingerprint: dict,
    overwrite: bool,
    write: bool = True,
    keep_both: str = "--run_name",
    outputs: Sequence[Path] | None = None,
) -> None:
    outputs = stage_outputs(files) if outputs is None else list(outputs)
    recorded = (
        json.loads(files.fingerprint.read_text(encoding="utf-8")) if files.fingerprint.exists() else None
    )
    has_outputs = any(holds_something(path) for path in outputs)
    if overwrite:
        for path in outputs:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    elif has_outputs and recorded != fingerprint:
        changed = differences(recorded or {}, fingerprint) if recorded else ["no fingerprint recorded"]
        raise UsageError(
            f"{files.folder} holds {files.name} results made with other settings ({'; '.join(changed[:3])}): "
            f"pass another {keep_both} to keep both, or --overwrite to redo them"
        )
    if write:
        write_json_atomic(files.fingerprint, fingerprint)


def versions() -> dict:
    """Python and the installed versions of the packages that shape results."""
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return found


@dataclass
class RunRecord:
    """``{stage}.run.json``, the one schema every stage writes and every reader (report, win rates, pipeline
    summary) reads: what ran (``model``, a digest of its ``prompts``, its ``generation`` settings), with which
    arguments (never secrets), package versions, the full fingerprint, when, how long, the stage's ``stats`` and
    its own fields (``extra``, kept at the top level of the file)."""

    stage: str
    model: str | None = None
    prompts: str | None = None
    generation: dict = field(default_factory=dict)
    seconds: float | None = None
    arguments: dict = field(default_factory=dict)
    fingerprint: dict | None = None
    versions: dict = field(default_factory=dict)
    finished_at: str | None = None
    stats: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **values}

    @classmethod
    def from_dict(cls, values: dict) -> RunRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in values.items() if k in known},
            extra={k: v for k, v in values.items() if k not in known},
        )

    @classmethod
    def read(cls, path: Path) -> RunRecord | None:
        path = Path(path)
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def total_seconds(stats: dict) -> float | None:
    """A stage's time: its own ``seconds``, or the sum over its rounds (the judge: first attempts, then retries)."""
    if "seconds" in stats:
        return stats["seconds"]
    rounds = [v["seconds"] for v in stats.values() if isinstance(v, dict) and "seconds" in v]
    return round(sum(rounds), 3) if rounds else None


def write_run_record(
    files: StageFiles,
    arguments: dict,
    stats: dict,
    model: str | None = None,
    prompts: str | None = None,
    generation: dict | None = None,
    seconds: float | None = None,
    **extra,
) -> Path:
    """Write the stage's ``RunRecord`` (the fingerprint as recorded in its folder) atomically."""
    fingerprint = (
        json.loads(files.fingerprint.read_text(encoding="utf-8")) if files.fingerprint.exists() else None
    )
    record = RunRecord(
        stage=files.name,
        model=model,
        prompts=prompts,
        generation=generation or {},
        seconds=total_seconds(stats) if seconds is None else seconds,
        arguments=arguments,
        fingerprint=fingerprint,
        versions=versions(),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        stats=stats,
        extra=json.loads(json.dumps(extra, default=str)),
    )
    write_json_atomic(files.run_record, record.as_dict())
    return files.run_record
