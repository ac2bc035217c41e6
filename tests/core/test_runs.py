"""persona_core.runs: run folders (fingerprints, the lock) and run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from persona_core.errors import UsageError
from persona_core.io import read_records, write_jsonl_atomic
from persona_core.layout import StageFiles
from persona_core.runs import differences, digest, open_run, write_run_record

FINGERPRINT = {"model": "tiny", "generation": {"temperature": 0.0, "max_tokens": 8}, "requests": "abc"}


def finished_stage(tmp_path, fingerprint=FINGERPRINT) -> StageFiles:
    files = StageFiles(tmp_path / "run", "stage")
    with open_run(files, fingerprint):
        write_jsonl_atomic(files.checkpoint, [{"id": "1", "status": "ok"}])
        write_jsonl_atomic(files.results, [{"id": "1", "status": "ok"}])
    return files


def test_same_fingerprint_resumes_and_keeps_outputs(tmp_path):
    files = finished_stage(tmp_path)
    with open_run(files, json.loads(json.dumps(FINGERPRINT))):
        assert read_records(files.checkpoint) == [{"id": "1", "status": "ok"}]
    assert files.results.exists()


def test_changed_fingerprint_is_refused_naming_the_fix_and_leaves_outputs(tmp_path):
    files = finished_stage(tmp_path)
    changed = FINGERPRINT | {"generation": {"temperature": 0.7, "max_tokens": 8}}
    with pytest.raises(UsageError) as err:
        with open_run(files, changed):
            pytest.fail("the run must not start")
    message = str(err.value)
    assert "generation.temperature: 0.0 -> 0.7" in message
    assert "--run_name" in message and "--overwrite" in message and "\n" not in message
    assert read_records(files.results) == [{"id": "1", "status": "ok"}]
    assert json.loads(files.fingerprint.read_text()) == FINGERPRINT


def test_overwrite_deletes_old_outputs_and_records_the_new_fingerprint(tmp_path):
    files = finished_stage(tmp_path)
    changed = FINGERPRINT | {"requests": "def"}
    with open_run(files, changed, overwrite=True):
        assert not files.results.exists() and not files.checkpoint.exists()
    assert json.loads(files.fingerprint.read_text()) == changed


def test_outputs_without_a_fingerprint_are_not_reused(tmp_path):
    files = StageFiles(tmp_path / "run", "stage")
    write_jsonl_atomic(files.checkpoint, [{"id": "1", "status": "ok"}])
    with pytest.raises(UsageError, match="no fingerprint recorded"):
        with open_run(files, FINGERPRINT):
            pass


def test_an_empty_output_folder_is_no_result_but_a_filled_one_is(tmp_path):
    """A folder output (a trainer's checkpoints) made empty before any run vouches for nothing; with a file in it,
    it is a result the fingerprint must vouch for."""
    files = StageFiles(tmp_path / "run", "stage")
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    with open_run(files, FINGERPRINT, outputs=[checkpoints]):
        pass
    (checkpoints / "checkpoint-1").mkdir()
    with pytest.raises(UsageError, match="other settings"):
        with open_run(files, FINGERPRINT | {"requests": "def"}, outputs=[checkpoints]):
            pass


def test_a_second_process_on_the_same_folder_is_refused(tmp_path):
    files = StageFiles(tmp_path / "run", "stage")
    script = (
        "import sys\nfrom persona_core.errors import run_cli\nfrom persona_core.layout import StageFiles\n"
        "from persona_core.runs import open_run\nfrom pathlib import Path\n"
        "def main():\n    with open_run(StageFiles(Path(sys.argv[1]), 'stage'), {}):\n        return 0\n"
        "run_cli(main)\n"
    )
    with open_run(files, FINGERPRINT):
        held = subprocess.run(
            [sys.executable, "-c", script, str(files.folder)], capture_output=True, text=True
        )
    assert held.returncode == 2
    assert (
        held.stderr.count("\n") == 1
        and f"pid {os.getpid()}" in held.stderr
        and "Traceback" not in held.stderr
    )
    free = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "other")], capture_output=True, text=True
    )
    assert free.returncode == 0, free.stderr


def test_run_record_holds_fingerprint_and_versions(tmp_path):
    files = finished_stage(tmp_path)
    record = json.loads(write_run_record(files, {"run_name": "x"}, {"ok": 1}, rows=3).read_text())
    assert record["fingerprint"] == FINGERPRINT and record["rows"] == 3 and "python" in record["versions"]


def test_differences_and_digest():
    assert differences({"a": {"b": 1}, "c": 2}, {"a": {"b": 2}, "c": 2}) == ["a.b: 1 -> 2"]
    assert digest({"x": 1, "y": 2}) == digest({"y": 2, "x": 1}) != digest({"x": 1, "y": 3})
