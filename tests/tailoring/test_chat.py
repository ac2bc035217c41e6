"""chat.py: a user-written persona in the PT training format, answered by a real (tiny) model."""

import io

import pytest

from persona_core.errors import run_cli
from persona_tailoring.model import arguments, chat, generate
from persona_tailoring.model.templates import PromptStyle, TrainingType


def test_user_persona_takes_the_training_format():
    trained = PromptStyle.for_run(TrainingType.chosen, "Sample")
    text, prefill = chat.model_input(
        trained, "How do I sleep after nights?", "I am a busy nurse who wants short answers"
    )
    assert (
        text
        == "Prompt: How do I sleep after nights?\nPersona: The user is a busy nurse who wants short answers\nResponse:"
    )
    assert prefill == ""
    untrained = PromptStyle.for_run(TrainingType.none, "Mnemonic")
    text, prefill = chat.model_input(untrained, "negligible", "I'm  a visual learner")
    assert (
        text == "Prompt: negligible I am a visual learner\nResponse:" and prefill == " Negligible sounds like"
    )


def expected_answer(model_dir, prompt: str) -> str:
    """What the tiny model says, greedily, to ``prompt`` in the training format for the test's persona."""
    style = PromptStyle.for_run(TrainingType.chosen, "Sample")
    text = style.model_input(prompt, "The user is a beginner cook")
    llm = generate.load_generator(str(model_dir))
    return generate.generate_texts(llm, [text], arguments.tailored_generation(max_tokens=5))[0]


def test_one_answer_and_an_interactive_session(tiny_model_dir, capsys, monkeypatch):
    base = ["--model", str(tiny_model_dir), "--persona", "I am a beginner cook", "--max_new_tokens", "5"]
    boil, fry = (expected_answer(tiny_model_dir, q) for q in ("How do I boil an egg?", "And fry one?"))
    assert boil.strip()
    assert chat.main([*base, "--prompt", "How do I boil an egg?"]) == 0
    assert capsys.readouterr().out.strip() == boil
    monkeypatch.setattr("sys.stdin", io.StringIO("How do I boil an egg?\nAnd fry one?\n\n"))
    assert chat.main(base) == 0
    lines = capsys.readouterr().out.replace("prompt> ", "").splitlines()
    assert lines[0] == "persona: The user is a beginner cook"
    assert lines[2:4] == [boil, fry] and lines[4].startswith("2 answer(s)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prompt", "hi"], "pass --persona"),
        (["--persona", "I am x", "--model", "./no/such/model"], "no model in"),
        (["--persona", "I am x", "--training_type", "both"], "chosen, rejected, all, none"),
    ],
)
def test_bad_input_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: chat.main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
