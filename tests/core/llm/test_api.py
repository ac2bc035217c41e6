"""Persona inference through the real OpenAI, Anthropic and Cohere SDKs against the loopback server.

Faults (429, 500, timeouts) are injected; every row must still get its two personas, each request answered
once into the results, the concurrency bound held, failures recorded and retried on a rerun, and the API key
kept out of every output.
"""

import json
from pathlib import Path

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.data import load_split
from persona_core.prompts import load_template
from persona_inference.model import run_model
from persona_inference.model.inference import PERSONA_PREFIX, build_requests
from tests.helpers import (
    api_args,
    clean_env,
    expected_persona,
    fake_persona,
    read_jsonl,
    run_module,
    write_preferences,
    write_template,
)

BACKENDS = {"open_ai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "cohere": "CO_API_KEY"}
N_ROWS = 5


@pytest.fixture
def data(tmp_path) -> Path:
    return write_preferences(tmp_path / "prefs.jsonl", N_ROWS)


def prompts_of(data: Path) -> list[str]:
    """The exact prompts the run sends, in request order (chosen side of every row, then rejected)."""
    template, _ = load_template("persona_inference", "Sample", write_template(data.parent / "prompts"))
    requests, _ = build_requests(load_split(str(data)), range(N_ROWS), template)
    return [r.prompt for r in requests]


def results_folder(res_dir: Path) -> Path:
    return res_dir / "loopback-model" / "Sample" / "default"


def check_complete(res_dir: Path) -> list[dict]:
    """Every row has exactly its two personas, in order, with the stop string cut off."""
    records = read_jsonl(results_folder(res_dir) / "persona_inference.jsonl")
    assert [(r["row"], r["side"]) for r in records] == [
        (i, side) for side in ("chosen", "rejected") for i in range(N_ROWS)
    ]
    assert len({r["id"] for r in records}) == len(records)
    for record in records:
        assert record["status"] == "ok"
        assert record["persona"] == expected_persona(record["row"], record["side"])
        assert "\n" not in record["raw_text"]
    return records


@pytest.mark.parametrize("model_type", list(BACKENDS))
def test_every_row_gets_two_personas_despite_faults(model_type, data, tmp_path, isolated):
    isolated.setenv(BACKENDS[model_type], "test-key")
    prompts = prompts_of(data)
    faults = {prompts[0]: [429, 429], prompts[3]: [500], prompts[7]: ["timeout"]}
    base = "/v1" if model_type == "open_ai" else ""
    with LoopbackLLMServer(fake_persona, faults=faults, timeout_sleep=10) as server:
        status = run_model.main(
            api_args(
                data,
                tmp_path / "res",
                model_type,
                server.url + base,
                "--request_timeout",
                "0.5",
                "--concurrency",
                "4",
            )
        )
    assert status == 0
    check_complete(tmp_path / "res")
    # Each fault costs exactly one extra call; no request is sent twice otherwise.
    sent = [call["body"] for call in server.calls]
    assert len(sent) == 2 * N_ROWS + 4
    assert len({json.dumps(body["messages"]) for body in sent}) == 2 * N_ROWS
    # The checkpoint holds one record per request: faults retried inside the SDK never reach it.
    checkpoint = read_jsonl(results_folder(tmp_path / "res") / "persona_inference.checkpoint.jsonl")
    assert sorted(r["id"] for r in checkpoint) == sorted({r["id"] for r in checkpoint})
    run_record = json.loads((results_folder(tmp_path / "res") / "persona_inference.run.json").read_text())
    counts = {key: run_record["stats"][key] for key in ("total", "ok", "failed", "reused")}
    assert counts == {"total": 2 * N_ROWS, "ok": 2 * N_ROWS, "failed": 0, "reused": 0}
    if model_type in ("anthropic", "open_ai"):
        # The persona's opening is sent as the start of the assistant turn and kept once in the answer
        # (to an OpenAI-compatible server with vLLM's continue_final_message).
        assert all(body["messages"][-1] == {"role": "assistant", "content": PERSONA_PREFIX} for body in sent)
        personas = read_jsonl(results_folder(tmp_path / "res") / "persona_inference.jsonl")
        assert all(r["raw_text"].startswith(PERSONA_PREFIX) for r in personas)
        assert all(not r["raw_text"].startswith(PERSONA_PREFIX * 2) for r in personas)
    if model_type == "open_ai":
        assert all(body["continue_final_message"] and not body["add_generation_prompt"] for body in sent)


def test_concurrency_is_bounded_and_used(data, tmp_path, isolated):
    isolated.setenv("OPENAI_API_KEY", "test-key")
    with LoopbackLLMServer(fake_persona, latency=0.2) as server:
        status = run_model.main(
            api_args(data, tmp_path / "res", "open_ai", server.url + "/v1", "--concurrency", "3")
        )
    assert status == 0
    assert server.max_in_flight == 3
    check_complete(tmp_path / "res")


def test_failed_request_is_recorded_and_retried_by_a_rerun(data, tmp_path, isolated, capsys):
    isolated.setenv("OPENAI_API_KEY", "test-key")
    prompts = prompts_of(data)
    args = api_args(data, tmp_path / "res", "open_ai", "", "--max_retries", "2")
    folder = results_folder(tmp_path / "res")
    with LoopbackLLMServer(fake_persona, faults={prompts[2]: [500, 503, 500]}) as server:
        args[args.index("--base_url") + 1] = server.url + "/v1"
        assert run_model.main(args) == 1
        out = capsys.readouterr().out
        assert f"1 of {2 * N_ROWS} requests failed" in out
        assert not (folder / "persona_inference.jsonl").exists()
        failed = [
            r for r in read_jsonl(folder / "persona_inference.checkpoint.jsonl") if r["status"] == "failed"
        ]
        assert [(r["row"], r["side"]) for r in failed] == [(2, "chosen")]
        assert prompts[2] in failed[0]["prompt"]
        assert "500" in failed[0]["error"]
        assert len(server.calls) == 2 * N_ROWS - 1 + 3  # three tries of the failing one (1 + 2 retries)

        assert run_model.main(args) == 0
        # The rerun sends only the failed request again.
        assert len(server.calls) == 2 * N_ROWS - 1 + 4
        assert server.calls[-1]["body"]["messages"][-2]["content"] == prompts[2]
    assert f"({2 * N_ROWS - 1} reused, 1 new" in capsys.readouterr().out
    check_complete(tmp_path / "res")


@pytest.mark.parametrize("model_type", list(BACKENDS))
def test_api_key_never_leaks(model_type, data, tmp_path):
    canary = "sk-CANARY-5f1e2d3c4b5a69788796a5b4"
    prompts = prompts_of(data)
    base = "/v1" if model_type == "open_ai" else ""
    # One request fails for good, so error texts (checkpoint, run record, console) are checked too.
    with LoopbackLLMServer(fake_persona, faults={prompts[1]: [500, 500]}) as server:
        env = clean_env(**{BACKENDS[model_type]: canary})
        result = run_module(
            api_args(data, tmp_path / "res", model_type, server.url + base, "--max_retries", "1"),
            env,
            tmp_path,
        )
    assert result.returncode == 1, result.stderr
    assert any(canary in header for header in server.auth_headers)  # the key was really used
    assert canary not in result.stdout + result.stderr
    files = [p for p in (tmp_path / "res").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"persona_inference.checkpoint.jsonl", "persona_inference.run.json"}
    for path in files:
        assert canary not in path.read_text(encoding="utf-8"), path


def test_dry_run_calls_nothing(data, tmp_path, isolated, capsys):
    isolated.setenv("OPENAI_API_KEY", "test-key")
    with LoopbackLLMServer(fake_persona) as server:
        status = run_model.main(api_args(data, tmp_path / "res", "open_ai", server.url + "/v1", "--dry_run"))
    assert status == 0
    out = capsys.readouterr().out
    assert f"{2 * N_ROWS} requests" in out
    assert prompts_of(data)[0] in out
    assert server.calls == []
    assert not (tmp_path / "res").exists()
