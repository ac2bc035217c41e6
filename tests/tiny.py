"""Re-exports of tests/conftest.py's tiny model, for modules not yet importing conftest."""

from tests.conftest import CHAT_TEMPLATE, CORPUS, build_tiny_model  # noqa: F401
