"""Kill a persona-inference run with SIGKILL midway, tear its last checkpoint line, rerun: exactly the clean result."""

import json
import sys

from bench.loopback import LoopbackLLMServer
from persona_inference.model import run_model
from tests.conftest import api_args, clean_env, fake_persona, read_jsonl, sigkill_after, write_preferences

N_ROWS = 6


def test_sigkill_midway_then_rerun_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = write_preferences(tmp_path / "prefs.jsonl", N_ROWS)
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
    assert 4 <= done_before_kill < 2 * N_ROWS
    assert not (folder / "killed" / "persona_inference.jsonl").exists()

    # A kill in the middle of a write leaves half a record without its newline.
    next_record = json.dumps(reference[done_before_kill])
    with open(checkpoint, "a", encoding="utf-8") as handle:
        handle.write(next_record[: len(next_record) // 2])

    with LoopbackLLMServer(fake_persona) as server:
        args = api_args(data, res, "open_ai", server.url + "/v1", "--run_name", "killed")
        assert run_model.main(args) == 0
    # Only the requests without a complete checkpoint line were sent again, the torn one included.
    assert len(server.calls) == 2 * N_ROWS - done_before_kill
    assert read_jsonl(folder / "killed" / "persona_inference.jsonl") == reference
    ids = [record["id"] for record in read_jsonl(checkpoint)]
    assert sorted(ids) == sorted(record["id"] for record in reference)
