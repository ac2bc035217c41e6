"""Fixtures shared by the whole suite: a tiny random model for the session and an isolated working folder.
Plain helpers live in tests/helpers.py."""

from __future__ import annotations

import pytest

from tests.helpers import KEY_VARIABLES, build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama + tokenizer folder, shared by the whole test session (read-only: copy to modify)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real keys, no stray .env: the working folder is the test's own."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "CO_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch
