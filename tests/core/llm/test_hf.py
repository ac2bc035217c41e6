"""The local ``hf_chat`` backend on the tiny random model: continuous batching and the shared prefix give what
``generate`` gives each prompt alone; stop strings; the full run."""

import itertools
import json

import pytest

from persona_core.llm.base import GenerationConfig, Request, cut_at_stop
from persona_core.llm.batching import MIN_SHARED_PREFIX
from persona_core.llm.hf import HFBackend, load_model_and_tokenizer
from persona_inference.model import run_model
from tests.helpers import MIXED_PROMPTS, read_jsonl, sharpen, write_preferences

PROMPTS = MIXED_PROMPTS


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny model with larger random weights, so its greedy output depends on the whole prompt."""
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    sharpen(model)
    return model, tokenizer


def generate(
    tiny, batch_size: int, stop: list[str] | None = None, max_tokens: int = 12, prompts: list[str] = PROMPTS
) -> dict[str, str]:
    model, tokenizer = tiny
    backend = HFBackend("tiny", batch_size, model=model, tokenizer=tokenizer)
    requests = [Request(str(i), prompt, prefill="The user is") for i, prompt in enumerate(prompts)]
    results = {}
    generation = GenerationConfig(max_tokens=max_tokens, stop=stop or [])
    backend.generate(requests, lambda completion: results.__setitem__(completion.id, completion), generation)
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
    backend = HFBackend("tiny", model=model, tokenizer=tokenizer)
    for i, prompt in enumerate(PROMPTS):
        text = backend.render(Request(str(i), prompt, prefill="The user is"))
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.inference_mode():
            output = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False
            )
        assert ours[str(i)] == "The user is" + tokenizer.decode(
            output[0, ids.shape[1] :], skip_special_tokens=True
        )


def test_sampling_is_seeded(tiny):
    model, tokenizer = tiny

    def sample(seed: int) -> dict:
        backend = HFBackend("tiny", 3, model=model, tokenizer=tokenizer)
        results = {}
        backend.generate(
            [Request(str(i), p) for i, p in enumerate(PROMPTS)],
            lambda c: results.__setitem__(c.id, c.text),
            GenerationConfig(temperature=1.0, max_tokens=8, seed=seed),
        )
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
        "--model_type",
        "hf_chat",
        "--model_name",
        str(tiny_model_dir),
        "--model_nickname",
        "tiny",
        "--dataset_name",
        str(data),
        "--res_dir",
        str(tmp_path / "res"),
        "--max_tokens",
        "6",
        "--batch_size",
        "4",
    ]
    assert run_model.main(args) == 0
    folder = tmp_path / "res" / "tiny" / "Sample" / "default"
    records = read_jsonl(folder / "persona_inference.jsonl")
    assert [(r["row"], r["side"]) for r in records] == [
        (i, s) for s in ("chosen", "rejected") for i in range(3)
    ]
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


SYSTEM = (
    "You infer personas. Write one sentence that starts with 'The user is' and says what the user prefers."
)
FEW_SHOT = [
    {
        "role": "user",
        "content": "Prompt: How do I boil an egg?\nResponse A: Put it in boiling water.\nResponse B: I am not sure.",
    },
    {"role": "assistant", "content": "The user is a beginner cook who prefers short, practical answers."},
]


def generate_alone(
    tiny,
    text: str,
    max_tokens: int,
    stop: list[str],
    min_tokens: int = 0,
    chat: bool = True,
    with_length: bool = False,
):
    """What ``model.generate`` gives one prompt on its own, cut at the first end token and stop string (and how many
    tokens it generated)."""
    import torch

    model, tokenizer = tiny
    ids = tokenizer(text, add_special_tokens=not chat, return_tensors="pt").input_ids
    with torch.inference_mode():
        output = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_tokens,
            min_new_tokens=min_tokens or None,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            stop_strings=stop or None,
            tokenizer=tokenizer,
        )
    new = output[0, ids.shape[1] :].tolist()
    ends = {tokenizer.pad_token_id, tokenizer.eos_token_id}
    new = new[: next((i for i, t in enumerate(new) if t in ends), len(new))]
    text = cut_at_stop(tokenizer.decode(new, skip_special_tokens=True), stop)
    return (text, len(new)) if with_length else text


def run_recording_rounds(
    backend: HFBackend, requests: list[Request], generation: GenerationConfig
) -> tuple[dict, list[list[int]]]:
    """The backend's completions, and for each decoding round the tokens each of its rows had generated before it."""
    rounds, decode_round = [], backend.engine.decode_round

    def recording(active, on_finished, gen):
        rounds.append([len(s.generated) for s in active])
        return decode_round(active, on_finished, gen)

    backend.engine.decode_round = recording
    results = {}
    backend.generate(requests, lambda completion: results.__setitem__(completion.id, completion), generation)
    assert sorted(results) == sorted(r.id for r in requests) and all(c.ok for c in results.values())
    return results, rounds


@pytest.fixture(scope="module")
def staggered(tiny):
    """Few-shot requests, stop strings that end their answers after different numbers of tokens (the longest two
    prompts, which start decoding together, included), and what ``generate`` gives each prompt alone."""
    model, tokenizer = tiny
    requests = [
        Request(str(i), p, system=SYSTEM, history=FEW_SHOT, prefill="The user is")
        for i, p in enumerate(PROMPTS)
    ]
    backend = HFBackend("tiny", model=model, tokenizer=tokenizer)
    texts = {r.id: backend.render(r) for r in requests}
    longest = sorted(texts, key=lambda i: -len(tokenizer(texts[i]).input_ids))[:2]
    unstopped = [generate_alone(tiny, t, 14, []) for t in texts.values()]
    single = {}  # for each candidate stop string, the tokens each answer has when it alone stops them
    for stop in sorted({u[j : j + 2] for u in unstopped for j in range(len(u) - 1)} - {""}):
        single[stop] = {i: generate_alone(tiny, t, 14, [stop], with_length=True)[1] for i, t in texts.items()}
    for stops in itertools.combinations(single, 2):
        lengths = {
            i: min(single[s][i] for s in stops) for i in texts
        }  # the first stop string to appear ends it
        if len(set(lengths.values())) >= 3 and lengths[longest[0]] != lengths[longest[1]]:
            return (
                requests,
                list(stops),
                {i: "The user is" + generate_alone(tiny, t, 14, list(stops)) for i, t in texts.items()},
            )
    raise AssertionError("no pair of stop strings staggers the tiny model's answers")


@pytest.mark.parametrize("batch_size, round_tokens", [(1, 2), (2, 3), (3, 1), (4, 5), (8, 16)])
def test_continuous_batching_with_a_shared_prefix_equals_generate_alone(
    tiny, staggered, batch_size, round_tokens
):
    """Rows leave and join between rounds and share the few-shot prefix, yet each output is that prompt's own."""
    model, tokenizer = tiny
    requests, stops, expected = staggered
    backend = HFBackend("tiny", batch_size, round_tokens=round_tokens, model=model, tokenizer=tokenizer)
    prefix = backend.engine.shared_prefix([tokenizer(backend.render(r)).input_ids for r in requests])
    assert len(prefix) >= MIN_SHARED_PREFIX  # the prefix really is computed once and shared
    results, rounds = run_recording_rounds(backend, requests, GenerationConfig(max_tokens=14, stop=stops))
    assert {i: c.text for i, c in results.items()} == expected
    if round_tokens < 14:
        assert max(max(r) for r in rounds) > 0  # some row went on after its first round
    if 1 < batch_size < len(requests) and round_tokens < 14:
        assert any(0 in r and max(r) > 0 for r in rounds)  # a queued row joined rows already decoding


def test_one_token_prompts_and_plain_text(tiny):
    """Without a chat template a prompt may be a single token: it has no states of its own yet and still decodes."""
    model, tokenizer = tiny
    prompts = ["a", "The user is", "Question: What is the capital of France?", "b"]
    assert len(tokenizer("a").input_ids) == 1
    backend = HFBackend("tiny", 3, chat=False, round_tokens=2, model=model, tokenizer=tokenizer)
    requests = [Request(str(i), p) for i, p in enumerate(prompts)]
    results, _ = run_recording_rounds(backend, requests, GenerationConfig(max_tokens=9))
    for i, prompt in enumerate(prompts):
        assert results[str(i)].text == generate_alone(tiny, prompt, 9, [], chat=False)


def test_minimum_length_runs_each_batch_to_the_end(tiny):
    model, tokenizer = tiny
    backend = HFBackend("tiny", 4, round_tokens=2, model=model, tokenizer=tokenizer)
    requests = [Request(str(i), p) for i, p in enumerate(PROMPTS)]
    results, rounds = run_recording_rounds(backend, requests, GenerationConfig(max_tokens=10, min_tokens=6))
    assert all(set(r) == {0} for r in rounds)  # no row is ever continued: one round per batch
    for i, prompt in enumerate(PROMPTS):
        text = backend.render(Request(str(i), prompt))
        assert results[str(i)].text == generate_alone(tiny, text, 10, [], min_tokens=6)


def test_sliding_window_models_fall_back_to_padded_batches(tiny, tmp_path):
    """A cache with sliding-window layers cannot be cut into rows: static batches give the same greedy outputs."""
    from transformers import MistralConfig, MistralForCausalLM

    _, tokenizer = tiny
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    backend = HFBackend("tiny-mistral", 4, model=model, tokenizer=tokenizer)
    assert not backend.engine.rows_splittable()
    results = {}
    backend.generate(
        [Request(str(i), p) for i, p in enumerate(PROMPTS)],
        lambda c: results.__setitem__(c.id, c),
        GenerationConfig(max_tokens=8),
    )
    for i, prompt in enumerate(PROMPTS):
        text = backend.render(Request(str(i), prompt))
        assert results[str(i)].text == generate_alone((model, tokenizer), text, 8, [])


def test_stop_string_criterion_is_built_once_for_all_rounds(tiny, monkeypatch):
    """``stop_strings=`` would rebuild it (a pass over the whole vocabulary) in every ``generate`` call."""
    from transformers import StopStringCriteria

    built = []
    original = StopStringCriteria.__init__
    monkeypatch.setattr(
        StopStringCriteria, "__init__", lambda self, *a, **k: (built.append(1), original(self, *a, **k))[1]
    )
    model, tokenizer = tiny
    backend = HFBackend("tiny", 2, round_tokens=2, model=model, tokenizer=tokenizer)
    requests = [Request(str(i), p) for i, p in enumerate(PROMPTS)]
    _, rounds = run_recording_rounds(backend, requests, GenerationConfig(max_tokens=12, stop=["zz"]))
    assert len(rounds) >= 6 and len(built) == 1
