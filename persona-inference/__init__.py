"""Persona inference (PI): one-sentence personas of users who prefer each side of a preference pair."""

from pathlib import Path

import persona_core  # noqa: F401  (sets the thread policy before torch loads)

PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
"""The built-in prompt templates, one folder per experiment (``--prompt_dir`` points at an edited copy)."""
