"""``--protocol paper``: the authors' settings as defaults of each script, explicit flags still overriding them."""

import json

import pytest

from persona_core import protocol
from persona_core.cli import parse
from persona_core.layout import TRAINING_SUMMARY_FILE
from persona_inference.model import run_model as pi_run_model
from persona_tailoring.evaluation import run_judge
from persona_tailoring.model import train
from persona_tailoring.model.run_model import main as tailoring_main
from persona_tailoring.model.run_model import parse_run_model
from tests.helpers import flag, run_script, toolkit_outputs, write_tailoring_dataset


def tailoring_args(argv: list[str]) -> dict:
    """run_model's groups by name, parsed as its ``main`` parses them (the protocol's values first)."""
    script, tailoring, lora, inference, generator, generation, shards, chosen, flags = parse_run_model(argv)
    return {
        "tailoring": tailoring,
        "lora": lora,
        "generator": generator,
        "generation": generation,
        "protocol": chosen,
    }


def training_config(argv: list[str], method: str, flags: list[str]):
    groups = tailoring_args(argv)
    return train.parse_training_config(groups["tailoring"], method, flags, groups["protocol"].protocol)


def test_protocol_values_come_first_so_explicit_flags_win():
    groups = tailoring_args(["--protocol", "paper", "--max_tokens", "20"])
    generation, lora = groups["generation"], groups["lora"]
    assert (generation.min_tokens, generation.max_tokens, lora.lora_target_modules) == (
        10,
        20,
        ["peft_default"],
    )
    untouched = ["--max_tokens", "20"]
    assert protocol.apply("persona_tailoring.model.run_model", untouched) == untouched
    assert tailoring_args(["--protocol", "toolkit"])["generation"].max_tokens == 256


def test_paper_training_config_and_its_overrides(tmp_path):
    data = write_tailoring_dataset(tmp_path / "data")
    paper = ["--protocol", "paper", "--hf_dataset_name", str(data)]
    sft = training_config(paper, "sft", [])
    assert (sft.per_device_train_batch_size, sft.gradient_accumulation_steps) == (1, 1)
    assert (sft.completion_only_loss, sft.learning_rate, sft.num_train_epochs, sft.max_length) == (
        False,
        2e-5,
        10,
        512,
    )
    assert sft.load_best_model_at_end and sft.metric_for_best_model == "eval_loss"
    dpo = training_config(paper, "dpo", ["--per_device_train_batch_size", "2"])
    assert (dpo.per_device_train_batch_size, dpo.gradient_accumulation_steps) == (2, 1)
    assert (dpo.learning_rate, dpo.beta, dpo.max_length) == (5e-6, 0.1, 512)
    toolkit = training_config(["--hf_dataset_name", str(data)], "sft", [])
    assert (toolkit.per_device_train_batch_size, toolkit.gradient_accumulation_steps) == (4, 2)
    assert toolkit.completion_only_loss is True


@pytest.mark.slow
def test_a_paper_sft_run_trains_the_papers_adapter_on_whole_sequences_and_generates_512_10(
    tmp_path, tiny_model_dir
):
    data = write_tailoring_dataset(tmp_path / "data")
    common = [
        "--protocol",
        "paper",
        "--method",
        "sft",
        "--base_model_name",
        str(tiny_model_dir),
        "--model_nickname",
        "tiny",
        "--dataset_name",
        "Handmade",
        "--hf_dataset_name",
        str(data),
        "--model_save_dir",
        str(tmp_path / "models"),
        "--results_save_dir",
        str(tmp_path / "results"),
    ]
    # the loss covers every real token, the prompt's too (TRL's labels: -100 only on padding)
    groups = tailoring_args([*common, "--max_train_samples", "2"])
    trainer = train.build_trainer(
        groups["tailoring"],
        groups["lora"],
        groups["generator"],
        "sft",
        ["--num_train_epochs", "1"],
        groups["protocol"].protocol,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    real = batch["attention_mask"].bool() if "attention_mask" in batch else batch["labels"] != -100
    assert batch["input_ids"].shape[0] == 1
    assert (batch["labels"][real] != -100).all()
    del trainer

    status = tailoring_main(
        [*common, "--stage", "all", "--num_train_epochs", "1", "--limit", "1", "--batch_size", "1"]
    )
    assert status == 0
    adapter = train.model_dirs(groups["tailoring"], "sft").adapter
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (16, 32, 0.05)
    summary = json.loads((adapter / TRAINING_SUMMARY_FILE).read_text())
    training = summary["training_config"]
    assert (training["per_device_train_batch_size"], training["gradient_accumulation_steps"]) == (1, 1)
    assert training["completion_only_loss"] is False and training["learning_rate"] == 2e-5
    assert training["num_train_epochs"] == 1  # the explicit flag beat the protocol's 10
    fingerprints = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("*.fingerprint.json")]
    assert fingerprints and all(
        (f["generation"]["max_tokens"], f["generation"]["min_tokens"]) == (512, 10) for f in fingerprints
    )
    outputs = list((tmp_path / "results").rglob("sft_Persona*.jsonl"))
    assert outputs and all(json.loads(line)["response"] is not None for line in outputs[0].open())


@pytest.mark.slow
def test_the_judge_under_the_paper_protocol_writes_text_verdicts_sampled_as_prometheus_eval(
    tmp_path, tiny_model_dir
):
    base, test = toolkit_outputs(tmp_path, n=1)
    argv = [
        "--protocol",
        "paper",
        "--base_file",
        str(base),
        "--test_file",
        str(test),
        "--judge_model_name",
        str(tiny_model_dir),
        "--max_tokens",
        "4",  # explicit: overrides prometheus-eval's 1024 for a fast test
        "--output_dir",
        str(tmp_path / "out"),
    ]
    assert run_judge.main(argv) == 0
    run_info = json.loads(next((tmp_path / "out").rglob("judge.run.json")).read_text())
    arguments = run_info["arguments"]
    assert arguments["verdict"] == "text" and arguments["judge_model_type"] == "hf_chat"
    assert (arguments["temperature"], arguments["top_p"], arguments["repetition_penalty"]) == (1.0, 0.9, 1.03)
    assert (arguments["verdict_retries"], arguments["max_tokens"], arguments["response_view"]) == (
        10,
        4,
        "paper",
    )
    assert (
        arguments["merge_system_prompt"] is True
    )  # prometheus-eval folds the system prompt into the user turn
    rows = [json.loads(line) for line in next((tmp_path / "out").rglob("judgments.jsonl")).open()]
    # the tiny random judge writes text, never a verdict: each order asked once and retried 10 times
    orders = [r[order] for r in rows for order in ("base_first", "test_first")]
    assert orders and all(o["judge_output"] and o["attempts"] == 11 and o["verdict"] is None for o in orders)


def test_protocol_paper_in_the_scripts_passes_the_switch_and_drops_the_demo_sizes(tmp_path):

    demo_sizes = (
        "--learning_rate",
        "--num_train_epochs",
        "--per_device_train_batch_size",
        "--max_new_tokens",
    )
    commands = run_script("dpo.sh", tmp_path, PROTOCOL="paper", MODELS=str(tmp_path / "models"), EPOCHS="3")
    assert [(flag(c, "--method"), flag(c, "--stage")) for c in commands][::3] == [
        ("sft", "train"),
        ("dpo", "train"),
    ]
    for command in commands:
        assert flag(command, "--protocol") == "paper" and "--limit" not in command
        assert not any(size in command for size in demo_sizes if size != "--num_train_epochs")
    assert flag(commands[0], "--num_train_epochs") == "3"  # a size set explicitly still goes through

    (tmp_path / "dpo.sh.log").unlink()
    demo = run_script("dpo.sh", tmp_path, MODELS=str(tmp_path / "models"))
    assert "--protocol" not in demo[0] and flag(demo[0], "--learning_rate") == "1e-3"

    judge, _ = run_script("judge.sh", tmp_path, PROTOCOL="paper")
    assert flag(judge, "--protocol") == "paper"
    (tmp_path / "python").unlink()
    steps = run_script("pipeline.sh", tmp_path, PROTOCOL="paper", ROOT=str(tmp_path / "root"))
    runs = [c for c in steps if c[1:2] and c[1].endswith(("run_model", "run_judge"))]
    assert len(runs) == 9 and all(flag(c, "--protocol") == "paper" for c in runs)
    assert not any(size in c for c in runs for size in demo_sizes)


def test_explicit_flags_override_the_protocol_in_persona_inference_and_the_judge():
    pi_groups = parse(
        pi_run_model.GROUPS,
        protocol.apply(
            "persona_inference.model.run_model", ["--protocol", "paper", "--persona_prefix", "I am"]
        ),
    )
    generation, pi = pi_groups[4], pi_groups[-1]
    assert (generation.min_tokens, generation.max_tokens, generation.stop_token) == (5, 200, ["\nPrompt:"])
    assert (pi.persona_prefix, pi.verdict.value, pi.judge_max_tokens, pi.prefs_question.value) == (
        "I am",
        "text",
        200,
        "better",
    )
    groups = parse(
        run_judge.GROUPS,
        protocol.apply(
            "persona_tailoring.evaluation.run_judge", ["--protocol=paper", "--verdict", "probability"]
        ),
    )
    generation, judge = groups[6], groups[7]
    assert judge.verdict.value == "probability" and judge.response_view.value == "paper"
    assert judge.merge_system_prompt and (generation.temperature, judge.verdict_retries) == (1.0, 10)
    toolkit = parse(run_judge.GROUPS, protocol.apply("persona_tailoring.evaluation.run_judge", []))[7]
    assert (toolkit.verdict.value, toolkit.response_view.value, toolkit.merge_system_prompt) == (
        "probability",
        "cleaned",
        False,
    )
