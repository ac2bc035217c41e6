"""Dataclass-driven command lines (TRL style) without importing transformers, so ``--help`` stays fast."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import sys
import typing

from persona_core.errors import UsageError
from persona_core.secrets import refuse_key_flags


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help lines end with "(default: X)" where that says something: not for an off switch or no value, nor where
    the help text already names its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "default" in text.lower() or default in (None, False, argparse.SUPPRESS) or default == []:
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad flags as one ``error:`` line naming the fix."""

    def error(self, message: str) -> typing.NoReturn:
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _unwrap(tp) -> tuple[type, bool]:
    """Return (base type, is_list) for ``X``, ``X | None``, ``list[X]`` and ``list[X] | None``."""
    if type(None) in typing.get_args(tp):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is list:
        return typing.get_args(tp)[0], True
    return tp, False


def _is_enum(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def parse_enum(enum_cls: type[enum.Enum], value: str, flag: str) -> enum.Enum:
    """Convert ``value`` to ``enum_cls`` or raise a UsageError listing the valid choices."""
    if isinstance(value, enum_cls):
        return value
    for member in enum_cls:
        if value in (member.value, member.name):
            return member
    choices = [m.value for m in enum_cls]
    near = [c for c in choices if str(value) in c.split("_")] or difflib.get_close_matches(
        str(value), choices, n=1
    )
    hint = f" (did you mean {near[0]}?)" if near else ""
    raise UsageError(f"unknown {flag} '{value}'{hint}; choose one of: {', '.join(choices)}")


def parse(
    groups: tuple[type, ...],
    argv: list[str] | None = None,
    description: str | None = None,
    epilog: str | None = None,
    return_remaining: bool = False,
) -> tuple:
    """Parse ``argv`` into one instance per argument group, in the order of ``groups`` (the shape of TRL's
    ``HfArgumentParser.parse_args_into_dataclasses``), without importing transformers so ``--help`` stays fast.

    Each group is a dataclass; its fields are flags (help from ``metadata['help']``, extra names from
    ``metadata['aliases']``) listed under the group's title in ``--help``. Enum values are checked with a clear
    error, then each group's ``check`` method, if it has one, validates its values: a bad value is one line before
    anything loads. ``return_remaining``: the flags no group knows come back last (for TRL's own configs), else
    they are refused before any value is checked (a misspelt flag is named first).
    """
    refuse_key_flags(sys.argv[1:] if argv is None else argv)
    parser = OneLineParser(
        description=description and description.replace("``", ""),
        epilog=epilog,
        formatter_class=DefaultsHelpFormatter,
        allow_abbrev=False,
    )
    for group in groups:
        _add_group(parser, group)
    namespace, rest = parser.parse_known_args(argv)
    if rest and not return_remaining:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    instances = tuple(_build(group, namespace) for group in groups)
    for instance in instances:
        check = getattr(instance, "check", None)
        if check is not None:
            check()
    return (*instances, rest) if return_remaining else instances


def _title(group: type) -> str:
    doc = (group.__doc__ or "").strip()
    first = doc.split("\n\n")[0].replace("\n", " ").replace("``", "")
    return first.rstrip(".") if doc and not first.startswith(group.__name__ + "(") else group.__name__


def _add_group(parser: argparse.ArgumentParser, group: type) -> None:
    section = parser.add_argument_group(_title(group))
    hints = typing.get_type_hints(group)
    for field in dataclasses.fields(group):
        if not field.init:
            continue
        base, is_list = _unwrap(hints[field.name])
        flags = [f"--{field.name}", *field.metadata.get("aliases", [])]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        help_text = field.metadata.get("help", "").replace("``", "")
        kwargs: dict = {"dest": field.name, "help": help_text, "default": default}
        if base is bool and not default:
            # An off switch: --flag turns it on (--no-flag, hidden, is still accepted for scripts that pass it).
            kwargs["action"] = "store_true"
            section.add_argument(
                f"--no-{field.name}",
                dest=field.name,
                action="store_false",
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )
        elif base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif _is_enum(base):
            kwargs["metavar"] = "{" + ",".join(m.value for m in base) + "}"
            values = default if is_list and default is not None else None
            kwargs["default"] = [d.value for d in values] if values else getattr(default, "value", default)
        else:
            kwargs["type"] = base
        if is_list:
            kwargs["nargs"] = "+"
        section.add_argument(*flags, **kwargs)


def _build(group: type, namespace: argparse.Namespace):
    hints = typing.get_type_hints(group)
    values = {}
    for field in dataclasses.fields(group):
        if not field.init:
            continue
        value = getattr(namespace, field.name)
        base, is_list = _unwrap(hints[field.name])
        if _is_enum(base) and value is not None:
            flag = f"--{field.name}"
            value = [parse_enum(base, v, flag) for v in value] if is_list else parse_enum(base, value, flag)
        values[field.name] = value
    return group(**values)


def public_args(*groups) -> dict:
    """The argument groups' values as one JSON-ready dict, for run records (no secrets ever live in arguments)."""
    out = {}
    for group in groups:
        for key, value in dataclasses.asdict(group).items():
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, list):
                value = [v.value if isinstance(v, enum.Enum) else v for v in value]
            out[key] = value
    return out
