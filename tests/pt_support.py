"""Re-exports of tests/conftest.py's persona-tailoring helpers, for test modules not yet importing conftest."""

from tests.conftest import PERSONA_COLUMNS, SPLITS, make_args, tailoring_row, write_tailoring_dataset  # noqa: F401
