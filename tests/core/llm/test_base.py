"""A prefill sent to an OpenAI-compatible server: continued (vLLM) or ignored (servers answering afresh), the answer
always holds it once; probability verdicts refuse a server that answers afresh."""

import json

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.errors import run_cli
from persona_core.llm.base import join_prefill
from persona_inference.model import run_model
from persona_tailoring.evaluation import run_judge
from tests.helpers import (
    api_args,
    expected_persona,
    fake_persona,
    read_jsonl,
    toolkit_outputs,
    write_preferences,
)

N_ROWS = 3


@pytest.mark.parametrize(
    ("answer", "whole", "continued"),
    [
        (" a nurse who prefers tact.", "The user is a nurse who prefers tact.", True),
        ("The user is a nurse who prefers tact.", "The user is a nurse who prefers tact.", False),
        ("  The user is a nurse.", "The user is a nurse.", False),
        ("Sure! A nurse.", "The user isSure! A nurse.", True),
        ("", "The user is", True),
    ],
)
def test_join_prefill(answer, whole, continued):
    assert join_prefill("The user is", answer) == (whole, continued)


@pytest.mark.parametrize("continues", [True, False])
def test_personas_hold_the_prefix_once_whatever_the_server_does(tmp_path, isolated, capsys, continues):
    """The same run against a server that continues the persona prefix and one that answers afresh: the same
    personas, each record saying which happened, the run record and summary counting them."""
    data = write_preferences(tmp_path / "prefs.jsonl", N_ROWS)
    res = tmp_path / "res"
    with LoopbackLLMServer(fake_persona, continues_prefill=continues) as server:
        assert run_model.main(api_args(data, res, "open_ai", server.url)) == 0
        sent = [call["body"]["messages"][-1] for call in server.calls]
    assert all(m == {"role": "assistant", "content": "The user is"} for m in sent)
    folder = res / "loopback-model" / "Sample" / "default"
    records = read_jsonl(folder / "persona_inference.jsonl")
    assert [r["persona"] for r in records] == [
        expected_persona(row, side) for side in ("chosen", "rejected") for row in range(N_ROWS)
    ]
    assert all(r["raw_text"].count("The user is") == 1 for r in records)
    assert {r["prefill_continued"] for r in records} == {continues}
    stats = json.loads((folder / "persona_inference.run.json").read_text())
    found = json.dumps(stats)
    assert f'"prefill_continued": {2 * N_ROWS if continues else 0}' in found
    assert f'"prefill_answered_afresh": {0 if continues else 2 * N_ROWS}' in found
    out = capsys.readouterr().out
    afresh = 0 if continues else 2 * N_ROWS
    assert (
        f"continued the persona prefix in {2 * N_ROWS - afresh} answers and answered afresh in {afresh}"
        in out
    )


def test_probability_verdicts_refuse_a_server_answering_afresh(tmp_path, capsys, isolated):
    base, test = toolkit_outputs(tmp_path, n=1)
    argv = ["--base_file", str(base), "--test_file", str(test), "--output_dir", str(tmp_path / "out")]
    argv += ["--judge_model_type", "open_ai", "--judge_model_name", "judge", "--verdict", "probability"]

    def fresh(prompt, body):
        return (
            "The quick brown fox jumps over the lazy dog." if "Repeat exactly" in prompt else "Feedback: fine"
        )

    with LoopbackLLMServer(fresh, continues_prefill=False) as server:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(lambda: run_judge.main([*argv, "--base_url", server.url]))
        assert not any(call["body"].get("logprobs") for call in server.calls)  # refused before any verdict
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "answers afresh" in err[0] and "--verdict text" in err[0]
    assert not list((tmp_path / "out").rglob("*.jsonl"))  # no run folder, checkpoint or cache left behind


def test_probability_verdicts_probe_a_continuing_server_once(tmp_path, isolated):
    base, test = toolkit_outputs(tmp_path, n=2)
    argv = ["--base_file", str(base), "--test_file", str(test), "--output_dir", str(tmp_path / "out")]
    argv += ["--judge_model_type", "open_ai", "--judge_model_name", "judge", "--verdict", "probability"]

    def fresh(prompt, body):
        return "The quick brown fox jumps over the lazy dog."

    with LoopbackLLMServer(fresh, top_logprobs=lambda p, b: [("A", -0.5), ("B", -1.0)]) as server:
        assert run_judge.main([*argv, "--base_url", server.url]) == 0
        probes = [c for c in server.calls if not c["body"].get("logprobs")]
        verdicts = [c for c in server.calls if c["body"].get("logprobs")]
    assert len(probes) == 1 and len(verdicts) == 2 * 2 * 2  # pairs x metrics x orders
    assert probes[0]["body"]["continue_final_message"] is True
