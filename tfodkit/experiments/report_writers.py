"""The report's files: report.md and report.html from its document, report.csv with every number unrounded."""

from __future__ import annotations

import csv
import html
import math
from pathlib import Path
from typing import Sequence

from tfodkit.experiments.report_choice import Choice
from tfodkit.experiments.report_document import Document, Table
from tfodkit.experiments.report_table import POINT_COLUMNS, POINTS, RunRow

BEST_COLUMNS = ("best_step", "best_map50", "best_checkpoint", "best_checkpoint_exists", "best_source")


def csv_columns() -> list[str]:
    """report.csv's header: run facts, <point>_<column> for (a) and (b), the best checkpoint, the distances."""
    points = [f"{point}_{key}" for point in POINTS for key in POINT_COLUMNS]
    return ["run", "status", "note", "evaluations", *points, *BEST_COLUMNS, "delta_map50_b", "delta_gap_b",
            "recommended"]


def _csv_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return repr(value) if isinstance(value, float) else str(value)


def write_csv(path: Path, rows: Sequence[RunRow], choice: Choice) -> None:
    """One line per run; floats written exactly (repr), missing values as n/a."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(csv_columns())
        for row in rows:
            values: list[object] = [row.run.name, row.run.status, row.note, row.evaluations]
            for point in POINTS:
                values += [row.points.get(point, {}).get(key) for key in POINT_COLUMNS]
            best = row.best
            values += ([best.step, best.map_50, best.checkpoint, best.exists, best.source] if best
                       else [None] * len(BEST_COLUMNS))
            values += [*choice.deltas.get(row.run.name, (None, None)), choice.row is row]
            writer.writerow([_csv_value(value) for value in values])


def _markdown_table(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(text.replace("|", "\\|") for text in cells) + " |"

    return [line(table.headers), line(["---"] * len(table.headers)), *(line(row) for row in table.rows)]


def render_markdown(document: Document, directory: Path) -> str:
    lines = [f"# {document.title}", ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.table is not None:
            lines += _markdown_table(section.table) + [""]
        for caption, path in section.images.items():
            lines += [f"![{caption}]({path.relative_to(directory).as_posix()})", ""]
    return "\n".join(lines)


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:110em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:.25em .5em;text-align:right;font-size:90%}td:first-child,th{text-align:left}
tr.recommended{background:#e6f4e6}figure{display:inline-block;margin:.5em}img{max-width:48em}
section.test{border:3px double #a33;padding:0 1em;margin-top:2em}"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(text)}</th>" for text in table.headers)
    body = []
    for row in table.rows:
        css = ' class="recommended"' if row and row[0].endswith("(recommended)") else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(text)}</td>" for text in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(document: Document, directory: Path) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(document.title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(document.title)}</h1>"]
    for section in document.sections:
        css = ' class="test"' if section.title.startswith("Test split") else ""
        parts.append(f"<section{css}><h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.paragraphs]
        if section.table is not None:
            parts.append(_html_table(section.table))
        for caption, path in section.images.items():
            link = html.escape(path.relative_to(directory).as_posix())
            parts.append(f'<figure><a href="{link}"><img src="{link}" alt="{html.escape(caption)}"></a>'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
