"""The local ``hf_chat`` backend on the tiny random model: batched = one at a time, stop strings, the full run."""

import json

import pytest
from persona_inference.llm.base import GenerationConfig, Request
from persona_inference.llm.hf import HFBackend, load_model_and_tokenizer
from persona_inference.model import run_model

from tests.pi_support import read_jsonl, write_preferences

PROMPTS = [
    "Hi",
    "How do I boil an egg so that the yolk stays runny?",
    "Question: What is the capital of France? Answer A: Paris. Answer B: I am not sure.",
    "abc",
    "The user is a busy parent who prefers short, practical answers over long explanations. " * 3,
    "Prompt: How do I boil an egg?",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny model with larger random weights, so its greedy output depends on the whole prompt.

    With the small initial weights it repeats one token whatever the prompt, and any comparison would be vacuous.
    """
    import torch

    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / parameter.shape[1] ** 0.5)
    return model, tokenizer


def generate(
    tiny, batch_size: int, stop: list[str] | None = None, max_tokens: int = 12, prompts: list[str] = PROMPTS) -> dict[str, str]:
    model, tokenizer = tiny
    backend = HFBackend("tiny", GenerationConfig(max_tokens=max_tokens, stop=stop or []), batch_size, model=model,
                        tokenizer=tokenizer)
    requests = [Request(str(i), prompt, prefill="The user is") for i, prompt in enumerate(prompts)]
    results = {}
    backend.generate(requests, lambda completion: results.__setitem__(completion.id, completion))
    assert sorted(results) == sorted(r.id for r in requests)  # each request answered exactly once
    assert all(c.ok for c in results.values())
    return {i: c.text for i, c in results.items()}


def test_tokenizer_pads_on_the_left(tiny):
    assert tiny[1].padding_side == "left"
    assert tiny[1].pad_token is not None


def test_batched_greedy_equals_one_at_a_time(tiny):
    batched = generate(tiny, batch_size=4)
    single = generate(tiny, batch_size=1)
    assert batched == single
    assert all(text.startswith("The user is") for text in batched.values())
    assert len(set(batched.values())) > 1  # the outputs depend on the prompt: the comparison means something


def test_batched_greedy_equals_transformers_generate(tiny):
    """Batches of left-padded prompts give what ``model.generate`` gives each prompt alone."""
    import torch

    model, tokenizer = tiny
    ours = generate(tiny, batch_size=4, prompts=PROMPTS)
    backend = HFBackend("tiny", GenerationConfig(), model=model, tokenizer=tokenizer)
    for i, prompt in enumerate(PROMPTS):
        text = backend.render(Request(str(i), prompt, prefill="The user is"))
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.inference_mode():
            output = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
        assert ours[str(i)] == "The user is" + tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)


def test_sampling_is_seeded(tiny):
    model, tokenizer = tiny

    def sample(seed: int) -> dict:
        backend = HFBackend("tiny", GenerationConfig(temperature=1.0, max_tokens=8, seed=seed), 3, model=model,
                            tokenizer=tokenizer)
        results = {}
        backend.generate([Request(str(i), p) for i, p in enumerate(PROMPTS)], lambda c: results.__setitem__(c.id, c.text))
        return results

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_stop_strings_cut_the_output_where_the_unstopped_one_has_them(tiny):
    free = generate(tiny, batch_size=3, max_tokens=16)
    # A stop string the model really produces, past the prefill: two characters of the longest continuation.
    longest = max(free.values(), key=len)
    stop = longest[len("The user is") + 2 : len("The user is") + 4]
    assert stop.strip()
    stopped = generate(tiny, batch_size=3, stop=[stop], max_tokens=16)
    for i, text in free.items():
        cut = text.find(stop, len("The user is"))
        expected = text if cut == -1 else text[:cut]
        assert stopped[i] == expected
    assert stopped != free  # at least one output was really cut


def test_run_model_hf_chat_end_to_end_and_resume(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_preferences(tmp_path / "prefs.jsonl", 3)
    args = [
        "--model_type", "hf_chat", "--model_name", str(tiny_model_dir), "--model_nickname", "tiny",
        "--dataset_name", str(data), "--res_dir", str(tmp_path / "res"), "--max_tokens", "6", "--batch_size", "4",
    ]
    assert run_model.main(args) == 0
    folder = tmp_path / "res" / "tiny" / "Sample" / "default"
    records = read_jsonl(folder / "persona_inference.jsonl")
    assert [(r["row"], r["side"]) for r in records] == [(i, s) for s in ("chosen", "rejected") for i in range(3)]
    for record in records:
        assert record["status"] == "ok"
        assert record["raw_text"].startswith("The user is")
        assert 1 <= record["usage"]["completion_tokens"] <= 6
        assert record["usage"]["prompt_tokens"] > 50
    run_record = json.loads((folder / "persona_inference.run.json").read_text())
    assert run_record["arguments"]["model_type"] == "hf_chat" and run_record["stats"]["ok"] == 6

    assert run_model.main(args) == 0  # a rerun reuses the checkpoint and writes the same result
    assert read_jsonl(folder / "persona_inference.jsonl") == records
    assert json.loads((folder / "persona_inference.run.json").read_text())["stats"]["reused"] == 6
