"""Run folders of persona inference and its judges: an unchanged rerun resumes, a changed template or generation
setting under the same ``--run_name`` is refused (old results untouched), ``--overwrite`` redoes everything, and a
second process on a folder that another one holds is refused."""

import json
import shutil

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.errors import run_cli
from persona_core.layout import pi_files
from persona_core.runs import open_run
from persona_inference import PROMPT_DIR
from persona_inference.model import run_model
from tests.conftest import api_args, clean_env, fake_persona, read_jsonl, run_module, write_preferences

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
