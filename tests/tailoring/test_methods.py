"""ORPO, SimPO and KTO through run_model on the tiny random model: train -> merge -> generate, the prompt format,
KTO's unpaired examples, refused combinations, resuming after a kill, and their place in the ΔPQ table."""

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch

from bench.loopback import LoopbackLLMServer
from persona_core import layout
from persona_tailoring.evaluation import run_judge, win_rate
from persona_tailoring.evaluation.configuration import Method, parse_file_name
from persona_tailoring.model import templates, train
from persona_tailoring.model.methods import METHODS, SFT_MODEL
from persona_tailoring.model.run_model import main
from persona_tailoring.model.templates import PromptStyle, TrainingType
from tests.helpers import (
    REPO_ROOT,
    adapter_and_merged_logits,
    clean_env,
    flag,
    make_args,
    prefers_test,
    read_jsonl,
    run_script,
    sigkill_after,
    tailoring_row,
    toolkit_outputs,
    training_flags,
    write_tailoring_dataset,
)

pytestmark = pytest.mark.slow  # each training case trains a model with TRL (a few seconds each)

NEW_METHODS = ["orpo", "simpo", "kto"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tailoring_dataset(tmp_path_factory.mktemp("data"))


def run_flags(args) -> list[str]:
    return [
        "--base_model_name",
        args.tailoring.base_model_name,
        "--model_nickname",
        args.tailoring.model_nickname,
        "--dataset_name",
        args.tailoring.dataset_name,
        "--hf_dataset_name",
        args.tailoring.hf_dataset_name,
        "--model_save_dir",
        args.tailoring.model_save_dir,
        "--results_save_dir",
        args.tailoring.results_save_dir,
    ]


def stand_in_sft_model(args, tiny_model_dir) -> None:
    """The tiny model copied where SimPO and KTO look for the merged SFT model of the training type."""
    shutil.copytree(tiny_model_dir, train.model_dirs(args.tailoring, "sft").merged)


@pytest.mark.parametrize("method", NEW_METHODS)
def test_method_trains_merges_and_generates_with_the_papers_file_names(
    tmp_path, tiny_model_dir, data_dir, method
):
    args = make_args(tmp_path, tiny_model_dir, data_dir, training_type=TrainingType.all)
    spec = METHODS[method]
    if spec.starts_from == SFT_MODEL:
        stand_in_sft_model(args, tiny_model_dir)
    argv = ["--method", method, "--stage", "all", "--training_type", "all", *run_flags(args)]
    argv += ["--inference_type", "gold-chosen", "none", "--max_new_tokens", "6", *training_flags()]
    assert main(argv) == 0
    dirs = train.model_dirs(args.tailoring, method)
    summary = json.loads(dirs.training_summary.read_text())
    expected_base = (
        train.model_dirs(args.tailoring, "sft").merged.resolve()
        if spec.starts_from == SFT_MODEL
        else tiny_model_dir.resolve()
    )
    assert summary["method"] == method and summary["base_model"] == str(expected_base)
    rows_per_preference_row = {"orpo": 2, "simpo": 2, "kto": 4}[method]  # `all`: both persona sides
    splits = len(spec.train_splits)  # ORPO trains on sft_train and dpo_train (4 rows each)
    assert summary["train_examples"] == 4 * splits * rows_per_preference_row
    assert summary["training_config"]["learning_rate"] == 1e-3  # the flag, not the method's default
    adapted, merged = adapter_and_merged_logits(dirs.adapter, dirs.merged)
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-4)
    style = PromptStyle.for_run(TrainingType.all, "Handmade")
    for inference_type, persona_column in (("gold-chosen", "chosen_persona_gold"), ("none", None)):
        output = layout.pt_output_path(
            args.tailoring.results_save_dir, "Handmade", "tiny", method, "all", inference_type
        )
        assert output.name == f"{method}_Persona(training_type=all, inference_type={inference_type}).jsonl"
        config = parse_file_name(output)
        assert config is not None and config.method == Method(method)
        records = read_jsonl(output)
        assert len(records) == 3 and all(r["response"] for r in records)
        for index, record in enumerate(records):
            row = tailoring_row("test", index)
            persona = row[persona_column] if persona_column else ""
            assert record["model_input"] == style.model_input(row["prompt"], persona)
    assert sorted(layout.find_pt_outputs(args.tailoring.results_save_dir)) == sorted(
        layout.pt_output_path(args.tailoring.results_save_dir, "Handmade", "tiny", method, "all", i)
        for i in ("gold-chosen", "none")
    )


@pytest.mark.parametrize("method", NEW_METHODS)
def test_training_sees_exactly_the_tokens_generation_sees(tmp_path, tiny_model_dir, data_dir, method):
    """TRL's ORPO/CPO prepend a BOS the tokenizer never adds; the prompt tokens must be the inference input's."""
    args = make_args(tmp_path, tiny_model_dir, data_dir)
    if METHODS[method].starts_from == SFT_MODEL:
        stand_in_sft_model(args, tiny_model_dir)
    trainer = train.build_trainer(args.tailoring, args.lora, args.generator, method, training_flags())
    tokenizer = trainer.processing_class
    first = trainer.train_dataset[0]
    split = METHODS[method].train_splits[0]
    row = tailoring_row(split, 0)
    model_input = PromptStyle.for_run(TrainingType.chosen, "Handmade").model_input(
        row["prompt"], row["chosen_persona_gold"]
    )
    prompt_ids = first["prompt_ids"] if method == "kto" else first["prompt_input_ids"]
    assert prompt_ids == tokenizer(model_input).input_ids
    completion = first["completion_ids"] if method == "kto" else first["chosen_input_ids"][len(prompt_ids) :]
    assert tokenizer.decode(completion) == f" chosen answer {split}0.{tokenizer.eos_token}"


def kto_view(rows: list[dict]) -> list[tuple]:
    """(row tag, persona tag or None, response side, label) of each KTO example, in order."""
    view = []
    for row in rows:
        prompt = row["prompt"]
        tag = prompt.split("question ", 1)[1].split("?", 1)[0]
        persona = prompt.split("The user is ", 1)[1][:2] if "Persona:" in prompt else None
        side = row["completion"].split()[0]
        view.append((tag, persona, side, row["label"]))
    return view


ALTERNATE = [(0, True), (1, False), (2, True), (3, False), (0, False), (1, True), (2, False), (3, True)]
"""Two sweeps over four rows: row i is desirable in one sweep and undesirable in the other."""


def side_rows(persona, preferred, dispreferred):
    return [
        (f"dpo_train{i}", persona, preferred if desirable else dispreferred, desirable)
        for i, desirable in ALTERNATE
    ]


@pytest.mark.parametrize(
    ("training_type", "expected"),
    [
        (TrainingType.chosen, side_rows("CG", "chosen", "rejected")),
        (
            TrainingType.rejected,
            side_rows("RG", "rejected", "chosen"),
        ),  # a rejected persona prefers its response
        (TrainingType.all, side_rows("CG", "chosen", "rejected") + side_rows("RG", "rejected", "chosen")),
        (TrainingType.none, side_rows(None, "chosen", "rejected")),
    ],
)
def test_kto_examples_table(data_dir, training_type, expected):
    import datasets

    split = datasets.Dataset.from_list([tailoring_row("dpo_train", i) for i in range(4)])
    rows = templates.kto_examples(
        split, training_type, PromptStyle.for_run(training_type, "Handmade"), "dpo_train"
    )
    assert kto_view(rows) == expected
    assert sum(r["label"] for r in rows) * 2 == len(
        rows
    )  # balanced: desirable_weight = undesirable_weight = 1
    # neighbours (KTO's KL pairs within a batch) never share a prompt
    assert all(a["prompt"] != b["prompt"] for a, b in zip(rows, rows[1:], strict=False))


def test_kto_refuses_an_empty_rejected_persona(tmp_path):
    data = write_tailoring_dataset(tmp_path / "data", blank={"dpo_train": ["rejected_persona_gold"]})
    import datasets

    from persona_core.errors import UsageError

    split = datasets.Dataset.from_list(read_jsonl(data / "dpo_train.jsonl"))
    style = PromptStyle.for_run(TrainingType.all, "Handmade")
    with pytest.raises(UsageError, match="rejected_persona_gold.*empty"):
        templates.kto_examples(split, TrainingType.all, style, "dpo_train")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "orpo", "--simpo_gamma", "1"], "--simpo_gamma is a flag of --method simpo"),
        (["--method", "kto", "--padding_free", "True"], "--padding_free is a flag of --method sft"),
        (["--method", "simpo", "--loss_type", "sigmoid"], "--loss_type simpo, not sigmoid"),
        (["--method", "kto", "--per_device_train_batch_size", "1"], "--per_device_train_batch_size 2"),
        (["--method", "kto", "--train_sampling_strategy", "random"], "keep --train_sampling_strategy"),
        (["--method", "orpo", "--stage", "infer", "--beta", "0.2"], "training flags apply only to"),
        (["--method", "fewshot", "--help_training"], "few-shot trains nothing"),
    ],
)
def test_bad_combinations_are_one_line_errors(tmp_path, tiny_model_dir, data_dir, argv, message):
    args = make_args(tmp_path, tiny_model_dir, data_dir)
    stand_in_sft_model(args, tiny_model_dir)
    assert_one_line_error(tmp_path, [*argv, *run_flags(args)], message)


@pytest.mark.parametrize("method", ["simpo", "kto"])
def test_methods_from_the_sft_model_refuse_without_it(tmp_path, tiny_model_dir, data_dir, method):
    args = make_args(tmp_path, tiny_model_dir, data_dir, training_type=TrainingType.rejected)
    argv = ["--method", method, "--stage", "train", "--training_type", "rejected", *run_flags(args)]
    message = f"{METHODS[method].title} starts from the merged SFT model"
    assert_one_line_error(tmp_path, argv, message)


def assert_one_line_error(tmp_path, argv, message):
    """run_model exits 2 with one line naming the problem, writing nothing."""
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-m", "persona_tailoring.model.run_model", *argv],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("method", NEW_METHODS)
def test_training_resumes_after_a_kill(tmp_path, tiny_model_dir, data_dir, method):
    args = make_args(tmp_path, tiny_model_dir, data_dir, max_eval_samples=0)
    if METHODS[method].starts_from == SFT_MODEL:
        stand_in_sft_model(args, tiny_model_dir)
    flags = training_flags(num_train_epochs=6, per_device_train_batch_size=4)
    argv = ["--method", method, "--stage", "train", *run_flags(args), "--max_eval_samples", "0", *flags]
    dirs = train.model_dirs(args.tailoring, method)
    steps_per_epoch = {"orpo": 2, "simpo": 1, "kto": 2}[method]  # examples / batch 4
    first = dirs.checkpoints / f"checkpoint-{steps_per_epoch}" / "trainer_state.json"
    command = [sys.executable, "-m", "persona_tailoring.model.run_model", *argv]
    env = clean_env(OMP_NUM_THREADS="1")
    assert sigkill_after(command, first, 1, env, REPO_ROOT, timeout=180) >= 1
    assert not dirs.adapter.exists()  # killed before the adapter: nothing final
    assert main(argv) == 0
    summary = json.loads(dirs.training_summary.read_text())
    resumed = int(summary["resumed_from"].rsplit("-", 1)[1])
    assert steps_per_epoch <= resumed < 6 * steps_per_epoch
    assert summary["global_step"] == 6 * steps_per_epoch


def test_new_methods_join_sft_and_dpo_in_the_delta_pq_table(tmp_path):
    """Outputs named like the paper's, for every method: run_judge and win_rate take them unchanged."""

    folder = tmp_path / "outputs" / "Sample"
    folder.mkdir(parents=True)
    base, test = toolkit_outputs(tmp_path / "made", n=3)
    shutil.copy(base, folder / layout.pt_output_name("sft", "none", "none"))
    methods = ["sft", "dpo", *NEW_METHODS]
    for method in methods:
        shutil.copy(test, folder / layout.pt_output_name(method, "chosen", "gold-chosen"))
    out = tmp_path / "judge"
    argv = ["--results_save_dir", str(tmp_path / "outputs"), "--dataset_name", "Sample"]
    argv += ["--model_type_base", "sft", "--training_type_base", "none", "--inference_type_base", "none"]
    argv += [
        "--model_type_test",
        *methods,
        "--training_type_test",
        "chosen",
        "--inference_type_test",
        "gold-chosen",
    ]
    argv += ["--output_dir", str(out), "--judge_model_type", "open_ai", "--judge_model_name", "judge"]
    argv += ["--verdict", "text"]
    with LoopbackLLMServer(prefers_test) as server:
        assert run_judge.main([*argv, "--base_url", server.url]) == 0
    assert win_rate.main(["--comparison_dir", str(out), "--resamples", "20"]) == 0
    table = (out / "delta_pq_table.md").read_text()
    for method in methods:
        assert f"| {method}-chosen-gold-chosen |" in table
    with open(out / "delta_pq_table.csv", newline="", encoding="utf-8") as handle:
        cells = list(csv.DictReader(handle))
    assert sorted(c["method"] for c in cells) == sorted(methods)
    assert all(float(c["delta_pq"]) == 1.0 for c in cells)  # the judge always prefers the test side


# --- the scripts, with a stand-in $PYTHON (tests/e2e/test_pipeline.py): which modules they start, with which flags ----


def test_orpo_script_trains_from_the_base_model_in_one_stage(tmp_path):

    commands = run_script("orpo.sh", tmp_path, MODELS=str(tmp_path / "models"), DATASET="Demo")
    assert [(flag(c, "--method"), flag(c, "--stage")) for c in commands] == [
        ("orpo", "train"),
        ("orpo", "merge"),
        ("orpo", "infer"),
    ]
    assert (flag(commands[0], "--learning_rate"), flag(commands[0], "--beta")) == ("1e-3", "0.1")


@pytest.mark.parametrize(
    ("script", "knobs"), [("simpo.sh", {"--simpo_gamma": "1.0"}), ("kto.sh", {"--beta": "0.1"})]
)
def test_simpo_and_kto_scripts_run_sft_first_only_without_a_merged_sft_model(tmp_path, script, knobs):
    from persona_core.layout import MODEL_CONFIG_FILE, PTModelDirs

    method = script.removesuffix(".sh")
    variables = {
        "MODELS": str(tmp_path / "models"),
        "DATASET": "Demo",
        "PT_NICKNAME": "nick",
        "TRAINING_TYPE": "all",
    }
    commands = run_script(script, tmp_path, **variables)
    stages = [(flag(c, "--method"), flag(c, "--stage")) for c in commands]
    assert stages == [("sft", "train"), ("sft", "merge"), ("sft", "infer")] + [
        (method, stage) for stage in ("train", "merge", "infer")
    ]
    assert all(flag(c, "--training_type") == "all" for c in commands)
    assert all(flag(commands[3], name) == value for name, value in knobs.items())
    merged = PTModelDirs.of(tmp_path / "models", "Demo", "nick", "sft", "all").merged
    merged.mkdir(parents=True)
    (merged / MODEL_CONFIG_FILE).write_text("{}")
    (tmp_path / f"{script}.log").unlink()
    commands = run_script(script, tmp_path, **variables)
    assert [flag(c, "--method") for c in commands] == [method] * 3


def test_pipeline_adds_methods_to_its_grid_and_judges_them_against_dpos_base(tmp_path):

    commands = run_script("pipeline.sh", tmp_path, ROOT=str(tmp_path / "root"), METHODS="orpo kto")
    trained = [
        c for c in commands if "persona_tailoring.model.run_model" in c and flag(c, "--stage") == "all"
    ]
    assert [flag(c, "--method") for c in trained] == ["orpo", "kto"]
    assert [flag(c, "--learning_rate") for c in trained] == ["1e-3", "1e-4"]  # SFT's and DPO's demo rates
    judges = [c for c in commands if "persona_tailoring.evaluation.run_judge" in c]
    assert len(judges) == 2  # DPO's, then the added methods'
    added = judges[1]
    at = added.index("--model_type_test")
    assert added[at : at + 3] == ["--model_type_test", "orpo", "kto"]
    assert (flag(added, "--model_type_base"), flag(added, "--inference_type_base")) == ("dpo", "none")
    tables = [c for c in commands if "persona_tailoring.evaluation.win_rate" in c and "--comparison_dir" in c]
    assert len(tables) == 1 and flag(tables[0], "--comparison_dir") == flag(added, "--output_dir")
    (tmp_path / "plain").mkdir()  # without METHODS: SFT and DPO only, as before
    plain = run_script("pipeline.sh", tmp_path / "plain", ROOT=str(tmp_path / "r2"))
    assert not [c for c in plain if "orpo" in c or "kto" in c]
    assert len([c for c in plain if "persona_tailoring.evaluation.run_judge" in c]) == 1


def test_methods_bench_runs_every_method_on_the_same_rows(tiny_model_dir, tmp_path):
    """Reference passes (the adapter off) only where the loss needs them: DPO and KTO, not ORPO or SimPO."""
    from bench import methods_throughput

    figures_file = tmp_path / "methods.json"
    argv = [
        "--model_name",
        str(tiny_model_dir),
        "--rows",
        "4",
        "--batch_size",
        "2",
        "--json",
        str(figures_file),
    ]
    assert methods_throughput.main(argv) == 0
    table = json.loads(figures_file.read_text())["methods"]
    assert list(table) == ["sft", "dpo", "orpo", "simpo", "kto"]
    assert {m: t["examples"] for m, t in table.items()} == {
        "sft": 4,
        "dpo": 4,
        "orpo": 4,
        "simpo": 4,
        "kto": 8,
    }
    forwards = {m: (t["forwards_per_step"], t["reference_forwards_per_step"]) for m, t in table.items()}
    # KTO: the policy on the examples and on their KL (mismatched) completions, and the reference on both
    assert forwards == {"sft": (1, 0), "dpo": (2, 1), "orpo": (1, 0), "simpo": (1, 0), "kto": (4, 2)}
    for method, row in table.items():
        assert row["reference_free"] == (row["reference_forwards_per_step"] == 0), method
        assert row["examples_per_s"] > 0 and row["peak_rss_mb"] > 0


def test_pipeline_with_methods_puts_them_in_the_delta_pq_table_and_the_report(tiny_model_dir, tmp_path):
    """scripts/pipeline.sh for real on the tiny model, METHODS="orpo kto": trained, judged, tabled, reported."""
    root = tmp_path / "root"
    env = clean_env(MODEL=str(tiny_model_dir), ROOT=str(root), METHODS="orpo kto", OMP_NUM_THREADS="1")
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "pipeline.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (root / "judge" / "delta_pq_table.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("| ")]
    assert rows == ["dpo-chosen-gold-chosen", "kto-chosen-gold-chosen", "orpo-chosen-gold-chosen"]
    nickname = tiny_model_dir.name
    for method in ("orpo", "kto"):
        summary = json.loads(
            (
                root
                / "models"
                / "Sample"
                / nickname
                / f"{method}_chosen"
                / "adapter"
                / "training_summary.json"
            ).read_text()
        )
        starts = "sft_chosen/merged" if method == "kto" else str(tiny_model_dir.resolve())
        assert summary["base_model"].endswith(starts)
    page = layout.report_path(root).read_text(encoding="utf-8")
    for method in ("orpo", "kto"):
        assert f"{method}_Persona(training_type=chosen, inference_type=gold-chosen).jsonl" in page
        assert f"dpo-chosen-none_vs_{method}-chosen-gold-chosen" in page
