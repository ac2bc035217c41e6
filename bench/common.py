"""What the benchmark scripts share: the load average they record and how they end."""

from __future__ import annotations

import os

from persona_core.io import write_json_atomic


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded: other jobs on the same cores slow every figure."""
    return [round(x, 2) for x in os.getloadavg()]


def finish(figures: dict, json_path: str | None) -> int:
    """Print the load average and wall time (where ``figures`` has them), write ``figures`` to ``json_path`` when
    given, and return main's exit status."""
    if "load_average" in figures:
        loads = figures["load_average"]
        print(
            f"load average (1, 5, 15 min) on {os.cpu_count()} CPUs: start {loads['start']}, end {loads['end']}; "
            f"wall time {figures['wall_s']}s"
        )
    if json_path:
        write_json_atomic(json_path, figures)
        print(f"figures: {json_path}")
    return 0
