"""The one place that decides which columns a run uses and how a (prompt, persona, response) becomes text.

Training (SFT, DPO, ORPO, SimPO, KTO), few-shot demonstrations and inference all call these functions, so a model always sees
at test time exactly the format it was trained on. The formats match the paper's released outputs:

* persona-trained models: ``Prompt: {prompt}\\nPersona: {persona}\\nResponse:``
* models trained without personas get the persona in first person after the prompt:
  ``Prompt: {prompt} I am ...\\nResponse:`` (only a leading "The user is" is rewritten, as in the paper)
* no persona at all: ``Prompt: {prompt}\\nResponse:``

Mnemonic-style datasets prime the response (``Response: Negligible sounds like``); in training, the primer
is the start of the response, so only the rest of it carries the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from persona_core.errors import UsageError
from persona_core.layout import GOLD_PERSONA_COLUMNS, RETRIEVED_PERSONA_COLUMNS
from persona_core.prompts import dataset_slug, fill
from persona_tailoring.model import config

STOP_STRINGS = ["\nPrompt:"]
EXAMPLE_SEPARATOR = "\n\n"
THIRD_PERSON_START = "The user is "
FIRST_PERSON_START = "I am "


class Method(str, Enum):
    """The tailoring method (``ModelType`` in the paper's code; here that word names a backend)."""

    fewshot = "fewshot"
    sft = "sft"
    dpo = "dpo"
    orpo = "orpo"
    simpo = "simpo"
    kto = "kto"


class TrainingType(str, Enum):
    """Which persona (and, for DPO, which preference direction) a model is trained on."""

    chosen = "chosen"
    rejected = "rejected"
    all = "all"
    none = "none"


class InferenceType(str, Enum):
    """Which persona a trained model is given at test time."""

    gold_chosen = "gold-chosen"
    gold_rejected = "gold-rejected"
    retr_chosen = "retr-chosen"
    retr_rejected = "retr-rejected"
    system = "system"
    none = "none"


INFERENCE_COLUMNS = {
    InferenceType.gold_chosen: GOLD_PERSONA_COLUMNS["chosen"],
    InferenceType.gold_rejected: GOLD_PERSONA_COLUMNS["rejected"],
    InferenceType.retr_chosen: RETRIEVED_PERSONA_COLUMNS["chosen"],
    InferenceType.retr_rejected: RETRIEVED_PERSONA_COLUMNS["rejected"],
}

# (persona column, preferred response column, dispreferred response column) per training side. With a
# rejected persona, the rejected response is the one that user prefers.
_CHOSEN_SIDE = (GOLD_PERSONA_COLUMNS["chosen"], "chosen", "rejected")
_REJECTED_SIDE = (GOLD_PERSONA_COLUMNS["rejected"], "rejected", "chosen")
TRAINING_SIDES = {
    TrainingType.chosen: [_CHOSEN_SIDE],
    TrainingType.rejected: [_REJECTED_SIDE],
    TrainingType.all: [_CHOSEN_SIDE, _REJECTED_SIDE],
    TrainingType.none: [(None, "chosen", "rejected")],
}

# One fixed persona per dataset for --inference_type system: in meaning the authors' system personas (their
# persona_tailoring/model/data_loader.py), in the toolkit's words. The authors give none for other datasets.
SYSTEM_PERSONAS = {
    "beavertails": "The user is thorough and prefers responses that look at the question from several different sides.",
    "anthropic_hhh": "The user cares about results, solutions and facts, and prefers responses that look at the request from several sides.",
    "mnemonic": "The user prefers mnemonics built step by step through an indirect link that captures what the word means.",
}
GENERIC_SYSTEM_PERSONA = (
    "The user is thorough and prefers responses that look at the prompt from several different sides."
)

# Response primers (``{term}``: the prompt as given, ``{Term}``: title-cased) by dataset.
RESPONSE_PREFIXES = {"mnemonic": "{Term} sounds like"}


@dataclass(frozen=True)
class PromptStyle:
    """How prompts look for one model: whether it was trained with personas, and the dataset's response primer."""

    persona_trained: bool
    response_prefix: str = ""

    @classmethod
    def for_run(
        cls, training_type: TrainingType, dataset_name: str, response_prefix: str | None = None
    ) -> PromptStyle:
        """``response_prefix=None`` picks the dataset's default primer (Mnemonic: ``{Term} sounds like``)."""
        if response_prefix is None:
            response_prefix = RESPONSE_PREFIXES.get(dataset_slug(dataset_name), "")
        return cls(persona_trained=training_type != TrainingType.none, response_prefix=response_prefix)

    def prefix_for(self, prompt: str) -> str:
        """The primer for ``prompt`` ('' when the dataset has none)."""
        if not self.response_prefix:
            return ""
        return fill(self.response_prefix, term=prompt, Term=prompt.title())

    def model_input(self, prompt: str, persona: str | None) -> str:
        """The text up to and including ``Response:`` (without the primer)."""
        if not persona:
            return f"Prompt: {prompt}\nResponse:"
        if self.persona_trained:
            return f"Prompt: {prompt}\nPersona: {persona}\nResponse:"
        return f"Prompt: {prompt} {first_person(persona)}\nResponse:"

    def split_response(self, prompt: str, responses: list[str]) -> tuple[str, list[str]]:
        """Split training responses into the primer (kept in the prompt, no loss) and what the model learns.

        The primer moves into the prompt only when every response starts with it (DPO pairs share a prompt);
        the full text is ``Response: `` + response either way.
        """
        prefix = self.prefix_for(prompt)
        if prefix and all(r.lower().startswith(prefix.lower()) for r in responses):
            return " " + responses[0][: len(prefix)], [r[len(prefix) :] for r in responses]
        return "", [" " + r for r in responses]


@dataclass
class PromptArguments:
    """The prompt format a model was trained on: shared by ``run_model`` and ``chat``."""

    training_type: TrainingType = field(
        default=TrainingType.chosen,
        metadata={
            "help": "Personas to train on: chosen, rejected, all (both), none (no persona, inline in chat)."
        },
    )
    dataset_name: str = field(
        default=config.dataset_name,
        metadata={"help": "Dataset name (Hub config; results folder; system persona; primer)."},
    )
    response_prefix: str | None = field(
        default=None,
        metadata={
            "help": "Response primer ({term}/{Term}: the prompt / title-cased); default per dataset, '' for none."
        },
    )

    def style(self) -> PromptStyle:
        return PromptStyle.for_run(self.training_type, self.dataset_name, self.response_prefix)


def first_person(persona: str) -> str:
    """'The user is a cook who prefers ...' -> 'I am a cook who prefers ...' (other personas are kept as is)."""
    if persona.startswith(THIRD_PERSON_START):
        return FIRST_PERSON_START + persona[len(THIRD_PERSON_START) :]
    return persona


def system_persona(dataset_name: str, override: str | None = None) -> str:
    return override or SYSTEM_PERSONAS.get(dataset_slug(dataset_name), GENERIC_SYSTEM_PERSONA)


def require_filled(dataset, column: str, split: str, hint: str) -> None:
    """A missing or empty column is an error (e.g. the paper's Mnemonic test split has no gold personas)."""
    if column not in dataset.column_names:
        raise UsageError(
            f"split '{split}' has no column '{column}' (has: {', '.join(dataset.column_names)}); {hint}"
        )
    empty = sum(1 for value in dataset[column] if not (value or "").strip())
    if empty:
        raise UsageError(
            f"column '{column}' is empty in {empty} of {len(dataset)} rows of split '{split}'; {hint}"
        )


def sft_examples(dataset, training_type: TrainingType, style: PromptStyle, split: str) -> list[dict]:
    """Prompt-completion rows for SFT (``all`` yields one row per persona side)."""
    return [
        {"prompt": prompt, "completion": completions[0]}
        for prompt, completions in _training_rows(dataset, training_type, style, split, pairs=False)
    ]


def dpo_examples(dataset, training_type: TrainingType, style: PromptStyle, split: str) -> list[dict]:
    """Preference rows for DPO; with a rejected persona the rejected response is the preferred one."""
    return [
        {"prompt": prompt, "chosen": completions[0], "rejected": completions[1]}
        for prompt, completions in _training_rows(dataset, training_type, style, split, pairs=True)
    ]


def kto_examples(dataset, training_type: TrainingType, style: PromptStyle, split: str) -> list[dict]:
    """Unpaired rows for KTO: each persona side of ``training_type`` gives, per preference row, its preferred response
    as desirable and the other as undesirable (with a rejected persona, the rejected response is the desirable one).

    Built in two sweeps per side with alternating labels (row 0 desirable, row 1 undesirable, ..., then the
    opposite), so every batch mixes both labels and neighbours, whose completions KTO's KL estimate borrows, come
    from different prompts.
    """
    pairs = _training_rows(dataset, training_type, style, split, pairs=True)
    sides = len(TRAINING_SIDES[training_type])
    rows = []
    for side in range(sides):
        side_pairs = pairs[side::sides]
        for sweep in (0, 1):
            for index, (prompt, (preferred, dispreferred)) in enumerate(side_pairs):
                desirable = (index + sweep) % 2 == 0
                completion = preferred if desirable else dispreferred
                rows.append({"prompt": prompt, "completion": completion, "label": desirable})
    return rows


def _training_rows(dataset, training_type: TrainingType, style: PromptStyle, split: str, pairs: bool):
    sides = TRAINING_SIDES[training_type]
    hint = "fill it, or pick another --training_type"
    for persona_column, preferred, dispreferred in sides:
        for column in (persona_column, preferred, dispreferred if pairs else None):
            if column:
                require_filled(dataset, column, split, hint)
    rows = []
    for row in dataset:
        for persona_column, preferred, dispreferred in sides:
            persona = row[persona_column] if persona_column else None
            responses = [row[preferred], row[dispreferred]] if pairs else [row[preferred]]
            primer, completions = style.split_response(row["prompt"], responses)
            rows.append((style.model_input(row["prompt"], persona) + primer, completions))
    return rows


def fewshot_demonstrations(dataset, training_type: TrainingType, style: PromptStyle) -> str:
    """The few-shot split formatted exactly like SFT examples, each followed by a blank line."""
    examples = sft_examples(dataset, training_type, style, "fewshot")
    return "".join(e["prompt"] + e["completion"] + EXAMPLE_SEPARATOR for e in examples)


def inference_personas(
    dataset, inference_type: InferenceType, dataset_name: str, split: str, system_override: str | None = None
) -> list[str]:
    """The persona of each test row for ``inference_type`` ('' for ``none``)."""
    if inference_type == InferenceType.none:
        return [""] * len(dataset)
    if inference_type == InferenceType.system:
        return [system_persona(dataset_name, system_override)] * len(dataset)
    column = INFERENCE_COLUMNS[inference_type]
    require_filled(
        dataset, column, split, "use another --inference_type (e.g. retr-chosen) or fill the column"
    )
    return list(dataset[column])
