"""Every script's command line: no flag abbreviations, clean --help texts, and bad input caught at once with one
``error:`` line (keys as flags, a missing dataset path, a split a file cannot have, a dry run without its key)."""

import dataclasses
import importlib
import re

import pytest

from persona_core.cli import parse, public_args
from persona_core.errors import UsageError, run_cli
from tests.helpers import write_preferences

SCRIPTS = [
    "persona_inference.model.run_model",
    "persona_inference.model.build_augmented_dataset",
    "persona_inference.model.build_tailoring_dataset",
    "persona_inference.evaluation.accuracy_plot",
    "persona_inference.evaluation.persona_prefs_plot",
    "persona_inference.evaluation.word_saliency",
    "persona_tailoring.model.run_model",
    "persona_tailoring.model.chat",
    "persona_tailoring.evaluation.run_judge",
    "persona_tailoring.evaluation.win_rate",
    "persona_tailoring.evaluation.report",
    "persona_core.layout_cli",
    "bench.engines",
    "bench.judge_verdicts",
    "bench.pi_throughput",
    "bench.pt_throughput",
    "bench.random_model",
]


def help_text(module: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def fails_with_one_line(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("module", SCRIPTS)
def test_no_flag_is_abbreviated(module, capsys):
    """A prefix of each script's longest flag is refused, never taken for the flag (a typo lands nowhere)."""
    text = help_text(module, capsys)
    flag = max(re.findall(r"--[a-z][a-z0-9_]{5,}", text), key=len, default=None)
    argv = [flag[:-2], "1"] if flag else ["pipeline", "--roo", "r", "--dataset", "d"]  # layout: subcommands
    argv += ["--pi_nickname", "p", "--pt_nickname", "q"] if not flag else []
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    refused = (
        "unrecognized arguments",
        "not used by the HfArgumentParser",
        "required: --root",
    )  # ours, TRL's, layout's
    assert any(reason in err for reason in refused), err


def test_a_training_flag_prefix_is_refused(tmp_path, capsys, isolated):
    """``--num_train_epoch`` is not taken for SFTConfig's ``--num_train_epochs``."""
    from persona_tailoring.model import run_model

    argv = ["--method", "sft", "--stage", "train", "--num_train_epoch", "1"]
    argv += ["--model_save_dir", str(tmp_path / "m"), "--results_save_dir", str(tmp_path / "r")]
    line = fails_with_one_line(run_model.main, argv, capsys)
    assert "'--num_train_epoch'" in line and not (tmp_path / "m").exists()


@pytest.mark.parametrize("module", SCRIPTS)
def test_help_is_clean(module, capsys):
    text = " ".join(help_text(module, capsys).split())
    assert not re.search(r"--no-(no_|help_)", text)
    assert not re.search(r"default[^()]*\)\.? \(default:", text), "a default said twice"
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "``" not in text and "PromptType" not in text and not re.search(r"issue \d", text)


def test_chat_help_does_not_speak_of_stages(capsys):
    assert "--stage" not in help_text("persona_tailoring.model.chat", capsys)


def test_off_switches_still_accept_their_no_form():
    from persona_core.cli import parse
    from persona_inference.model.arguments import DataArguments
    from persona_inference.model.run_model import GROUPS

    assert parse(GROUPS, [])[1].dry_run is False
    assert parse(GROUPS, ["--dry_run"])[1].dry_run is True
    assert parse((DataArguments,), ["--no-skip_bad_rows"])[0].skip_bad_rows is False


@pytest.mark.parametrize(
    ("flag", "variable"),
    [
        ("--open_ai_token", "OPEN_AI_TOKEN"),
        ("--hf_write_token", "HF_WRITE_TOKEN"),
        ("--hf_read_token", "HF_READ_TOKEN"),
        ("--anthropic_token", "ANTHROPIC_TOKEN"),
        ("--cohere_token", "COHERE_TOKEN"),
        ("--wandb_key", "WANDB_KEY"),
        ("--openai_api_key", "OPENAI_API_KEY"),
    ],
)
def test_key_flags_point_to_dotenv(flag, variable, capsys):
    from persona_inference.model import run_model
    from persona_tailoring.model import run_model as pt_run_model

    for main in (run_model.main, pt_run_model.main):
        line = fails_with_one_line(main, [flag, "sk-secret"], capsys)
        assert f"set {variable}=" in line and ".env" in line and "sk-secret" not in line
    line = fails_with_one_line(run_model.main, [f"{flag}=sk-secret"], capsys)
    assert "sk-secret" not in line


def test_the_stop_token_flag_is_no_key():
    from persona_core.secrets import refuse_key_flags

    refuse_key_flags(["--stop_token", "\n", "--pad_token", "x", "--eos_token", "y"])


def test_a_missing_path_like_dataset_never_asks_the_hub(tmp_path, capsys, isolated, monkeypatch):
    import datasets

    from persona_inference.model import run_model

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("asked the Hub"))
    for name in ("data/nope.jsonl", "nope.parquet", "./nope", "a/b/c"):
        (tmp_path / "data").mkdir(exist_ok=True)
        line = fails_with_one_line(run_model.main, ["--dataset_name", name, "--dry_run"], capsys)
        assert f"dataset path '{name}' does not exist" in line


def test_a_split_a_file_cannot_have(tmp_path, capsys, isolated):
    from persona_inference.model import run_model

    data = write_preferences(tmp_path / "prefs.jsonl", 2)
    line = fails_with_one_line(run_model.main, ["--dataset_name", str(data), "--split", "trian"], capsys)
    assert "--split trian" in line and "one split, 'train'" in line


def test_an_unknown_inference_split_warns_with_the_known_names(tmp_path, capsys, isolated):
    from persona_inference.model import run_model

    data = write_preferences(tmp_path / "prefs.jsonl", 2)
    argv = ["--dataset_name", str(data), "--inference_split", "BeaverTail", "--dry_run"]
    assert run_model.main(argv) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "did you mean the template beavertails.txt" in warning[0]
    assert "generic.txt" in warning[0] and "anthropic_hhh, beavertails, mnemonic, shp" in warning[0]


@pytest.mark.parametrize(
    ("model_type", "variable"),
    [("open_ai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"), ("cohere", "CO_API_KEY")],
)
def test_a_dry_run_checks_the_key(model_type, variable, tmp_path, capsys, isolated):
    from persona_inference.model import run_model

    argv = ["--model_type", model_type, "--model_name", "m", "--dry_run"]
    assert variable in fails_with_one_line(run_model.main, argv, capsys)
    isolated.setenv(variable, "k")
    assert run_model.main(argv) == 0


def test_the_suggested_command_names_the_api_backend(tmp_path, capsys, isolated):
    from persona_inference.model import build_augmented_dataset

    line = fails_with_one_line(build_augmented_dataset.main, ["--model", "gpt-4o-mini"], capsys)
    assert "--model_name gpt-4o-mini --model_type open_ai" in line


@dataclasses.dataclass
class Alpha:
    """Alpha flags."""

    size: int = 1

    def check(self) -> None:
        if self.size < 0:
            raise UsageError(f"--size must be 0 or more (got {self.size})")


@dataclasses.dataclass
class Beta:
    """Beta flags."""

    name: str = "b"
    tags: list[str] = dataclasses.field(default_factory=list)


def test_groups_parse_into_one_instance_each_in_order_and_check_themselves(capsys):
    alpha, beta = parse((Alpha, Beta), ["--name", "x", "--size", "3", "--tags", "p", "q"])
    assert (alpha, beta) == (Alpha(size=3), Beta(name="x", tags=["p", "q"]))
    with pytest.raises(UsageError, match="--size must be 0 or more"):
        parse((Alpha, Beta), ["--size", "-1"])
    with pytest.raises(SystemExit):
        parse((Alpha, Beta), ["--sizes", "3"])
    assert "unrecognized arguments: --sizes 3" in capsys.readouterr().err
    *groups, rest = parse((Alpha,), ["--size", "2", "--learning_rate", "1e-3"], return_remaining=True)
    assert groups == [Alpha(size=2)] and rest == ["--learning_rate", "1e-3"]
    assert public_args(alpha, beta) == {"size": 3, "name": "x", "tags": ["p", "q"]}


def test_help_lists_each_group_under_its_title(capsys):
    with pytest.raises(SystemExit):
        parse((Alpha, Beta), ["--help"])
    sections = capsys.readouterr().out.split("\n\n")
    assert "Alpha flags:\n  --size SIZE" in sections
    assert "Beta flags:\n  --name NAME\n  --tags TAGS [TAGS ...]\n" in sections
