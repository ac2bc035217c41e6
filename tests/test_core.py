"""persona_core: run folders (fingerprints, the lock), the atomic writer, argument checks and the layout CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass

import pytest

from persona_core.arguments import BackendArguments, GenerationArguments, RunArguments
from persona_core.cli import parse_args
from persona_core.errors import UsageError
from persona_core.io import atomic_output, read_records, write_json_atomic, write_jsonl_atomic
from persona_core.layout import REPO_ROOT, StageFiles
from persona_core.layout_cli import pipeline_paths, pt_model_paths
from persona_core.llm.base import GenerationConfig
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


def test_atomic_writer_keeps_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_output(tmp_path / "folder", folder=True) as tmp:
            (tmp / "inside").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "folder"]  # no temporary left behind


def test_atomic_writer_leaves_nothing_on_failure_and_replaces_folders_whole(tmp_path):
    with atomic_output(tmp_path / "folder", folder=True) as tmp:
        (tmp / "old").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "folder", folder=True) as tmp:
            (tmp / "new").write_text("1")
            raise RuntimeError("killed")
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
    with atomic_output(tmp_path / "folder", folder=True) as tmp:
        (tmp / "new").write_text("1")
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["new"]


def test_read_records_reads_jsonl_and_json_arrays(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n')
    (tmp_path / "b.json").write_text('[{"x": 1}, {"x": 2}]')
    assert read_records(tmp_path / "a.jsonl") == read_records(tmp_path / "b.json") == [{"x": 1}, {"x": 2}]


@dataclass
class Composed(RunArguments, BackendArguments, GenerationArguments):
    pass


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--temperature", "-1"], "--temperature must be 0 or more"),
        (["--max_tokens", "0"], "--max_tokens must be positive"),
        (["--min_tokens", "9", "--max_tokens", "8"], "--min_tokens (9) must not exceed --max_tokens (8)"),
        (["--batch_size", "0"], "--batch_size must be positive"),
        (["--load_in_4bit", "--load_in_8bit"], "pass only one of --load_in_4bit and --load_in_8bit"),
        (["--limit", "0"], "--limit must be positive"),
        (["--run_name", "a/b"], "must be a non-empty name without '/'"),
        (["--dtype", "fp8"], "--dtype must be one of auto, float32, bfloat16, float16 (got 'fp8')"),
    ],
)
def test_argument_groups_check_values_when_parsed(argv, message):
    with pytest.raises(UsageError) as err:
        parse_args(Composed, argv)
    assert message in str(err.value)


def test_composed_arguments_give_generation_settings_and_backend_options():
    args = parse_args(Composed, ["--temperature", "0.5", "--stop_token", "x", "y", "--concurrency", "3"])
    expected = GenerationConfig(temperature=0.5, max_tokens=4, min_tokens=0, stop=("x", "y"), seed=0)
    assert args.generation(max_tokens=4) == expected
    assert args.backend_options()["concurrency"] == 3


def test_dtype_loads_the_local_model_in_it_and_enters_the_fingerprint(tiny_model_dir):
    import torch

    from persona_core.llm import make_llm

    args = parse_args(Composed, ["--dtype", "bfloat16"])
    assert (
        args.weight_options()["dtype"] == "bfloat16"
        and "dtype" not in parse_args(Composed, []).weight_options()
    )
    llm = make_llm("hf_chat", str(tiny_model_dir), **args.backend_options())
    assert llm.model.dtype == torch.bfloat16
    assert make_llm("hf_chat", str(tiny_model_dir)).model.dtype == torch.float32  # auto: as stored


def test_layout_paths_reads_the_named_paths_into_bash_variables(tmp_path):
    """scripts/lib/layout.sh: each variable named gets its path (spaces and parentheses kept); a name the
    contract does not know stops the script with one error line."""
    root = tmp_path / "r o"
    script = (
        'PYTHON="$1"; source scripts/lib/layout.sh\n'
        'layout_paths pipeline --root "$2" --dataset Sample --pi_nickname pi --pt_nickname pt -- '
        "WITH_PERSONA PERSONAS\n"
        "layout_paths pt_model --model_save_dir models --dataset_name Sample --model_nickname pt --method sft "
        "--training_type chosen -- MERGED_DONE\n"
        'printf "%s\\n" "$PERSONAS" "$WITH_PERSONA" "$MERGED_DONE"'
    )
    command = ["bash", "-euc", script, "-", sys.executable, str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    paths = pipeline_paths(root, "Sample", "pi", "pt")
    assert done.stdout.splitlines() == [
        str(paths["PERSONAS"]),
        str(paths["WITH_PERSONA"]),
        str(pt_model_paths("models", "Sample", "pt", "sft", "chosen")["MERGED_DONE"]),
    ]
    assert paths["WITH_PERSONA"].name == "dpo_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"

    command[2] = script.replace("WITH_PERSONA PERSONAS", "PERSONAS WITH_PERSONAS")
    refused = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.startswith(
        "error: pipeline has no path named WITH_PERSONAS: ask for one of PI_DIR,"
    )
    assert len(refused.stderr.splitlines()) == 1
