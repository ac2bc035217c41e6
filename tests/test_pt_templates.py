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

from tests.pt_support import tailoring_row, write_tailoring_dataset

PAPER = paper_data_dir()


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from persona_core.data import load_splits

    return load_splits(str(write_tailoring_dataset(tmp_path_factory.mktemp("data"))))


# training type -> [(persona column or None, preferred column, dispreferred column)] per output row of a dataset row
TRAINING_TABLE = {
    TrainingType.chosen: [("chosen_persona_gold", "chosen", "rejected")],
    TrainingType.rejected: [("rejected_persona_gold", "rejected", "chosen")],
    TrainingType.all: [("chosen_persona_gold", "chosen", "rejected"), ("rejected_persona_gold", "rejected", "chosen")],
    TrainingType.none: [(None, "chosen", "rejected")],
}


def expected_prompt(row, persona_column, persona_trained=True):
    if persona_column is None:
        return f"Prompt: {row['prompt']}\nResponse:"
    persona = row[persona_column]
    if persona_trained:
        return f"Prompt: {row['prompt']}\nPersona: {persona}\nResponse:"
    return f"Prompt: {row['prompt']} I am {persona[len('The user is '):]}\nResponse:"


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_sft_examples_pick_the_training_columns(splits, training_type):
    style = PromptStyle.for_run(training_type, "Handmade")
    examples = templates.sft_examples(splits["sft_train"], training_type, style, "sft_train")
    expected = [
        {"prompt": expected_prompt(row, persona), "completion": " " + row[preferred]}
        for row in splits["sft_train"]
        for persona, preferred, _ in TRAINING_TABLE[training_type]
    ]
    assert examples == expected


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_dpo_examples_prefer_the_response_of_the_persona(splits, training_type):
    style = PromptStyle.for_run(training_type, "Handmade")
    examples = templates.dpo_examples(splits["dpo_train"], training_type, style, "dpo_train")
    expected = [
        {"prompt": expected_prompt(row, persona), "chosen": " " + row[good], "rejected": " " + row[bad]}
        for row in splits["dpo_train"]
        for persona, good, bad in TRAINING_TABLE[training_type]
    ]
    assert examples == expected
    if training_type == TrainingType.rejected:  # the paper's rejected-persona DPO: the rejected response wins
        assert examples[0]["chosen"] == " rejected answer dpo_train0."


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
        assert templates.inference_personas(splits["test"], inference_type, "X", "test", "The user is me.") == [
            "The user is me."
        ] * 3
    else:
        assert [p.split()[3] for p in personas] == [INFERENCE_TABLE[inference_type].format(i=i) for i in range(3)]


def test_prompt_forms_by_training():
    persona = "The user is a cook and prefers numbers."
    assert PromptStyle(True).model_input("Q?", persona) == "Prompt: Q?\nPersona: The user is a cook and prefers numbers.\nResponse:"
    assert PromptStyle(False).model_input("Q?", persona) == "Prompt: Q? I am a cook and prefers numbers.\nResponse:"
    assert PromptStyle(False).model_input("Q?", "The user values brevity.") == "Prompt: Q? The user values brevity.\nResponse:"
    assert PromptStyle(True).model_input("Q?", "") == "Prompt: Q?\nResponse:"


def test_mnemonic_primer_moves_into_the_prompt_only_when_every_response_starts_with_it():
    style = PromptStyle.for_run(TrainingType.chosen, "Mnemonic")
    assert style.prefix_for("self-effacing") == "Self-Effacing sounds like"
    primer, completions = style.split_response("loquacious", ['Loquacious sounds like "talk".', 'Loquacious sounds like "lock".'])
    assert primer == " Loquacious sounds like" and completions == [' "talk".', ' "lock".']
    primer, completions = style.split_response("loquacious", ['Loquacious sounds like "talk".', "Break it down."])
    assert primer == "" and completions == [' Loquacious sounds like "talk".', " Break it down."]
    assert PromptStyle.for_run(TrainingType.chosen, "Mnemonic", response_prefix="").prefix_for("x") == ""


def test_fewshot_demonstrations_use_the_training_format(splits):
    style = PromptStyle.for_run(TrainingType.rejected, "Handmade")
    text = templates.fewshot_demonstrations(splits["fewshot"], TrainingType.rejected, style)
    row = tailoring_row("fewshot", 1)
    assert f"Prompt: {row['prompt']}\nPersona: {row['rejected_persona_gold']}\nResponse: {row['rejected']}\n\n" in text
    assert text.count("Prompt:") == 2 and "chosen answer" not in text


def test_an_empty_persona_column_is_an_error_not_empty_prompts(tmp_path):
    from persona_core.data import load_splits

    splits = load_splits(str(write_tailoring_dataset(tmp_path, blank={"test": ["chosen_persona_gold"]})))
    with pytest.raises(UsageError, match="chosen_persona_gold.*empty in 3 of 3.*retr-chosen"):
        templates.inference_personas(splits["test"], InferenceType.gold_chosen, "Mnemonic", "test")
    assert len(templates.inference_personas(splits["test"], InferenceType.retr_chosen, "Mnemonic", "test")) == 3


COLUMNS = {"gold-chosen": "chosen_persona_gold", "gold-rejected": "rejected_persona_gold",
           "retr-chosen": "chosen_persona_retr", "retr-rejected": "rejected_persona_retr"}


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
            assert record["prompt"] == style.model_input(row["prompt"], persona) + (f" {prefix}" if prefix else "")
            checked += 1
    assert checked > 9000
    assert json.loads(Path(files[0]).read_text())[0]["response"]  # the arrays hold the responses too
