"""HTML pieces of the run report (escaped cells, tables, folded details, inlined images, badges), the number
formats it shares with the text summary, and the page around them, whose style and script are package data
(``report_assets/``)."""

from __future__ import annotations

import base64
import csv
import json
import math
from html import escape
from importlib.resources import files
from pathlib import Path
from string import Template

ASSETS = "report_assets"


def percent(value) -> str:
    """As the pipeline summary prints it: '62.5%', or 'undefined' for None/NaN."""
    return "undefined" if value is None or value != value else f"{100 * value:.1f}%"


def interval(bounds, scale: float = 100, digits: int = 1, unit: str = "%") -> str:
    if not bounds:
        return ""
    low, high = bounds
    return f" [{scale * low:.{digits}f}{unit}, {scale * high:.{digits}f}{unit}]"


def table(header: list[str], rows: list[list], cls: str = "") -> str:
    """An HTML table; cells are escaped text, or markup already made when wrapped in ``Markup``."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Markup(str):
    """Text that is already HTML (a cell that holds a badge or a nested block)."""


def cell(value) -> str:
    if isinstance(value, Markup):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return escape("" if value is None else str(value))


def csv_table(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return table(rows[0], rows[1:]) if rows else "<p>(empty)</p>"


def markdown_table(path: Path) -> str:
    """A markdown pipe table (win_rate's ΔPQ pivot) as HTML, a cell's ``<br>`` kept as its line break; the file's
    other lines (its note) as paragraphs."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    rows = [row for row in rows if not all(set(c) <= set("-:") for c in row)]  # the header separator
    cells = [[Markup("<br>".join(escape(part) for part in c.split("<br>"))) for c in row] for row in rows]
    notes = "".join(f"<p>{escape(line)}</p>" for line in lines if not line.startswith("|"))
    return (table(rows[0], cells[1:]) if rows else "") + notes


def details(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def pre(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return f"<pre>{escape(text)}</pre>"


def image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def badge(text: str, kind: str | None = None) -> Markup:
    return Markup(f'<span class="badge {escape(kind or text)}">{escape(text)}</span>')


def number(value, ci, fmt: str = ".3f") -> str:
    """As the pipeline summary prints a win rate or ΔPQ: '0.625 [0.400, 0.850]', or 'undefined'."""
    if value is None:
        return "undefined"
    return f"{value:{fmt}}" + ("" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def asset(name: str) -> str:
    """A file of the page's style or script, read from the package when a page is drawn."""
    return files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")


PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title><style>$style</style></head>
<body><h1>$title</h1><p>$subtitle</p>$body<script>$script</script></body></html>
""")


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>' if body else ""


def page(title: str, subtitle: str, body: str) -> str:
    """The whole page: ``body`` (markup) with the style and the row browser's script inlined."""
    return PAGE.substitute(
        title=escape(title),
        subtitle=escape(subtitle),
        style=asset("report.css"),
        body=body,
        script=asset("report.js"),
    )
