"""The persona-inference evaluation chain on a tiny dataset, with scripted judges behind the loopback server.

Persona inference runs through the real OpenAI SDK against bench/loopback.py; so do the judges, whose
answers are scripted by model name: "judge-ones" always says 1, "judge-gold" reads the persona and picks
the response (or persona) it fits, "judge-flaky" does the same but cannot decide on one row. The numbers
these judges must produce are known exactly: 0.5 / 1.0 accuracy, all ties / all chosen preferences.
"""

from __future__ import annotations

import csv
import json
import re

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.errors import run_cli
from persona_core.io import read_records
from persona_core.layout import paper_data_dir
from persona_inference.evaluation import accuracy_plot, persona_prefs_plot, word_saliency
from persona_inference.model import persona_accuracy, persona_prefs, run_model

SPLIT = "Tiny"
N_ROWS = 6
CHOSEN_PERSONA = "The user is a busy reader who prefers brief answers rather than long essays."
REJECTED_PERSONA = "The user is a thorough learner who prefers detailed answers over brief ones."


def tiny_rows(tag: str = "") -> list[dict]:
    return [
        {
            "prompt": f"How do I finish task {i}{tag}?",
            "chosen": f"Short: do step {i}.",
            "rejected": f"Long: task {i} involves many considerations, each explained at length here.",
        }
        for i in range(N_ROWS)
    ]


def write_dataset(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _after(label: str, prompt: str) -> str:
    """The text of the last ``label`` line of a prompt (the few-shot examples come first)."""
    return re.findall(rf"^{re.escape(label)} (.*)$", prompt, flags=re.MULTILINE)[-1]


def respond(prompt: str, body: dict) -> str:
    model = body["model"]
    if model.startswith("pi-"):  # persona inference: the preferred answer comes first in the question
        return CHOSEN_PERSONA if prompt.rfind("Short:") < prompt.rfind("Long:") else REJECTED_PERSONA
    if model == "judge-ones":
        return "1"
    if model == "judge-flaky" and "task 0?" in prompt:
        return "I cannot tell which one."
    if "Person 1:" in prompt:  # persona preferences: the gold judge favours the chosen-side persona
        return f"Person {1 if 'busy reader' in _after('Person 1:', prompt) else 2}"
    wanted = "Short" if "busy reader" in _after("About the person:", prompt) else "Long"
    return f"I would choose **{1 if _after('Response 1:', prompt).startswith(wanted) else 2}**."


def base_args(res_dir, dataset, server, run_name="r1") -> list[str]:
    return [
        "--res_dir",
        str(res_dir),
        "--dataset_name",
        dataset,
        "--inference_split",
        SPLIT,
        "--run_name",
        run_name,
        "--model_type",
        "open_ai",
        "--base_url",
        f"{server.url}/v1",
        "--concurrency",
        "4",
    ]


def run_model_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``run_model`` as its command line does; returns (exit status, stdout, stderr)."""
    return run_script(run_model.main, argv, capsys)


def run_script(main, argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def infer_personas(args: list[str], model: str, capsys) -> None:
    status, out, err = run_model_cli(
        [*args, "--model_name", model, "--experiments", "persona_inference"], capsys
    )
    assert status == 0, err


def judge(args: list[str], judge_name: str, experiment: str, capsys, *extra: str) -> tuple[int, str, str]:
    return run_model_cli([*args, "--model_name", judge_name, "--experiments", experiment, *extra], capsys)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """PI by two models, then three judges on accuracy and preferences; returns the results root."""
    root = tmp_path_factory.mktemp("chain")
    dataset = write_dataset(root / "tiny.jsonl", tiny_rows())
    res_dir = root / "results"
    capsys = _NoCapture()
    with LoopbackLLMServer(respond) as server:
        args = base_args(res_dir, dataset, server)
        for model in ("pi-a", "pi-b"):
            infer_personas(args, model, capsys)
        for judge_name in ("judge-ones", "judge-gold", "judge-flaky"):
            for experiment, extra in (
                ("persona_accuracy", []),
                ("persona_prefs", ["--persona_model", "pi-a", "pi-b"]),
            ):
                if judge_name == "judge-flaky" and experiment == "persona_prefs":
                    extra = [*extra, "--prefs_question", "more_common"]  # it stumbles on a prompt it is shown
                status, _, err = judge(args, judge_name, experiment, capsys, *extra)
                assert status == 0, err
    return res_dir


class _NoCapture:
    """Stands in for capsys in a module fixture (output is simply printed)."""

    def readouterr(self):
        return "", ""


def results(res_dir, judge_name: str, experiment: str) -> list[dict]:
    return read_records(res_dir / judge_name / SPLIT / "r1" / f"{experiment}.jsonl")


def test_persona_inference_ran_through_the_sdk(chain):
    for model in ("pi-a", "pi-b"):
        records = results(chain, model, "persona_inference")
        assert len(records) == 2 * N_ROWS
        assert {r["persona"] for r in records if r["side"] == "chosen"} == {CHOSEN_PERSONA}
        assert {r["persona"] for r in records if r["side"] == "rejected"} == {REJECTED_PERSONA}


def test_accuracy_records_carry_their_own_key(chain):
    records = results(chain, "judge-gold", "persona_accuracy")
    assert len(records) == 2 * (2 * N_ROWS) * 2  # models x personas x orders
    for record in records:
        assert record["persona_model"] in ("pi-a", "pi-b")
        assert record["side"] in ("chosen", "rejected") and record["order"] in persona_accuracy.ORDERS
        assert record["gold"] == persona_accuracy.gold_position(record["side"], record["order"])
        assert (
            record["persona_id"]
            == f"{record['row']}-{record['side']}-{record['persona_id'].rsplit('-', 1)[1]}"
        )
    # each persona is asked in both orders, and the gold answer moves with the chosen response
    by_persona = {}
    for record in records:
        by_persona.setdefault((record["persona_model"], record["persona_id"]), []).append(record["gold"])
    assert all(sorted(golds) == [1, 2] for golds in by_persona.values())


@pytest.mark.parametrize(
    ("judge_name", "accuracy", "invalid", "first_share"),
    [("judge-ones", 0.5, 0, 1.0), ("judge-gold", 1.0, 0, 0.5), ("judge-flaky", 1.0, 2, 0.5)],
)
def test_accuracy_numbers(chain, judge_name, accuracy, invalid, first_share):
    table = persona_accuracy.summarize(results(chain, judge_name, "persona_accuracy"))
    assert [(t["persona_model"], t["side"]) for t in table] == [
        ("pi-a", "chosen"),
        ("pi-a", "rejected"),
        ("pi-b", "chosen"),
        ("pi-b", "rejected"),
    ]
    for line in table:
        assert line["accuracy"] == accuracy
        assert line["invalid"] == invalid  # row 0, both orders: counted, never scored
        assert line["valid"] == 2 * N_ROWS - invalid
        assert line["first_share"] == first_share  # position bias, visible


@pytest.mark.parametrize(
    ("judge_name", "expected"),
    [
        ("judge-ones", {"chosen": 0, "tie": N_ROWS, "rejected": 0, "invalid": 0}),  # position bias -> ties
        ("judge-gold", {"chosen": N_ROWS, "tie": 0, "rejected": 0, "invalid": 0}),
        ("judge-flaky", {"chosen": N_ROWS - 1, "tie": 0, "rejected": 0, "invalid": 1}),
    ],
)
def test_persona_preference_numbers(chain, judge_name, expected):
    table = persona_prefs.summarize(results(chain, judge_name, "persona_prefs"))
    assert [t["persona_model"] for t in table] == ["pi-a", "pi-b"]
    for line in table:
        assert {k: line[k] for k in expected} == expected
        assert line["chosen_share"] + line["tie_share"] + line["rejected_share"] == pytest.approx(1.0)


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_real_figures(out_dir, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    image = matplotlib.image.imread(out_dir / f"{stem}.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    pdf = (out_dir / f"{stem}.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and re.search(rb"/Type\s*/Page\b", pdf)
    assert not list(out_dir.glob(".*.tmp")) and not list(out_dir.glob(f".{stem}*"))


def test_accuracy_plot(chain, tmp_path, capsys):
    out_dir = tmp_path / "figs"
    status, out, err = run_script(
        accuracy_plot.main,
        [
            "--res_dir",
            str(chain),
            "--run_name",
            "r1",
            "--out_dir",
            str(out_dir),
            "--model_names",
            "pi-a=Model A",
            "--dataset_names",
            "Tiny=Tiny set",
        ],
        capsys,
    )
    assert status == 0, err
    assert_real_figures(out_dir, "persona_accuracy")
    rows = read_csv(out_dir / "persona_accuracy.csv")
    assert len(rows) == 3 * 2 * 2  # judges x models x sides
    accuracy = {(r["evaluator"], r["persona_model"], r["side"]): float(r["accuracy"]) for r in rows}
    assert accuracy[("judge-ones", "pi-a", "chosen")] == 0.5
    assert accuracy[("judge-gold", "pi-b", "rejected")] == 1.0
    assert "judge-flaky" in out and "invalid" in out


def test_accuracy_plot_selects_judges_models_and_datasets(chain, tmp_path, capsys):
    argv = [
        "--res_dir",
        str(chain),
        "--run_name",
        "r1",
        "--out_dir",
        str(tmp_path),
        "--evaluator_models",
        "judge-gold",
        "--models",
        "pi-b",
        "--datasets",
        SPLIT,
    ]
    status, _, err = run_script(accuracy_plot.main, argv, capsys)
    assert status == 0, err
    rows = read_csv(tmp_path / "persona_accuracy.csv")
    assert {(r["evaluator"], r["persona_model"]) for r in rows} == {("judge-gold", "pi-b")}


def test_persona_prefs_plot(chain, tmp_path, capsys):
    status, _, err = run_script(
        persona_prefs_plot.main,
        ["--res_dir", str(chain), "--run_name", "r1", "--out_dir", str(tmp_path)],
        capsys,
    )
    assert status == 0, err
    assert_real_figures(tmp_path, "persona_prefs")
    shares = {(r["evaluator"], r["persona_model"]): r for r in read_csv(tmp_path / "persona_prefs.csv")}
    assert float(shares[("judge-ones", "pi-a")]["tie_share"]) == 1.0
    assert float(shares[("judge-gold", "pi-b")]["chosen_share"]) == 1.0
    assert int(shares[("judge-flaky", "pi-a")]["invalid"]) == 1


def test_word_saliency(chain, tmp_path, capsys):
    argv = [
        "--res_dir",
        str(chain),
        "--run_name",
        "r1",
        "--out_dir",
        str(tmp_path),
        "--min_count",
        "3",
        "--top_k",
        "5",
    ]
    status, out, err = run_script(word_saliency.main, argv, capsys)
    assert status == 0, err
    assert_real_figures(tmp_path, "word_saliency")
    rows = read_csv(tmp_path / "word_saliency.csv")
    words = {
        label: {r["word"]: float(r["p"]) for r in rows if r["label"] == label}
        for label in ("chosen", "rejected")
    }
    assert {"busy", "reader", "brief"} <= set(words["chosen"]) and {"thorough", "learner", "detailed"} <= set(
        words["rejected"]
    )
    assert all(p == 1.0 for p in words["chosen"].values()) and all(
        p == 1.0 for p in words["rejected"].values()
    )
    # cut at "rather than" / "over": the words naming what a user does not want never count
    assert not {"long", "essay", "one"} & (set(words["chosen"]) | set(words["rejected"]))
    assert "| 1 |" in out


@pytest.mark.parametrize(
    ("persona", "words"),
    [
        (
            "The user is a busy parent who prefers short answers rather than long explanations.",
            {"busy", "parent", "short"},
        ),
        (
            "The user is an expert who prefers detailed, step-by-step guides instead of summaries.",
            {"expert", "detailed", "step-by-step", "guide"},
        ),
        ("The user is a student who values examples over theory.", {"student", "example"}),
        ("The user prefers concise answers without unnecessary caveats.", {"concise"}),
    ],
)
def test_persona_words_cut_and_lemmatize(persona, words):
    assert word_saliency.persona_words(persona) == words


def test_salient_words_ranks_by_label_probability():
    personas = [("The user is a calm reader.", "chosen")] * 3 + [
        ("The user is a calm writer.", "rejected")
    ] * 1
    table = word_saliency.salient_words(personas, top_k=5, min_count=2)
    assert table["chosen"][0] == {"word": "reader", "p": 1.0, "count": 3, "label_count": 3}
    assert table["chosen"][1]["word"] == "calm" and table["chosen"][1]["p"] == 0.75
    assert [e["word"] for e in table["rejected"]] == ["calm"]  # "writer" is under the cutoff


def test_judgments_resume_and_rejudge_only_what_changed(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    with LoopbackLLMServer(respond) as server:
        args = base_args(tmp_path / "res", dataset, server)
        infer_personas(args, "pi-a", capsys)
        assert judge(args, "judge-gold", "persona_accuracy", capsys)[0] == 0
        calls = len(server.calls)
        status, out, _ = judge(args, "judge-gold", "persona_accuracy", capsys)
        assert status == 0 and len(server.calls) == calls and f"{4 * N_ROWS} reused, 0 new" in out
        # a persona edited after judging is judged again, in both orders, and nothing else is
        persona_file = tmp_path / "res" / "pi-a" / SPLIT / "r1" / "persona_inference.jsonl"
        records = read_records(persona_file)
        records[0]["persona"] = "The user is a busy reader who prefers brief answers and nothing else."
        persona_file.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        status, out, _ = judge(args, "judge-gold", "persona_accuracy", capsys)
        assert status == 0 and len(server.calls) == calls + 2 and "2 new" in out
    judged = results(tmp_path / "res", "judge-gold", "persona_accuracy")
    assert len(judged) == 4 * N_ROWS and all(r["correct"] for r in judged)


def test_failed_judgments_leave_no_results_and_are_retried(tmp_path, capsys):
    import datasets

    from persona_core.prompts import load_template
    from persona_inference import PROMPT_DIR

    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    res_dir = tmp_path / "res"
    with LoopbackLLMServer(respond) as server:
        infer_personas(base_args(res_dir, dataset, server), "pi-a", capsys)
    personas = read_records(res_dir / "pi-a" / SPLIT / "r1" / "persona_inference.jsonl")
    rows = datasets.load_dataset("json", data_files=dataset, split="train")
    template, _ = load_template("persona_accuracy", SPLIT, PROMPT_DIR)
    requests, _ = persona_accuracy.build_requests(rows, {"pi-a": personas}, template)
    with LoopbackLLMServer(respond, faults={requests[3].prompt: [400]}) as server:
        args = base_args(res_dir, dataset, server)
        status, out, _ = judge(args, "judge-gold", "persona_accuracy", capsys)
        folder = res_dir / "judge-gold" / SPLIT / "r1"
        assert status == 1 and "1 of 24 requests failed" in out and "rerun" in out
        assert not (folder / "persona_accuracy.jsonl").exists()
        calls = len(server.calls)
        status, out, _ = judge(args, "judge-gold", "persona_accuracy", capsys)
        assert status == 0 and len(server.calls) == calls + 1 and "23 reused, 1 new" in out
    assert len(read_records(folder / "persona_accuracy.jsonl")) == 24


def test_dry_run_prints_the_prompt_and_calls_nothing(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    with LoopbackLLMServer(respond) as server:
        args = base_args(tmp_path / "res", dataset, server)
        infer_personas(args, "pi-a", capsys)
        calls = len(server.calls)
        status, out, _ = judge(
            args, "judge-gold", "persona_prefs", capsys, "--persona_model", "pi-a", "--dry_run"
        )
    assert status == 0 and len(server.calls) == calls
    assert "Person 1: The user is" in out and f"{2 * N_ROWS} requests" in out


def test_tiny_local_judge_counts_unparsable_answers(tmp_path, capsys, tiny_model_dir):
    """A random local model as a text judge: whatever it says is parsed, and what cannot be read is counted
    invalid."""
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows()[:2])
    with LoopbackLLMServer(respond) as server:
        infer_personas(base_args(tmp_path / "res", dataset, server), "pi-a", capsys)
    argv = [
        "--res_dir",
        str(tmp_path / "res"),
        "--dataset_name",
        dataset,
        "--inference_split",
        SPLIT,
        "--run_name",
        "r1",
        "--model_type",
        "hf_chat",
        "--model_name",
        str(tiny_model_dir),
        "--model_nickname",
        "tiny-judge",
        "--experiments",
        "persona_accuracy",
        "persona_prefs",
        "--persona_model",
        "pi-a",
        "--judge_max_tokens",
        "4",
        "--verdict",
        "text",
    ]
    status, out, err = run_model_cli(argv, capsys)
    assert status == 0, err
    accuracy = results(tmp_path / "res", "tiny-judge", "persona_accuracy")
    prefs = results(tmp_path / "res", "tiny-judge", "persona_prefs")
    assert len(accuracy) == 2 * 2 * 2 and len(prefs) == 2 * 2
    assert all(r["choice"] in (1, 2, None) and r["usage"]["completion_tokens"] <= 4 for r in accuracy + prefs)
    table = persona_accuracy.summarize(accuracy)
    assert sum(t["valid"] + t["invalid"] for t in table) == len(accuracy)
    assert sum(r["choice"] is None for r in accuracy) == sum(t["invalid"] for t in table)
    run_record = json.loads(
        (tmp_path / "res" / "tiny-judge" / SPLIT / "r1" / "persona_accuracy.run.json").read_text()
    )
    assert run_record["summary"] == json.loads(json.dumps(table))


# ---- bad input: one line, exit 2, no partial files -------------------------------------------------------


def assert_one_line_error(status, err, *fragments):
    assert status == 2
    lines = [
        line for line in err.strip().splitlines() if "error" in line.lower()
    ]  # progress bars may precede it
    assert len(lines) == 1 and lines[0].startswith("error: ") and err.strip().endswith(lines[0]), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_persona_results(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    with LoopbackLLMServer(respond) as server:
        status, _, err = judge(
            base_args(tmp_path / "res", dataset, server), "judge-gold", "persona_accuracy", capsys
        )
    assert_one_line_error(status, err, "no persona inference results for any model", "persona_inference")
    assert not (tmp_path / "res").exists()


def test_mismatched_run_name_names_the_runs_that_exist(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    with LoopbackLLMServer(respond) as server:
        infer_personas(base_args(tmp_path / "res", dataset, server, run_name="first"), "pi-a", capsys)
        args = base_args(tmp_path / "res", dataset, server, run_name="second")
        status, _, err = judge(args, "judge-gold", "persona_accuracy", capsys)
        assert_one_line_error(status, err, "--run_name values with results for this split: first")
        status, _, err = judge(args, "judge-gold", "persona_accuracy", capsys, "--persona_model", "pi-z")
        assert_one_line_error(status, err, "pi-z")
    assert not (tmp_path / "res" / "judge-gold").exists()


def test_persona_prefs_default_needs_the_judges_own_personas(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    with LoopbackLLMServer(respond) as server:
        args = base_args(tmp_path / "res", dataset, server)
        infer_personas(args, "pi-a", capsys)
        status, _, err = judge(args, "judge-gold", "persona_prefs", capsys)
    assert_one_line_error(status, err, "judge-gold", "--persona_model", "results exist for: pi-a")


def test_unfinished_persona_inference_is_named(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    folder = tmp_path / "res" / "pi-a" / SPLIT / "r1"
    folder.mkdir(parents=True)
    (folder / "persona_inference.checkpoint.jsonl").write_text("", encoding="utf-8")
    with LoopbackLLMServer(respond) as server:
        status, _, err = judge(
            base_args(tmp_path / "res", dataset, server), "judge-gold", "persona_accuracy", capsys
        )
    assert_one_line_error(status, err, "unfinished", "pi-a")


@pytest.mark.parametrize(
    ("other_rows", "fragment"),
    [(tiny_rows(tag=" again"), "does not match dataset"), (tiny_rows()[:3], "has 3 rows")],
)
def test_results_from_another_dataset(tmp_path, capsys, other_rows, fragment):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    other = write_dataset(tmp_path / "other.jsonl", other_rows)
    with LoopbackLLMServer(respond) as server:
        infer_personas(base_args(tmp_path / "res", dataset, server), "pi-a", capsys)
        status, _, err = judge(
            base_args(tmp_path / "res", other, server), "judge-gold", "persona_accuracy", capsys
        )
    assert_one_line_error(status, err, fragment, "--dataset_name")
    assert not (tmp_path / "res" / "judge-gold").exists()


def test_persona_results_that_are_not_persona_results(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "tiny.jsonl", tiny_rows())
    folder = tmp_path / "res" / "pi-a" / SPLIT / "r1"
    folder.mkdir(parents=True)
    (folder / "persona_inference.jsonl").write_text('{"id": "x", "text": "hello"}\n', encoding="utf-8")
    with LoopbackLLMServer(respond) as server:
        status, _, err = judge(
            base_args(tmp_path / "res", dataset, server), "judge-gold", "persona_accuracy", capsys
        )
    assert_one_line_error(status, err, "not a persona inference results file")


@pytest.mark.parametrize("script", [accuracy_plot, persona_prefs_plot, word_saliency])
def test_scripts_without_results(tmp_path, capsys, script):
    status, _, err = run_script(
        script.main, ["--res_dir", str(tmp_path / "nothing"), "--out_dir", str(tmp_path / "out")], capsys
    )
    assert_one_line_error(status, err, "no ", "first")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("script", "argv", "fragment"),
    [
        (accuracy_plot, ["--run_name", "r2"], "--run_name values that have it: r1"),
        (accuracy_plot, ["--evaluator_models", "judge-x"], "available: judge-flaky, judge-gold, judge-ones"),
        (accuracy_plot, ["--models", "pi-x"], "judged: pi-a, pi-b"),
        (persona_prefs_plot, ["--datasets", "BeaverTails"], "available: Tiny"),
        (persona_prefs_plot, ["--model_names", "pi-a"], "NAME=DISPLAY"),
        (word_saliency, ["--models", "judge-gold"], "available: pi-a, pi-b"),
        (word_saliency, ["--top_k", "0"], "--top_k"),
    ],
)
def test_script_flag_errors(chain, tmp_path, capsys, script, argv, fragment):
    base = ["--res_dir", str(chain), "--run_name", "r1", "--out_dir", str(tmp_path / "out")]
    status, _, err = run_script(script.main, [*base, *argv], capsys)
    assert_one_line_error(status, err, fragment)
    assert not (tmp_path / "out").exists()


PAPER_DATA = paper_data_dir() / "persona-tailoring-BeaverTails"


@pytest.mark.skipif(not PAPER_DATA.is_dir(), reason="the paper's data is not on this machine")
def test_word_saliency_on_the_papers_personas():
    """On the paper's BeaverTails personas, rejected-side users are the ones who want it short and direct."""
    import datasets

    split = datasets.load_from_disk(str(PAPER_DATA))["dpo_train"]
    personas = [(r[f"{side}_persona_gold"], side) for r in split for side in ("chosen", "rejected")]
    table = word_saliency.salient_words(personas, top_k=10, min_count=10)
    rejected = {e["word"] for e in table["rejected"]}
    assert {"to-the-point", "concise", "straightforward"} & rejected
    assert all(e["p"] > 0.5 and e["count"] >= 10 for label in table for e in table[label])


@pytest.mark.parametrize(
    ("word", "lemma"),
    [
        ("answers", "answer"),
        ("examples", "example"),
        ("guides", "guide"),
        ("stories", "story"),
        ("boxes", "box"),
        ("matches", "match"),
        ("wishes", "wish"),
        ("classes", "class"),
        ("prefers", "prefer"),  # a suffix rule cannot tell a verb's -s from a plural's
        ("class", "class"),
        ("focus", "focus"),
        ("analysis", "analysis"),
        ("always", "always"),
        ("news", "news"),
        ("its", "its"),
        ("bus", "bus"),
        ("ties", "tie"),
        ("preferring", "preferring"),
        ("detailed", "detailed"),
        ("step-by-steps", "step-by-step"),
        ("answer", "answer"),
    ],
)
def test_plural_only_lemma(word, lemma):
    assert word_saliency.plural_only_lemma(word) == lemma


def test_paper_rules_count_other_words():
    persona = "The user is a busy parent who prefers short answers rather than long explanations."
    # the default rules are unchanged
    assert word_saliency.persona_words(persona) == {"busy", "parent", "short"}
    # no stop list; "prefers" and "answers" lose their -s, nothing else is lemmatized
    assert word_saliency.persona_words(persona, word_saliency.PAPER_RULES) == {
        "the", "user", "is", "a", "busy", "parent", "who", "prefer", "short", "answer"
    }  # fmt: skip
    # "preferring" stays as written; the paper's bare "not" cuts the persona
    assert word_saliency.persona_words("Preferring calm replies, not long ones.", word_saliency.PAPER_RULES) == {
        "preferring", "calm", "reply"
    }  # fmt: skip
    # the toolkit's "without" is no contrast phrase for the paper; its "over" is
    assert "caveat" in word_saliency.persona_words(
        "Wants answers without caveats.", word_saliency.PAPER_RULES
    )
    assert "theory" not in word_saliency.persona_words("Examples over theory.", word_saliency.PAPER_RULES)
    # whole words only: "overall" and "another" are not cut
    assert {"overall", "another", "tone"} <= word_saliency.persona_words(
        "An overall calm tone, another way.", word_saliency.PAPER_RULES
    )


def test_word_saliency_records_its_rules(chain, tmp_path, capsys):
    base = ["--res_dir", str(chain), "--run_name", "r1", "--min_count", "3", "--top_k", "5"]
    for flag, name in (([], "toolkit"), (["--paper_rules"], "paper")):
        out_dir = tmp_path / name
        status, out, err = run_script(word_saliency.main, [*base, "--out_dir", str(out_dir), *flag], capsys)
        assert status == 0, err
        rows = read_csv(out_dir / "word_saliency.csv")
        assert rows and {r["rules"] for r in rows} == {name}
        assert f"{name} word rules" in out
