"""The paper's protocol: every setting the authors' released code fixed, per script, with the file it comes from.

``--protocol paper`` (``PROTOCOL=paper`` in the bash scripts) puts these values in front of the command line, so a
flag given explicitly still wins (argparse keeps the last value of a flag). Settings the authors' code leaves open
keep the toolkit's defaults. Sources are files of the authors' repository (``AUTHORS_REPOSITORY``) or of the
``prometheus-eval`` package their judge runs; docs/FIDELITY.md lists every departure and why.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import Enum

AUTHORS_REPOSITORY = "nbalepur/persona-anon"
PERSONA_INFERENCE_README = "README.md (persona inference arguments, sample values)"
SFT_TRAIN = "persona_tailoring/model/SFT/train.py"
DPO_TRAIN = "persona_tailoring/model/DPO/train.py"
SFT_INFERENCE = "persona_tailoring/model/SFT/inference.py"
AUTHORS_JUDGE = "persona_tailoring/evaluation/run_judge.py"
PROMETHEUS_EVAL = (
    "prometheus-eval: utils.py batch_completions_with_retries (its defaults: the authors pass no params)"
)


class Protocol(str, Enum):
    toolkit = "toolkit"
    paper = "paper"


@dataclass
class ProtocolArguments:
    protocol: Protocol = field(
        default=Protocol.toolkit,
        metadata={
            "help": "paper: the authors' settings for everything this script's paper run fixed (docs/FIDELITY.md); "
            "flags given explicitly still override them. toolkit: the defaults shown here."
        },
    )


@dataclass(frozen=True)
class Setting:
    flag: str
    value: tuple[str, ...]
    source: str


def _setting(flag: str, *value: str, source: str) -> Setting:
    return Setting(flag, value, source)


PERSONA_INFERENCE = (
    _setting("--min_tokens", "5", source=PERSONA_INFERENCE_README),
    _setting("--max_tokens", "200", source=PERSONA_INFERENCE_README),
    _setting("--stop_token", "\nPrompt:", source=PERSONA_INFERENCE_README),
    _setting(
        "--persona_prefix",
        "The user is",
        source="persona_inference/prompts/persona_inference/*.txt (every persona starts 'The user is')",
    ),
    _setting(
        "--verdict",
        "text",
        source="persona_inference/evaluation/accuracy_plot.py (the judges' answers are read from their text)",
    ),
    _setting(
        "--judge_max_tokens",
        "200",
        source="persona_inference/model/run_model.py (one generation setting for every experiment)",
    ),
    _setting(
        "--prefs_question",
        "better",
        source="persona_inference/model/prompt.py, persona_inference/prompts/persona_prefs/SHP.txt",
    ),
)
"""``persona_inference.model.run_model``."""

TAILORED_GENERATION = (
    _setting("--min_tokens", "10", source=SFT_INFERENCE),
    _setting("--max_tokens", "512", source=SFT_INFERENCE),
    _setting("--temperature", "0.0", source=f"{SFT_INFERENCE} (greedy: do_sample=False)"),
    _setting(
        "--lora_target_modules",
        "peft_default",
        source=f"{SFT_TRAIN}, {DPO_TRAIN} (LoraConfig names no target modules: PEFT's default, q_proj/v_proj on Llama)",
    ),
)
"""``persona_tailoring.model.run_model`` (its training flags are ``TRAINING`` below)."""

TRAINING = {
    "sft": {
        "per_device_train_batch_size": (1, SFT_TRAIN),
        "per_device_eval_batch_size": (1, SFT_TRAIN),
        "gradient_accumulation_steps": (1, f"{SFT_TRAIN} (not set: the Trainer's 1)"),
        "completion_only_loss": (False, f"{SFT_TRAIN} (dataset_text_field: loss on the whole text)"),
        "learning_rate": (2e-5, SFT_TRAIN),
        "num_train_epochs": (10, SFT_TRAIN),
        "max_length": (512, f"{SFT_TRAIN} (max_seq_length)"),
        "save_total_limit": (2, SFT_TRAIN),
    },
    "dpo": {
        "per_device_train_batch_size": (1, DPO_TRAIN),
        "per_device_eval_batch_size": (8, f"{DPO_TRAIN} (not set: the Trainer's 8)"),
        "gradient_accumulation_steps": (1, f"{DPO_TRAIN} (not set: the Trainer's 1)"),
        "learning_rate": (5e-6, DPO_TRAIN),
        "beta": (0.1, DPO_TRAIN),
        "num_train_epochs": (10, DPO_TRAIN),
        "max_length": (512, DPO_TRAIN),
        "save_total_limit": (2, DPO_TRAIN),
    },
}
"""SFTConfig/DPOConfig fields of the paper's runs, set as the training parser's defaults under ``--protocol paper``.
Both evaluate each epoch and keep the best checkpoint by eval loss, as the toolkit always does with a validation
split."""

JUDGE = (
    _setting(
        "--verdict",
        "text",
        source=f"{AUTHORS_JUDGE} (prometheus-eval relative_grade: feedback, then verdict)",
    ),
    _setting("--temperature", "1.0", source=PROMETHEUS_EVAL),
    _setting("--top_p", "0.9", source=PROMETHEUS_EVAL),
    _setting("--repetition_penalty", "1.03", source=PROMETHEUS_EVAL),
    _setting("--max_tokens", "1024", source=PROMETHEUS_EVAL),
    _setting("--verdict_retries", "10", source=PROMETHEUS_EVAL),
    _setting(
        "--merge_system_prompt",
        source="prometheus-eval: judge.py _get_conversation_prompt (on vLLM, Mistral's template: the system message "
        "goes inside the first user turn)",
    ),
    _setting(
        "--response_view",
        "paper",
        source=f"{AUTHORS_JUDGE} (responses with 'Prompt:' and end-of-text removed, nothing cut, no primer)",
    ),
)
"""``persona_tailoring.evaluation.run_judge``."""

SCRIPTS = {
    "persona_inference.model.run_model": PERSONA_INFERENCE,
    "persona_tailoring.model.run_model": TAILORED_GENERATION,
    "persona_tailoring.evaluation.run_judge": JUDGE,
}


def requested(argv: list[str]) -> bool:
    """Whether ``argv`` asks for ``--protocol paper`` (either spelling); the parser checks the value itself."""
    for index, item in enumerate(argv):
        if item == "--protocol" and index + 1 < len(argv) and argv[index + 1] == Protocol.paper.value:
            return True
        if item == f"--protocol={Protocol.paper.value}":
            return True
    return False


def apply(script: str, argv: list[str] | None = None) -> list[str]:
    """``argv`` (default: the command line) with ``script``'s paper settings in front when ``--protocol paper`` is
    given, so explicit flags, which come later, override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not requested(argv):
        return argv
    front: list[str] = []
    for setting in SCRIPTS[script]:
        front += [setting.flag, *setting.value]
    return front + argv


def training_defaults(protocol: Protocol, method: str) -> dict:
    """The paper's SFTConfig/DPOConfig values of ``method`` under ``--protocol paper``; none otherwise (or for a
    method the paper did not train)."""
    if protocol != Protocol.paper:
        return {}
    return {name: value for name, (value, _) in TRAINING.get(method, {}).items()}


def table() -> list[dict]:
    """Every paper setting as rows of (script, setting, value, source), for docs and reports."""
    rows = []
    for script, settings in SCRIPTS.items():
        for setting in settings:
            rows.append(
                {
                    "script": script,
                    "setting": setting.flag,
                    "value": " ".join(setting.value),
                    "source": setting.source,
                }
            )
    for method, values in TRAINING.items():
        for name, (value, source) in values.items():
            rows.append(
                {
                    "script": f"persona_tailoring.model.run_model --method {method}",
                    "setting": f"--{name}",
                    "value": str(value),
                    "source": source,
                }
            )
    return rows


if __name__ == "__main__":
    for row in table():
        where = "" if row["source"].startswith("prometheus-eval") else f"{AUTHORS_REPOSITORY}: "
        print(f"{row['script']:<48} {row['setting']:<30} {row['value']!r:<16} {where}{row['source']}")
