"""Ask a persona-tailored model questions as a user you describe, in the prompt format it was trained on.

Examples::

    # one answer from the sample run's merged SFT model
    python -m persona_tailoring.model.chat --persona "I am a busy nurse who wants short answers" \\
        --prompt "How do I fall asleep after a night shift?"

    # interactive (one prompt per line; an empty line or Ctrl-D ends), another model and dataset primer
    python -m persona_tailoring.model.chat --model models/persona-tailoring/Mnemonic/llama-3.1-8b/dpo_chosen/merged \\
        --dataset_name Mnemonic --persona "The user is a visual learner who prefers vivid images."

    # a merged model served by vLLM (vllm serve <merged folder>)
    python -m persona_tailoring.model.chat --backend open_ai --base_url http://localhost:8000/v1 \\
        --model <merged folder> --persona "..." --prompt "..."
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from persona_core import layout
from persona_core.cli import parse
from persona_core.errors import UsageError, run_cli
from persona_core.secrets import load_env
from persona_tailoring.model import config
from persona_tailoring.model.arguments import Backend, GeneratorArguments, TailoredGenerationArguments
from persona_tailoring.model.generate import generate_texts, load_generator
from persona_tailoring.model.templates import THIRD_PERSON_START, PromptArguments, PromptStyle

SAMPLE_MODEL = str(
    layout.PTModelDirs.of(
        config.model_save_dir,
        config.dataset_name,
        config.model_nickname or layout.model_nickname(config.base_model_name),
        "sft",
        "chosen",
    ).merged
)
_FIRST_PERSON = re.compile(r"^(?:I am|I'm|Im)\s+", re.IGNORECASE)


@dataclass
class ChatArguments:
    """Who asks what, of which model."""

    persona: str = field(
        default="", metadata={"help": "Who is asking, e.g. 'I am a busy nurse who wants short answers'."}
    )
    prompt: str | None = field(
        default=None, metadata={"help": "The question; omit it to chat interactively."}
    )
    model: str = field(default=SAMPLE_MODEL, metadata={"help": "A merged model folder (or the served name)."})

    def check(self) -> None:
        if not self.persona.strip():
            raise UsageError('pass --persona, e.g. --persona "I am a busy nurse who wants short answers"')
        if self.prompt is not None and not self.prompt.strip():
            raise UsageError("--prompt is empty: pass a question, or omit --prompt to chat interactively")


def check_together(chat: ChatArguments, generator: GeneratorArguments) -> None:
    """A local model must exist before anything loads; a server's is its own."""
    looks_local = chat.model.startswith((".", "/", "~")) or chat.model.count("/") > 1
    if generator.backend != Backend.open_ai and looks_local and not Path(chat.model).expanduser().exists():
        raise UsageError(
            f"no model in '{chat.model}': train and merge one (python -m persona_tailoring.model.run_model "
            "--method sft --training_type chosen --stage all) or pass --model"
        )


def third_person(persona: str) -> str:
    """'I am a nurse who ...' -> 'The user is a nurse who ...', the form personas take in PT training data."""
    persona = " ".join(persona.split())
    return _FIRST_PERSON.sub(THIRD_PERSON_START, persona, count=1)


def model_input(style: PromptStyle, prompt: str, persona: str) -> tuple[str, str]:
    """(text up to ``Response:``, primer the answer starts with), exactly as in PT training and inference."""
    prefix = style.prefix_for(prompt)
    return style.model_input(prompt, third_person(persona)), f" {prefix}" if prefix else ""


def answer(llm, generation, style: PromptStyle, prompt: str, persona: str) -> str:
    text, prefill = model_input(style, prompt.strip(), persona)
    return generate_texts(llm, [text], generation, [prefill])[0]


def main(argv: list[str] | None = None) -> int:
    groups = (ChatArguments, PromptArguments, GeneratorArguments, TailoredGenerationArguments)
    chat, prompt_format, generator, generation = parse(groups, argv, description=__doc__.split("\n\n")[0])
    check_together(chat, generator)
    load_env()
    style = prompt_format.style()
    llm = load_generator(chat.model, generator)
    if chat.prompt is not None:
        print(answer(llm, generation.generation(), style, chat.prompt, chat.persona))
        return 0
    print(f"persona: {third_person(chat.persona)}\n(one prompt per line; an empty line or Ctrl-D ends)")
    turns = 0
    while True:
        try:
            prompt = input("prompt> ").strip()
        except EOFError:
            break
        if not prompt:
            break
        print(answer(llm, generation.generation(), style, prompt, chat.persona))
        turns += 1
    print(f"{turns} answer(s) from {chat.model}")
    return 0


if __name__ == "__main__":
    run_cli(main)
