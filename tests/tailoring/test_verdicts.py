"""Probability verdicts: next-token probabilities read in process (a tiny model whose output layer is fixed, so the
answer probabilities are known) and over the OpenAI API (the loopback server's logprobs); both orders, swaps undone,
refusals; the judge grid in one command and its verdict cache; --drop_repetitive."""

import json
import math
import shutil

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.layout import paper_data_dir
from persona_core.llm.base import Request
from persona_inference.model import run_model
from persona_tailoring.evaluation import run_judge, win_rate
from tests.helpers import (
    BASE_NAME,
    INLINE_NAME,
    TEST_NAME,
    api_args,
    judge_view,
    prefers_test,
    read_jsonl,
    run_argv,
    toolkit_outputs,
    write_jsonl,
    write_preferences,
)

# --- in process: a tiny model whose next-token distribution is fixed --------------------------------------------


class FixedLogits:
    """An output layer that ignores the hidden states: every position gets the same logits."""

    def __new__(cls, logits):
        import torch

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("logits", logits)

            def forward(self, hidden):
                return self.logits.to(hidden.dtype).expand(*hidden.shape[:-1], -1)

        return Layer()


def answer_logits(tokenizer, weights: dict[str, float]):
    """Logits that put ``weights[option]`` on the single-character token of each option, and the rest spread."""
    import torch

    logits = torch.zeros(len(tokenizer))
    for option, logit in weights.items():
        logits[tokenizer.convert_tokens_to_ids(option)] = logit
    return logits


def expected_probabilities(tokenizer, logits, options) -> dict[str, float]:
    """Each option's probability from the fixed distribution: the sum over every token that is the option up to
    whitespace (found here independently of the backend)."""
    probs = logits.softmax(-1)
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return {o: float(sum(probs[i] for i, t in enumerate(texts) if t.strip() == o)) for o in options}


@pytest.fixture
def fixed_backend(tiny_model_dir):
    from persona_core.llm.hf import HFBackend

    backend = HFBackend(str(tiny_model_dir), batch_size=3)
    logits = answer_logits(backend.tokenizer, {"1": 3.0, "2": 1.0, "A": 0.5, "B": 2.0})
    backend.model.lm_head = FixedLogits(logits)
    return backend, logits


def test_hf_probabilities_are_the_models_own(fixed_backend):
    backend, logits = fixed_backend
    prefix = "You are a judge who answers with 1 or 2 only, after reading both responses carefully. " * 2
    requests = [Request(f"r{i}", prefix + f"Question {i}" * (i + 1)) for i in range(5)]
    results = {}
    backend.score_options(requests, ("1", "2"), lambda c: results.__setitem__(c.id, c))
    want = expected_probabilities(backend.tokenizer, logits, ("1", "2"))
    assert want["1"] > want["2"] > 0
    for request in requests:
        got = results[request.id]
        assert got.ok and got.text == "1"
        assert got.option_probs == pytest.approx(want, abs=1e-6)
        assert got.tokens_read[0]["token"].strip() == "1" and len(got.tokens_read) == 20
        assert got.tokens_read[0]["prob"] == pytest.approx(float(logits.softmax(-1).max()), abs=1e-6)


def test_hf_batched_shared_prefix_equals_each_prompt_alone(tiny_model_dir):
    """Right padding on the shared prefix's states gives each row the logits of its own full forward pass."""
    import torch

    from persona_core.llm.hf import HFBackend

    backend = HFBackend(str(tiny_model_dir), batch_size=4)
    prefix = "Read both answers and reply with A or B. The capital of France is Paris. " * 2
    requests = [Request(f"r{i}", prefix + "Answer A: " + "yes " * i + "Answer B: no") for i in range(6)]
    results = {}
    backend.score_options(requests, ("A", "B"), lambda c: results.__setitem__(c.id, c))
    options = backend.option_token_ids(("A", "B"))
    for request in requests:
        ids = backend.tokenizer(
            backend.render(request), add_special_tokens=False, return_tensors="pt"
        ).input_ids
        with torch.inference_mode():
            probs = backend.model(ids).logits[0, -1].float().softmax(-1)
        alone = {o: float(probs[i].sum()) for o, i in options.items()}
        assert results[request.id].option_probs == pytest.approx(alone, rel=1e-4, abs=1e-7)


def test_persona_accuracy_probability_verdicts_in_process(tiny_model_dir, tmp_path, monkeypatch):
    """Known probabilities: P("1") > P("2") always, so the judge picks position 1 in both orders; accuracy is
    exactly 0.5, every answer valid, and each record keeps the probabilities and the tokens read."""
    from persona_core.llm import hf

    monkeypatch.chdir(tmp_path)
    load = hf.load_model_and_tokenizer
    fixed = {}

    def load_fixed(*args, **kwargs):
        model, tokenizer = load(*args, **kwargs)
        logits = answer_logits(tokenizer, {"1": 3.0, "2": 1.0})
        fixed.update(expected_probabilities(tokenizer, logits, ("1", "2")))
        model.lm_head = FixedLogits(logits)
        return model, tokenizer

    data = write_preferences(tmp_path / "prefs.jsonl", 3)
    common = ["--model_name", str(tiny_model_dir), "--model_nickname", "tiny", "--dataset_name", str(data)]
    common += ["--res_dir", str(tmp_path / "res"), "--max_tokens", "6"]
    assert run_model.main([*common, "--experiments", "persona_inference"]) == 0
    monkeypatch.setattr(hf, "load_model_and_tokenizer", load_fixed)
    assert run_model.main([*common, "--experiments", "persona_accuracy"]) == 0
    folder = tmp_path / "res" / "tiny" / "Sample" / "default"
    records = read_jsonl(folder / "persona_accuracy.jsonl")
    assert len(records) == 12 and {r["choice"] for r in records} == {1}
    p1 = fixed["1"] / (fixed["1"] + fixed["2"])
    for record in records:
        assert record["probabilities"] == pytest.approx(fixed, abs=1e-6) and record["tokens_read"]
        assert record["p_gold"] == pytest.approx(p1 if record["gold"] == 1 else 1 - p1, abs=1e-5)
    summary = json.loads((folder / "persona_accuracy.run.json").read_text())["summary"]
    assert [(s["side"], s["accuracy"], s["invalid"], s["first_share"]) for s in summary] == [
        ("chosen", 0.5, 0, 1.0),
        ("rejected", 0.5, 0, 1.0),
    ]
    assert summary[0]["mean_p_gold"] == pytest.approx(0.5, abs=1e-6)
    assert json.loads((folder / "persona_accuracy.fingerprint.json").read_text())["verdict"] == "probability"


# --- over the OpenAI API: the loopback server's logprobs ------------------------------------------------------


def logprobs_for(table):
    """A loopback ``top_logprobs`` answering ``table(prompt)`` as (token, probability) pairs."""
    return lambda prompt, body: [(token, math.log(p)) for token, p in table(prompt)]


def test_persona_accuracy_reads_logprobs_from_an_openai_server(tmp_path, isolated):
    """The judge reads the chosen response's position from the prompt: accuracy 1.0 for chosen-side personas."""
    data = write_preferences(tmp_path / "prefs.jsonl", 2)
    res = tmp_path / "res"
    personas = res / "loopback-model" / "Sample" / "default" / "persona_inference.jsonl"

    def persona_answer(prompt, body):
        return "The user is someone who prefers good answers."

    with LoopbackLLMServer(persona_answer) as server:
        assert run_model.main(api_args(data, res, "open_ai", server.url)) == 0
    assert personas.is_file()

    def good_first(prompt):
        first = prompt.split("good answer")[0].count("bad answer") == 0
        return [(" 1", 0.6), ("1", 0.1), ("2", 0.2)] if first else [("2", 0.7), ("Maybe", 0.2)]

    accuracy_template = tmp_path / "prompts" / "persona_accuracy" / "generic.txt"
    accuracy_template.parent.mkdir(parents=True)
    accuracy_template.write_text(
        "Q: {prompt}\n1: {response_1}\n2: {response_2}\nUser: {persona}\nAnswer 1 or 2."
    )
    with LoopbackLLMServer(persona_answer, top_logprobs=logprobs_for(good_first)) as server:
        argv = api_args(data, res, "open_ai", server.url, "--experiments", "persona_accuracy")
        assert run_model.main([*argv, "--verdict", "probability"]) == 0
        bodies = [c["body"] for c in server.calls]
    assert all(b["logprobs"] and b["top_logprobs"] == 20 and b["max_tokens"] == 1 for b in bodies)
    records = read_jsonl(res / "loopback-model" / "Sample" / "default" / "persona_accuracy.jsonl")
    assert len(records) == 8
    for record in records:
        good_is_1 = record["gold"] == 1 if record["side"] == "chosen" else record["gold"] == 2
        if good_is_1:
            assert record["probabilities"] == pytest.approx({"1": 0.7, "2": 0.2})  # " 1" and "1" both count
        else:
            assert record["probabilities"]["1"] is None  # not among the tokens read: recorded as such
            assert record["probabilities"]["2"] == pytest.approx(0.7)
        assert record["choice"] == (1 if good_is_1 else 2)
    chosen = [r for r in records if r["side"] == "chosen"]
    assert all(r["correct"] for r in chosen)


def prometheus_logprobs(prompt):
    """A judge that prefers the TEST response, in whichever position it stands: P(test letter) 0.7, other 0.2."""
    _, side_a, _ = judge_view(prompt)
    test, other = ("A", "B") if side_a == "test" else ("B", "A")
    return [(f" {test}", 0.7), (other, 0.2), ("C", 0.1)]


def test_pairwise_probability_verdicts_undo_the_swaps(tmp_path):
    toolkit_outputs(tmp_path, n=3)
    with LoopbackLLMServer(lambda p, b: "unused", top_logprobs=logprobs_for(prometheus_logprobs)) as server:
        assert run_judge.main(run_argv(server, tmp_path, "--verdict", "probability")) == 0
        bodies = [c["body"] for c in server.calls]
    probe, *bodies = bodies  # first, the one probe: does the server continue a final assistant message?
    assert probe["messages"][-1]["content"] == "The quick brown fox jumps" and "logprobs" not in probe
    assert len(bodies) == 3 * 2 * 2
    for body in bodies:
        # The answer is started with the verdict marker on the server (vLLM's continue_final_message).
        assert body["messages"][-1] == {"role": "assistant", "content": "[RESULT]"}
        assert body["continue_final_message"] and not body["add_generation_prompt"]
        assert body["logprobs"] and body["max_tokens"] == 1
    rows = read_jsonl(next((tmp_path / "out").rglob("judgments.jsonl")))
    assert len(rows) == 6
    for row in rows:
        assert row["outcome"] == "test" and row["verdict_mode"] == "probability"
        assert row["p_test"] == pytest.approx(0.7 / 0.9, abs=1e-6)
        for order, test_letter in (("base_first", "B"), ("test_first", "A")):
            assert row[order]["raw_verdict"] == test_letter and row[order]["verdict"] == "test"
            assert row[order]["probabilities"][test_letter] == pytest.approx(0.7)
            assert row[order]["tokens"][0]["token"] == f" {test_letter}"
    record = json.loads(next((tmp_path / "out").rglob("judge.run.json")).read_text())
    assert record["verdicts"]["invalid_after_retry"] == 0 and record["verdict_mode"] == "probability"


def test_a_position_biased_probability_judge_ties(tmp_path):
    """P(A) > P(B) whatever the order: each pair is a tie and its mean p_test is exactly 0.5."""
    toolkit_outputs(tmp_path, n=2)
    biased = logprobs_for(lambda prompt: [("A", 0.6), ("B", 0.4)])
    with LoopbackLLMServer(lambda p, b: "unused", top_logprobs=biased) as server:
        assert run_judge.main(run_argv(server, tmp_path, "--verdict", "probability")) == 0
    rows = read_jsonl(next((tmp_path / "out").rglob("judgments.jsonl")))
    assert {r["outcome"] for r in rows} == {"tie"}
    assert all(r["p_test"] == pytest.approx(0.5) for r in rows)


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--judge_model_type", "anthropic", "--verdict", "probability"], "--verdict text"),
        (["--judge_model_type", "cohere", "--verdict", "probability"], "--verdict text"),
    ],
)
def test_backends_without_probabilities_refuse(tmp_path, capsys, argv_tail, message, isolated):
    base, test = toolkit_outputs(tmp_path, n=1)
    argv = [
        "--base_file",
        str(base),
        "--test_file",
        str(test),
        "--output_dir",
        str(tmp_path / "out"),
        *argv_tail,
    ]
    with pytest.raises(SystemExit) as exit_info:
        from persona_core.errors import run_cli

        run_cli(lambda: run_judge.main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_openai_itself_cannot_start_the_verdict(tmp_path, capsys, isolated):
    """Without --base_url the answer cannot be started with [RESULT]: refused before any request."""
    isolated.setenv("OPENAI_API_KEY", "test-key")
    base, test = toolkit_outputs(tmp_path, n=1)
    argv = ["--base_file", str(base), "--test_file", str(test), "--output_dir", str(tmp_path / "out")]
    argv += ["--judge_model_type", "open_ai", "--judge_model_name", "gpt-4o", "--verdict", "probability"]
    with pytest.raises(SystemExit):
        from persona_core.errors import run_cli

        run_cli(lambda: run_judge.main(argv))
    assert "--base_url of a vLLM server" in capsys.readouterr().err


def test_grid_judges_each_test_file_once_and_the_cache_answers_repeats(tmp_path):
    base, test = toolkit_outputs(tmp_path, n=3)
    twin = shutil.copy(test, tmp_path / "twin.jsonl")  # the same outputs under another name
    argv = [
        "--base_file",
        str(base),
        "--test_file",
        str(test),
        str(twin),
        "--output_dir",
        str(tmp_path / "out"),
    ]
    argv += ["--judge_model_type", "open_ai", "--judge_model_name", "judge", "--verdict", "text"]
    with LoopbackLLMServer(prefers_test) as server:
        assert run_judge.main([*argv, "--base_url", server.url]) == 0
        first_calls = len(server.calls)
        # A new output folder's first comparison is asked again; its cache then answers the second one.
        assert first_calls == 3 * 2 * 2
        rerun = [*argv, "--base_url", server.url, "--overwrite"]
        assert run_judge.main(rerun) == 0
        assert len(server.calls) == first_calls + 2 * 12  # --overwrite asks again, for both comparisons
    folders = sorted(p.parent.name for p in (tmp_path / "out").rglob("judgments.jsonl"))
    assert folders == ["base_vs_test", "base_vs_twin"]
    twin_run = json.loads((tmp_path / "out" / "comparisons" / "base_vs_twin" / "judge.run.json").read_text())
    assert twin_run["verdicts"]["total"] == 12
    cache = read_jsonl(tmp_path / "out" / "verdict_cache.jsonl")
    assert len({entry["id"] for entry in cache}) == 12


def test_the_cache_answers_a_twin_comparison_without_the_judge(tmp_path):
    base, test = toolkit_outputs(tmp_path, n=2)
    out = tmp_path / "out"
    common = ["--base_file", str(base), "--output_dir", str(out), "--judge_model_type", "open_ai"]
    common += ["--judge_model_name", "judge", "--verdict", "text"]
    with LoopbackLLMServer(prefers_test) as server:
        assert run_judge.main([*common, "--test_file", str(test), "--base_url", server.url]) == 0
        asked = len(server.calls)
        twin = shutil.copy(test, tmp_path / "twin.jsonl")
        assert run_judge.main([*common, "--test_file", str(twin), "--base_url", server.url]) == 0
        assert len(server.calls) == asked  # every prompt of the twin was judged before
    twin_rows = read_jsonl(out / "comparisons" / "base_vs_twin" / "judgments.jsonl")
    test_rows = read_jsonl(out / "comparisons" / "base_vs_test" / "judgments.jsonl")
    assert [r["outcome"] for r in twin_rows] == [r["outcome"] for r in test_rows] == ["test"] * 4
    record = json.loads((out / "comparisons" / "base_vs_twin" / "judge.run.json").read_text())
    assert record["verdicts"]["cached"] == 8
    # Another judge is another cache key: nothing is reused across judges.
    with LoopbackLLMServer(prefers_test) as server:
        other = [*common, "--test_file", str(twin), "--base_url", server.url, "--judge_model_name", "judge-2"]
        assert run_judge.main([*other, "--output_dir", str(out), "--overwrite"]) == 0
        assert len(server.calls) == 8


def test_drop_repetitive_leaves_degenerate_pairs_out(tmp_path, capsys):
    base, test = toolkit_outputs(tmp_path, n=3)
    rows = read_jsonl(test)
    rows[0]["response"] = "I like it a lot. " * 20  # repeated 4-grams: degenerate
    write_jsonl(test, rows)
    with LoopbackLLMServer(prefers_test) as server:
        assert run_judge.main(run_argv(server, tmp_path, "--drop_repetitive")) == 0
        assert len(server.calls) == 2 * 2 * 2
    judged = read_jsonl(next((tmp_path / "out").rglob("judgments.jsonl")))
    assert sorted({r["id"] for r in judged}) == sorted({"r0", "r1", "r2"} - {rows[0]["id"]})
    record = json.loads(next((tmp_path / "out").rglob("judge.run.json")).read_text())
    assert record["dropped_repetitive"] == 1
    assert "1 pairs with a repetitive response dropped" in capsys.readouterr().out


def test_win_rate_over_a_grid_writes_the_delta_pq_table(tmp_path):
    """Two datasets x two test configurations, named as the paper's files: one ΔPQ table over all of them."""

    out = tmp_path / "judge"
    for dataset in ("BeaverTails", "Mnemonic"):
        folder = tmp_path / "outputs" / dataset
        base, test = toolkit_outputs(folder, n=4)
        shutil.move(base, folder / BASE_NAME)
        shutil.copy(test, folder / INLINE_NAME)
        shutil.move(test, folder / TEST_NAME)
        argv = ["--results_save_dir", str(tmp_path / "outputs"), "--dataset_name", dataset]
        argv += ["--model_type_base", "dpo", "--training_type_base", "none", "--inference_type_base", "none"]
        argv += ["--model_type_test", "dpo", "--training_type_test", "none", "chosen"]
        argv += ["--inference_type_test", "gold-chosen", "--output_dir", str(out)]
        argv += ["--judge_model_type", "open_ai", "--judge_model_name", "judge", "--verdict", "text"]
        with LoopbackLLMServer(prefers_test) as server:
            assert run_judge.main([*argv, "--base_url", server.url]) == 0
    assert win_rate.main(["--comparison_dir", str(out), "--resamples", "50"]) == 0
    table = (out / "delta_pq_table.md").read_text()
    assert "BeaverTails" in table and "Mnemonic" in table
    csv_rows = (out / "delta_pq_table.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 2 * 2  # header + (2 configurations x 2 datasets)
    assert all(",1.0," in row for row in csv_rows[1:])  # the judge always prefers the test: ΔPQ = 1
    assert (out / "delta_pq_table.png").stat().st_size > 1000


PAPER = paper_data_dir() / "paper-outputs"


@pytest.mark.skipif(not PAPER.is_dir(), reason="the paper's released outputs are not in ../shared/data")
def test_the_papers_released_outputs_are_grid_members(tmp_path):
    """The paper's BeaverTails files as a 2 x 2 grid (persona training none/chosen x gold/retrieved personas)."""
    out = tmp_path / "judge"
    argv = ["--results_save_dir", str(PAPER), "--dataset_name", "BeaverTails", "--limit", "3"]
    argv += ["--model_type_base", "dpo", "--training_type_base", "none", "--inference_type_base", "none"]
    argv += ["--model_type_test", "dpo", "--training_type_test", "none", "chosen"]
    argv += ["--inference_type_test", "gold-chosen", "retr-chosen", "--output_dir", str(out)]
    argv += ["--judge_model_type", "open_ai", "--judge_model_name", "judge", "--verdict", "probability"]
    biased = logprobs_for(lambda prompt: [("A", 0.6), ("B", 0.4)])
    with LoopbackLLMServer(lambda p, b: "unused", top_logprobs=biased) as server:
        assert run_judge.main([*argv, "--base_url", server.url]) == 0
        assert (
            len(server.calls) == 1 + 4 * 3 * 2 * 2
        )  # the probe, then configurations x pairs x metrics x orders
    assert win_rate.main(["--comparison_dir", str(out), "--resamples", "50"]) == 0
    cells = (out / "delta_pq_table.csv").read_text().splitlines()[1:]
    assert len(cells) == 4 and all(cell.startswith("BeaverTails,dpo-none-none,dpo-") for cell in cells)
    assert "dpo-chosen-retr-chosen" in (out / "delta_pq_table.md").read_text()


def test_a_rerun_with_other_weights_is_refused(tmp_path):
    """Loading options that change answers (dtype, quantization) are in the fingerprint; batch sizes are not."""
    from persona_core.errors import UsageError

    toolkit_outputs(tmp_path, n=2)
    with LoopbackLLMServer(prefers_test) as server:
        assert run_judge.main(run_argv(server, tmp_path, "--verdict", "text")) == 0
        assert run_judge.main(run_argv(server, tmp_path, "--verdict", "text", "--batch_size", "3")) == 0
        with pytest.raises(UsageError, match="--overwrite"):
            run_judge.main(run_argv(server, tmp_path, "--verdict", "text", "--dtype", "bfloat16"))
