"""Training and merging as fingerprinted stages, with real TRL/PEFT on the tiny model: changed settings refuse in
one line or retrain under --overwrite, downstream merge, DPO and generation follow, an unchanged rerun trains
nothing, a killed training resumes from its checkpoint under the same fingerprint only."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from persona_core.errors import UsageError
from persona_core.layout import MODEL_FINGERPRINT_FILE, TRAINING_SUMMARY_FILE, pt_files, pt_output_path
from persona_tailoring.model import merge, train
from persona_tailoring.model.run_model import main
from tests.helpers import build_tiny_model, make_args, training_flags, write_tailoring_dataset

pytestmark = pytest.mark.slow  # each case trains with TRL (a few seconds each)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tailoring_dataset(tmp_path_factory.mktemp("data"))


def argv(tmp_path, model_dir, data_dir, method="sft", stage="train", nickname="tiny", *extra):
    return [
        "--method",
        method,
        "--stage",
        stage,
        "--base_model_name",
        str(model_dir),
        *(["--model_nickname", nickname] if nickname else []),
        "--dataset_name",
        "Handmade",
        "--hf_dataset_name",
        str(data_dir),
        "--model_save_dir",
        str(tmp_path / "models"),
        "--results_save_dir",
        str(tmp_path / "results"),
        "--max_tokens",
        "4",
        *extra,
    ]


def refusal(run) -> str:
    """The one-line message of the UsageError ``run`` raises."""
    with pytest.raises(UsageError) as caught:
        run()
    message = str(caught.value)
    assert "\n" not in message and "--overwrite" in message, message
    return message


def adapter_weights(tmp_path, method="sft", nickname="tiny"):
    return (
        tmp_path
        / "models"
        / "Handmade"
        / nickname
        / f"{method}_chosen"
        / "adapter"
        / "adapter_model.safetensors"
    )


def refuse(*_, **__):
    raise AssertionError("a model was trained, merged or loaded although nothing changed")


@pytest.mark.parametrize("change", ["learning_rate", "lora_r", "training_data", "base_model"])
def test_changed_settings_refuse_in_one_line_and_retrain_under_overwrite(
    tmp_path, tiny_model_dir, data_dir, change
):
    base = argv(tmp_path, tiny_model_dir, data_dir)
    assert main(base + training_flags()) == 0
    weights = adapter_weights(tmp_path)
    before = weights.read_bytes()
    changed_data = write_tailoring_dataset(tmp_path / "other-data")
    (changed_data / "sft_train.jsonl").write_text(
        (data_dir / "sft_train.jsonl").read_text().replace("chosen answer", "a better answer")
    )
    other_model = build_tiny_model(tmp_path / "other-base" / tiny_model_dir.name, seed=1)
    changed = {
        "learning_rate": base + training_flags(learning_rate=5e-3),
        "lora_r": base + ["--lora_r", "4"] + training_flags(),
        "training_data": argv(tmp_path, tiny_model_dir, changed_data) + training_flags(),
        "base_model": argv(tmp_path, other_model, data_dir) + training_flags(),
    }[change]
    message = refusal(lambda: main(changed))
    expected = {
        "learning_rate": "training.learning_rate",
        "lora_r": "lora.r",
        "training_data": "data.train",
        "base_model": "base_model.",
    }[change]
    assert expected in message and "--model_nickname" in message
    assert weights.read_bytes() == before  # refused: the old adapter untouched
    assert main(changed + ["--overwrite"]) == 0
    assert weights.read_bytes() != before
    recorded = json.loads((weights.parent / MODEL_FINGERPRINT_FILE).read_text())
    if change == "lora_r":
        assert recorded["lora"]["r"] == 4
    if change == "base_model":
        assert recorded["base_model"]["name"] == str(other_model.resolve())


def test_default_nickname_comes_from_the_base_model_so_two_models_keep_both(
    tmp_path, tiny_model_dir, data_dir
):
    other_model = build_tiny_model(tmp_path / "another-model", seed=1)
    for model in (tiny_model_dir, other_model):
        assert main(argv(tmp_path, model, data_dir, "sft", "train", None) + training_flags()) == 0
    assert adapter_weights(tmp_path, nickname=tiny_model_dir.name).exists()
    assert adapter_weights(tmp_path, nickname="another-model").exists()
    assert make_args(
        tmp_path, "meta-llama/Llama-3.2-1B", data_dir, model_nickname=None
    ).tailoring.model_nickname == ("meta-llama--Llama-3.2-1B")


def test_a_typoed_training_flag_errors_even_when_the_adapter_exists(tmp_path, tiny_model_dir, data_dir):
    base = argv(tmp_path, tiny_model_dir, data_dir)
    assert main(base + training_flags()) == 0
    with pytest.raises(UsageError, match="learnin_rate"):
        main(base + training_flags() + ["--learnin_rate", "1e-3"])
    with pytest.raises(UsageError, match="learning_rat"):  # no abbreviations of TRL's flags either
        main(base + training_flags() + ["--learning_rat", "1e-3"])


def test_downstream_merge_dpo_and_generation_follow_a_retrained_sft_model(
    tmp_path, tiny_model_dir, data_dir, monkeypatch
):
    sft = argv(tmp_path, tiny_model_dir, data_dir, "sft", "all") + training_flags()
    dpo = argv(tmp_path, tiny_model_dir, data_dir, "dpo", "all") + training_flags()
    assert main(sft) == 0 and main(dpo) == 0
    outputs = {
        method: pt_output_path(tmp_path / "results", "Handmade", "tiny", method, "chosen", "gold-chosen")
        for method in ("sft", "dpo")
    }
    models = tmp_path / "models" / "Handmade" / "tiny"
    dpo_fingerprint = json.loads((models / "dpo_chosen" / "adapter" / MODEL_FINGERPRINT_FILE).read_text())
    sft_adapter = json.loads((models / "sft_chosen" / "adapter" / MODEL_FINGERPRINT_FILE).read_text())
    # DPO names the merged SFT model it starts from by the SFT adapter's own fingerprint
    assert dpo_fingerprint["base_model"]["fingerprint"]["adapter"]["fingerprint"] == sft_adapter

    # an unchanged rerun of everything trains, merges and generates nothing
    stamps = {p: p.stat().st_mtime_ns for p in [*models.rglob("*.safetensors"), *outputs.values()]}
    with monkeypatch.context() as patched:
        patched.setattr(train, "trainer_for", refuse)
        patched.setattr(merge, "merge_adapter", refuse)
        patched.setattr("persona_tailoring.model.generate.load_generator", refuse)
        assert main(sft) == 0 and main(dpo) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # SFT retrained under --overwrite drops its merged model; merging again gives a new merged model
    changed = training_flags(learning_rate=5e-3)
    sft_args = argv(tmp_path, tiny_model_dir, data_dir, "sft", "train")
    assert main(sft_args + changed + ["--overwrite"]) == 0
    assert not (models / "sft_chosen" / "merged").exists()
    assert main(argv(tmp_path, tiny_model_dir, data_dir, "sft", "merge")) == 0
    # generation from the new SFT model, DPO from it: refused, never silently kept
    assert "model.fingerprint" in refusal(
        lambda: main(argv(tmp_path, tiny_model_dir, data_dir, "sft", "infer"))
    )
    dpo_train = argv(tmp_path, tiny_model_dir, data_dir, "dpo", "train") + training_flags()
    assert "base_model.fingerprint" in refusal(lambda: main(dpo_train))
    # ... and redone under --overwrite
    assert main(argv(tmp_path, tiny_model_dir, data_dir, "sft", "infer", "tiny", "--overwrite")) == 0
    generated_by = json.loads(pt_files(outputs["sft"]).fingerprint.read_text())["model"]["fingerprint"]
    assert generated_by == json.loads((models / "sft_chosen" / "merged" / MODEL_FINGERPRINT_FILE).read_text())
    assert main(dpo + ["--overwrite"]) == 0
    new_sft = json.loads((models / "sft_chosen" / "adapter" / MODEL_FINGERPRINT_FILE).read_text())
    dpo_fingerprint = json.loads((models / "dpo_chosen" / "adapter" / MODEL_FINGERPRINT_FILE).read_text())
    assert dpo_fingerprint["base_model"]["fingerprint"]["adapter"]["fingerprint"] == new_sft
    assert new_sft["training"]["learning_rate"] == 5e-3
    merged_dpo = json.loads((models / "dpo_chosen" / "merged" / MODEL_FINGERPRINT_FILE).read_text())
    assert merged_dpo["adapter"]["fingerprint"] == dpo_fingerprint


def test_a_merged_model_of_another_adapter_is_refused_or_remerged(tmp_path, tiny_model_dir, data_dir):
    args = make_args(tmp_path, tiny_model_dir, data_dir)
    dirs = train.model_dirs(args.tailoring, "sft")
    assert main(argv(tmp_path, tiny_model_dir, data_dir, "sft", "train") + training_flags()) == 0
    merge.merge(dirs)
    # the adapter replaced behind the merge stage's back (e.g. copied in from elsewhere)
    fingerprint = json.loads((dirs.adapter / MODEL_FINGERPRINT_FILE).read_text())
    fingerprint["training"]["learning_rate"] = 1.0
    (dirs.adapter / MODEL_FINGERPRINT_FILE).write_text(json.dumps(fingerprint))
    assert "adapter.fingerprint" in refusal(lambda: merge.merge(dirs))
    merge.merge(dirs, overwrite=True)
    assert (
        json.loads((dirs.merged / MODEL_FINGERPRINT_FILE).read_text())["adapter"]["fingerprint"]
        == fingerprint
    )


def test_a_killed_training_resumes_from_its_checkpoint_under_the_same_fingerprint_only(
    tmp_path, tiny_model_dir, data_dir
):
    flags = training_flags(num_train_epochs=12)
    command = argv(tmp_path, tiny_model_dir, data_dir, "sft", "train", "tiny", "--max_eval_samples", "0")
    dirs = train.model_dirs(make_args(tmp_path, tiny_model_dir, data_dir).tailoring, "sft")
    process = subprocess.Popen(
        [sys.executable, "-m", "persona_tailoring.model.run_model", *command, *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while (
        not (dirs.checkpoints / "checkpoint-2" / "trainer_state.json").exists()
        and time.monotonic() < deadline
    ):
        assert process.poll() is None, "training ended before it was killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, "the process ended before it was killed"
    assert not dirs.adapter.exists() and any(dirs.checkpoints.glob("checkpoint-*"))
    # other settings never resume these checkpoints
    assert "training.learning_rate" in refusal(
        lambda: main(command + training_flags(num_train_epochs=12, learning_rate=5e-3))
    )
    assert main(command + flags) == 0
    summary = json.loads((dirs.adapter / TRAINING_SUMMARY_FILE).read_text())
    assert (
        summary["resumed_from"] and "checkpoint-" in summary["resumed_from"] and summary["global_step"] == 24
    )
    # under --overwrite other settings start afresh (nothing resumed)
    shutil.rmtree(dirs.adapter)
    assert main(command + training_flags(num_train_epochs=2, learning_rate=5e-3) + ["--overwrite"]) == 0
    summary = json.loads((dirs.adapter / TRAINING_SUMMARY_FILE).read_text())
    assert summary["resumed_from"] is None and summary["global_step"] == 4


def test_dry_run_prints_each_stage_and_loads_no_model(
    tmp_path, tiny_model_dir, data_dir, monkeypatch, capsys
):
    monkeypatch.setattr(train, "trainer_for", refuse)
    monkeypatch.setattr(merge, "merge_adapter", refuse)
    monkeypatch.setattr("persona_tailoring.model.generate.load_generator", refuse)
    extra = ["--dry_run", "--inference_type", "gold-chosen", "retr-chosen", "--learning_rate", "3e-4"]
    assert main(argv(tmp_path, tiny_model_dir, data_dir, "sft", "all", "tiny", *extra)) == 0
    out = capsys.readouterr().out
    models = tmp_path / "models" / "Handmade" / "tiny" / "sft_chosen"
    assert "[dry run]   setting learning_rate: 0.0003" in out and f"reads base model {tiny_model_dir}" in out
    assert f"writes {models / 'adapter'}" in out and f"writes {models / 'merged'}" in out
    for inference_type in ("gold-chosen", "retr-chosen"):
        output = pt_output_path(tmp_path / "results", "Handmade", "tiny", "sft", "chosen", inference_type)
        assert f"[dry run] {inference_type}: 3 requests" in out and f"writes {output}" in out
    assert not (tmp_path / "models").exists() and not (tmp_path / "results").exists()
