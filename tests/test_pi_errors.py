"""Bad input to run_model: one ``error:`` line naming the fix, a non-zero exit, no traceback, no result files.

Each case runs in a fresh process, the way a user meets it.
"""

import json

import pytest

from tests.conftest import clean_env, run_module, write_preferences

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
