"""Which columns each training/inference type uses, and the exact prompt formats (checked against the paper's outputs)."""

import glob
import json
import re
from pathlib import Path

import pytest

from persona_core.errors import UsageError
from persona_core.layout import paper_data_dir
from persona_tailoring.model import templates
from persona_tailoring.model.templates import InferenceType, PromptStyle, TrainingType
from tests.helpers import tailoring_row, write_tailoring_dataset

PAPER = paper_data_dir()


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from persona_core.data import load_splits

    return load_splits(str(write_tailoring_dataset(tmp_path_factory.mktemp("data"))))


# What each training type makes of the first row of a split, written out by hand: the persona a model is shown and
# the response it learns to prefer (and, for DPO, the one it learns to avoid).
SFT_FIRST_ROWS = {
    TrainingType.chosen: [
        (
            "Prompt: question sft_train0?\nPersona: The user is CG-sft_train0 and prefers detail.\nResponse:",
            " chosen answer sft_train0.",
        ),
    ],
    TrainingType.rejected: [
        (
            "Prompt: question sft_train0?\nPersona: The user is RG-sft_train0 and prefers brevity.\nResponse:",
            " rejected answer sft_train0.",
        ),
    ],
    TrainingType.all: [
        (
            "Prompt: question sft_train0?\nPersona: The user is CG-sft_train0 and prefers detail.\nResponse:",
            " chosen answer sft_train0.",
        ),
        (
            "Prompt: question sft_train0?\nPersona: The user is RG-sft_train0 and prefers brevity.\nResponse:",
            " rejected answer sft_train0.",
        ),
    ],
    TrainingType.none: [("Prompt: question sft_train0?\nResponse:", " chosen answer sft_train0.")],
}


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_sft_examples_pick_the_training_columns(splits, training_type):
    style = PromptStyle.for_run(training_type, "Handmade")
    examples = templates.sft_examples(splits["sft_train"], training_type, style, "sft_train")
    per_row = len(SFT_FIRST_ROWS[training_type])
    assert len(examples) == per_row * len(splits["sft_train"])
    assert [(e["prompt"], e["completion"]) for e in examples[:per_row]] == SFT_FIRST_ROWS[training_type]
    assert all(
        e["completion"].endswith(e["prompt"].split("?")[0][len("Prompt: question") :] + ".") for e in examples
    )


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_dpo_examples_prefer_the_response_of_the_persona(splits, training_type):
    style = PromptStyle.for_run(training_type, "Handmade")
    examples = templates.dpo_examples(splits["dpo_train"], training_type, style, "dpo_train")
    first = [
        (e["prompt"], e["chosen"], e["rejected"]) for e in examples[: len(SFT_FIRST_ROWS[training_type])]
    ]
    expected = [
        (p.replace("sft_train", "dpo_train"), g.replace("sft_train", "dpo_train"))
        for p, g in SFT_FIRST_ROWS[training_type]
    ]
    assert [(prompt, good) for prompt, good, _ in first] == expected
    # the dispreferred response is always the row's other one
    assert all({good.split()[0], bad.split()[0]} == {"chosen", "rejected"} for _, good, bad in first)
    if training_type == TrainingType.rejected:  # the paper's rejected-persona DPO: the rejected response wins
        assert first == [
            (
                "Prompt: question dpo_train0?\nPersona: The user is RG-dpo_train0 and prefers brevity.\n"
                "Response:",
                " rejected answer dpo_train0.",
                " chosen answer dpo_train0.",
            )
        ]


INFERENCE_TABLE = {
    InferenceType.gold_chosen: "CG-test{i}",
    InferenceType.gold_rejected: "RG-test{i}",
    InferenceType.retr_chosen: "CR-test{i}",
    InferenceType.retr_rejected: "RR-test{i}",
}


@pytest.mark.parametrize("inference_type", list(InferenceType))
def test_inference_types_pick_the_persona_column(splits, inference_type):
    personas = templates.inference_personas(splits["test"], inference_type, "BeaverTails", "test")
    if inference_type == InferenceType.none:
        assert personas == ["", "", ""]
    elif inference_type == InferenceType.system:
        assert personas == [templates.SYSTEM_PERSONAS["beavertails"]] * 3
        assert (
            templates.inference_personas(splits["test"], inference_type, "X", "test", "The user is me.")
            == ["The user is me."] * 3
        )
    else:
        assert [p.split()[3] for p in personas] == [
            INFERENCE_TABLE[inference_type].format(i=i) for i in range(3)
        ]


def test_prompt_forms_by_training():
    persona = "The user is a cook and prefers numbers."
    assert (
        PromptStyle(True).model_input("Q?", persona)
        == "Prompt: Q?\nPersona: The user is a cook and prefers numbers.\nResponse:"
    )
    assert (
        PromptStyle(False).model_input("Q?", persona)
        == "Prompt: Q? I am a cook and prefers numbers.\nResponse:"
    )
    assert (
        PromptStyle(False).model_input("Q?", "The user values brevity.")
        == "Prompt: Q? The user values brevity.\nResponse:"
    )
    assert PromptStyle(True).model_input("Q?", "") == "Prompt: Q?\nResponse:"


def test_mnemonic_primer_moves_into_the_prompt_only_when_every_response_starts_with_it():
    style = PromptStyle.for_run(TrainingType.chosen, "Mnemonic")
    assert style.prefix_for("self-effacing") == "Self-Effacing sounds like"
    primer, completions = style.split_response(
        "loquacious", ['Loquacious sounds like "talk".', 'Loquacious sounds like "lock".']
    )
    assert primer == " Loquacious sounds like" and completions == [' "talk".', ' "lock".']
    primer, completions = style.split_response(
        "loquacious", ['Loquacious sounds like "talk".', "Break it down."]
    )
    assert primer == "" and completions == [' Loquacious sounds like "talk".', " Break it down."]
    assert PromptStyle.for_run(TrainingType.chosen, "Mnemonic", response_prefix="").prefix_for("x") == ""


def test_fewshot_demonstrations_use_the_training_format(splits):
    style = PromptStyle.for_run(TrainingType.rejected, "Handmade")
    text = templates.fewshot_demonstrations(splits["fewshot"], TrainingType.rejected, style)
    row = tailoring_row("fewshot", 1)
    assert (
        f"Prompt: {row['prompt']}\nPersona: {row['rejected_persona_gold']}\nResponse: {row['rejected']}\n\n"
        in text
    )
    assert text.count("Prompt:") == 2 and "chosen answer" not in text


def test_an_empty_persona_column_is_an_error_not_empty_prompts(tmp_path):
    from persona_core.data import load_splits

    splits = load_splits(str(write_tailoring_dataset(tmp_path, blank={"test": ["chosen_persona_gold"]})))
    with pytest.raises(UsageError, match="chosen_persona_gold.*empty in 3 of 3.*retr-chosen"):
        templates.inference_personas(splits["test"], InferenceType.gold_chosen, "Mnemonic", "test")
    assert (
        len(templates.inference_personas(splits["test"], InferenceType.retr_chosen, "Mnemonic", "test")) == 3
    )


COLUMNS = {
    "gold-chosen": "chosen_persona_gold",
    "gold-rejected": "rejected_persona_gold",
    "retr-chosen": "chosen_persona_retr",
    "retr-rejected": "rejected_persona_retr",
}


@pytest.mark.skipif(not (PAPER / "paper-outputs").is_dir(), reason="paper data not on this machine")
def test_model_inputs_reproduce_the_papers_released_prompts():
    import datasets

    from persona_core.io import read_records

    files = sorted(glob.glob(str(PAPER / "paper-outputs" / "*" / "*.jsonl")))
    checked = 0
    for path in files:
        name = Path(path).parent.name
        training, inference = re.search(r"training_type=(\w+), inference_type=([\w-]+)", path).groups()
        test = datasets.load_from_disk(str(PAPER / f"persona-tailoring-{name}"))["test"]
        style = PromptStyle.for_run(TrainingType(training), name)
        personas = test[COLUMNS[inference]] if inference != "none" else [""] * len(test)
        for record, row, persona in zip(read_records(path), test, personas, strict=True):
            prefix = style.prefix_for(row["prompt"])
            assert record["prompt"] == style.model_input(row["prompt"], persona) + (
                f" {prefix}" if prefix else ""
            )
            checked += 1
    assert checked > 9000
    assert json.loads(Path(files[0]).read_text())[0]["response"]  # the arrays hold the responses too
