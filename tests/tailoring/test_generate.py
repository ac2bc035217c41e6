"""Generation: stop strings on a real (tiny) model, the output file, the completions-API path, resuming after SIGKILL."""

import json
import os
import shutil
import sys

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.errors import UsageError
from persona_core.io import read_records
from persona_core.layout import PT_OUTPUT_FIELDS, pt_files, pt_output_name
from persona_core.shards import ShardArguments
from persona_tailoring.model import arguments, generate
from persona_tailoring.model.run_model import main
from tests.helpers import (
    OUTPUT_NAME,
    api_argv,
    loopback_answer,
    make_args,
    sigkill_after,
    write_tailoring_dataset,
)

EGG = "Prompt: How do I boil an egg?\nResponse:"
ABC = "Prompt: abc\nResponse:"
# What the parrot model learns to say: one answer running on into a next "Prompt:", one ending at end of sequence.
PARROT_TEXTS = [EGG + " Put it in boiling water.\nPrompt: Why?\nResponse: Heat.", ABC + " Done</s>"]


@pytest.fixture(scope="module")
def parrot_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model, overfit on PARROT_TEXTS with a plain torch loop (a few seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("parrot")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    batch = tokenizer(PARROT_TEXTS, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(80):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow  # the parrot model trains for ~10-20 s
def test_generation_stops_at_the_next_prompt_and_at_end_of_sequence(parrot_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(parrot_model_dir)
    model = AutoModelForCausalLM.from_pretrained(parrot_model_dir)
    ids = tokenizer(EGG, return_tensors="pt").input_ids
    with torch.no_grad():
        unconstrained = tokenizer.decode(
            model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1] :]
        )
    assert unconstrained.startswith(" Put it in boiling water.\nPrompt:")  # the model itself runs on

    llm = generate.load_generator(str(parrot_model_dir), generate.GeneratorArguments(batch_size=2))
    generation = arguments.tailored_generation(max_tokens=30)
    completions = generate.generate_completions(llm, [EGG, ABC], generation)
    assert [c.text.strip() for c in completions] == ["Put it in boiling water.", "Done"]
    assert all(c.usage["completion_tokens"] < 30 for c in completions)
    assert generate.generate_texts(llm, [ABC, EGG], generation) == ["Done", "Put it in boiling water."]
    # the same backend serves calls with other settings: a 3-token budget cuts the answer short
    short = generate.generate_completions(llm, [EGG], arguments.tailored_generation(max_tokens=3))[0]
    assert short.usage["completion_tokens"] == 3 and "Put it in boiling water." not in short.text


def test_infer_writes_one_documented_record_per_test_row(tmp_path, tiny_model_dir, monkeypatch):
    data = write_tailoring_dataset(tmp_path / "data")
    args = make_args(tmp_path, tiny_model_dir, data, model_path=str(tiny_model_dir), max_tokens=4)
    args.inference.inference_type = [
        generate.templates.InferenceType.gold_chosen,
        generate.templates.InferenceType.none,
    ]
    assert infer(args) == 0
    folder = tmp_path / "results" / "Handmade" / "tiny"
    records = read_records(folder / OUTPUT_NAME)
    assert [list(r) for r in records] == [list(PT_OUTPUT_FIELDS)] * 3
    assert [r["index"] for r in records] == [0, 1, 2] and len({r["id"] for r in records}) == 3
    assert records[1]["prompt"] == "question test1?" and records[1]["persona"].startswith(
        "The user is CG-test1"
    )
    assert (
        records[1]["model_input"] == f"Prompt: question test1?\nPersona: {records[1]['persona']}\nResponse:"
    )
    plain = read_records(folder / plain_name())
    assert plain[0]["persona"] == "" and plain[0]["model_input"] == "Prompt: question test0?\nResponse:"
    run = json.loads(pt_files(folder / OUTPUT_NAME).run_record.read_text())
    assert run["stats"]["ok"] == 3 and run["fingerprint"]["generation"]["max_tokens"] == 4
    assert sorted(p.name for p in folder.glob("*.json*")) == sorted([OUTPUT_NAME, plain_name()])
    # a finished file is kept on a rerun with the same settings (no model is even loaded) ...
    monkeypatch.setattr(
        generate, "load_generator", lambda *a: pytest.fail("loaded a model for finished outputs")
    )
    assert infer(args) == 0
    # ... and another model's outputs never replace it silently
    args.inference.model_path = str(tmp_path / "another-model")
    with pytest.raises(UsageError, match=r"model\.name.*--overwrite"):
        infer(args)


def infer(args) -> int:
    plan = generate.plan_infer(args.tailoring, args.inference, args.generator, args.generation, "sft")
    return generate.infer(plan, args.generator, ShardArguments())


def plain_name() -> str:
    return pt_output_name("sft", "chosen", "none")


def test_openai_completions_backend_sends_raw_text_and_cuts_at_the_stop(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = write_tailoring_dataset(tmp_path / "data", {"test": 2})
    with LoopbackLLMServer(loopback_answer) as server:
        assert main(api_argv(data, tmp_path, server.url + "/v1", "--dataset_name", "Mnemonic")) == 0
    assert {call["path"] for call in server.calls} == {"/v1/completions"}
    body = server.calls[0]["body"]
    assert body["model"] == "served-model" and "\nPrompt:" in body["stop"] and body["temperature"] == 0
    records = read_records(tmp_path / "results" / "Mnemonic" / "tiny" / OUTPUT_NAME)
    first = next(r for r in records if r["index"] == 0)
    assert first["model_input"].endswith("\nResponse:")
    sent = sorted(call["body"]["prompt"] for call in server.calls)
    assert sent[0] == first["model_input"] + " Question Test0? sounds like"
    # the Mnemonic primer starts the response; the run-on example after "\nPrompt:" is cut
    assert first["response"] == "Question Test0? sounds like Answer to question test0?"


@pytest.mark.slow
def test_sigkill_midway_then_rerun_gives_the_uninterrupted_result(tmp_path):
    n_rows = 8
    data = write_tailoring_dataset(tmp_path / "data", {"test": n_rows})
    final = tmp_path / "results" / "Handmade" / "tiny" / OUTPUT_NAME
    with LoopbackLLMServer(loopback_answer) as server:
        assert main(api_argv(data, tmp_path, server.url + "/v1")) == 0
    reference = read_records(final)
    shutil.rmtree(tmp_path / "results")

    checkpoint = pt_files(final).checkpoint
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "OPEN_AI"))}
    with LoopbackLLMServer(loopback_answer, latency=0.25) as server:
        command = [
            sys.executable,
            "-m",
            "persona_tailoring.model.run_model",
            *api_argv(data, tmp_path, server.url + "/v1", "--concurrency", "1"),
        ]
        done = sigkill_after(command, checkpoint, 3, env, tmp_path, timeout=120)
    assert 3 <= done < n_rows and not final.exists()
    with open(checkpoint, "a", encoding="utf-8") as handle:  # a kill mid-write leaves half a line
        handle.write('{"id": "00007-')

    with LoopbackLLMServer(loopback_answer) as server:
        assert main(api_argv(data, tmp_path, server.url + "/v1")) == 0
    assert len(server.calls) == n_rows - done  # nothing generated twice
    assert read_records(final) == reference


def test_rerun_with_other_generation_settings_is_refused_and_overwrite_redoes(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = write_tailoring_dataset(tmp_path / "data", {"test": 2})
    final = tmp_path / "results" / "Handmade" / "tiny" / OUTPUT_NAME
    with LoopbackLLMServer(loopback_answer) as server:
        url = server.url + "/v1"
        assert main(api_argv(data, tmp_path, url, "--max_new_tokens", "16")) == 0
        first = final.read_bytes()
        assert main(api_argv(data, tmp_path, url, "--max_new_tokens", "16")) == 0  # same settings: kept
        assert len(server.calls) == 2
        for changed in (["--max_new_tokens", "32"], ["--temperature", "0.7"]):
            with pytest.raises(UsageError) as err:
                main(api_argv(data, tmp_path, url, *changed))
            assert "--overwrite" in str(err.value) and changed[0].lstrip("-").split("_")[0] in str(err.value)
            assert final.read_bytes() == first and len(server.calls) == 2
        assert main(api_argv(data, tmp_path, url, "--max_new_tokens", "32", "--overwrite")) == 0
        assert len(server.calls) == 4 and {c["body"]["max_tokens"] for c in server.calls[2:]} == {32}
    run = json.loads(pt_files(final).run_record.read_text())
    assert run["fingerprint"]["generation"]["max_tokens"] == 32
