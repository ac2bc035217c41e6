"""API keys: read from the environment or ``.env`` only, never from argv, never printed."""

from __future__ import annotations

import os
from pathlib import Path

from persona_core.errors import UsageError

# Per backend: accepted variable names, the SDK's standard name first, then the seed's.
KEY_VARIABLES = {
    "open_ai": ("OPENAI_API_KEY", "OPEN_AI_TOKEN"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_TOKEN"),
    "cohere": ("CO_API_KEY", "COHERE_TOKEN"),
    "hf_read": ("HF_TOKEN", "HF_READ_TOKEN"),
    "hf_write": ("HF_TOKEN", "HF_WRITE_TOKEN"),
    "wandb": ("WANDB_API_KEY", "WANDB_KEY"),
}
BASE_URL_VARIABLES = {
    "open_ai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "cohere": "CO_API_URL",
}


def refuse_key_flags(argv: list[str]) -> None:
    """A key passed as a flag (the original code's ``--open_ai_token``, ``--hf_write_token``, ...) is refused with the
    variable to set instead: keys never travel in argv, where logs and ``ps`` would show them."""
    for item in argv:
        flag = item.split("=", 1)[0]
        name = flag[2:].upper()
        known = {n for names in KEY_VARIABLES.values() for n in names} | {"HUB_TOKEN", "TOKEN", "API_KEY"}
        if not flag.startswith("--") or not (name in known or name.endswith("_API_KEY")):
            continue
        variable = "HF_TOKEN" if name in ("HUB_TOKEN", "TOKEN") else name
        variable = "OPENAI_API_KEY" if variable == "API_KEY" else variable
        raise UsageError(
            f"{flag}: keys are never flags; set {variable}=... in the environment or .env (see .env.example)"
        )


def load_env(path: str | os.PathLike | None = None) -> None:
    """Load ``.env`` (current folder, else the nearest parent holding one) without overriding the environment."""
    from dotenv import find_dotenv, load_dotenv

    dotenv_path = Path(path) if path else find_dotenv(usecwd=True)
    if dotenv_path:
        load_dotenv(dotenv_path, override=False)


def get_key(service: str, required: bool = True) -> str | None:
    """The key for ``service`` from the environment; a missing required key is a UsageError naming the fix."""
    names = KEY_VARIABLES[service]
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    if required:
        raise UsageError(
            f"missing API key for {service}: set {names[0]} (or {names[1]}) in the environment or .env"
        )
    return None


def base_url_from_env(service: str) -> str | None:
    name = BASE_URL_VARIABLES.get(service)
    return os.environ.get(name) if name else None
