"""persona_inference.model.run_model end to end: run folders, bad input, partitions and a killed run.

Run folders of persona inference and its judges: an unchanged rerun resumes, a changed template or generation
setting under the same ``--run_name`` is refused (old results untouched), ``--overwrite`` redoes everything, and a
second process on a folder that another one holds is refused. Bad input gives one ``error:`` line naming the fix, a
non-zero exit, no traceback, no result files (each case in a fresh process, the way a user meets it). Partitions
cover a dataset exactly once, for every partition size and odd dataset lengths. A run killed with SIGKILL midway,
its last checkpoint line torn, then rerun gives exactly the clean result."""

import json
import shutil
import sys

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.data import Partition, partition_range
from persona_core.errors import run_cli
from persona_core.layout import pi_files
from persona_core.runs import open_run
from persona_inference import PROMPT_DIR
from persona_inference.model import run_model
from tests.helpers import (
    api_args,
    clean_env,
    fake_persona,
    read_jsonl,
    run_module,
    sigkill_after,
    write_preferences,
)

N_ROWS = 4
SPLIT = "Sample"


def respond(prompt: str, body: dict) -> str:
    """Personas for the persona-inference model; the judge always answers 1."""
    return "1" if body["model"] == "judge" else fake_persona(prompt, body)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A dataset, the built-in judge templates beside the tests' persona template, and a running server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = write_preferences(tmp_path / "prefs.jsonl", N_ROWS)
    shutil.copytree(
        PROMPT_DIR, tmp_path / "prompts"
    )  # api_args then writes the tests' persona template into it
    with LoopbackLLMServer(respond) as server:
        yield data, server, api_args(data, tmp_path / "res", "open_ai", server.url + "/v1", "--run_name", "r")


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``run_model`` as its command line runs it: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: run_model.main(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def files_of(tmp_path, model: str, experiment: str):
    return pi_files(tmp_path / "res", model, SPLIT, "r", experiment)


def edited_prompts(tmp_path, experiment: str, old: str, new: str):
    """A copy of the run's prompt folder with one line of one template changed."""
    folder = tmp_path / "prompts-edited"
    shutil.copytree(tmp_path / "prompts", folder)
    template = folder / experiment / "generic.txt"
    text = template.read_text(encoding="utf-8")
    assert old in text
    template.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def assert_refused(status: int, err: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and "--run_name" in lines[0] and "--overwrite" in lines[0]
    assert "Traceback" not in err


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def test_template_then_generation_change_is_refused_and_overwrite_redoes(
    setup, tmp_path, capsys, monkeypatch
):
    data, server, args = setup
    from persona_inference.model import run_model

    built = []  # a refusal comes before any backend is built (a local model would load for minutes)
    make_llm = run_model.make_llm
    monkeypatch.setattr(run_model, "make_llm", lambda *a, **k: built.append(a) or make_llm(*a, **k))
    files = files_of(tmp_path, "loopback-model", "persona_inference")
    assert cli(args, capsys)[0] == 0
    assert len(server.calls) == 2 * N_ROWS
    results = files.results.read_bytes()

    status, out, _ = cli(args, capsys)  # (a) unchanged: resumes, nothing is asked again
    assert status == 0 and len(server.calls) == 2 * N_ROWS and f"({2 * N_ROWS} reused, 0 new" in out
    assert files.results.read_bytes() == results

    prompts = edited_prompts(tmp_path, "persona_inference", "Persona:", "The user's persona:")
    edited = with_flag(args, "--prompt_dir", str(prompts))
    status, _, err = cli(edited, capsys)  # (b) another template under the same run name
    assert_refused(status, err)
    assert "template" in err
    for changed in (["--temperature", "0.5"], ["--max_tokens", "50"]):  # (c) another generation setting
        status, _, err = cli([*args, *changed], capsys)
        assert_refused(status, err)
        assert changed[0].lstrip("-") in err
    assert len(server.calls) == 2 * N_ROWS and files.results.read_bytes() == results
    assert len(built) == 2  # the first run and the resumed one

    status, out, _ = cli([*edited, "--temperature", "0.5", "--overwrite"], capsys)  # (d) redo it all
    assert status == 0 and f"(0 reused, {2 * N_ROWS} new" in out
    assert len(server.calls) == 4 * N_ROWS
    records = read_jsonl(files.results)
    assert len(records) == 2 * N_ROWS and all("The user's persona:" in r["prompt"] for r in records)
    assert len(read_jsonl(files.checkpoint)) == 2 * N_ROWS  # the old checkpoint was deleted, not appended to
    run_record = json.loads(files.run_record.read_text())
    assert run_record["fingerprint"]["generation"]["temperature"] == 0.5
    assert run_record["arguments"]["prompt_dir"] == str(prompts)
    assert [body["body"]["temperature"] for body in server.calls[-2 * N_ROWS :]] == [0.5] * (2 * N_ROWS)
    assert cli([*edited, "--temperature", "0.5"], capsys)[0] == 0  # the new settings resume in their turn
    assert len(server.calls) == 4 * N_ROWS


def test_judges_are_refused_on_another_template_or_token_budget(setup, tmp_path, capsys):
    _, server, args = setup
    assert cli(args, capsys)[0] == 0
    judge = [*args, "--model_name", "judge", "--persona_model", "loopback-model"]
    for experiment in ("persona_accuracy", "persona_prefs"):
        argv = [*judge, "--experiments", experiment]
        before = len(server.calls)
        assert cli(argv, capsys)[0] == 0
        calls = len(server.calls)
        assert calls - before == 2 * N_ROWS * (2 if experiment == "persona_accuracy" else 1)  # both orders
        results = files_of(tmp_path, "judge", experiment).results.read_bytes()
        status, out, _ = cli(argv, capsys)
        assert status == 0 and len(server.calls) == calls and "0 new" in out
        prompts = edited_prompts(
            tmp_path, experiment, "Reply with the number only", "Answer with the number only"
        )
        assert_refused(*cli(with_flag(argv, "--prompt_dir", str(prompts)), capsys)[::2])
        assert_refused(*cli([*argv, "--judge_max_tokens", "16"], capsys)[::2])
        assert cli([*argv, "--max_tokens", "50"], capsys)[0] == 0  # not the judge's setting: it resumes
        assert len(server.calls) == calls
        assert files_of(tmp_path, "judge", experiment).results.read_bytes() == results
        status, out, _ = cli([*argv, "--judge_max_tokens", "16", "--overwrite"], capsys)
        assert status == 0 and "0 reused" in out and len(server.calls) == 2 * calls - before
        assert {call["body"]["max_tokens"] for call in server.calls[calls:]} == {16}
        shutil.rmtree(tmp_path / "prompts-edited")


def test_a_second_process_on_a_held_folder_is_refused(setup, tmp_path):
    _, server, args = setup
    files = files_of(tmp_path, "loopback-model", "persona_inference")
    with open_run(files, {}):
        result = run_module(args, clean_env(OPENAI_API_KEY="test-key"), tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "another process" in lines[0], result.stderr
    assert server.calls == [] and not files.checkpoint.exists() and not files.results.exists()
    assert (
        run_module(args, clean_env(OPENAI_API_KEY="test-key"), tmp_path).returncode == 0
    )  # free again: it runs
    assert len(read_jsonl(files.results)) == 2 * N_ROWS


# --- bad input: one line naming the fix, in a fresh process --------------------------------------------------------

CASES = {
    "unknown_model_type": (
        ["--model_type", "gpt5"],
        "choose one of: hf_chat, vllm, open_ai, anthropic, cohere",
    ),
    "unknown_experiment": (["--experiments", "persona_magic"], "choose one of: persona_inference"),
    "missing_column": (["--dataset_name", "{no_prompt}"], "lacks column(s) prompt"),
    "empty_dataset": (["--dataset_name", "{empty}"], "is empty"),
    "empty_after_header": (["--dataset_name", "{header_only}"], "could not read"),
    "missing_split": (["--dataset_name", "{splits}", "--split", "dev"], "available splits: test, train"),
    "missing_api_key": (["--model_type", "anthropic", "--model_name", "claude-x"], "set ANTHROPIC_API_KEY"),
    "missing_openai_key": (["--model_type", "open_ai", "--model_name", "gpt-4o-mini"], "set OPENAI_API_KEY"),
    "missing_model_path": (
        ["--model_name", "{tmp}/no-such-model"],
        "does not exist: pass an existing folder",
    ),
    "missing_dataset_path": (
        ["--dataset_name", "{tmp}/no-such.jsonl"],
        "does not exist: pass an existing file",
    ),
    "bad_number": (["--max_tokens", "many"], "invalid int value"),
    "negative_temperature": (["--temperature", "-1"], "--temperature must be 0 or more"),
    "zero_max_tokens": (["--max_tokens", "0"], "--max_tokens must be positive"),
    "zero_judge_max_tokens": (["--judge_max_tokens", "0"], "--judge_max_tokens must be positive"),
}


@pytest.fixture
def inputs(tmp_path) -> dict:
    write_preferences(tmp_path / "splits" / "train.jsonl", 2)
    write_preferences(tmp_path / "splits" / "test.jsonl", 2)
    (tmp_path / "no_prompt.jsonl").write_text(
        json.dumps({"question": "q", "chosen": "c", "rejected": "r"}) + "\n"
    )
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "header_only.csv").write_text("prompt,chosen,rejected\n")
    return {
        "tmp": str(tmp_path),
        "good": str(write_preferences(tmp_path / "good.jsonl", 2)),
        "splits": str(tmp_path / "splits"),
        "no_prompt": str(tmp_path / "no_prompt.jsonl"),
        "empty": str(tmp_path / "empty.jsonl"),
        "header_only": str(tmp_path / "header_only.csv"),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_the_fix(case, inputs, tmp_path):
    flags, fix = CASES[case]
    flags = [flag.format(**inputs) for flag in flags]
    if "--dataset_name" not in flags:
        flags += ["--dataset_name", inputs["good"]]
    res_dir = tmp_path / "res"
    result = run_module([*flags, "--res_dir", str(res_dir)], clean_env(), tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fix in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not res_dir.exists() or not any(res_dir.rglob("*"))


# --- partitions ----------------------------------------------------------------------------------------------------

SIZES = {"half": 2, "quarter": 4, "eighth": 8}


def parts_of(size: str) -> list[Partition]:
    parts = [p for p in Partition if p.value.endswith(f"_{size}")]
    assert len(parts) == SIZES[size]
    return parts


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("n", [*range(0, 20), 33, 299, 300, 301, 1001])
def test_parts_of_one_size_tile_the_dataset(size, n):
    rows = [i for part in parts_of(size) for i in partition_range(part, n)]
    assert rows == list(range(n))  # in order: each row once, none missing
    lengths = [len(partition_range(part, n)) for part in parts_of(size)]
    assert max(lengths) - min(lengths) <= 1


def test_full_is_everything():
    assert list(partition_range(Partition.full, 7)) == list(range(7))


def test_quarter_runs_together_equal_the_full_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = write_preferences(tmp_path / "prefs.jsonl", 7)
    with LoopbackLLMServer(fake_persona) as server:
        args = api_args(data, tmp_path / "res", "open_ai", server.url + "/v1")
        assert run_model.main(args) == 0
        for part in parts_of("quarter"):
            assert run_model.main([*args, "--partition", part.value]) == 0
    folder = tmp_path / "res" / "loopback-model" / "Sample" / "default"
    full = read_jsonl(folder / "persona_inference.jsonl")
    by_part = [read_jsonl(folder / part.value / "persona_inference.jsonl") for part in parts_of("quarter")]
    assert [len(records) // 2 for records in by_part] == [1, 2, 2, 2]
    combined = sorted(
        (r for records in by_part for r in records), key=lambda r: (r["side"] == "rejected", r["row"])
    )
    assert combined == full
    assert len(server.calls) == 2 * 7 * 2  # the full run, then each row once more across the quarters


# --- a run killed midway, then rerun -------------------------------------------------------------------------------

RESUME_ROWS = 6


def test_sigkill_midway_then_rerun_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = write_preferences(tmp_path / "prefs.jsonl", RESUME_ROWS)
    res = tmp_path / "res"
    folder = res / "loopback-model" / "Sample"
    with LoopbackLLMServer(fake_persona) as server:
        args = api_args(data, res, "open_ai", server.url + "/v1")
        assert run_model.main([*args, "--run_name", "reference"]) == 0
    reference = read_jsonl(folder / "reference" / "persona_inference.jsonl")

    checkpoint = folder / "killed" / "persona_inference.checkpoint.jsonl"
    with LoopbackLLMServer(fake_persona, latency=0.25) as server:
        args = api_args(
            data, res, "open_ai", server.url + "/v1", "--run_name", "killed", "--concurrency", "1"
        )
        command = [sys.executable, "-m", "persona_inference.model.run_model", *args]
        done_before_kill = sigkill_after(
            command, checkpoint, 4, clean_env(OPENAI_API_KEY="test-key"), tmp_path
        )
    assert 4 <= done_before_kill < 2 * RESUME_ROWS
    assert not (folder / "killed" / "persona_inference.jsonl").exists()

    # A kill in the middle of a write leaves half a record without its newline.
    next_record = json.dumps(reference[done_before_kill])
    with open(checkpoint, "a", encoding="utf-8") as handle:
        handle.write(next_record[: len(next_record) // 2])

    with LoopbackLLMServer(fake_persona) as server:
        args = api_args(data, res, "open_ai", server.url + "/v1", "--run_name", "killed")
        assert run_model.main(args) == 0
    # Only the requests without a complete checkpoint line were sent again, the torn one included.
    assert len(server.calls) == 2 * RESUME_ROWS - done_before_kill
    assert read_jsonl(folder / "killed" / "persona_inference.jsonl") == reference
    ids = [record["id"] for record in read_jsonl(checkpoint)]
    assert sorted(ids) == sorted(record["id"] for record in reference)
