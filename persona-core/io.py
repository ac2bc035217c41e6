"""I/O: append-only JSONL checkpoints keyed by a stable id, the one atomic writer, and the one reader of records.

A run appends one record per finished request and flushes at once, so a kill loses at most the line being
written; on resume a torn last line is dropped and that request is redone. ``fsync`` (against power loss) runs
at most once per ``fsync_interval`` seconds and on close: one per record would cost ~5 ms each and stall many
concurrent API requests. The last record for an id wins,
so a request that failed earlier and succeeds on a rerun ends up ``ok``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class JsonlCheckpoint:
    def __init__(self, path: str | os.PathLike, fsync_interval: float = 1.0):
        self.path = Path(path)
        self.fsync_interval = fsync_interval
        self._handle = None
        self._last_sync = 0.0

    def load(self) -> dict[str, dict]:
        """Records by id (last one wins). A torn trailing line is cut off the file so appends stay valid."""
        records: dict[str, dict] = {}
        if not self.path.exists():
            return records
        with open(self.path, "rb") as handle:
            data = handle.read()
        good_end = 0
        for line in data.splitlines(keepends=True):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if not line.endswith(b"\n"):
                break
            records[record["id"]] = record
            good_end += len(line)
        if good_end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        return records

    def append(self, records: Iterable[dict]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        for record in records:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        if time.monotonic() - self._last_sync >= self.fsync_interval:
            os.fsync(self._handle.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename, else it is removed.

    The one atomic writer of the toolkit: files (results, records, figures) and folders (saved datasets, adapters,
    merged models). Readers never see half an output. The result gets the usual permissions (``0666``/``0777`` less
    the umask), not ``mkstemp``'s private ``0600``, so collaborators on a shared machine can read it. An existing
    folder is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, (0o777 if folder else 0o666) & ~_umask())
        if folder and path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write records as JSON lines to ``path`` via a temporary file and a rename, so readers never see half."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False))


def read_records(path: str | os.PathLike, skip_torn_tail: bool = False) -> list[dict]:
    """Read a JSONL file, or a JSON array (the paper's released outputs use arrays despite the suffix).

    ``skip_torn_tail`` drops a last line without its newline: a checkpoint that a run may still be appending to.
    """
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    lines = text.splitlines(keepends=True)
    if skip_torn_tail and lines and not lines[-1].endswith("\n"):
        lines.pop()
    return [json.loads(line) for line in lines if line.strip()]
