"""vLLM for real on the CPU: a `vllm serve` OpenAI server and the in-process ``vllm`` backend, each checked against
the toolkit's own ``hf_chat`` on the embedded SmolLM2-135M-Instruct (float32 everywhere, greedy).

Both must reproduce hf_chat's personas token for token (so the prompts, the persona prefix as the start of the
answer and the stop string are the same), its probability verdicts (the same most probable next tokens and
probabilities, read from logprobs) and its text verdicts, in persona accuracy and in the pairwise judge. The server's
own request log shows the prompts it rendered and the sampling settings it got. PT generation serves a trained LoRA
adapter without merging and must equal the merged model.

vLLM pins another transformers than the project, so it lives in ``.venv-vllm`` (``bash scripts/setup.sh --vllm``;
CI builds it); without it every test here is skipped with that reason. One server starts for the module; each
in-process test runs the project's commands with ``.venv-vllm/bin/python``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from persona_core.errors import UsageError
from tests.helpers import REPO_ROOT, clean_env, read_jsonl, training_flags, write_tailoring_dataset

VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
MISSING = "vLLM's environment .venv-vllm is missing: run `bash scripts/setup.sh --vllm` (CI does)"


def needs_vllm(test):
    """A slow test run with vLLM's own environment, skipped (with the reason) where it is missing, unless
    PERSONA_REQUIRE_VLLM=1 (CI) makes it fail there instead."""
    required = os.environ.get("PERSONA_REQUIRE_VLLM") == "1"
    return pytest.mark.slow(
        pytest.mark.skipif(not VLLM_PYTHON.exists() and not required, reason=MISSING)(test)
    )


PREFIX = "The user is someone who prefers"
ROWS = 3
SERVED = "smollm-served"
NICKNAME = "smol"
VERDICTS = ("probability", "text")
ENGINE = ["--dtype", "float32"]
"""hf_chat computes in the model's float32; vLLM on a CPU would otherwise downcast to bfloat16."""


def embedded_model() -> str:
    from persona_core.embedded import embedded_model_path

    return str(embedded_model_path())


def run_vllm_module(module: str, args: list[str], timeout: float = 600) -> str:
    """``.venv-vllm/bin/python -m module args`` from the repository root; its output, or a failure showing it."""
    done = subprocess.run(
        [str(VLLM_PYTHON), "-m", module, *args],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{module} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout


def pi_args(res_dir: Path, verdict: str, *backend: str) -> list[str]:
    """Persona inference and persona accuracy on the first ROWS sample rows, the answer started with PREFIX."""
    return [
        *backend,
        "--model_nickname",
        NICKNAME,
        "--res_dir",
        str(res_dir),
        "--run_name",
        verdict,
        "--experiments",
        "persona_inference",
        "persona_accuracy",
        "--verdict",
        verdict,
        "--persona_prefix",
        PREFIX,
        "--limit",
        str(ROWS),
    ]


def pi_records(res_dir: Path, verdict: str, experiment: str) -> dict[str, dict]:
    path = res_dir / NICKNAME / "Sample" / verdict / f"{experiment}.jsonl"
    return {record["id"]: record for record in read_jsonl(path)}


def write_outputs(folder: Path) -> tuple[Path, Path]:
    """Two PT output files (base without persona, test with one) for the pairwise judge."""
    questions = ["How do I boil an egg?", "What should I pack for a hike?"]
    base = [
        {"id": f"r{i}", "prompt": q, "persona": "", "response": "Use water."} for i, q in enumerate(questions)
    ]
    test = [
        {
            "id": f"r{i}",
            "prompt": q,
            "persona": "The user is a beginner.",
            "response": "Boil it for 8 minutes.",
        }
        for i, q in enumerate(questions)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "base.jsonl", folder / "test.jsonl"
    for path, records in zip(paths, (base, test), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return paths


def judge_args(outputs: tuple[Path, Path], out_dir: Path, verdict: str, *backend: str) -> list[str]:
    args = [
        "--base_file",
        str(outputs[0]),
        "--test_file",
        str(outputs[1]),
        "--output_dir",
        str(out_dir),
        "--verdict",
        verdict,
        "--limit",
        "1",
        *backend,
    ]
    if (
        verdict == "text"
    ):  # greedy (prometheus-eval samples), bounded and without retries, to keep the test short
        args += ["--metrics", "response_quality", "--max_tokens", "24", "--verdict_retries", "0"]
        args += ["--temperature", "0", "--top_p", "1", "--repetition_penalty", "1.03"]
    return args


def judgments(out_dir: Path) -> list[dict]:
    (path,) = out_dir.rglob("judgments.jsonl")
    return read_jsonl(path)


def same_tokens_read(got: list[dict], reference: list[dict], top: int = 5) -> None:
    """The most probable next tokens agree in order, with probabilities equal up to float32 noise."""
    assert [t["token"] for t in got[:top]] == [t["token"] for t in reference[:top]]
    for mine, theirs in zip(got[:top], reference[:top], strict=True):
        assert mine["prob"] == pytest.approx(theirs["prob"], abs=2e-3)


def same_option_probs(got: dict, reference: dict) -> None:
    """An option's probability from the top tokens read is at most the reference's (which sums the whole vocabulary
    over tokens equal to the option up to whitespace) and close to it."""
    assert got.keys() == reference.keys()
    for option, prob in got.items():
        if prob is not None:
            assert prob <= reference[option] + 2e-3
            assert prob == pytest.approx(reference[option], abs=0.05)


def check_reproduces_hf_chat(res_dir: Path, reference: Path) -> None:
    for verdict in VERDICTS:
        personas, expected = (pi_records(d, verdict, "persona_inference") for d in (res_dir, reference))
        assert personas.keys() == expected.keys() and len(personas) == 2 * ROWS
        for key, record in personas.items():
            assert record["raw_text"] == expected[key]["raw_text"]
            assert record["raw_text"].startswith(
                PREFIX + " "
            )  # the prefix, kept once, then the model's words
            assert not record["raw_text"].startswith(PREFIX * 2)
            assert "\n" not in record["raw_text"]  # the stop string
            assert record["usage"]["prompt_tokens"] == expected[key]["usage"]["prompt_tokens"]
        votes, expected_votes = (pi_records(d, verdict, "persona_accuracy") for d in (res_dir, reference))
        assert votes.keys() == expected_votes.keys() and len(votes) == 4 * ROWS
        for key, record in votes.items():
            if verdict == "probability":
                assert len(record["tokens_read"]) == 20
                same_tokens_read(record["tokens_read"], expected_votes[key]["tokens_read"])
                same_option_probs(record["probabilities"], expected_votes[key]["probabilities"])
                if any(record["probabilities"].values()):
                    assert record["choice"] == expected_votes[key]["choice"]
            else:
                assert record["raw_text"] == expected_votes[key]["raw_text"]


def check_judgments_reproduce(out_dir: Path, reference: Path, verdict: str) -> None:
    got, expected = judgments(out_dir), judgments(reference)
    assert [(j["id"], j["metric"]) for j in got] == [(j["id"], j["metric"]) for j in expected] and got
    for mine, theirs in zip(got, expected, strict=True):
        for order in ("base_first", "test_first"):
            if verdict == "probability":
                same_tokens_read(mine[order]["tokens"], theirs[order]["tokens"])
                same_option_probs(mine[order]["probabilities"], theirs[order]["probabilities"])
            else:
                assert mine[order]["judge_output"] == theirs[order]["judge_output"]
                assert mine[order]["judge_output"]


# --- references: hf_chat in this environment ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_reference(tmp_path_factory) -> Path:
    """hf_chat's personas and persona-accuracy verdicts of both kinds, the reference of every vLLM path."""
    from persona_inference.model import run_model

    res_dir = tmp_path_factory.mktemp("hf-chat")
    for verdict in VERDICTS:
        assert run_model.main(pi_args(res_dir, verdict, "--model_type", "hf_chat")) == 0
    return res_dir


@pytest.fixture(scope="module")
def judge_outputs(tmp_path_factory) -> tuple[Path, Path]:
    return write_outputs(tmp_path_factory.mktemp("pt-outputs"))


@pytest.fixture(scope="module")
def hf_judgments(tmp_path_factory, judge_outputs) -> dict[str, Path]:
    from persona_tailoring.evaluation import run_judge

    folders = {}
    for verdict in VERDICTS:
        folders[verdict] = tmp_path_factory.mktemp(f"hf-judge-{verdict}")
        assert (
            run_judge.main(
                judge_args(judge_outputs, folders[verdict], verdict, "--judge_model_type", "hf_chat")
            )
            == 0
        )
    return folders


# --- a real vLLM server ---------------------------------------------------------------------------------------------


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` on a free loopback port, logging every request it gets."""

    def __init__(self, log_path: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        command = [
            str(VLLM_PYTHON),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            embedded_model(),
            "--served-model-name",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--enforce-eager",
            "--max-model-len",
            "4096",
            "--kv-cache-memory-bytes",
            str(1 << 30),
            "--enable-log-requests",
        ]
        # DEBUG: the request log then holds each rendered prompt, not only the sampling settings.
        env = clean_env(VLLM_LOGGING_LEVEL="DEBUG")
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 480) -> None:
        from urllib.request import urlopen

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"vllm serve exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(1)
        pytest.fail(f"vllm serve not ready after {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="class")
def vllm_server(tmp_path_factory):
    """One server for the server tests (class scope: it stops before the in-process tests start engines)."""
    server = VLLMServer(tmp_path_factory.mktemp("vllm-serve") / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@needs_vllm
class TestServer:
    """`vllm serve` reached through --model_type open_ai --base_url, as a user would."""

    def test_persona_inference_and_accuracy_reproduce_hf_chat(self, vllm_server, hf_reference, tmp_path):
        from persona_inference.model import run_model

        backend = ("--model_type", "open_ai", "--model_name", SERVED, "--base_url", vllm_server.url)
        for verdict in VERDICTS:
            assert run_model.main(pi_args(tmp_path, verdict, *backend)) == 0
        check_reproduces_hf_chat(tmp_path, hf_reference)

        log = vllm_server.log()
        # The server rendered hf_chat's exact model input: the chat template, then the persona prefix as the answer's start.
        for record in pi_records(hf_reference, "text", "persona_inference").values():
            assert record["prompt"].endswith(PREFIX)
            assert f"prompt: {record['prompt']!r}" in log
        assert "stop=['\\n']" in log  # persona inference stops at a newline
        # vLLM continues the final assistant message: each record says so, and the probe finds it
        for verdict in VERDICTS:
            assert all(
                r["prefill_continued"] for r in pi_records(tmp_path, verdict, "persona_inference").values()
            )
        from persona_core.llm import make_llm

        assert make_llm("open_ai", SERVED, base_url=vllm_server.url).probe_prefill() is True
        assert "max_tokens=1, min_tokens=0, logprobs=20" in log  # probability verdicts: one token, its top 20

    def test_pairwise_judge_reproduces_hf_chat(self, vllm_server, judge_outputs, hf_judgments, tmp_path):
        from persona_tailoring.evaluation import run_judge

        backend = (
            "--judge_model_type",
            "open_ai",
            "--judge_model_name",
            SERVED,
            "--base_url",
            vllm_server.url,
        )
        for verdict in VERDICTS:
            assert run_judge.main(judge_args(judge_outputs, tmp_path / verdict, verdict, *backend)) == 0
            check_judgments_reproduce(tmp_path / verdict, hf_judgments[verdict], verdict)
        assert "repetition_penalty=1.03, temperature=0.0" in vllm_server.log()


# --- vLLM in process ------------------------------------------------------------------------------------------------


@needs_vllm
def test_in_process_persona_inference_and_accuracy_reproduce_hf_chat(hf_reference, tmp_path):
    module = "persona_inference.model.run_model"
    for verdict in VERDICTS:
        run_vllm_module(module, pi_args(tmp_path, verdict, "--model_type", "vllm", *ENGINE))
    check_reproduces_hf_chat(tmp_path, hf_reference)
    assert pi_records(tmp_path, "text", "persona_inference").keys()
    # A rerun resumes: every record is reused, no engine starts.
    rerun = run_vllm_module(module, pi_args(tmp_path, "text", "--model_type", "vllm", *ENGINE))
    assert f"({2 * ROWS} reused, 0 new" in rerun


@needs_vllm
def test_in_process_pairwise_judge_reproduces_hf_chat(judge_outputs, hf_judgments, tmp_path):
    for verdict in VERDICTS:
        backend = ("--judge_model_type", "vllm", *ENGINE)
        run_vllm_module(
            "persona_tailoring.evaluation.run_judge", judge_args(judge_outputs, tmp_path, verdict, *backend)
        )
        check_judgments_reproduce(tmp_path, hf_judgments[verdict], verdict)
        shutil.rmtree(tmp_path)  # the next verdict kind writes the same comparison folder afresh


BACKEND_CHECKS = """
import json, sys
from persona_core.llm import make_llm
from persona_core.llm.base import GenerationConfig, Request

if __name__ == "__main__":
    llm = make_llm("vllm", sys.argv[1], engine_options={"dtype": "float32", "max_model_len": 512})
    results = {}
    requests = [Request(id=f"r{i}", prompt=f"Tell me about topic number {i}.") for i in range(3)]
    too_long = Request(id="long", prompt="word " * 600)
    sampled = GenerationConfig(temperature=1.0, max_tokens=12, seed=7)
    llm.generate(requests + [too_long], lambda c: results.__setitem__(("batch", c.id), c), sampled)
    llm.generate(requests[2:], lambda c: results.__setitem__(("alone", c.id), c), sampled)
    llm.generate(requests[:1], lambda c: results.__setitem__(("seed 8", c.id), c), GenerationConfig(temperature=1.0, max_tokens=12, seed=8))
    llm.generate(requests[:1], lambda c: results.__setitem__(("min", c.id), c), GenerationConfig(max_tokens=12, min_tokens=10, stop=("e",)))
    llm.generate([Request(id="p", prompt="Say yes.", prefill="Yes, and")], lambda c: results.__setitem__(("prefill", c.id), c), GenerationConfig(max_tokens=6))
    llm.score_options(requests[:1], ("1", "2"), lambda c: results.__setitem__(("score", c.id), c))
    print(json.dumps({" ".join(key): c.__dict__ for key, c in results.items()}))
"""


@needs_vllm
def test_in_process_backend_seeds_min_tokens_refusals_and_prefill(tmp_path):
    """Per-request seeds (the same answer in any batch), min_tokens, a refused prompt failing alone, the prefill."""
    script = tmp_path / "checks.py"
    script.write_text(BACKEND_CHECKS, encoding="utf-8")
    done = subprocess.run(
        [str(VLLM_PYTHON), str(script), embedded_model()],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    batch = {key.split()[1]: value for key, value in results.items() if key.startswith("batch")}
    assert all(batch[f"r{i}"]["error"] is None and batch[f"r{i}"]["text"] for i in range(3))
    assert (
        "maximum context length is 512 tokens" in batch["long"]["error"]
    )  # refused alone; the rest answered
    assert results["alone r2"]["text"] == batch["r2"]["text"]  # a request's seed is its own, not the batch's
    assert results["seed 8 r0"]["text"] != batch["r0"]["text"]
    assert results["min r0"]["usage"]["completion_tokens"] >= 10  # no stop string ends it before min_tokens
    assert results["prefill p"]["text"].startswith("Yes, and")
    score = results["score r0"]
    assert set(score["option_probs"]) == {"1", "2"} and len(score["tokens_read"]) == 20


@needs_vllm
def test_lora_adapter_served_unmerged_equals_merged_model(tmp_path):
    """PT generation: vLLM serves the trained adapter on the base model (--no_merge) and writes what the merged
    model writes through hf; the adapter changed the base model's answers, so it was really applied."""
    from persona_tailoring.model import run_model

    data = write_tailoring_dataset(tmp_path / "data")
    common = [
        "--base_model_name",
        embedded_model(),
        "--model_nickname",
        "smol",
        "--dataset_name",
        "Handmade",
        "--hf_dataset_name",
        str(data),
        "--model_save_dir",
        str(tmp_path / "models"),
        "--max_tokens",
        "24",
        "--method",
        "sft",
        "--inference_type",
        "gold-chosen",
    ]
    flags = training_flags(learning_rate=1e-3, max_length=256)
    assert (
        run_model.main([*common, "--results_save_dir", str(tmp_path / "merged"), "--stage", "all", *flags])
        == 0
    )
    base_run = [*common, "--results_save_dir", str(tmp_path / "base"), "--stage", "infer", "--model_path"]
    assert run_model.main([*base_run, embedded_model()]) == 0
    unmerged = [
        *common,
        "--results_save_dir",
        str(tmp_path / "lora"),
        "--stage",
        "infer",
        "--backend",
        "vllm",
    ]
    run_vllm_module("persona_tailoring.model.run_model", [*unmerged, "--no_merge", *ENGINE])

    name = "sft_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"
    responses = {
        kind: [r["response"] for r in read_jsonl(tmp_path / kind / "Handmade" / "smol" / name)]
        for kind in ("merged", "base", "lora")
    }
    assert responses["lora"] == responses["merged"]
    assert responses["lora"] != responses["base"]
    assert all(responses["lora"])
    fingerprints = list((tmp_path / "lora").rglob("*.fingerprint.json"))
    assert fingerprints and '"adapter"' in fingerprints[0].read_text()


def test_vllm_backend_is_refused_clearly_without_vllm(capsys, tmp_path):
    """In the project's main environment (no vLLM): a one-line error naming vLLM's environment, no partial files."""
    import importlib.util

    from persona_core.errors import run_cli
    from persona_inference.model import run_model

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed in this environment")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            lambda: run_model.main(
                ["--model_type", "vllm", "--limit", "1", "--res_dir", str(tmp_path / "res")]
            )
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the vllm backend needs vLLM") and err.count("\n") == 0
    assert ".venv-vllm/bin/python" in err
    assert not list((tmp_path / "res").rglob("*.jsonl"))


def test_engine_flags_reach_the_backend_as_engine_args():
    from persona_core.arguments import BackendArguments
    from persona_core.cli import parse

    flags = [
        "--tensor_parallel_size",
        "2",
        "--max_model_len",
        "4096",
        "--dtype",
        "bfloat16",
    ]
    flags += [
        "--quantization",
        "fp8",
        "--engine_args",
        "max_num_seqs=64",
        "enforce_eager=false",
        "tokenizer_mode=slow",
    ]
    (backend,) = parse((BackendArguments,), flags)
    options = backend.backend_options()["engine_options"]
    assert options == {
        "tensor_parallel_size": 2,
        "max_model_len": 4096,
        "dtype": "bfloat16",
        "quantization": "fp8",
        "max_num_seqs": 64,
        "enforce_eager": False,
        "tokenizer_mode": "slow",
    }
    assert BackendArguments().backend_options()["engine_options"] == {}  # vLLM's own defaults
    with pytest.raises(UsageError, match="--engine_args 'max_num_seqs' is not key=value"):
        parse((BackendArguments,), ["--engine_args", "max_num_seqs"])
    with pytest.raises(UsageError, match="--gpu_memory_utilization must be in"):
        parse((BackendArguments,), ["--gpu_memory_utilization", "1.5"])


def test_in_process_data_parallelism_is_refused_with_the_ways_to_get_it():
    from persona_core.embedded import EMBEDDED_MODEL_NAME
    from persona_core.llm import make_llm

    with pytest.raises(
        UsageError, match="run N shards .*--num_shards.* or `vllm serve --data-parallel-size N`"
    ):
        make_llm("vllm", EMBEDDED_MODEL_NAME, engine_options={"data_parallel_size": 2})
    with pytest.raises(UsageError, match="quantizes with --quantization"):
        make_llm("vllm", EMBEDDED_MODEL_NAME, load_in_4bit=True)
