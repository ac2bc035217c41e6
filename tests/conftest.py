import pytest

from tests.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama + tokenizer folder, shared by the whole test session (read-only: copy to modify)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
