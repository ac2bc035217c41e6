"""The verdict cache wraps any judge backend (as lm-evaluation-harness's CachingLM wraps an LM), and a comparison's
retry rounds run on one open checkpoint."""

import json

from bench.loopback import LoopbackLLMServer
from persona_core import io, layout
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request
from persona_tailoring.evaluation import run_judge
from persona_tailoring.evaluation.verdict_cache import CachingJudge
from tests.helpers import run_argv, toolkit_outputs, verdict


class CountingJudge(LLM):
    """Answers "[RESULT] A" (or fails the requests named in ``failing``) and remembers what it was asked."""

    def __init__(self, failing=()):
        super().__init__("counting-judge")
        self.asked: list[list[str]] = []
        self.failing = set(failing)

    def generate(self, requests, on_result, generation):
        self.asked.append([r.id for r in requests])
        for r in requests:
            on_result(
                Completion(r.id, error="boom") if r.id in self.failing else Completion(r.id, "[RESULT] A")
            )

    def score_options(self, requests, options, on_result):
        self.asked.append([r.id for r in requests])
        for r in requests:
            on_result(Completion(r.id, "A", option_probs={"A": 0.75, "B": 0.25}))


def ask(judge: CachingJudge, requests, generation=GenerationConfig(max_tokens=8)) -> dict[str, Completion]:
    results = {}
    judge.generate(requests, lambda c: results.__setitem__(c.id, c), generation)
    return results


REQUESTS = [Request("r1", "judge this", system="rubric"), Request("r2", "judge that", system="rubric")]
JUDGE = {"model_type": "open_ai", "model_name": "j", "weights": {}, "verdict": "text"}


def test_a_request_judged_before_is_answered_from_the_cache_without_the_backend(tmp_path):
    inner = CountingJudge()
    judge = CachingJudge(tmp_path / "cache.jsonl", JUDGE, lambda: inner)
    first = ask(judge, REQUESTS)
    assert inner.asked == [["r1", "r2"]] and not any(c.cached for c in first.values())
    again = ask(judge, [Request("other-id", "judge this", system="rubric")])  # same content, another id
    assert (
        inner.asked == [["r1", "r2"]] and again["other-id"].cached and again["other-id"].text == "[RESULT] A"
    )
    assert judge.hits == 1
    judge.close()
    entries = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert len(entries) == 2 and all(e["text"] == "[RESULT] A" for e in entries)


def test_other_settings_another_judge_or_a_probability_read_are_misses(tmp_path):
    inner = CountingJudge()
    judge = CachingJudge(tmp_path / "cache.jsonl", JUDGE, lambda: inner)
    ask(judge, REQUESTS[:1])
    ask(judge, REQUESTS[:1], GenerationConfig(max_tokens=8, seed=1))  # a retry's new seed
    scores = {}
    judge.score_options(REQUESTS[:1], ("A", "B"), lambda c: scores.__setitem__(c.id, c))
    assert len(inner.asked) == 3 and scores["r1"].option_probs == {"A": 0.75, "B": 0.25}
    judge.close()
    other = CachingJudge(tmp_path / "cache.jsonl", JUDGE | {"model_name": "k"}, lambda: inner)
    ask(other, REQUESTS[:1])
    assert len(inner.asked) == 4 and other.hits == 0
    other.close()


def test_the_cache_survives_the_process_builds_no_backend_when_full_and_keeps_no_failure(tmp_path):
    inner = CountingJudge(failing={"r2"})
    judge = CachingJudge(tmp_path / "cache.jsonl", JUDGE, lambda: inner)
    results = ask(judge, REQUESTS)
    assert results["r2"].error == "boom"
    judge.close()

    def no_backend():
        raise AssertionError("backend built although every answer is cached")

    reopened = CachingJudge(tmp_path / "cache.jsonl", JUDGE, no_backend)
    assert ask(reopened, REQUESTS[:1])["r1"].cached
    reopened.backend = lambda: inner  # the failed one was not kept: it is asked again
    assert not ask(reopened, REQUESTS[1:])["r2"].cached and inner.asked[-1] == ["r2"]
    reopened.close()


def test_overwrite_asks_the_judge_again_and_keeps_one_entry_per_key(tmp_path):
    inner = CountingJudge()
    CachingJudge(tmp_path / "cache.jsonl", JUDGE, lambda: inner).generate(
        REQUESTS, lambda c: None, GenerationConfig()
    )
    redo = CachingJudge(tmp_path / "cache.jsonl", JUDGE, lambda: inner, read=False)
    assert not any(c.cached for c in ask(redo, REQUESTS, GenerationConfig()).values())
    redo.close()
    assert len(inner.asked) == 2 and len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2


def test_a_comparison_with_retry_rounds_opens_its_checkpoint_once(tmp_path, monkeypatch):
    toolkit_outputs(tmp_path, n=2)
    opened = []
    real_init = io.JsonlCheckpoint.__init__

    def spy(self, path, *args, **kwargs):
        opened.append(str(path))
        real_init(self, path, *args, **kwargs)

    monkeypatch.setattr(io.JsonlCheckpoint, "__init__", spy)
    answers = iter(["[RESULT] C", "[RESULT] C"])  # two unparsable first answers: a retry round follows

    with LoopbackLLMServer(lambda p, b: next(answers, verdict("A"))) as server:
        assert run_judge.main(run_argv(server, tmp_path, "--verdict_retries", "3")) == 0
        asked = len(server.calls)
    (folder,) = {p.parent for p in (tmp_path / "out" / "comparisons").rglob("*.jsonl")}
    checkpoint = str(layout.judge_files(folder).checkpoint)
    records = [json.loads(line) for line in open(checkpoint)]
    assert asked == 8 + 2 and sum(r["attempt"] > 1 for r in records) == 2
    assert opened.count(checkpoint) == 1, opened
