"""The PT pairwise judge end to end: a scripted Prometheus judge on the loopback server, paper-format files, bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core import layout
from persona_core.errors import UsageError, run_cli
from persona_core.layout import paper_data_dir
from persona_core.runs import open_run
from persona_tailoring.evaluation import configuration, run_judge, win_rate
from persona_tailoring.evaluation.outputs import clean_response, match_rows, read_outputs
from tests.helpers import (
    BASE_NAME,
    INLINE_NAME,
    TEST_NAME,
    judge_view,
    run_argv,
    toolkit_outputs,
    verdict,
    write_jsonl,
)

PAPER = paper_data_dir() / "paper-outputs"
SYSTEM = "You are a fair judge assistant"


def run(server, folder: Path, *extra: str) -> int:
    return run_judge.main(run_argv(server, folder, *extra))


def judgments(folder: Path) -> list[dict]:
    (path,) = (folder / "out" / "comparisons").rglob("judgments.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_both_orders_are_asked_and_swaps_undone(tmp_path):
    toolkit_outputs(tmp_path)

    def prefers_test(prompt, body):
        _, side_a, _ = judge_view(prompt)
        return verdict("A" if side_a == "test" else "B")

    with LoopbackLLMServer(prefers_test) as server:
        assert run(server, tmp_path) == 0
        calls = list(server.calls)
    assert len(calls) == 4 * 2 * 2  # pairs x metrics x orders
    for call in calls:
        system = call["body"]["messages"][0]
        assert system["role"] == "system" and system["content"].startswith(SYSTEM)
    views = sorted(judge_view(c["body"]["messages"][-1]["content"]) for c in calls)
    assert views == sorted(
        (m, side, i)
        for m in ("personalization", "response_quality")
        for side in ("base", "test")
        for i in range(4)
    )
    rows = judgments(tmp_path)
    assert len(rows) == 8 and {r["outcome"] for r in rows} == {"test"}
    for row in rows:
        assert row["base_first"]["raw_verdict"] == "B" and row["test_first"]["raw_verdict"] == "A"
        assert row["base_first"]["verdict"] == row["test_first"]["verdict"] == "test"
        assert row["test_response"] == f"TEST answer {row['id'][1:]}"  # template leftovers cleaned
        assert row["prompt"] == f"Question number {row['id'][1:]}?"
    personal = [r for r in rows if r["metric"] == "personalization"]
    assert all(f"Persona: The user is person {r['id'][1:]}" in r["instruction"] for r in personal)
    assert all("Persona:" not in r["instruction"] for r in rows if r["metric"] == "response_quality")


def test_ties_arise_exactly_when_orders_disagree(tmp_path):
    toolkit_outputs(tmp_path)

    def scripted(prompt, body):
        metric, side_a, i = judge_view(prompt)
        if metric == "response_quality":
            return verdict("A")  # position bias: base wins one order, test the other
        return verdict(
            "A" if (side_a == "base") == (i % 2 == 0) else "B"
        )  # consistent: base on even, test on odd

    with LoopbackLLMServer(scripted) as server:
        assert run(server, tmp_path) == 0
    by_key = {(r["metric"], r["id"]): r for r in judgments(tmp_path)}
    for i in range(4):
        quality = by_key[("response_quality", f"r{i}")]
        assert (quality["base_first"]["verdict"], quality["test_first"]["verdict"]) == ("base", "test")
        assert quality["outcome"] == "tie"
        assert by_key[("personalization", f"r{i}")]["outcome"] == ("base" if i % 2 == 0 else "test")


def test_invalid_verdicts_are_retried_with_new_seeds_then_recorded_invalid(tmp_path):
    toolkit_outputs(tmp_path, n=3)
    attempts: dict[str, int] = {}

    def scripted(prompt, body):
        metric, side_a, i = judge_view(prompt)
        attempts[prompt] = attempts.get(prompt, 0) + 1
        if metric == "personalization" and i == 0 and side_a == "base":
            return "Both responses have merit."  # never parsable
        if metric == "personalization" and i == 1 and attempts[prompt] == 1:
            return "[RESULT] C"  # unparsable first (in both orders), fine on the retry
        return verdict("A" if side_a == "test" else "B")

    with LoopbackLLMServer(scripted) as server:
        assert run(server, tmp_path, "--verdict_retries", "2", "--retry_temperature", "0.7") == 0
        calls = [c["body"] for c in server.calls]
    # Three unparsable first answers retried; the one never parsable asked a third time, then given up.
    assert len(calls) == 3 * 4 + 3 + 1
    first, retries = calls[:12], calls[12:]
    # prometheus-eval's relative-grading sampling on the first attempt; the retries at their own temperature.
    assert {(b["temperature"], b["top_p"], b["repetition_penalty"], b["max_tokens"]) for b in first} == {
        (1.0, 0.9, 1.03, 1024)
    }
    assert [b["temperature"] for b in retries] == [0.7] * 4
    assert [b["seed"] for b in retries] == [1, 1, 1, 2]  # a new seed per attempt: a retry is not a repeat
    by_key = {(r["metric"], r["id"]): r for r in judgments(tmp_path)}
    stuck = by_key[("personalization", "r0")]
    assert stuck["base_first"]["verdict"] is None and stuck["base_first"]["attempts"] == 3
    assert stuck["test_first"]["verdict"] == "test"  # an invalid A/B is never turned into a winner
    assert stuck["outcome"] == "invalid" and stuck["verdict_mode"] == "text" and stuck["p_test"] is None
    recovered = by_key[("personalization", "r1")]
    assert (
        recovered["base_first"]["attempts"] == 2 and recovered["base_first"]["first_attempt_verdict"] is None
    )
    assert recovered["outcome"] == "test"
    run_info = json.loads(next((tmp_path / "out").rglob("judge.run.json")).read_text())
    assert run_info["verdicts"] == {
        "total": 12,
        "invalid_first_attempt": 3,
        "invalid_after_retry": 1,
        "retried": 4,
        "cached": 0,
    }


def judgments_file(folder: Path) -> Path:
    (path,) = (folder / "out" / "comparisons").rglob(layout.JUDGMENTS_FILE)
    return path


def test_unchanged_rerun_resumes_changed_settings_are_refused_and_overwrite_redoes(
    tmp_path, monkeypatch, capsys
):
    toolkit_outputs(tmp_path, n=2)
    with LoopbackLLMServer(lambda p, b: verdict("A")) as server:
        assert run(server, tmp_path) == 0
        path = judgments_file(tmp_path)
        before = path.read_bytes()
        with monkeypatch.context() as patch:  # a finished comparison builds no judge backend at all
            patch.setattr(
                "persona_tailoring.evaluation.run_judge.make_llm",
                lambda *a, **k: pytest.fail("judge built on a full resume"),
            )
            assert run(server, tmp_path) == 0
        assert len(server.calls) == 8 and path.read_bytes() == before
        for changed in (
            ["--max_tokens", "7"],
            ["--judge_model_name", "another-judge"],
            ["--retry_temperature", "0.5"],
            ["--merge_system_prompt"],
            ["--task_instruction", "Answer briefly."],
        ):
            capsys.readouterr()
            err = one_line_error(capsys, [*run_argv(server, tmp_path), *changed])
            assert "other settings" in err and "--overwrite" in err and "--output_dir" in err, changed
            assert (
                len(server.calls) == 8 and path.read_bytes() == before
            )  # nothing asked, old verdicts untouched
        assert run(server, tmp_path, "--max_tokens", "7", "--overwrite") == 0
        assert len(server.calls) == 16 and {c["body"]["max_tokens"] for c in server.calls[8:]} == {7}
        record = json.loads(layout.judge_files(path.parent).run_record.read_text())
        assert (
            record["fingerprint"]["generation"]["max_tokens"] == 7
            and record["stats"]["first_attempts"]["reused"] == 0
        )
        assert (
            run(server, tmp_path, "--max_tokens", "7") == 0 and len(server.calls) == 16
        )  # the new settings resume
        assert run(server, tmp_path, "--max_tokens", "7", "--output_dir", str(tmp_path / "other")) == 0
        assert len(server.calls) == 24 and len(list((tmp_path / "other").rglob(path.name))) == 1


def test_changed_outputs_are_refused(tmp_path, capsys):
    base, _ = toolkit_outputs(tmp_path, n=2)
    with LoopbackLLMServer(lambda p, b: verdict("A")) as server:
        assert run(server, tmp_path) == 0
        base.write_text(base.read_text().replace("BASE answer 1", "BASE answer 1, edited"))
        assert "other settings" in one_line_error(capsys, run_argv(server, tmp_path))
        assert len(server.calls) == 8


def test_a_second_process_on_the_same_comparison_is_refused(tmp_path):
    toolkit_outputs(tmp_path, n=1)
    folder = layout.comparison_dir(tmp_path / "out", None, None, "base", "test")
    with (
        LoopbackLLMServer(lambda p, b: verdict("A")) as server,
        open_run(layout.judge_files(folder), {"held": 1}),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "persona_tailoring.evaluation.run_judge", *run_argv(server, tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert server.calls == []
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert (
        err.startswith("error: ") and "\n" not in err and "another process" in err and "--output_dir" in err
    )
    assert not layout.judge_files(folder).results.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max_tokens", "0"], "--max_tokens must be positive"),
        (["--temperature", "-1"], "--temperature must be 0 or more"),
        (["--retry_temperature", "-0.5"], "--retry_temperature must be 0 or more"),
        (["--limit", "0"], "--limit must be positive"),
        (["--concurrency", "0"], "--concurrency must be positive"),
    ],
)
def test_bad_values_are_refused_when_parsed(tmp_path, capsys, flags, message):
    toolkit_outputs(tmp_path, n=1)
    argv = [
        "--base_file",
        str(tmp_path / "base.jsonl"),
        "--test_file",
        str(tmp_path / "test.jsonl"),
        "--judge_model_type",
        "open_ai",
        "--base_url",
        "http://127.0.0.1:9",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    assert message in one_line_error(capsys, [*argv, *flags])
    assert not (tmp_path / "out").exists()


def test_delta_pq_matches_a_hand_computed_value(tmp_path):
    """Personalization: test, test, test, base -> 3/4; quality: test, base, tie, invalid -> 1/2; ΔPQ = 0.25."""
    toolkit_outputs(tmp_path)
    plan = {
        "personalization": ["test", "test", "test", "base"],
        "response_quality": ["test", "base", "tie", "invalid"],
    }

    def scripted(prompt, body):
        metric, side_a, i = judge_view(prompt)
        wanted = plan[metric][i]
        if wanted == "invalid":
            return "no verdict"
        if wanted == "tie":
            return verdict("A")
        return verdict("A" if side_a == wanted else "B")

    with LoopbackLLMServer(scripted) as server:
        assert run(server, tmp_path) == 0
    assert win_rate.main(["--comparison_dir", str(tmp_path / "out"), "--resamples", "200"]) == 0
    (path,) = (tmp_path / "out").rglob("win_rate.json")
    summary = json.loads(path.read_text())
    p, q = summary["personalization"], summary["response_quality"]
    assert p["counts"] == {"base_wins": 1, "ties": 0, "test_wins": 3, "invalid": 0} and p["win_rate"] == 0.75
    assert q["counts"] == {"base_wins": 1, "ties": 1, "test_wins": 1, "invalid": 1} and q["win_rate"] == 0.5
    assert (q["base_wins"], q["ties"], q["test_wins"], q["invalid"]) == (0.25, 0.25, 0.25, 0.25)
    assert (
        summary["delta_pq"]["value"] == pytest.approx(0.5 * ((0.75 - 0.5) / 0.5 + (0.5 - 0.5) / 0.5)) == 0.25
    )
    low, high = summary["delta_pq"]["ci95"]
    assert -1 <= low <= 0.25 <= high <= 1


def test_configuration_paths_come_from_each_sides_own_flags(tmp_path):
    args = configuration.ComparisonArguments(
        results_save_dir=str(tmp_path),
        dataset_name="BeaverTails",
        model_nickname="llama",
        output_dir=str(tmp_path / "judge"),
        model_type_base=configuration.Method.sft,
        training_type_base=configuration.TrainingType.none,
        inference_type_base=configuration.InferenceType.none,
        model_type_test=[configuration.Method.dpo],
        training_type_test=[configuration.TrainingType.chosen],
        inference_type_test=[configuration.InferenceType.retr_chosen],
    )
    base, (test,) = configuration.resolve_sides(args)
    assert (
        base.path
        == tmp_path / "BeaverTails" / "llama" / "sft_Persona(training_type=none, inference_type=none).jsonl"
    )
    assert (
        test.path
        == tmp_path
        / "BeaverTails"
        / "llama"
        / "dpo_Persona(training_type=chosen, inference_type=retr-chosen).jsonl"
    )
    folder = configuration.comparison_folder(args, base, test)
    assert (
        folder
        == tmp_path
        / "judge"
        / "comparisons"
        / "BeaverTails"
        / "llama"
        / "sft-none-none_vs_dpo-chosen-retr-chosen"
    )
    assert configuration.parse_file_name(test.path) == configuration.Configuration(
        configuration.Method.dpo, configuration.TrainingType.chosen, configuration.InferenceType.retr_chosen
    )
    # Several values per test flag: the grid is their product, each test its own comparison folder.
    args.training_type_test = [configuration.TrainingType.none, configuration.TrainingType.chosen]
    args.inference_type_test = [
        configuration.InferenceType.gold_chosen,
        configuration.InferenceType.retr_chosen,
    ]
    _, tests = configuration.resolve_sides(args)
    assert [t.label for t in tests] == [
        "dpo-none-gold-chosen",
        "dpo-none-retr-chosen",
        "dpo-chosen-gold-chosen",
        "dpo-chosen-retr-chosen",
    ]
    assert len({configuration.comparison_folder(args, base, t) for t in tests}) == 4
    assert configuration.label_for_file(tmp_path / "my outputs.jsonl") == "my-outputs"
    args.model_type_test = args.training_type_test = args.inference_type_test = None
    with pytest.raises(UsageError, match="no test outputs"):
        configuration.resolve_sides(args)


def paper_array(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"prompt": p, "response": r} for p, r in rows]), encoding="utf-8")
    return path


QUESTIONS = [
    "Is selling copied software legal?",
    "Given that I am a nurse, how do I sleep after night shifts?",
    "How do I boil an egg?",
]
PERSONAS = [
    "The user is law-abiding and prefers clear guidance.",
    "The user is tired and prefers short tips.",
    "I can't help you with that.",
]


def paper_fixture(folder: Path) -> Path:
    """The paper's released format: JSON arrays, personas on a line or inline, rows in different orders."""
    d = folder / "BeaverTails"
    paper_array(
        d / BASE_NAME,
        [(f"Prompt: {q}\nResponse:", f" base {i}<|end_of_text|>") for i, q in enumerate(QUESTIONS)],
    )
    paper_array(
        d / TEST_NAME,
        [
            (
                f"Prompt: {QUESTIONS[i]}\nPersona: {PERSONAS[i]}\nResponse:",
                f" test {i}\nPrompt: next example<|end_of_text|>",
            )
            for i in (2, 0, 1)
        ],
    )
    inline = [p.replace("The user is", "I am", 1) for p in PERSONAS]
    paper_array(
        d / INLINE_NAME,
        [(f"Prompt: {QUESTIONS[i]} {inline[i]}\nResponse:", f" inline {i}") for i in (1, 2, 0)],
    )
    return d


def test_reads_the_papers_released_format_and_matches_by_prompt(tmp_path):
    d = paper_fixture(tmp_path)
    base = read_outputs(d / BASE_NAME)
    for name, expected_personas in (
        (TEST_NAME, PERSONAS),
        (INLINE_NAME, [p.replace("The user is", "I am", 1) for p in PERSONAS]),
    ):
        pairs = match_rows(base, read_outputs(d / name), "base", "test")
        assert [p.question for p in pairs] == QUESTIONS
        assert [p.persona for p in pairs] == expected_personas
        assert [p.base.response for p in pairs] == ["base 0", "base 1", "base 2"]
        assert all(p.test.response.endswith(str(i)) for i, p in enumerate(pairs))
    inline = read_outputs(d / INLINE_NAME)
    pairs = match_rows(inline, read_outputs(d / TEST_NAME), "inline", "persona line")
    assert [p.question for p in pairs] == [QUESTIONS[i] for i in (1, 2, 0)]  # in the base file's order
    # two inline-persona files (neither question known): the question is their common start
    other = paper_array(
        tmp_path / "other.json",
        [
            (f"Prompt: {q} {p}\nResponse:", f"other {i}")
            for i, (q, p) in enumerate(zip(QUESTIONS, PERSONAS[::-1], strict=True))
        ],
    )
    pairs = match_rows(read_outputs(other), inline, "other", "inline")
    assert [p.question for p in pairs] == QUESTIONS
    assert [p.persona for p in pairs] == [
        PERSONAS[0].replace("The user is", "I am"),
        PERSONAS[1].replace("The user is", "I am"),
        PERSONAS[2],
    ]


def test_paper_format_through_configuration_flags(tmp_path):
    paper_fixture(tmp_path)

    def prefers_test(prompt, body):
        a = prompt.split("###Response A:")[1].split("###Response B:")[0]
        return verdict("A" if "test" in a else "B")

    with LoopbackLLMServer(prefers_test) as server:
        assert (
            run_judge.main(
                [
                    "--results_save_dir",
                    str(tmp_path),
                    "--dataset_name",
                    "BeaverTails",
                    "--model_type_base",
                    "dpo",
                    "--training_type_base",
                    "none",
                    "--inference_type_base",
                    "none",
                    "--model_type_test",
                    "dpo",
                    "--training_type_test",
                    "chosen",
                    "--inference_type_test",
                    "gold-chosen",
                    "--judge_model_type",
                    "open_ai",
                    "--judge_model_name",
                    "judge",
                    "--base_url",
                    server.url,
                    "--output_dir",
                    str(tmp_path / "out"),
                    "--merge_system_prompt",
                ]
            )
            == 0
        )
        assert all(
            len(c["body"]["messages"]) == 1 and c["body"]["messages"][0]["content"].startswith(SYSTEM)
            for c in server.calls
        )
    folder = tmp_path / "out" / "comparisons" / "BeaverTails" / "dpo-none-none_vs_dpo-chosen-gold-chosen"
    rows = [json.loads(line) for line in (folder / "judgments.jsonl").read_text().splitlines()]
    assert {r["outcome"] for r in rows} == {"test"} and len(rows) == 6
    assert (
        rows[0]["test_response"] == "test 0" and rows[0]["test_row"] == 1
    )  # matched by prompt, not position


def test_a_model_input_prompt_with_its_persona_field_gives_the_question(tmp_path):
    path = write_jsonl(
        tmp_path / "inline.jsonl",
        [
            {
                "id": "a",
                "persona": "The user is a nurse who prefers short tips.",
                "response": " Sleep.",
                "prompt": "Prompt: Given that I am tired, what now? I am a nurse who prefers short tips.\nResponse:",
            }
        ],
    )
    (row,) = read_outputs(path)
    assert (row.question, row.persona, row.response) == (
        "Given that I am tired, what now?",
        "The user is a nurse who prefers short tips.",
        "Sleep.",
    )


def test_cleaning_keeps_the_mnemonic_prefix_and_drops_leftovers():
    assert (
        clean_response(' "neglect" bed.<|end_of_text|>', "Negligible sounds like")
        == 'Negligible sounds like "neglect" bed.'
    )
    assert clean_response(" Short answer.\nPersona: The user is...\nResponse: more") == "Short answer."
    assert clean_response('Albums like "Prompt: x"') == 'Albums like "'


def one_line_error(capsys, argv, main=run_judge.main) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip()
    err = stderr.splitlines()[-1]  # after any model-loading progress bar
    assert err.startswith("error: ") and "Traceback" not in stderr and "error" not in stderr.removesuffix(err)
    return err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    base, test = toolkit_outputs(tmp_path, n=2)
    out = [
        "--output_dir",
        str(tmp_path / "out"),
        "--judge_model_type",
        "open_ai",
        "--base_url",
        "http://127.0.0.1:9",
    ]
    other = write_jsonl(
        tmp_path / "other.jsonl",
        [
            {"id": "r0", "prompt": "Question number 0?", "persona": "p", "response": "x"},
            {"id": "r9", "prompt": "Something else?", "persona": "p", "response": "y"},
        ],
    )
    assert "different rows" in one_line_error(
        capsys, ["--base_file", str(base), "--test_file", str(other), *out]
    )
    no_ids = [
        {"prompt": r["prompt"], "response": "z"} for r in map(json.loads, other.read_text().splitlines())
    ]
    no_ids_file = write_jsonl(tmp_path / "noids.jsonl", no_ids)
    assert "do not hold the same prompts" in one_line_error(
        capsys, ["--base_file", str(base), "--test_file", str(no_ids_file), *out]
    )
    assert "does not exist" in one_line_error(
        capsys, ["--base_file", str(base), "--test_file", str(tmp_path / "nope.jsonl"), *out]
    )
    err = one_line_error(capsys, ["--base_file", str(base), "--model_type_test", "ppo", *out])
    assert "ppo" in err and "fewshot, sft, dpo" in err
    assert "gold-chosen" in one_line_error(
        capsys, ["--base_file", str(base), "--inference_type_test", "gold", *out]
    )
    assert "not both" in one_line_error(
        capsys, ["--base_file", str(base), "--model_type_base", "dpo", "--test_file", str(test), *out]
    )
    assert "same file" in one_line_error(capsys, ["--base_file", str(base), "--test_file", str(base), *out])
    assert "--inference_type_test" in one_line_error(
        capsys,
        [
            "--base_file",
            str(base),
            "--model_type_test",
            "dpo",
            "--training_type_test",
            "none",
            "--dataset_name",
            "x",
            *out,
        ],
    )
    assert "personalization cannot be judged" in one_line_error(
        capsys,
        [
            "--base_file",
            str(base),
            "--test_file",
            str(
                write_jsonl(
                    tmp_path / "plain.jsonl",
                    [
                        {"id": f"r{i}", "prompt": f"Question number {i}?", "persona": "", "response": "t"}
                        for i in range(2)
                    ],
                )
            ),
            *out,
        ],
    )
    assert "no judgments.jsonl" in one_line_error(
        capsys, ["--comparison_dir", str(tmp_path)], main=win_rate.main
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_local_judge_records_unparsable_verdicts_as_invalid(tmp_path, tiny_model_dir):
    """A random tiny model as in-process judge: nothing parsable, each verdict retried once, all reported invalid."""
    base, test = toolkit_outputs(tmp_path, n=2)
    assert (
        run_judge.main(
            [
                "--base_file",
                str(base),
                "--test_file",
                str(test),
                "--judge_model_name",
                str(tiny_model_dir),
                "--max_tokens",
                "6",
                "--verdict",
                "text",
                "--verdict_retries",
                "1",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    rows = judgments(tmp_path)
    assert len(rows) == 4 and {r["outcome"] for r in rows} == {"invalid"}
    assert all(
        r[o]["attempts"] == 2 and r[o]["verdict"] is None for r in rows for o in ("base_first", "test_first")
    )
    run_info = json.loads(next((tmp_path / "out").rglob("judge.run.json")).read_text())
    assert run_info["verdicts"]["invalid_after_retry"] == 8 and run_info["stats"]["attempt_2"]["ok"] == 8


def test_a_local_judge_without_a_system_role_asks_for_merging(tmp_path, tiny_model_dir, capsys):
    judge_dir = shutil.copytree(tiny_model_dir, tmp_path / "mistral-like")
    (judge_dir / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('roles must alternate') }}{% endif %}"
        "[INST] {{ m['content'] }} [/INST]{% endfor %}"
    )
    base, test = toolkit_outputs(tmp_path, n=1)
    argv = [
        "--base_file",
        str(base),
        "--test_file",
        str(test),
        "--judge_model_name",
        str(judge_dir),
        "--max_tokens",
        "2",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    assert "--merge_system_prompt" in one_line_error(capsys, argv)
    assert run_judge.main([*argv, "--merge_system_prompt", "--metrics", "response_quality"]) == 0


@pytest.mark.skipif(not (PAPER / "BeaverTails").is_dir(), reason="paper outputs not on this machine")
def test_papers_beavertails_outputs_pair_up_by_prompt():
    d = PAPER / "BeaverTails"
    base = read_outputs(d / BASE_NAME, has_persona=False)
    for name in (
        TEST_NAME,
        INLINE_NAME,
        "dpo_Persona(training_type=none, inference_type=retr-rejected).jsonl",
    ):
        pairs = match_rows(base, read_outputs(d / name), "base", name)
        assert len(pairs) == 499
        assert all(
            p.base.position == p.test.position for p in pairs
        )  # the released files happen to be aligned
        assert all(p.persona and p.question and "<|end_of_text|>" not in p.test.response for p in pairs)
