"""Plain-text tables for terminal reports: a header rule, left-aligned first column, right-aligned values."""

from __future__ import annotations

from typing import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    """The rows under their headers, columns padded to the widest cell."""
    cells = [[str(h) for h in headers]] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [value.rjust(width) for value, width in zip(row[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    lines = [title] if title else []
    lines += [line(cells[0]), "  ".join("-" * width for width in widths)]
    lines += [line(row) for row in cells[1:]]
    return "\n".join(lines)
