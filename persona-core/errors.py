"""Errors a user can fix, and the wrapper that turns them into one clean line."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UsageError(Exception):
    """Bad input or setup that the user can fix; printed as one line, never as a traceback."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main`` and exit with its status; a UsageError becomes ``error: ...`` and exit 2."""
    try:
        status = main()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
