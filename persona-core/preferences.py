"""Preference data in the ecosystem's formats, detected from the data and read as (prompt, chosen, rejected) text.

Formats (``PreferenceFormat``), told apart by which columns exist and what their values are:

* ``standard``: prompt, chosen, rejected strings (the paper's). Rows are used verbatim, so their ids never change.
* ``conversational``: prompt, chosen, rejected as lists of ``{"role", "content"}`` messages (TRL's explicit-prompt
  form, e.g. trl-lib/ultrafeedback_binarized); prompts may be multi-turn.
* ``implicit``: no prompt column; chosen and rejected hold whole conversations, as message lists (TRL's
  implicit-prompt form, e.g. trl-lib/hh-rlhf-helpful-base) or as the ``"\\n\\nHuman: … \\n\\nAssistant: …"`` text
  of the original Anthropic/hh-rlhf release.
* ``ultrafeedback``: a prompt string beside whole conversations in chosen and rejected (the
  HuggingFaceH4/ultrafeedback_binarized shape); its score and id columns are kept, never required.

Every row of the last three becomes one conversation per side (prompt turns, then the response turns, unless
the response already repeats the prompt). Their shared prefix is the prompt and the last assistant turn of each
side is its response: TRL's ``extract_prompt`` takes the longest common prefix instead, which swallows the start
of two responses that begin alike. The prompt is rendered as text (``render_prompt``): one user turn is its
plain text (so a conversational row asks exactly what its standard form asks), several turns read
``User: …\\n\\nAssistant: …\\n\\nUser: …``. PI and the judges see that same text.

A bad row (a field missing, empty or of the wrong type, or two conversations that do not share a prompt) is named
with its index and the reason; ``skip_bad_rows`` reads the others and records the skipped ones. ``fit_prompts``
cuts prompts that would not fit a token budget from their oldest turns, whole turns only, and records each cut.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum

from persona_core.data import load_split
from persona_core.embedded import resolve_model_name
from persona_core.errors import UsageError
from persona_core.layout import PREFERENCE_COLUMNS, ROW_KEY_COLUMN, row_key

ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]*")
_SHOWN = 5  # bad rows named in one error line
TEXT, MESSAGES = "text", "messages"


class PreferenceFormat(str, Enum):
    standard = "standard"
    conversational = "conversational"
    implicit = "implicit"
    ultrafeedback = "ultrafeedback"


@dataclass(frozen=True)
class Columns:
    """The dataset's names for the prompt and the two responses (``rejected=None``: a prompt-completion split)."""

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str | None = "rejected"

    def sides(self) -> dict[str, str]:
        """``{standard name: dataset column}`` of the responses present."""
        return {
            side: column for side, column in (("chosen", self.chosen), ("rejected", self.rejected)) if column
        }


@dataclass(frozen=True)
class BadRow:
    row: int
    reason: str


class _Bad(Exception):
    """Why one row cannot be read."""


class Preferences(Sequence):
    """Normalized rows, indexable like a ``datasets.Dataset``: dicts whose prompt, chosen and rejected are text,
    with every other column of the row kept.

    ``source`` is the dataset as loaded and ``kept[i]`` the source index of row ``i``; ``turns[i]`` the prompt's
    messages (None for a standard row); ``skipped`` the bad rows left out; ``cut`` the prompts cut to fit a budget.
    """

    def __init__(self, source, columns: Columns, format: PreferenceFormat, rows, kept, turns, skipped):
        self.source, self.columns, self.format = source, columns, format
        self.rows: list[dict] = rows
        self.kept: list[int] = kept
        self.turns: list[list[dict] | None] = turns
        self.skipped: list[BadRow] = skipped
        self.cut: dict[int, dict] = {}

    def __getitem__(self, index):
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def source_rows(self):
        """The kept rows as loaded: every original column, in the input's own format."""
        return self.source.select(self.kept) if self.skipped else self.source

    def source_columns(self) -> dict[str, tuple[object, list]]:
        """``{standard name: (feature, values of the kept rows)}`` of the preference columns the input has, in its
        own format (standard rows: their text)."""
        import datasets

        if self.format == PreferenceFormat.standard:
            return {c: (datasets.Value("string"), [r[c] for r in self.rows]) for c in PREFERENCE_COLUMNS}
        names = {"prompt": self.columns.prompt, **self.columns.sides()}
        kept = self.source_rows()
        return {
            name: (kept.features[column], kept[column])
            for name, column in names.items()
            if column in kept.column_names
        }

    def to_dataset(self):
        """The normalized rows as a ``datasets.Dataset`` (persona tailoring reads it like a standard split)."""
        import datasets

        return datasets.Dataset.from_list(self.rows)

    def summary(self) -> dict:
        """What a run record keeps about the rows: their format, the rows skipped and the prompts cut."""
        return {
            "format": self.format.value,
            "source_rows": len(self.source),
            "skipped_rows": [asdict(bad) for bad in self.skipped],
            "cut_prompts": {str(row): cut for row, cut in self.cut.items()},
        }


def load_preferences(
    dataset_name: str,
    config: str | None = None,
    split: str = "train",
    cache_dir: str | None = None,
    columns: Columns = Columns(),
    skip_bad_rows: bool | None = False,
) -> Preferences:
    """Load one split (``persona_core.data.load_split``) and read it in whichever format it has."""
    dataset = load_split(dataset_name, config, split, cache_dir)
    return read_preferences(dataset, columns, f"dataset '{dataset_name}'", skip_bad_rows)


def read_preferences(
    dataset, columns: Columns = Columns(), where: str = "the dataset", skip_bad_rows: bool | None = False
) -> Preferences:
    """Detect the format, normalize every row, and refuse bad rows (one line naming them) unless skipping them.

    ``skip_bad_rows=None``: the caller has no ``--skip_bad_rows`` to offer, so the error does not suggest it.
    """
    fmt, kinds = detect_format(dataset, columns, where)
    names = {columns.prompt, *columns.sides().values()}
    rows, kept, turns, bad = [], [], [], []
    for index, record in enumerate(dataset.to_list()):
        try:
            prompt_turns, texts = _normalize(record, columns, kinds, fmt)
        except _Bad as reason:
            bad.append(BadRow(index, str(reason)))
            continue
        row = {c: v for c, v in record.items() if c not in names}
        row.update(texts)
        if prompt_turns is not None:
            row[ROW_KEY_COLUMN] = row_key(texts)
        rows.append(row)
        kept.append(index)
        turns.append(prompt_turns)
    if bad and not skip_bad_rows:
        raise UsageError(_bad_rows_message(bad, len(dataset), where, fmt, skip_bad_rows is not None))
    if not rows:
        raise UsageError(
            f"every one of the {len(dataset)} rows of {where} is bad ({bad[0].reason}, ...): fix them"
        )
    return Preferences(dataset, columns, fmt, rows, kept, turns, bad)


def _bad_rows_message(bad: list[BadRow], n: int, where: str, fmt: PreferenceFormat, can_skip: bool) -> str:
    shown = "; ".join(f"row {b.row}: {b.reason}" for b in bad[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    left = n - len(bad)
    skip = f", or pass --skip_bad_rows to run on the other {left} row{'s' * (left != 1)}" if can_skip else ""
    return (
        f"{len(bad)} of {n} rows of {where} ({fmt.value} format) cannot be read: {shown}{more}; "
        f"fix or remove {'it' if len(bad) == 1 else 'them'}{skip}"
    )


# --- detecting the format -----------------------------------------------------------------------------------------


def value_kind(value) -> str | None:
    """'text', 'messages' (a non-empty list of dicts), or None (missing, empty list, anything else)."""
    if isinstance(value, str):
        return TEXT
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return MESSAGES
    return None


def column_kind(dataset, column: str, flag: str, where: str) -> str:
    """What most rows of ``column`` hold; rows holding something else are bad rows, not another format."""
    counts = Counter(value_kind(v) for v in dataset[column] if v is not None and v != [])
    kind = max((k for k in counts if k), key=counts.get, default=None)
    if kind is None:
        example = next((v for v in dataset[column] if v is not None), None)
        raise UsageError(
            f"column '{column}' of {where} holds neither text nor lists of {{role, content}} messages "
            f"(e.g. {str(example)[:40]!r}): point --{flag} at the right column"
        )
    return kind


def is_hh_text(text: str) -> bool:
    """Whether ``text`` is an HH-RLHF conversation: it starts with a ``Human:`` turn."""
    return text.lstrip().startswith("Human:")


def detect_format(dataset, columns: Columns, where: str) -> tuple[PreferenceFormat, dict[str, str]]:
    """The format of ``dataset`` and the kind of each of its preference columns, from its columns and values."""
    names = dataset.column_names
    missing = [c for c in columns.sides().values() if c not in names]
    if missing:
        raise UsageError(
            f"{where} lacks column(s) {', '.join(missing)} (has: {', '.join(names)}); "
            "rename your columns, or name them with --chosen_column / --rejected_column"
        )
    if len(dataset) == 0:
        raise UsageError(f"{where} is empty: pass a dataset with at least one row")
    kinds = {
        side: column_kind(dataset, column, f"{side}_column", where)
        for side, column in columns.sides().items()
    }
    if len(set(kinds.values())) > 1:
        raise UsageError(
            f"in {where}, '{columns.chosen}' holds {kinds['chosen']} but '{columns.rejected}' holds "
            f"{kinds['rejected']}: both responses must have the same format"
        )
    responses = kinds["chosen"]
    if columns.prompt in names:
        kinds["prompt"] = column_kind(dataset, columns.prompt, "prompt_column", where)
        if kinds["prompt"] == MESSAGES:
            return PreferenceFormat.conversational, kinds
        return (PreferenceFormat.standard if responses == TEXT else PreferenceFormat.ultrafeedback), kinds
    first = next(v for v in dataset[columns.chosen] if value_kind(v) == responses)
    if responses == MESSAGES or is_hh_text(first):
        return PreferenceFormat.implicit, kinds
    raise UsageError(
        f"{where} lacks column(s) {columns.prompt} (has: {', '.join(names)}), and its responses are not whole "
        "conversations: rename your columns, or pass --prompt_column"
    )


# --- one row ------------------------------------------------------------------------------------------------------


def render_prompt(messages: list[dict]) -> str:
    """A prompt's turns as text: one user turn is its text alone; more read ``User: …\\n\\nAssistant: …``."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{ROLE_LABELS[m['role']]}: {m['content']}" for m in messages)


def parse_hh(text: str, column: str) -> list[dict]:
    """The turns of an HH-RLHF string, ``"\\n\\nHuman: …\\n\\nAssistant: …"``."""
    pieces = _HH_TURN.split(text.lstrip())
    if pieces[0].strip() or len(pieces) < 3:
        raise _Bad(f"{column} is not a '\\n\\nHuman: … \\n\\nAssistant: …' conversation")
    return [
        {"role": HH_ROLES[speaker], "content": content.strip()}
        for speaker, content in zip(pieces[1::2], pieces[2::2], strict=True)
    ]


def _type_name(value) -> str:
    return "text" if isinstance(value, str) else "a list" if isinstance(value, list) else type(value).__name__


def to_messages(value, column: str, kind: str, text_role: str | None) -> list[dict]:
    """A field as checked ``{role, content}`` messages; text becomes one ``text_role`` turn (None: HH-RLHF text)."""
    if value is None:
        raise _Bad(f"{column} is missing")
    if kind == TEXT:
        if not isinstance(value, str):
            raise _Bad(f"{column} is {_type_name(value)}, not text like the column's other rows")
        if not value.strip():
            raise _Bad(f"{column} is empty")
        messages = parse_hh(value, column) if text_role is None else [{"role": text_role, "content": value}]
    elif value == []:
        raise _Bad(f"{column} is empty")
    elif value_kind(value) != MESSAGES:
        raise _Bad(
            f"{column} is {_type_name(value)}, not a list of {{role, content}} messages like its other rows"
        )
    else:
        messages = value
    checked = []
    for number, message in enumerate(messages, 1):
        role, content = message.get("role"), message.get("content")
        if role not in ROLE_LABELS:
            raise _Bad(f"message {number} of {column} has role {role!r}, not system, user or assistant")
        if not isinstance(content, str):
            raise _Bad(f"message {number} of {column} has no text content")
        if not content.strip():
            raise _Bad(f"message {number} of {column} is empty")
        checked.append({"role": role, "content": content.strip()})
    return checked


def _conversation(prompt: list[dict], response: list[dict]) -> list[dict]:
    """One side's whole conversation; a response that already repeats the prompt (UltraFeedback) is not doubled."""
    if prompt and response[: len(prompt)] == prompt:
        return response
    return prompt + response


def _normalize(fields: dict, columns: Columns, kinds: dict, fmt: PreferenceFormat):
    """(prompt turns or None for a standard row, {prompt, chosen, rejected: text}) of one row."""
    if fmt == PreferenceFormat.standard:
        texts = {}
        for name, column in {"prompt": columns.prompt, **columns.sides()}.items():
            value = fields[column]
            if value is None:
                raise _Bad(f"{column} is missing")
            if not isinstance(value, str):
                raise _Bad(f"{column} is {_type_name(value)}, not text like the column's other rows")
            if not value.strip():
                raise _Bad(f"{column} is empty")
            texts[name] = value
        return None, texts
    prompt = (
        to_messages(fields[columns.prompt], columns.prompt, kinds["prompt"], "user")
        if "prompt" in kinds
        else []
    )
    text_role = None if fmt == PreferenceFormat.implicit else "assistant"
    conversations = {
        side: (column, _conversation(prompt, to_messages(fields[column], column, kinds[side], text_role)))
        for side, column in columns.sides().items()
    }
    for column, conversation in conversations.values():
        if conversation[-1]["role"] != "assistant":
            raise _Bad(f"{column} does not end with an assistant turn")
    turns = conversations["chosen"][1][:-1]
    if "rejected" in conversations:
        other = conversations["rejected"][1][:-1]
        if other != turns:
            at = next(
                (i for i, (a, b) in enumerate(zip(turns, other, strict=False)) if a != b),
                min(len(turns), len(other)),
            )
            raise _Bad(
                f"{columns.chosen} and {columns.rejected} do not share a prompt: their conversations differ at "
                f"message {at + 1}, before their last assistant turns"
            )
    if not any(m["role"] == "user" for m in turns):
        raise _Bad("the prompt has no user turn before the responses")
    texts = {"prompt": render_prompt(turns)}
    texts.update({side: conversation[-1]["content"] for side, (_, conversation) in conversations.items()})
    return turns, texts


# --- fitting prompts into a context -------------------------------------------------------------------------------


@dataclass
class TokenCounter:
    """Counts tokens with one model's tokenizer; ``context`` is that model's context length (None: unknown)."""

    name: str
    tokenizer: object
    context: int | None

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]


def load_token_counter(model_name: str, cache_dir: str | None = None) -> TokenCounter:
    """The tokenizer of ``model_name`` (no weights) and its context length, from its config or tokenizer."""
    path = resolve_model_name(model_name)
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, cache_dir=cache_dir)
        config = AutoConfig.from_pretrained(path, cache_dir=cache_dir)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"could not load the tokenizer of '{model_name}' ({str(err).splitlines()[0][:160]}): "
            "pass a local model folder, or a Hub id with network access"
        ) from None
    limits = [getattr(config.get_text_config(), "max_position_embeddings", None), tokenizer.model_max_length]
    sane = [n for n in limits if isinstance(n, int) and 0 < n < 10_000_000]
    return TokenCounter(model_name, tokenizer, min(sane) if sane else None)


def fit_prompts(
    preferences: Preferences, counter: TokenCounter, max_prompt_tokens: int | None, reserve: int = 0
) -> None:
    """Cut every prompt over its budget from its oldest turns (whole turns; a leading system message stays).

    The budget is ``max_prompt_tokens``, else what the model's context leaves after ``reserve`` (template, answer)
    and the row's two responses. A row that does not fit even with only its last user turn is an error naming it:
    a turn is never cut in the middle.
    """
    if max_prompt_tokens is None and counter.context is None:
        return
    rows = preferences.rows
    lengths = counter.count([row["prompt"] for row in rows])
    if max_prompt_tokens is not None:
        budgets = [max_prompt_tokens] * len(rows)
        limit = f"--max_prompt_tokens {max_prompt_tokens}"
    else:
        chosen, rejected = (
            counter.count([row.get(side, "") for row in rows]) for side in ("chosen", "rejected")
        )
        budgets = [counter.context - reserve - a - b for a, b in zip(chosen, rejected, strict=True)]
        limit = f"the {counter.context}-token context of {counter.name} (after the template and responses)"
    unfit = []
    for index, (length, budget) in enumerate(zip(lengths, budgets, strict=True)):
        if length <= budget:
            continue
        turns = preferences.turns[index] or []
        head = turns[:1] if turns and turns[0]["role"] == "system" else []
        starts = [i for i in range(len(head) + 1, len(turns)) if turns[i]["role"] == "user"]
        for start in starts:
            text = render_prompt(head + turns[start:])
            (tokens,) = counter.count([text])
            if tokens <= budget:
                rows[index] = {**rows[index], "prompt": text}
                preferences.cut[index] = {
                    "dropped_turns": start - len(head),
                    "tokens_before": length,
                    "tokens_after": tokens,
                }
                break
        else:
            unfit.append(f"row {preferences.kept[index]} ({length} tokens, {max(budget, 0)} left)")
    if unfit:
        raise UsageError(
            f"{len(unfit)} prompt(s) do not fit {limit} even with only their last user turn: "
            f"{', '.join(unfit[:_SHOWN])}{', ...' if len(unfit) > _SHOWN else ''}; shorten or remove those rows, "
            "or allow more tokens"
        )


# --- persona tailoring splits -------------------------------------------------------------------------------------


def read_tailoring_split(split, where: str):
    """A persona-tailoring split with text prompt/chosen/rejected, its persona columns kept.

    The paper's string columns are returned as they are (empty responses allowed, as in its Mnemonic test split);
    any other form (TRL's preference or prompt-completion forms, conversational or not, implicit prompts) is
    normalized, a prompt-completion split's ``completion`` becoming its ``chosen``.
    """
    import datasets

    names = split.column_names
    chosen = "chosen" if "chosen" in names or "completion" not in names else "completion"
    text = [c for c in ("prompt", "chosen", "rejected", "completion") if c in names]
    standard = "prompt" in names and all(isinstance(split.features[c], datasets.Value) for c in text)
    if len(split) == 0 or (standard and chosen == "chosen"):
        return split
    columns = Columns(chosen=chosen, rejected="rejected" if "rejected" in names else None)
    return read_preferences(split, columns, where, skip_bad_rows=None).to_dataset()
