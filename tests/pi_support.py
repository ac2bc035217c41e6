"""Re-exports of tests/conftest.py's persona-inference helpers, for test modules not yet importing conftest."""

from tests.conftest import (  # noqa: F401
    KEY_VARIABLES,
    REPO_ROOT,
    TEMPLATE,
    api_args,
    clean_env,
    expected_persona,
    fake_persona,
    read_jsonl,
    run_module,
    write_preferences,
    write_template,
)
