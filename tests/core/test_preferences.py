"""Preference data in every supported format (``persona_core.preferences``).

The sample files of ``data/formats`` read as their standard form; persona inference sends them the same requests
(loopback server and the tiny model); long prompts are cut from their oldest turns; bad rows are named, or
skipped with ``--skip_bad_rows``; the augmented dataset keeps the input's format and gets a dataset card; the
tailoring builder and persona tailoring read conversational data as they read the paper's string columns.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.cli import parse
from persona_core.errors import UsageError, run_cli
from persona_core.layout import DATASET_CARD_FILE, REPO_ROOT, ROW_KEY_COLUMN, pi_files, row_key
from persona_core.preferences import PreferenceFormat, load_preferences, read_preferences
from persona_inference import PROMPT_DIR
from persona_inference.model import build_augmented_dataset as augmentation
from persona_inference.model import build_tailoring_dataset as tailoring
from persona_inference.model import run_model
from persona_inference.model.experiment import data_digest, load_inputs
from tests.helpers import (
    SPLITS,
    api_args,
    fake_persona,
    make_args,
    read_jsonl,
    tailoring_row,
    training_flags,
    write_tailoring_dataset,
    write_template,
)

FORMATS = REPO_ROOT / "data" / "formats"
SPLIT = "Sample"
DETECTED = {
    "conversational": PreferenceFormat.conversational,
    "implicit_conversational": PreferenceFormat.implicit,
    "implicit_hh": PreferenceFormat.implicit,
    "ultrafeedback": PreferenceFormat.ultrafeedback,
}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def hh(turns: list[dict]) -> str:
    return "".join(f"\n\n{'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in turns)


def in_format(name: str, turns: list[dict], chosen: str, rejected: str, **extra) -> dict:
    """One row (prompt turns and two answers) written in format ``name``."""
    chosen_turns, rejected_turns = [*turns, assistant(chosen)], [*turns, assistant(rejected)]
    if name == "conversational":
        row = {"prompt": turns, "chosen": [assistant(chosen)], "rejected": [assistant(rejected)]}
    elif name == "implicit_conversational":
        row = {"chosen": chosen_turns, "rejected": rejected_turns}
    elif name == "implicit_hh":
        row = {"chosen": hh(chosen_turns), "rejected": hh(rejected_turns)}
    elif name == "ultrafeedback":
        row = {
            "prompt": turns[0]["content"],
            "chosen": chosen_turns,
            "rejected": rejected_turns,
            "score_chosen": 8.0,
        }
    else:
        prompt = (
            turns[0]["content"]
            if len(turns) == 1
            else "\n\n".join(f"{m['role'].title()}: {m['content']}" for m in turns)
        )
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    return row | extra


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def texts(preferences) -> list[tuple]:
    return [(r["prompt"], r["chosen"], r["rejected"], row_key(r)) for r in preferences]


@pytest.mark.parametrize("name", list(DETECTED))
def test_each_sample_format_reads_as_its_standard_form(name):
    standard = load_preferences(str(FORMATS / "standard.jsonl"))
    other = load_preferences(str(FORMATS / f"{name}.jsonl"))
    assert standard.format == PreferenceFormat.standard and other.format == DETECTED[name]
    assert texts(other) == texts(standard)[: len(other)]
    raw = read_jsonl(FORMATS / "standard.jsonl")
    assert standard.rows == raw and ROW_KEY_COLUMN not in standard[0]  # standard rows verbatim: ids unchanged
    if name != "ultrafeedback":  # the multi-turn rows, readable and in order
        turns = other[4]["prompt"].split("\n\n")
        assert turns[0] == "User: I'm planning a trip to Lisbon in March."
        assert turns[1].startswith("Assistant: Lovely choice!") and turns[2] == "User: What should I pack?"


def test_a_system_turn_and_the_ultrafeedback_extras_are_kept():
    turns = [{"role": "system", "content": "Be brief."}, user("Hi there?")]
    row = in_format("conversational", turns, "Hello.", "Greetings, dear user.")
    (read,) = read_preferences(datasets.Dataset.from_list([row]))
    assert read["prompt"] == "System: Be brief.\n\nUser: Hi there?"
    sample = load_preferences(str(FORMATS / "ultrafeedback.jsonl"))
    assert {"prompt_id", "messages", "score_chosen", "score_rejected"} <= set(sample[0])
    assert sample.source_rows().column_names == sample.source.column_names


# --- persona inference on the loopback server ---------------------------------------------------------------------


def respond(prompt: str, body: dict) -> str:
    """Personas for the persona-inference model; the judge always answers 1."""
    return "1" if body["model"] == "judge" else fake_persona(prompt, body)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A running loopback server, the built-in judge templates beside the tests' persona template."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    shutil.copytree(PROMPT_DIR, tmp_path / "prompts")
    with LoopbackLLMServer(respond) as running:
        yield running


def run_pi(server, data: Path, res: Path, *extra: str) -> int:
    return run_model.main(api_args(data, res, "open_ai", server.url + "/v1", *extra))


def cli(argv: list[str], capsys, main=run_model.main) -> tuple[int, str]:
    """A script as its command line runs it: (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr().err


def pi_records(res: Path, experiment: str = "persona_inference", model: str = "loopback-model") -> list[dict]:
    return read_jsonl(pi_files(res, model, SPLIT, "default", experiment).results)


def run_record(res: Path, experiment: str = "persona_inference") -> dict:
    return json.loads(pi_files(res, "loopback-model", SPLIT, "default", experiment).run_record.read_text())


def requests(records: list[dict]) -> list[tuple]:
    """What persona inference asked and got, per request: id, row, side, the model input, the persona."""
    return [(r["id"], r["row"], r["side"], r["prompt"], r["persona"]) for r in records]


@pytest.mark.parametrize("name", list(DETECTED))
def test_persona_inference_asks_every_format_what_it_asks_the_standard_form(name, server, tmp_path):
    assert run_pi(server, FORMATS / "standard.jsonl", tmp_path / "res-standard") == 0
    assert run_pi(server, FORMATS / f"{name}.jsonl", tmp_path / "res-other") == 0
    other = pi_records(tmp_path / "res-other")
    rows = len(other) // 2
    standard = [r for r in pi_records(tmp_path / "res-standard") if r["row"] < rows]
    assert requests(other) == requests(standard)
    assert run_record(tmp_path / "res-other")["format"] == DETECTED[name].value
    if name != "ultrafeedback":
        assert (
            "Question: User: I'm planning a trip to Lisbon in March.\n\nAssistant: Lovely"
            in other[4]["prompt"]
        )


def test_column_flags_read_other_column_names(server, tmp_path):
    renamed = [
        {"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]}
        for r in read_jsonl(FORMATS / "conversational.jsonl")
    ]
    data = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    flags = ["--prompt_column", "question", "--chosen_column", "good", "--rejected_column", "bad"]
    assert run_pi(server, data, tmp_path / "res-renamed", *flags) == 0
    assert run_pi(server, FORMATS / "standard.jsonl", tmp_path / "res-standard") == 0
    assert requests(pi_records(tmp_path / "res-renamed")) == requests(pi_records(tmp_path / "res-standard"))


def test_judges_read_the_whole_conversation_and_accept_personas_of_a_cut_prompt(server, tmp_path):
    data, res = FORMATS / "conversational.jsonl", tmp_path / "res"
    assert run_pi(server, data, res, "--max_prompt_tokens", "24") == 0  # counted with the embedded tokenizer
    records = pi_records(res)
    cut = {r["row"] for r in records if "prompt_cut" in r}
    assert cut == {4, 5} and set(run_record(res)["cut_prompts"]) == {"4", "5"}
    (lisbon,) = [r for r in records if r["row"] == 4 and r["side"] == "chosen"]
    assert "Question: What should I pack?\n" in lisbon["prompt"] and "Lisbon" not in lisbon["prompt"]
    assert lisbon["prompt_cut"]["dropped_turns"] == 2
    # the judges of another run cut nothing (no budget for an API model), yet the personas' ids still match
    judge = ["--model_name", "judge", "--persona_models", "loopback-model", "--max_tokens", "8"]
    args = api_args(
        data, res, "open_ai", server.url + "/v1", "--experiments", "persona_accuracy", "persona_prefs"
    )
    assert run_model.main([*args, *judge]) == 0
    judged = pi_records(res, "persona_accuracy", "judge")
    assert len(judged) == 24
    assert any(
        "Question: User: I'm planning a trip to Lisbon in March.\n\nAssistant: " in r["prompt"]
        for r in judged
    )
    augmented = augment(data, res, tmp_path / "out")
    assert augmented["chosen_persona_gold"][4] == lisbon["persona"]


def load_data(argv: list[str]):
    """The rows persona inference would run on, loaded as ``run_model`` loads them."""
    _, runs, _, backend, generation, _, data, rows, settings = parse(run_model.GROUPS, argv)
    inputs = load_inputs(settings, data, rows, runs.limit, generation.max_tokens, backend.cache_dir)
    return inputs.dataset, inputs.rows


def test_an_hf_chat_model_context_cuts_the_oldest_turns(tiny_model_dir, tmp_path):
    """The tiny model's 4096 positions: a long conversation loses its oldest turns, whole, and keeps its id."""
    turns = []
    for i in range(16):
        turns += [
            user(f"Question {i}: " + "tell me about old stone bridges " * 12),
            assistant("bridges " * 40),
        ]
    turns.append(user("So which bridge should I visit first?"))
    rows = [in_format("conversational", turns, "The oldest one.", "Any of them.")]
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    prompts = write_template(tmp_path / "prompts")
    argv = ["--dataset_name", str(data), "--model_name", str(tiny_model_dir), "--prompt_dir", str(prompts)]
    dataset, _ = load_data(argv)
    uncut = read_preferences(datasets.Dataset.from_list(rows))
    kept = dataset[0]["prompt"].split("\n\n")
    assert dataset.cut[0]["dropped_turns"] == len(turns) - len(kept) > 0
    assert kept[0].startswith("User: Question ") and kept[-1] == "User: So which bridge should I visit first?"
    assert uncut[0]["prompt"].endswith(dataset[0]["prompt"])  # whole turns: the kept ones are untouched
    assert dataset.cut[0]["tokens_after"] < 4096 < dataset.cut[0]["tokens_before"]
    assert row_key(dataset[0]) == row_key(uncut[0]) and data_digest(dataset) != data_digest(uncut)
    rows.append(in_format("conversational", [user("bridges " * 2000)], "Yes.", "No."))
    write_jsonl(data, rows)
    with pytest.raises(UsageError, match=r"1 prompt\(s\) do not fit .* row 1 \("):
        load_data(argv)


def test_persona_inference_on_the_tiny_model_is_the_same_for_both_forms(tiny_model_dir, tmp_path):
    prompts = write_template(tmp_path / "prompts")
    found = {}
    for name in ("standard", "conversational"):
        res = tmp_path / f"res-{name}"
        argv = [
            "--dataset_name",
            str(FORMATS / f"{name}.jsonl"),
            "--model_name",
            str(tiny_model_dir),
            "--model_nickname",
            "tiny",
            "--prompt_dir",
            str(prompts),
            "--res_dir",
            str(res),
            "--max_tokens",
            "6",
        ]
        assert run_model.main(argv) == 0
        found[name] = pi_records(res, model="tiny")
        assert "cut_prompts" in run_record_of(res) and not run_record_of(res)["cut_prompts"]
    assert requests(found["conversational"]) == requests(found["standard"])
    assert "User: I'm planning a trip to Lisbon" in found["conversational"][4]["prompt"]


def run_record_of(res: Path) -> dict:
    return json.loads(pi_files(res, "tiny", SPLIT, "default").run_record.read_text())


# --- bad rows -----------------------------------------------------------------------------------------------------

GOOD = [
    ([user("How do I boil an egg?")], "Boil it for eight minutes.", "Eggs are laid by hens."),
    ([user("Hi!"), assistant("Hello, how can I help?"), user("Tell me a joke.")], "Why did the...", "No."),
]


def bad_row(name: str, change) -> list[dict]:
    """Two good rows in format ``name`` with row 1 changed by ``change(row)``."""
    rows = [in_format(name, *row) for row in GOOD]
    rows.insert(1, change(in_format(name, [user("What is 2 + 2?")], "4.", "Five.")))
    return rows


BAD_ROWS = {
    "missing": ("standard", lambda r: r | {"chosen": None}, "row 1: chosen is missing"),
    "empty": ("standard", lambda r: r | {"prompt": "   "}, "row 1: prompt is empty"),
    "wrong_type": ("standard", lambda r: r | {"chosen": 4}, "row 1: chosen is int, not text"),
    "messages_in_a_text_column": (
        "standard",
        lambda r: r | {"rejected": [assistant("Five.")]},
        "row 1: rejected is a list, not text",
    ),
    "empty_message": (
        "conversational",
        lambda r: r | {"chosen": [assistant(" ")]},
        "row 1: message 1 of chosen is empty",
    ),
    "unknown_role": (
        "conversational",
        lambda r: r | {"prompt": [{"role": "bot", "content": "What is 2 + 2?"}]},
        "row 1: message 1 of prompt has role 'bot', not system, user or assistant",
    ),
    "no_shared_prompt": (
        "implicit_conversational",
        lambda r: r | {"rejected": [user("What is 3 + 3?"), assistant("Six.")]},
        "row 1: chosen and rejected do not share a prompt: their conversations differ at message 1",
    ),
    "no_assistant_answer": (
        "implicit_conversational",
        lambda r: r | {"chosen": [user("What is 2 + 2?")]},
        "row 1: chosen does not end with an assistant turn",
    ),
    "not_an_hh_conversation": (
        "implicit_hh",
        lambda r: r | {"chosen": "just an answer"},
        "row 1: chosen is not a '\\n\\nHuman: … \\n\\nAssistant: …' conversation",
    ),
    "hh_answer_empty": (
        "implicit_hh",
        lambda r: r | {"rejected": hh([user("What is 2 + 2?")]) + "\n\nAssistant:"},
        "row 1: message 2 of rejected is empty",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_row_stops_the_run_naming_it_before_any_model_loads(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, change, reason = BAD_ROWS[case]
    data = write_jsonl(tmp_path / "bad.jsonl", bad_row(name, change))
    res = tmp_path / "res"
    # the default embedded model: the error comes before its tokenizer or weights load
    status, err = cli(["--dataset_name", str(data), "--res_dir", str(res)], capsys)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: 1 of 3 rows"), err
    assert (
        reason in lines[0]
        and "fix or remove it, or pass --skip_bad_rows to run on the other 2 rows" in lines[0]
    )
    assert not res.exists()


def augment(data: Path, res: Path, out: Path, *extra: str):
    argv = ["--dataset_name", str(data), "--res_dir", str(res), "--out_dir", str(out)]
    assert augmentation.main([*argv, "--model", "loopback-model", *extra]) == 0
    (folder,) = out.iterdir()
    return datasets.load_from_disk(str(folder))["train"]


def test_skip_bad_rows_runs_on_the_rest_and_records_them(server, tmp_path, capsys):
    rows = bad_row("conversational", lambda r: r | {"rejected": []})
    rows.append(rows[0] | {"prompt": [user("Why is the sky blue?")], "chosen": None})
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    res, out = tmp_path / "res", tmp_path / "out"
    assert run_pi(server, data, res, "--skip_bad_rows") == 0
    skipped = [{"row": 1, "reason": "rejected is empty"}, {"row": 3, "reason": "chosen is missing"}]
    assert run_record(res)["skipped_rows"] == skipped and run_record(res)["source_rows"] == 4
    assert {r["row"] for r in pi_records(res)} == {0, 1}  # the two good rows, numbered as read
    # the augmented dataset skips the same rows only when asked to
    argv = [
        "--dataset_name",
        str(data),
        "--res_dir",
        str(res),
        "--out_dir",
        str(out),
        "--model",
        "loopback-model",
    ]
    status, err = cli(argv, capsys, augmentation.main)
    assert status == 2 and "row 1: rejected is empty; row 3: chosen is missing" in err and not out.exists()
    augmented = augment(data, res, out, "--skip_bad_rows")
    assert augmented["prompt"] == [rows[0]["prompt"], rows[2]["prompt"]]
    card = next(out.iterdir()).joinpath(DATASET_CARD_FILE).read_text(encoding="utf-8")
    assert "bad rows skipped (`--skip_bad_rows`): 2" in card and "row 3: chosen is missing" in card


# --- the augmented dataset and its card ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DETECTED))
def test_the_augmented_dataset_keeps_the_input_format_and_has_a_card(name, server, tmp_path):
    data, res, out = FORMATS / f"{name}.jsonl", tmp_path / "res", tmp_path / "out"
    assert run_pi(server, data, res) == 0
    augmented = augment(data, res, out)
    source = datasets.load_dataset("json", data_files=str(data), split="train")
    added = ["chosen_persona_gold", "rejected_persona_gold"]
    assert augmented.column_names == [*source.column_names, *added]
    assert augmented.select_columns(source.column_names).to_list() == source.to_list()
    assert {k: augmented.features[k] for k in source.column_names} == source.features
    personas = {(r["row"], r["side"]): r["persona"] for r in pi_records(res)}
    assert augmented["rejected_persona_gold"] == [personas[(i, "rejected")] for i in range(len(source))]
    card = next(out.iterdir()).joinpath(DATASET_CARD_FILE).read_text(encoding="utf-8")
    template_digest = run_record(res)["fingerprint"]["template"]
    for expected in (
        "tags:\n- persona-inference",
        f"| dataset | `{data}` (config `Sample`, split `train`) |",
        f"| format | {DETECTED[name].value} ",
        "| `loopback-model` | `open_ai at http://127.0.0.1:",
        f"(`{template_digest}`)",
        "temperature=0.0",
        f"- rows in the source: {len(source)}\n- rows in this dataset: {len(source)}",
        "- failed persona requests: 0",
        "- `chosen_persona_gold`:",
        "@inproceedings{balepur-etal-2025-whose",
    ):
        assert expected in card, expected


def test_the_pushed_card_keeps_the_metadata_of_the_pushed_data(monkeypatch):
    from huggingface_hub import DatasetCard

    from_push = DatasetCard(
        "---\nconfigs:\n- config_name: Sample\n  data_files: Sample/*\n---\n\nplaceholder\n"
    )
    pushed = []
    monkeypatch.setattr(DatasetCard, "load", classmethod(lambda cls, repo, **kw: from_push))
    monkeypatch.setattr(DatasetCard, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, self, kw)))
    augmentation.push_card("me/augmented", "---\ntags:\n- persona-inference\n---\n\n# me/augmented\n", "hf_x")
    ((repo, card, options),) = pushed
    assert repo == "me/augmented" and options == {"token": "hf_x"}
    assert card.data.configs == [{"config_name": "Sample", "data_files": "Sample/*"}]
    assert card.data.tags == ["persona-inference"] and card.text.strip() == "# me/augmented"


# --- the tailoring builder and persona tailoring -------------------------------------------------------------------


def tailoring_rows(n: int) -> list[tuple]:
    """``n`` rows with distinct prompts, every third one multi-turn."""
    rows = []
    for i in range(n):
        turns = [user(f"Which topic number {i} should I read about?")]
        if i % 3 == 0:
            turns = [user(f"I like reading, say about item {i}."), assistant("Nice! What kind?"), *turns]
        rows.append((turns, f"Short answer {i}.", f"A much longer answer, number {i}."))
    return rows


def save_augmented(folder: Path, name: str, rows: list[tuple]) -> Path:
    records = [
        in_format(
            name,
            *row,
            chosen_persona_gold=f"The user is reader {i} and prefers short answers.",
            rejected_persona_gold=f"The user is reader {i} and prefers long answers.",
        )
        for i, row in enumerate(rows)
    ]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(records)}).save_to_disk(str(folder))
    return folder


@pytest.mark.parametrize("name", list(DETECTED))
def test_tailoring_splits_keep_the_format_and_train_like_the_standard_form(name, tmp_path):
    from persona_tailoring.model import generate, templates, train

    rows = tailoring_rows(14)
    built = {}
    for form in ("standard", name):
        output = tmp_path / f"tailoring-{form}"
        argv = ["--dataset_name", str(save_augmented(tmp_path / f"augmented-{form}", form, rows))]
        assert (
            tailoring.main([*argv, "--output", str(output), "--retriever", "bm25", "--fewshot_rows", "2"])
            == 0
        )
        built[form] = make_args(tmp_path, Path("unused-model"), output).tailoring
    source = datasets.load_from_disk(str(tmp_path / f"augmented-{name}"))["train"].features
    for split in datasets.load_from_disk(str(tmp_path / f"tailoring-{name}")).values():
        own = [c for c in ("prompt", "chosen", "rejected") if c in source]
        assert split.column_names == [*own, *tailoring.COLUMNS[3:]]
        assert {c: split.features[c] for c in own} == {c: source[c] for c in own}
    for method in ("sft", "dpo"):
        theirs, ours = (train.training_datasets(built[form], method) for form in ("standard", name))
        assert ours[0].to_list() == theirs[0].to_list() and ours[1].to_list() == theirs[1].to_list()
    tests = {
        form: train.load_tailoring_splits(args.hf_dataset_name, args.dataset_name)["test"]
        for form, args in built.items()
    }
    style = templates.PromptStyle.for_run(templates.TrainingType.chosen, "Handmade")
    personas = list(tests["standard"]["chosen_persona_gold"])
    ours, theirs = (generate.build_requests(tests[form], personas, style) for form in (name, "standard"))
    assert [(r.id, r.prompt) for r in ours[0]] == [(r.id, r.prompt) for r in theirs[0]]


def trl_conversational(folder: Path) -> Path:
    """conftest's tailoring dataset in TRL's conversational forms: SFT splits as prompt-completion, the others as
    preference rows."""

    folder.mkdir(parents=True)
    for split, n in SPLITS.items():
        rows = []
        for i in range(n):
            row = tailoring_row(split, i)
            row["prompt"] = [user(row["prompt"])]
            if split.startswith("sft") or split == "fewshot":
                row["completion"] = [assistant(row.pop("chosen"))]
                del row["rejected"]
            else:
                row["chosen"], row["rejected"] = [assistant(row["chosen"])], [assistant(row["rejected"])]
            rows.append(row)
        write_jsonl(folder / f"{split}.jsonl", rows)
    return folder


@pytest.mark.slow  # trains the tiny model with TRL, then generates from it
def test_persona_tailoring_trains_and_generates_on_trl_conversational_data(tiny_model_dir, tmp_path):
    from persona_core.io import read_records
    from persona_core.layout import pt_output_path
    from persona_core.shards import ShardArguments
    from persona_tailoring.model import generate, train

    standard = make_args(tmp_path / "standard", tiny_model_dir, write_tailoring_dataset(tmp_path / "plain"))
    args = make_args(
        tmp_path, tiny_model_dir, trl_conversational(tmp_path / "trl"), model_path=str(tiny_model_dir)
    )
    for method in ("sft", "dpo"):
        theirs = train.training_datasets(standard.tailoring, method)
        ours = train.training_datasets(args.tailoring, method)
        assert ours[0].to_list() == theirs[0].to_list()
    plan = train.plan_training(args.tailoring, args.lora, args.generator, "sft", training_flags())
    adapter = train.fit_and_save(train.trainer_for(plan, args.generator), plan, {})
    assert json.loads((adapter / "training_summary.json").read_text())["train_examples"] == 4
    args.generation.max_tokens = 4
    inference = generate.plan_infer(args.tailoring, args.inference, args.generator, args.generation, "sft")
    assert generate.infer(inference, args.generator, ShardArguments()) == 0
    output = pt_output_path(
        args.tailoring.results_save_dir, "Handmade", "tiny", "sft", "chosen", "gold-chosen"
    )
    records = read_records(output)
    assert [r["prompt"] for r in records] == [f"question test{i}?" for i in range(3)]
    assert records[0]["model_input"].startswith("Prompt: question test0?\nPersona: The user is CG-test0")
