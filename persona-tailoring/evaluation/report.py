"""One self-contained HTML page of a whole run: headline numbers, figures, a row browser and the run records.

Examples::

    python -m persona_tailoring.evaluation.report --root results/pipeline     # -> results/pipeline/report.html
    python -m persona_tailoring.evaluation.report --root /tmp/run --output /tmp/run.html
    python -m persona_tailoring.evaluation.report --root results/pipeline --summary   # + the numbers as text

It reads whatever stages exist below the results root (a persona-inference-only run gives a persona-inference-only
page), finding every file through ``persona_core.layout`` (``report_reading``); ``report_page`` draws the page,
``report_text`` the plain-text summary. The page needs no network when it is opened: figures are
inlined as PNG data, and the row browser's search and outcome filter are a few lines of inline JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from persona_core import layout
from persona_core.cli import parse
from persona_core.errors import UsageError, run_cli
from persona_core.io import write_text_atomic
from persona_tailoring.evaluation.report_page import render
from persona_tailoring.evaluation.report_reading import read_run
from persona_tailoring.evaluation.report_text import summary_lines


@dataclass
class ReportArguments:
    """Which run to report, and where the page goes."""

    root: str | None = field(
        default=None, metadata={"help": "The results root of a run (scripts/pipeline.sh's ROOT)."}
    )
    output: str | None = field(
        default=None, metadata={"help": "Where to write the page (default: <root>/report.html)."}
    )
    summary: bool = field(
        default=False, metadata={"help": "Also print the headline numbers as text (before writing the page)."}
    )

    def check(self) -> None:
        if not self.root:
            raise UsageError("pass --root, the results folder of a run (scripts/pipeline.sh's ROOT)")
        if not Path(self.root).is_dir():
            raise UsageError(f"--root '{self.root}' is not a folder: pass the results folder of a run")


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((ReportArguments,), argv, description=__doc__.split("\n\n")[0])
    root = Path(args.root)
    run = read_run(root)
    if args.summary:
        print("\n".join(summary_lines(run)))
    output = Path(args.output) if args.output else layout.report_path(root)
    page = render(run)
    write_text_atomic(output, page)
    stages = ", ".join(f"{name} {count}" for name, count in run.stages().items() if count)
    rows = sum(len({r["row"] for r in p.records}) for p in run.personas)
    judged = sum(len({r["id"] for r in c.records}) for c in run.comparisons)
    print(f"report: {stages}; {rows} persona rows and {judged} judged test rows in the browser")
    print(f"{len(page.encode('utf-8')) / 1e6:.2f} MB, self-contained (figures inlined, no network needed)")
    print(f"report: {output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
